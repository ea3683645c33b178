"""The method as an estimator on arrays in memory (PySINDy's verbs: fit, predict, score).

    system = PredatorPrey(n=50)
    model = MacroModel(system, load_config("configs/predator_prey.yaml"))
    model.fit(train)                       # (n_traj, T, N) trajectories of the system
    model.score(test)                      # mean relative rollout error of the observables
    model.predict(test[:, 0], times)       # (T, B, d*) predicted observables
    model.save("pp.pt"); MacroModel.load("pp.pt")

It runs the same steps (:mod:`macrodyn.model.steps`), in the same order and with the same
random streams, as ``macrodyn run`` does on a run folder, so the two agree for the same
config and seed. Forces are computed through ``system.partial_forces`` only on the
configurations and units the budget buys.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.config import RunConfig, parse_config
from macrodyn.data.validate import units_in
from macrodyn.dynamics import StandardizedField
from macrodyn.errors import InputError
from macrodyn.evaluation.rollout import rollout
from macrodyn.io import load_torch, save_torch
from macrodyn.model import steps as S
from macrodyn.model.parts import control_of, labelling_of, make_closure, n_configs, select_trajectories, stream_rng
from macrodyn.systems.base import MicroSystem
from macrodyn.systems.registry import build_system


class MacroModel:
    """Closure + macroscopic model ``dz/dt = g(z)`` learned from partial force labels.

    Args:
        system: the microscopic system (its forces are called during :meth:`fit`).
        config: a :class:`RunConfig` or a dict of its fields (default: the defaults);
            ``config.system`` is ignored in favour of ``system``.
        surrogate: the cheap system of ``training.control: surrogate`` (default: built from
            ``config.training.surrogate`` over ``config.system``); it must have ``system``'s coordinates.
        progress: show progress bars.
    """

    def __init__(self, system: MicroSystem, config: RunConfig | dict | None = None, *,
                 surrogate: MicroSystem | None = None, progress: bool = False):
        self.system, self.surrogate = system, surrogate
        self.config = config if isinstance(config, RunConfig) else parse_config(config or {}, "MacroModel config")
        self.progress = progress
        self.closure_: ClosureAutoencoder | None = None
        self.fields_: list[StandardizedField] = []
        self.histories_: dict = {}
        self.force_evaluations_: int = 0
        self.surrogate_force_evaluations_: int = 0  # the surrogate control's, apart from the budget
        self.surrogate_seconds_: float | None = None

    # ------------------------------------------------------------------ fit
    def fit(self, trajectories: np.ndarray) -> "MacroModel":
        """Learn from training trajectories ``(n, T, N)``: their snapshots are the pool of
        configurations; the budget's share of them gets partial force labels. Returns ``self``."""
        cfg, system = self.config, self.system
        if labelling_of(cfg.training).on_demand:
            raise InputError("MacroModel.fit labels before training (training.labelling: fixed); on-demand "
                             "labelling runs through `macrodyn run`.")
        traj = self._trajectories(trajectories, "trajectories")
        saved = traj.shape[1]
        flat = traj.reshape(-1, traj.shape[-1])
        pool = np.flatnonzero(S.snapshot_mask(cfg, system, traj).ravel())
        sub = S.closure_subsample(cfg, pool, stream_rng(cfg.seed, "pick", 1))
        ae, hist = S.train_closure(cfg, system, flat[pool if sub is None else sub], self.progress)
        where = S.pick(pool, n_configs(cfg, system), stream_rng(cfg.seed, "pick"), saved)
        chunk = cfg.training.chunk_configs
        labels = []
        for c, s in enumerate(range(0, len(where), chunk)):
            x = traj[where[s:s + chunk, 0], where[s:s + chunk, 1]]
            labels.append(S.label_rows(cfg, system, x, stream_rng(cfg.seed, "labels", c), ae))
        lab = {k: np.concatenate([p[k] for p in labels]) for k in labels[0]}
        lab[K.WHERE] = where
        self.force_evaluations_ = units_in(lab[K.INDEX], system.coords_per_unit)
        rows = np.arange(len(where))

        def chunks():
            return ((traj[where[s:s + chunk, 0], where[s:s + chunk, 1]], {k: v[s:s + chunk] for k, v in lab.items()},
                     rows[s:s + chunk]) for s in range(0, len(where), chunk))

        spec = control_of(cfg, system, self.surrogate)
        before = S.surrogate_counter(spec)
        control = S.build_control(cfg, system, spec, lab, chunks)
        feats = S.features(cfg, ae, chunks(), control)
        self.surrogate_force_evaluations_, self.surrogate_seconds_ = S.surrogate_cost(spec, before)
        stats = S.standardisation(cfg, feats)
        n_sel = select_trajectories(cfg.training)
        score = None
        if n_sel:
            sel = S.selection_rows(len(traj), stream_rng(cfg.seed, "pick", 2), n_sel)
            score = S.rollout_score(cfg, system, ae, traj[sel])
        self.closure_, self.fields_ = ae, []
        self.histories_ = {"closure": hist, "members": []}
        for m in range(cfg.training.members):
            field, h = S.fit_member(cfg, ae.dim, m, feats, stats, score=score, progress=self.progress)
            self.fields_.append(field)
            self.histories_["members"].append(h)
        return self

    # -------------------------------------------------------------- predict
    def encode(self, x: np.ndarray) -> torch.Tensor:
        """Macroscopic states ``z = φ(x)`` ``(B, d)`` of configurations ``(B, N)``."""
        self._check_fitted()
        with torch.no_grad():
            return self.closure_(torch.as_tensor(np.asarray(x), dtype=torch.float32))

    def predict(self, x0: np.ndarray | None = None, times: np.ndarray | None = None, *,
                z0: torch.Tensor | None = None, member: int = 0, latent: bool = False) -> np.ndarray:
        """Roll member ``member`` out from initial configurations ``x0`` ``(B, N)`` (or latent
        states ``z0`` ``(B, d)``) at ``times`` ``(T,)``: the given observables ``(T, B, d*)``
        (``latent=True``: the whole state ``(T, B, d)``)."""
        self._check_fitted()
        if (x0 is None) == (z0 is None):
            raise InputError("predict needs exactly one of x0 (configurations) or z0 (latent states).")
        z = self.encode(x0) if z0 is None else torch.as_tensor(z0, dtype=torch.float32)
        t = torch.as_tensor(np.asarray(times, dtype=np.float32))
        e = self.config.evaluation
        pred = rollout(self.fields_[member], z.to(S.device(self.config)), t.to(z.device),
                       method=e.method, step_size=e.step_size).cpu().numpy()
        return pred if latent else pred[..., :self.closure_.observable.dim]

    def errors(self, trajectories: np.ndarray) -> np.ndarray:
        """Relative rollout error ``(members, n)`` of each member on each test trajectory ``(n, T, N)``
        (non-finite where a rollout blew up)."""
        self._check_fitted()
        traj = self._trajectories(trajectories, "test trajectories")
        chunk = self.config.data.chunk_trajectories
        return np.stack([np.concatenate([S.trajectory_errors(self.config, self.system, self.closure_, f,
                                                             traj[s:s + chunk])
                                         for s in range(0, len(traj), chunk)]) for f in self.fields_])

    def score(self, trajectories: np.ndarray) -> float:
        """Mean relative rollout error over members and trajectories (inf if any rollout blew up)."""
        err = self.errors(trajectories)
        return float(err.mean()) if np.isfinite(err).all() else float("inf")

    # ------------------------------------------------------------ save/load
    def save(self, path: str | Path) -> None:
        """Write config, closure and members to one file (atomically)."""
        self._check_fitted()
        save_torch({"config": self.config.model_dump(), "closure": self.closure_.state_dict(),
                    "fields": [f.state_dict() for f in self.fields_], "histories": self.histories_,
                    "force_evaluations": self.force_evaluations_,
                    "surrogate_force_evaluations": self.surrogate_force_evaluations_,
                    "surrogate_seconds": self.surrogate_seconds_}, path)

    @classmethod
    def load(cls, path: str | Path, system: MicroSystem | None = None) -> "MacroModel":
        """A saved model; ``system`` defaults to the one its config names."""
        ck = load_torch(path)
        cfg = parse_config(ck["config"], str(path))
        system = system or build_system(cfg.system.name, cfg.system.params)
        model = cls(system, cfg)
        model.closure_ = make_closure(cfg.closure, system)
        model.closure_.load_state_dict(ck["closure"])
        for m, state in enumerate(ck["fields"]):
            field = S.new_field(cfg, model.closure_.dim, m)
            field.load_state_dict(state)
            model.fields_.append(field.eval())
        model.histories_, model.force_evaluations_ = ck["histories"], ck["force_evaluations"]
        model.surrogate_force_evaluations_ = ck.get("surrogate_force_evaluations", 0)
        model.surrogate_seconds_ = ck.get("surrogate_seconds")
        return model

    # -------------------------------------------------------------- helpers
    def _check_fitted(self) -> None:
        if self.closure_ is None or not self.fields_:
            raise InputError("this MacroModel is not fitted; call fit(trajectories) or MacroModel.load(path) first.")

    def _trajectories(self, a, what: str) -> np.ndarray:
        a = np.asarray(a)
        if a.ndim != 3 or a.shape[-1] != self.system.n_coords or a.shape[1] < 2:
            raise InputError(f"{what} must have shape (n, T, {self.system.n_coords}) with T ≥ 2; got {a.shape}.")
        if a.dtype.kind not in "fiu":
            raise InputError(f"{what} must be real numbers; got dtype {a.dtype}.")
        if not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))[0]
            raise InputError(f"{what} contain NaN/Inf (first at {tuple(int(i) for i in bad)}); drop or fix those "
                             "trajectories.")
        return a.astype(np.float64, copy=False)
