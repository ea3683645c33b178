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


@pytest.mark.slow
def test_metrics_say_when_early_stopping_ended_a_fit(tmp_path):
    from macrodyn import run_all
    from macrodyn.io import load_torch

    t = {**TINY["training"], "select": "rollout", "select_every": 1, "stop_patience": 3, "epochs": 40, "members": 2}
    run = Run.create(parse_config({**TINY, "training": t}), tmp_path / "run", progress=False)
    m = run_all(run)
    hists = [load_torch(run.member_path(k))["history"] for k in range(2)]
    assert m["epochs_run_members"] == [len(h["train"]) for h in hists]
    assert m["best_epoch_members"] == [h["best_epoch"] for h in hists]
    for ran, best in zip(m["epochs_run_members"], m["best_epoch_members"]):
        assert ran < 40 and ran - 1 - best == 3  # stopped 3 epochs after its best score, well before 40
