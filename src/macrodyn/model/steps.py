"""The method's steps on arrays in memory: pick configurations, label them, train the closure,
compute features, fit a member, score rollouts.

Both :class:`macrodyn.model.MacroModel` (arrays) and the run's stages (chunked tables on
disk) call these, so the two paths give the same numbers for the same config and seed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.config import RunConfig
from macrodyn.dynamics import StandardizedField
from macrodyn.data.validate import check_finite
from macrodyn.errors import InputError
from macrodyn.evaluation.rollout import rollout_errors
from macrodyn.model.parts import (closure_only, control_of, device, fit_options, loss_of, make_closure, make_field,
                                  sampler_of, units_per_config)
from macrodyn.systems.base import MicroSystem
from macrodyn.training.closure import fit_closure
from macrodyn.training.distributed import data_parallel
from macrodyn.training.dynamics import fit_dynamics
from macrodyn.training.features import compute_features, label
from macrodyn.training.options import Checkpointing
from macrodyn.training.sampling import expand_unit_weights, pinv_row_scores

Stats = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def n_saved(cfg: RunConfig) -> int:
    """Snapshots saved per trajectory (the first state included)."""
    return cfg.data.n_steps // cfg.data.save_every + 1


def snapshot_mask(cfg: RunConfig, system: MicroSystem, traj: np.ndarray) -> np.ndarray:
    """``(b, T)`` bool: snapshots kept by ``data.min_observable`` (all if unset)."""
    thr = cfg.data.min_observable
    if thr is None:
        return np.ones(traj.shape[:2], dtype=bool)
    with torch.no_grad():
        first = system.observable()(torch.as_tensor(traj.reshape(-1, traj.shape[-1])))[:, 0].numpy()
    return first.reshape(traj.shape[:2]) > thr


def flat_to_where(flat: np.ndarray, saved: int) -> np.ndarray:
    """Flat snapshot indices ``trajectory · saved + snapshot`` → ``(M, 2)`` (trajectory, snapshot)."""
    return np.stack([flat // saved, flat % saved], axis=1)


def pick(pool: np.ndarray, n: int, rng: np.random.Generator, saved: int) -> np.ndarray:
    """``n`` distinct snapshots of ``pool`` (flat indices), sorted: ``(n, 2)`` (trajectory, snapshot)."""
    if n > len(pool):
        raise InputError(f"the budget asks for {n} configurations but the training pool has {len(pool)} "
                         "snapshots; raise data.n_train_trajectories or lower training.budget.")
    return flat_to_where(np.sort(rng.choice(pool, n, replace=False)), saved)


def closure_subsample(cfg: RunConfig, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The flat snapshots the closure trains on when ``closure.max_configs`` caps them (else None: all)."""
    m = cfg.closure.max_configs
    if not m:
        return None
    return pool if len(pool) <= m else pool[np.sort(rng.choice(len(pool), m, replace=False))]


def train_closure(cfg: RunConfig, system: MicroSystem, x: np.ndarray, progress: bool = False,
                  checkpoint: Path | None = None) -> tuple[ClosureAutoencoder, dict]:
    """Closure autoencoder trained on snapshots ``x`` ``(M, N)`` (no forces); with ``checkpoint``,
    resumable from there (every ``closure.checkpoint_every`` epochs)."""
    c = cfg.closure
    torch.manual_seed(cfg.seed)
    ae = make_closure(c, system)
    hist = fit_closure(ae, x, epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                       cond_weight=c.cond_weight, closure_only=closure_only(c), cond_batch=c.cond_batch,
                       input_lr_scale=min(1.0, c.input_lr_coords / ae.n_inputs) if c.input_lr_coords else 1.0,
                       seed=cfg.seed, progress=progress,
                       checkpointing=None if checkpoint is None else Checkpointing(checkpoint, c.checkpoint_every))
    return ae, hist


