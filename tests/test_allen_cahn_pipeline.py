"""Allen–Cahn through the whole pipeline on a tiny grid, and its report figures."""
import json

import numpy as np
import pytest
import torch

from macrodyn import Run, run_all
from macrodyn.config import parse_config
from macrodyn.data import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.systems import AllenCahn

THRESHOLD = 1.0e-2  # high enough that the late, nearly uniform snapshots of a 16 × 16 run fall below it

TINY = {
    "name": "tiny_allen_cahn",
    "threads": 1,                                                    # tiny nets: one thread is fastest
    "system": {"name": "allen_cahn", "params": {"n": 16}},          # N = 256, dt = 0.1 h²
    "data": {"n_train_trajectories": 6, "n_test_trajectories": 3, "n_steps": 256, "save_every": 16,
             "chunk_trajectories": 3, "min_observable": THRESHOLD},  # T = 0.1, 17 snapshots
    "closure": {"dim": 3, "hidden": [16, 16], "epochs": 2, "cond_weight": 1.0e-5},
    "model": {"hidden": [16, 16], "potential_hidden": [16, 16], "alpha": 0.1, "beta": 0.1, "forcing": True},
    "training": {"loss": "L_xp", "p": 0.0625, "budget": 640, "epochs": 5, "batch_size": 16, "lr": 1.0e-3,
                 "chunk_configs": 16},                                # 16 points × 40 configurations
    "evaluation": {"n_plot": 2},
}


@pytest.mark.slow
def test_allen_cahn_end_to_end(tmp_path):
    cfg = parse_config(TINY)
    run = Run.create(cfg, tmp_path / "run", progress=False)
    m = run_all(run)

    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("system", "loss", "p", "budget", "n_configs", "units_per_config", "force_evaluations",
                "rollout_rel_error", "rollout_rel_error_std", "n_test_trajectories", "seed", "stage_seconds"):
        assert key in saved
    assert saved["system"] == "allen_cahn" and saved["loss"] == "L_xp"
    k = round(0.0625 * 256)
    assert m["units_per_config"] == k == 16
    assert m["n_configs"] == 640 // k
    assert m["force_evaluations"] == m["n_configs"] * k == 640
    assert run.system.counter.labels == m["force_evaluations"]  # counted by the system too
    assert np.isfinite(m["rollout_rel_error"]) and m["n_test_trajectories"] == 3
    assert set(m["stage_seconds"]) >= {"simulate", "label", "closure", "dynamics", "evaluate", "report"}

    # min_observable: the pool had snapshots below the threshold, and none of them was labelled
    obs = run.system.observable()
    train = ChunkedTable.open(run.store, "train").read()["traj"]
    with torch.no_grad():
        e_all = obs(torch.as_tensor(train.reshape(-1, 256)))[:, 0].numpy()
        labels = ChunkedTable.open(run.store, "labels").read()
        x_lab = train[labels["where"][:, 0], labels["where"][:, 1]]  # labels point at training snapshots
        e_lab = obs(torch.as_tensor(x_lab))[:, 0].numpy()
    assert (e_all <= THRESHOLD).sum() >= 10, "the tiny run should have low-energy snapshots to exclude"
    assert (e_all > THRESHOLD).sum() >= m["n_configs"]
    assert labels["where"].shape == (40, 2) and labels["f"].shape == (40, 16) and "x" not in labels
    assert len(np.unique(labels["where"], axis=0)) == 40  # distinct snapshots
    assert e_lab.min() > THRESHOLD

    figs = tmp_path / "run" / "figures"
    report = (tmp_path / "run" / "report.md").read_text()
    for name in ("observables.png", "error_over_time.png", "training.png", "allen_cahn_initial.png",
                 "allen_cahn_snapshots.png"):
        assert (figs / name).stat().st_size > 1000
    assert "figures/allen_cahn_initial.png" in report and "figures/allen_cahn_snapshots.png" in report


def test_report_figures(tmp_path):
    s = AllenCahn(n=16)
    x0 = s.ring(np.array([0.4, 0.35]), np.array([0.12, 0.1]))
    traj = s.trajectories(x0, 256, 32, progress=False)  # (2, 9, 256); the rings fade out by t = 0.1
    assert (traj[:, -1] < 0).all() and (traj[:, 0] > 0).any(axis=1).all()
    md = s.report_figures(tmp_path / "figures", traj, n_snapshots=4)
    for name in ("allen_cahn_initial.png", "allen_cahn_snapshots.png"):
        path = tmp_path / "figures" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
        assert f"](figures/{name})" in md
    assert md.startswith("## ")
    # one trajectory, a single snapshot: still two images
    s.report_figures(tmp_path / "one", traj[:1, :1])
    assert (tmp_path / "one" / "allen_cahn_snapshots.png").exists()


def test_report_figures_rejects_wrong_shape(tmp_path):
    s = AllenCahn(n=16)
    with pytest.raises(InputError, match=r"\(n_traj, T, 256\)"):
        s.report_figures(tmp_path, np.zeros((2, 256)))
    with pytest.raises(InputError, match=r"\(n_traj, T, 256\)"):
        s.report_figures(tmp_path, np.zeros((1, 3, 255)))
