"""training.select: rollout scores a model by the rollout metric on training trajectories."""
import numpy as np
import pytest
import torch

from macrodyn import Run
from macrodyn.config import parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.run.closure import closure_stage
from macrodyn.run.dynamics import selection_score
from macrodyn.run.simulate import simulate
from tests.test_cli import TINY


class Still(torch.nn.Module):
    """dz/dt = 0: the rollout stays at the encoded initial state."""

    def forward(self, z):
        return torch.zeros_like(z)


@pytest.mark.slow
def test_rollout_score_of_a_still_model_is_the_constant_prediction_error(tmp_path):
    cfg = parse_config({**TINY, "training": {**TINY["training"], "select": "rollout", "select_trajectories": 100}})
    run = Run.create(cfg, tmp_path / "run", progress=False)
    simulate(run)
    score = selection_score(run, closure_stage(run))
    # independent reference in NumPy: spatial means of u and v, prediction frozen at t = 0
    x = ChunkedTable.open(run.store, "train").read()["traj"]  # (8, T, 100)
    obs = np.stack([x[..., :50].mean(-1), x[..., 50:].mean(-1)], axis=-1)
    err = np.linalg.norm(obs - obs[:, :1], axis=-1).sum(1) / np.linalg.norm(obs, axis=-1).sum(1)
    assert err.mean() > 1e-2  # the trajectories do move
    assert score(Still()) == pytest.approx(err.mean(), rel=1e-5)


def test_select_loss_gives_no_score(tmp_path):
    run = Run.create(parse_config(TINY), tmp_path / "run", progress=False)
    assert selection_score(run, None) is None