def label_rows(cfg: RunConfig, system: MicroSystem, x: np.ndarray, rng: np.random.Generator,
               ae: ClosureAutoencoder | None = None) -> dict[str, np.ndarray]:
    """Forces at a fresh subset of units of each configuration ``x`` ``(b, N)``:
    ``{INDEX, FORCES}`` plus ``WEIGHTS`` for a weighted sampler (whose score needs ``ae``)."""
    sampler = sampler_of(cfg.training, system)
    score = pinv_row_scores(ae, x, system.coords_per_unit) if sampler.needs_score else None
    units, w = sampler(system.n_units, rng, n_rows=len(x), score=score)
    idx = system.unit_coords(units)
    out = {K.INDEX: idx, K.FORCES: label(system, x, idx)}
    if sampler.weighted:
        out[K.WEIGHTS] = expand_unit_weights(w, system.coords_per_unit)
    return out


def label_columns(cfg: RunConfig, system: MicroSystem) -> dict[str, tuple]:
    """Per-row shape and dtype of the labels table's columns."""
    kc = units_per_config(cfg.training, system) * system.coords_per_unit
    cols = {K.WHERE: ((2,), "int64"), K.INDEX: ((kc,), "int64"), K.FORCES: ((kc,), "float64")}
    if sampler_of(cfg.training, system).weighted:
        cols[K.WEIGHTS] = ((kc,), "float64")
    return cols


def build_control(cfg: RunConfig, system: MicroSystem, spec, lab: dict[str, np.ndarray] | None,
                  chunks: Callable[[], Iterable[tuple[np.ndarray, dict, np.ndarray]]] | None = None):
    """The control variate of builder ``spec`` (:func:`macrodyn.model.parts.control_of`; None: no
    control) from all labels ``lab`` (read only where ``spec.needs_where``) or from a first pass
    over ``chunks()``, which yields what :func:`features` takes."""
    if spec is None:
        return None
    if spec.needs_where and (lab is None or K.WHERE not in lab):
        raise InputError("training.control: snapshots needs labels that name their snapshot; this labels table "
                         "is older: delete its 'labels' folder and label again.")
    return spec.build(lab, chunks, system.n_coords, n_saved(cfg), system.coords_per_unit)


def surrogate_counter(spec) -> tuple[int, float] | None:
    """``(force evaluations, seconds)`` the control builder's surrogate has counted so far (None
    for no control or one without a surrogate)."""
    s = None if spec is None else spec.surrogate
    return None if s is None else (s.counter.labels, s.counter.label_seconds)


def surrogate_cost(spec, before: tuple[int, float] | None) -> tuple[int, float | None]:
    """What the surrogate spent since :func:`surrogate_counter` read ``before``: ``(0, None)``
    without a surrogate."""
    now = surrogate_counter(spec)
    if now is None:
        return 0, None
    return now[0] - before[0], now[1] - before[1]


def features(cfg: RunConfig, ae: ClosureAutoencoder, chunks: Iterable[tuple[np.ndarray, dict, np.ndarray]],
             control=None) -> dict[str, torch.Tensor]:
    """Features of labelled configurations, chunk by chunk: ``chunks`` yields
    ``(x (b, N), labels {INDEX, FORCES[, WEIGHTS]}, rows (b,))`` with ``rows`` the labels' row numbers;
    ``control(rows, x)`` is the ``(b, N)`` prediction of a control variate."""
    rows_needed = loss_of(cfg.training).needs_rows
    chunks = (check_labels(x, lab, rows) for x, lab, rows in chunks)
    parts = [compute_features(ae, x, lab[K.INDEX], lab[K.FORCES], w=lab.get(K.WEIGHTS),
                              control=None if control is None else control(rows, x), rows=rows_needed)
             for x, lab, rows in chunks]
    return {k: torch.cat([p[k] for p in parts]).to(device(cfg)) for k in parts[0]}


def check_labels(x: np.ndarray, lab: dict[str, np.ndarray], rows: np.ndarray):
    """Refuse labels no loss may train on: an index outside ``[0, N)``, a coordinate twice in one
    configuration, non-finite forces or configurations. Returns its arguments."""
    idx, n = lab[K.INDEX], x.shape[1]
    fix = "run `macrodyn check RUN --repair`, then rerun `macrodyn label`"
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"labels rows {rows[0]}..{rows[-1]}: coordinate index out of range [0, {n}) "
                         f"(min {idx.min()}, max {idx.max()}); {fix}.")
    if (np.diff(np.sort(idx, axis=1), axis=1) == 0).any():
        raise InputError(f"labels rows {rows[0]}..{rows[-1]}: a coordinate is labelled twice in one configuration; "
                         f"{fix}.")
    check_finite("labelled forces", lab[K.FORCES], f"({fix})")
    check_finite("labelled configurations", x, f"({fix})")
    return x, lab, rows


