"""Stage closure: the closure autoencoder, trained on training snapshots (no forces)."""
from __future__ import annotations

import time

import numpy as np

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.data.store import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.io import load_torch, save_torch
from macrodyn.model import steps as S
from macrodyn.model.parts import make_closure
from macrodyn.run.folder import Run
from macrodyn.run.pool import snapshot_pool


def closure_stage(run: Run) -> ClosureAutoencoder:
    """Train the closure (or load it when ``closure.pt`` exists)."""
    if run.closure_path.exists():
        return load_closure(run)
    t0 = time.perf_counter()
    train = ChunkedTable.open(run.store, "train")
    pool = snapshot_pool(run)
    sub = S.closure_subsample(run.cfg, pool, run.rng("pick", 1))
    if sub is not None:  # only the chosen snapshots are read (6 GB of them at 6 400 atoms would not be)
        x = train.gather(K.TRAJ, S.flat_to_where(sub, run.n_saved))
    else:
        x = np.concatenate([ch[K.TRAJ][S.snapshot_mask(run.cfg, run.system, ch[K.TRAJ])]
                            for ch in train.iter_chunks([K.TRAJ])])
    ae, hist = S.train_closure(run.cfg, run.system, x, run.progress, checkpoint=run.closure_checkpoint)
    check_collapse(run, hist)
    save_torch({"state": ae.state_dict(), "history": hist}, run.closure_path)
    run.closure_checkpoint.unlink(missing_ok=True)
    # a killed call's epochs count too (their seconds are in the checkpoint; the reading of the snapshots is not)
    run.timed("closure", time.perf_counter() - t0 + hist["earlier_seconds"])
    run.state.closure = ae
    return ae


#: a final mean κ(J Jᵀ) above this is a collapsed closure (rank lost): the trained LJ closures end at 1–30
MAX_KAPPA = 1e6


def check_collapse(run: Run, hist: dict) -> None:
    """Refuse (not save) a closure whose Jacobian lost rank in training: every later stage divides
    by ``J Jᵀ``. Checked when the κ penalty is on (``closure.cond_weight`` > 0), on its last epoch."""
    if run.cfg.closure.cond_weight <= 0:
        return
    kappa = hist["kappa"][-1] if hist["kappa"] else float("nan")
    if not kappa <= MAX_KAPPA:
        raise InputError(f"the closure collapsed: mean κ(J Jᵀ) {kappa:.3g} in its last epoch (> {MAX_KAPPA:.0e}), "
                         "so its Jacobian has lost rank. Lower closure.lr or closure.input_lr_coords (the input "
                         "layer's step grows with the number of coordinates), or raise closure.cond_weight, then "
                         "rerun the closure stage.")


def load_closure(run: Run) -> ClosureAutoencoder:
    """The trained closure of the run; one line naming the command when there is none."""
    if run.state.closure is not None:
        return run.state.closure
    if not run.closure_path.exists():
        raise InputError(f"{run.out} has no trained closure; run `macrodyn train-closure --out {run.out}` first.")
    ae = make_closure(run.cfg.closure, run.system)
    ae.load_state_dict(load_torch(run.closure_path)["state"])
    run.state.closure = ae
    return ae
