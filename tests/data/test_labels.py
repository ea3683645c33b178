"""Labels point at training snapshots; with either trajectory layout the stored forces are
the system's forces at exactly those snapshots."""
import numpy as np
import pytest

from macrodyn import keys as K
from macrodyn.data import ChunkedTable


@pytest.mark.parametrize("snapshot_files", [False, True])
def test_labels_reference_their_snapshots(tmp_path, monkeypatch, snapshot_files):
    from macrodyn import Run, parse_config, run_all
    from macrodyn.run import pool, simulate

    if snapshot_files:  # store every snapshot as its own chunk (the large-N layout)
        monkeypatch.setattr(simulate, "SNAPSHOT_FILE_BYTES", 8)
    cfg = parse_config({"data": {"n_train_trajectories": 5, "n_test_trajectories": 2, "n_steps": 200,
                                 "save_every": 10, "chunk_trajectories": 2},
                        "training": {"budget": 600, "p": 0.1, "chunk_configs": 7}})
    run = Run.create(cfg, tmp_path / "run", progress=False)
    run_all(run, ("simulate", "label"))
    train = ChunkedTable.open(run.store, "train")
    assert (train.group[K.TRAJ].chunks[:2] == (1, 1)) == snapshot_files
    traj = train.read()[K.TRAJ]
    lab = ChunkedTable.open(run.store, "labels").read()
    assert K.X not in lab and lab[K.WHERE].shape == (run.n_configs, 2)
    x = traj[lab[K.WHERE][:, 0], lab[K.WHERE][:, 1]]
    np.testing.assert_array_equal(pool.labelled_configs(run, lab), x)
    full = run.system.forces(x)
    np.testing.assert_allclose(lab[K.FORCES], np.take_along_axis(full, lab[K.INDEX], 1), rtol=1e-12, atol=1e-12)
    assert len(np.unique(lab[K.WHERE], axis=0)) == run.n_configs  # distinct snapshots


@pytest.mark.parametrize("min_observable", [None, 0.42])
def test_closure_reads_only_its_subsample(tmp_path, monkeypatch, min_observable):
    """With closure.max_configs the closure trains on the snapshots a load-everything-then-
    subsample reference picks (same seeded draw over the kept snapshots), read one by one."""
    import torch

    from macrodyn import Run, parse_config, run_all
    from macrodyn.model import steps
    from macrodyn.run.closure import closure_stage

    cfg = parse_config({"data": {"n_train_trajectories": 5, "n_test_trajectories": 2, "n_steps": 200,
                                 "save_every": 10, "chunk_trajectories": 2, "min_observable": min_observable},
                        "closure": {"max_configs": 40, "epochs": 1}, "training": {"budget": 600, "p": 0.1}})
    run = Run.create(cfg, tmp_path / "run", progress=False)
    run_all(run, ("simulate",))
    seen = {}
    monkeypatch.setattr(steps, "fit_closure", lambda ae, x, **kw: seen.setdefault("x", x) is None
                        or {"kappa": [1.0], "earlier_seconds": 0.0})
    closure_stage(run)
    traj = ChunkedTable.open(run.store, "train").read()[K.TRAJ]
    if min_observable is None:
        kept = traj.reshape(-1, traj.shape[-1])
    else:
        with torch.no_grad():
            obs = run.system.observable()(torch.as_tensor(traj.reshape(-1, traj.shape[-1])))[:, 0].numpy()
        kept = traj.reshape(-1, traj.shape[-1])[obs > min_observable]
        assert 40 < len(kept) < len(obs)  # the threshold removes some snapshots
    ref = kept[np.sort(run.rng("pick", 1).choice(len(kept), 40, replace=False))]
    np.testing.assert_array_equal(seen["x"], ref)
