"""The closure stage refuses a collapsed closure and stores float32 trajectories when asked."""
import numpy as np
import pytest

from macrodyn import Run
from macrodyn.config import parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.run.closure import MAX_KAPPA, check_collapse, closure_stage
from macrodyn.run.simulate import simulate
from tests.test_cli import TINY


def test_collapse_is_refused_only_with_the_penalty_on(tmp_path):
    run = Run(parse_config({**TINY, "closure": {**TINY.get("closure", {}), "cond_weight": 1e-4}}), tmp_path)
    check_collapse(run, {"kappa": [3.0, 12.0]})
    for bad in (MAX_KAPPA * 10, float("nan"), float("inf")):
        with pytest.raises(InputError, match="collapsed.*closure.lr"):
            check_collapse(run, {"kappa": [1.0, bad]})
    off = Run(parse_config({**TINY, "closure": {**TINY.get("closure", {}), "cond_weight": 0.0}}), tmp_path)
    check_collapse(off, {"kappa": [float("nan")]})


@pytest.mark.slow
def test_float32_trajectories_are_the_float64_ones_rounded(tmp_path):
    runs = {}
    for dtype in ("float64", "float32"):
        cfg = parse_config({**TINY, "data": {**TINY["data"], "dtype": dtype}})
        runs[dtype] = Run.create(cfg, tmp_path / dtype, progress=False)
        simulate(runs[dtype])
    x64, x32 = (ChunkedTable.open(runs[d].store, "train").read()["traj"] for d in ("float64", "float32"))
    assert x32.dtype == np.float32 and x64.dtype == np.float64
    np.testing.assert_array_equal(x32, x64.astype(np.float32))  # same trajectories, only the storage rounds
    assert closure_stage(runs["float32"]).dim == closure_stage(runs["float64"]).dim