def standardisation(cfg: RunConfig, feats: dict[str, torch.Tensor]) -> Stats:
    """Mean and std of ``z`` and of the loss's velocity target (exact ``J f`` or its estimate)."""
    v = feats[loss_of(cfg.training).velocity]
    return feats[K.Z].mean(0), feats[K.Z].std(0), v.mean(0), v.std(0)


def member_seed(cfg: RunConfig, m: int) -> int:
    return cfg.seed * 1000 + m


def new_field(cfg: RunConfig, dim: int, m: int) -> StandardizedField:
    """Member ``m``'s untrained field (seeded, so a resumed fit starts from the same weights)."""
    torch.manual_seed(member_seed(cfg, m))
    return make_field(cfg.model, dim).to(device(cfg))


def fit_member(cfg: RunConfig, dim: int, m: int, feats: dict[str, torch.Tensor], stats: Stats, *,
               score=None, checkpoint=None, visit=None, progress: bool = False) -> tuple[StandardizedField, dict]:
    """Fit member ``m`` with the configured loss on ``feats``; returns the field and its history."""
    t = cfg.training
    field = new_field(cfg, dim, m)
    field.set_stats(*stats)
    options = fit_options(t, member_seed(cfg, m), score=score, checkpoint=checkpoint)
    hist = fit_dynamics(field, data_parallel(loss_of(t), field), feats, options, visit=visit,
                        desc=f"dynamics {m + 1}/{t.members}" if progress else None)
    return field, hist


def encoded_truth(cfg: RunConfig, system: MicroSystem, ae: ClosureAutoencoder, traj: np.ndarray
                  ) -> tuple[torch.Tensor, ...]:
    """What a rollout is scored on, for trajectories ``(b, T, N)``: the encoded initial states
    ``z0`` (on the run's device), the given observables ``(T, b, d*)``, the snapshot mask
    ``(T, b)`` of ``data.min_observable`` and the times ``(T,)``."""
    with torch.no_grad():
        x = torch.as_tensor(traj, dtype=torch.float32)
        true = ae.observable(x.reshape(-1, x.shape[-1])).reshape(x.shape[0], x.shape[1], -1).transpose(0, 1)
        z0 = ae(x[:, 0]).to(device(cfg))
    mask = torch.as_tensor(snapshot_mask(cfg, system, traj)).T
    times = torch.arange(traj.shape[1], dtype=torch.float32) * (system.dt * cfg.data.save_every)
    return z0, true, mask, times


def trajectory_errors(cfg: RunConfig, system: MicroSystem, ae: ClosureAutoencoder, field: torch.nn.Module,
                      traj: np.ndarray) -> np.ndarray:
    """Relative rollout error of ``field`` on each trajectory of ``traj`` ``(b, T, N)``: ``(b,)``."""
    e = cfg.evaluation
    z0, true, mask, times = encoded_truth(cfg, system, ae, traj)
    return rollout_errors(field, z0, true, times, mask, method=e.method, step_size=e.step_size).numpy()


def selection_rows(n_train: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """Training trajectories whose rollout error selects the model (sorted)."""
    return np.sort(rng.choice(n_train, min(n, n_train), replace=False))


def rollout_score(cfg: RunConfig, system: MicroSystem, ae: ClosureAutoencoder, traj: np.ndarray
                  ) -> Callable[[torch.nn.Module], float]:
    """``score(field)`` = mean rollout error on training trajectories ``traj`` (no force evaluations)."""
    e = cfg.evaluation
    z0, true, mask, times = encoded_truth(cfg, system, ae, traj)

    def score(field: torch.nn.Module) -> float:
        err = rollout_errors(field, z0, true, times, mask, method=e.method, step_size=e.step_size).numpy()
        return float(err.mean()) if np.isfinite(err).all() else float("inf")
    return score
