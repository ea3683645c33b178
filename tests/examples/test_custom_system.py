"""The bring-your-own-system example runs end to end through the public API."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from macrodyn import keys as K
from macrodyn.data import ChunkedTable

EXAMPLE = Path(__file__).parents[2] / "examples" / "custom_system.py"


@pytest.mark.slow
def test_custom_system_example(tmp_path):
    spec = importlib.util.spec_from_file_location("custom_system", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.main(["--quick", "--out", str(tmp_path)])
    assert m["force_evaluations"] == m["budget"] == 3200
    assert (tmp_path / "report.md").exists() and (tmp_path / "figures" / "observables.png").exists()
    # the learned model must beat persistence (z*(t) = z*(0)) on the same test set
    traj = ChunkedTable.open(tmp_path / "data.zarr", "test").read()[K.TRAJ]
    mean = traj.mean(-1)
    persistence = (np.abs(mean - mean[:, :1]).sum(1) / np.abs(mean).sum(1)).mean()
    assert m["rollout_rel_error"] < 0.5 * persistence
    # partial forces of the user system agree with its full forces
    s = mod.FisherKPP()
    x = s.sample_initial(2, np.random.default_rng(0))
    idx = np.array([[0, 5, 63], [1, 62, 30]])
    np.testing.assert_allclose(s.partial_forces(x, idx), np.take_along_axis(s.forces(x), idx, 1))
