"""Stage evaluate: roll out from encoded test initial states; relative error on the given observables."""
from __future__ import annotations

import time

import numpy as np

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.data.store import ChunkedTable
from macrodyn.data.validate import units_in
from macrodyn.dynamics import StandardizedField
from macrodyn.io import save_json
from macrodyn.model import steps as S
from macrodyn.run.dynamics import surrogate_record, training_record
from macrodyn.run.folder import Run
from macrodyn.run.simulate import simulation_force_evaluations


def evaluate_stage(run: Run, ae: ClosureAutoencoder, fields: list[StandardizedField]) -> dict:
    """Per-trajectory errors of every member (``test_errors.npy``) and ``metrics.json``.

    A rollout that blows up (non-finite error) is a failure counted per trajectory; the mean
    is then over the finite ones and says so (``n_failed_trajectories``), never silently.
    """
    t0 = time.perf_counter()
    test = ChunkedTable.open(run.store, "test")
    errs = np.zeros((len(fields), test.n_rows))
    for c, ch in enumerate(test.iter_chunks([K.TRAJ])):
        for m, g in enumerate(fields):
            errs[m, test.chunk_slice(c)] = S.trajectory_errors(run.cfg, run.system, ae, g, ch[K.TRAJ])
    lab = ChunkedTable.open(run.store, "labels")
    n_evals = sum(units_in(ch[K.INDEX], run.system.coords_per_unit) for ch in lab.iter_chunks([K.INDEX]))
    run.timed("evaluate", time.perf_counter() - t0)
    np.save(run.out / "test_errors.npy", errs)
    metrics = {
        "system": run.cfg.system.name,
        "loss": run.cfg.training.loss,
        "p": run.cfg.training.p,
        "model": run.cfg.model.kind,
        "budget": run.cfg.training.budget,
        "n_configs": lab.n_rows,
        "units_per_config": run.units_per_config,
        "force_evaluations": n_evals,
        "simulation_force_evaluations": simulation_force_evaluations(run),
        **surrogate_record(run),  # training.control: surrogate: the cheap system's evaluations, apart from the budget
        **error_summary(errs),
        "n_members": len(fields),
        **training_record(run, len(fields)),
        "n_test_trajectories": test.n_rows,
        "seed": run.cfg.seed,
        "stage_seconds": run.stage_seconds(),
        "stage_peak_rss_gb": run.stage_peak_gb(),
    }
    save_json(metrics, run.out / "metrics.json")
    return metrics


def error_summary(errs: np.ndarray) -> dict:
    """Metrics of per-member, per-trajectory errors ``(members, n)``: strict-JSON numbers (None
    where undefined), the failures counted, the spread over trajectories shown."""
    ok = np.isfinite(errs)
    failed = ~ok.all(axis=0)  # a trajectory fails if any member's rollout blew up on it
    per_member = np.array([e[f].mean() if f.any() else np.nan for e, f in zip(errs, ok)])
    per_traj = np.where(failed, np.nan, errs.mean(axis=0))
    good = per_traj[~failed]

    def num(v):
        return float(v) if np.isfinite(v) else None

    return {
        "rollout_rel_error": num(per_member.mean()),
        "rollout_rel_error_std": num(per_member.std()) if len(errs) > 1 else None,
        "rollout_rel_error_members": [num(v) for v in per_member],
        "rollout_rel_error_median_trajectory": num(np.median(good)) if len(good) else None,
        "rollout_rel_error_max_trajectory": num(good.max()) if len(good) else None,
        "worst_trajectory": int(np.argmax(np.where(failed, np.inf, per_traj))) if errs.size else None,
        "n_failed_trajectories": int(failed.sum()),
    }
