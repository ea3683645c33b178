"""The training snapshots a run draws from: all of them, or those ``data.min_observable`` keeps."""
from __future__ import annotations

import numpy as np

from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable
from macrodyn.model import steps as S
from macrodyn.run.folder import Run


def snapshot_pool(run: Run) -> np.ndarray:
    """Flat indices ``trajectory · n_saved + snapshot`` of the kept training snapshots. With a
    threshold this streams the whole train table, so the result is kept in ``run.state``."""
    d = run.cfg.data
    if d.min_observable is None:
        return np.arange(d.n_train_trajectories * run.n_saved)
    if run.state.pool is None:
        train = ChunkedTable.open(run.store, "train")
        run.state.pool = np.flatnonzero(np.concatenate(
            [S.snapshot_mask(run.cfg, run.system, ch[K.TRAJ]).ravel() for ch in train.iter_chunks([K.TRAJ])]))
    return run.state.pool


def pick_configs(run: Run) -> np.ndarray:
    """Which training snapshots get labels: ``(n_configs, 2)`` of (trajectory, snapshot)."""
    return S.pick(snapshot_pool(run), run.n_configs, run.rng("pick"), run.n_saved)


def labelled_configs(run: Run, lab: dict[str, np.ndarray]) -> np.ndarray:
    """The configurations ``(M, N)`` of labels ``lab`` (read from the train table; label
    tables written before labels pointed at snapshots hold them in column ``x``)."""
    if K.X in lab:
        return lab[K.X]
    return ChunkedTable.open(run.store, "train").gather(K.TRAJ, lab[K.WHERE])
