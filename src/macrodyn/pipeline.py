"""The run pipeline: simulate → label → closure → dynamics → evaluate → report.

Each stage reads what the previous one wrote in the run folder and skips work that
is already complete, so an interrupted run continues where it stopped. Randomness is
seeded per stage and per chunk, so the result does not depend on where it stopped.

Run folder::

    config.yaml          the validated config
    data.zarr/           tables train, test (trajectories) and labels (where, idx, f): a label
                         points at its training snapshot instead of copying it
    closure.pt           closure autoencoder + training history
    dynamics/member_K.pt macroscopic models + histories
    metrics.json         the numbers (force evaluations, rollout error, timings)
    report.md, figures/  the report
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.config import RunConfig, parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.dynamics import GFINN, MLPField, OnsagerNet, StandardizedField
from macrodyn.errors import InputError
from macrodyn.evaluation.rollout import rollout_errors
from macrodyn.io import load_json, load_torch, save_json, save_text, save_torch
from macrodyn.systems.base import MicroSystem
from macrodyn.systems.registry import build_system
from macrodyn.training.closure import fit_closure
from macrodyn.training.control import SnapshotControl
from macrodyn.training.distributed import data_parallel, world
from macrodyn.training.dynamics import fit_dynamics
from macrodyn.closure.jacobian import pinv_rows
from macrodyn.training.features import _batch_jacobian_rows, compute_features, label, sample_units, units_in
from macrodyn.training.losses import make_loss
from macrodyn.training.sampling import OnDemandLabeller, expand_unit_weights, make_sampler, pinv_row_scores

#: snapshots at least this large are stored one per file (data.store: labelling reads them singly)
SNAPSHOT_FILE_BYTES = 64 * 1024
STAGES = ("simulate", "label", "closure", "dynamics", "evaluate", "report")
_STREAM = {"train": 11, "test": 12, "labels": 13, "pick": 14}  # independent RNG streams


@dataclass
class Run:
    """A run folder bound to its config and system."""

    cfg: RunConfig
    out: Path
    system: MicroSystem | None = None
    progress: bool = True
    timings: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict, repr=False)  # per-process: closure, features, snapshot pool

    def __post_init__(self):
        self.out = Path(self.out)
        if self.system is None:
            self.system = build_system(self.cfg.system.name, self.cfg.system.params)
        try:
            n, d_obs = self.system.n_coords, self.system.observable().dim
        except NotImplementedError:  # no default observable: the closure stage will say so
            n, d_obs = None, 0
        if n is not None and not self.cfg.closure.dim < n - d_obs:  # before anything is written to the folder
            raise InputError(f"closure.dim = {self.cfg.closure.dim} is too large: with {d_obs} given observable(s) and "
                             f"N = {n} coordinates it must be < {n - d_obs}.")
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        cfg_path = self.out / "config.yaml"
        # where and on how many threads work runs does not change the data: not part of the run's identity
        new = self.cfg.model_dump(exclude={"parallel", "threads"})
        if cfg_path.exists():  # only read once written: Dask workers rebuild the Run from the same folder
            # compare parsed configs, so fields added later with defaults do not break resuming
            old = parse_config(yaml.safe_load(cfg_path.read_text()) or {}, str(cfg_path)).model_dump(exclude={"parallel", "threads"})
            if old != new:
                diff = [k for k in new if old.get(k) != new.get(k)]
                raise InputError(f"{self.out} holds a run with a different config (sections {diff}); "
                                 "use another --out or delete it.")
        else:
            save_text(yaml.safe_dump(new, sort_keys=False), cfg_path)
        timing_file = self.out / "stage_seconds.json"
        self.timings = load_json(timing_file) if timing_file.exists() else {}

    @property
    def store(self) -> Path:
        return self.out / "data.zarr"

    def rng(self, stream: str, *extra: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, _STREAM[stream], *extra])

    def _timed(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        save_json(self.timings, self.out / "stage_seconds.json")

    @property
    def n_saved(self) -> int:
        """Snapshots saved per trajectory."""
        return self.cfg.data.n_steps // self.cfg.data.save_every + 1

    # ------------------------------------------------------------ budget
    @property
    def units_per_config(self) -> int:
        t = self.cfg.training
        return self.system.n_units if t.loss != "L_xp" else max(1, int(round(t.p * self.system.n_units)))

    @property
    def n_configs(self) -> int:
        n = self.cfg.training.budget // self.units_per_config
        if self.cfg.training.labelling == "on_demand":  # a pool visited on_demand_visits times
            n //= self.cfg.training.on_demand_visits
        if n < 2:
            raise InputError(f"budget {self.cfg.training.budget} buys fewer than 2 configurations at "
                             f"{self.units_per_config} force evaluations each; raise training.budget.")
        return n


def share_stages(shared: str | Path, out: str | Path, tables: tuple[str, ...] = ("train", "test"),
                 closure: bool = True) -> None:
    """Make run folder ``out`` reuse another run's trajectories and closure (for studies).

    Each table in ``tables`` of ``shared/data.zarr`` is symlinked into ``out/data.zarr``
    (the pipeline then finds it complete and skips the stage); ``closure.pt`` is copied,
    so the runs of a study are compared on the same trajectories and the same closure.
    """
    import os
    import shutil

    shared, out = Path(shared), Path(out)
    (out / "data.zarr").mkdir(parents=True, exist_ok=True)
    root_meta = out / "data.zarr" / "zarr.json"  # the store's root group: lets a stage open a linked
    if not root_meta.exists():                    # table before the run writes a table of its own
        shutil.copy(shared / "data.zarr" / "zarr.json", root_meta)
    for table in tables:
        link = out / "data.zarr" / table
        if not link.exists():
            os.symlink((shared / "data.zarr" / table).resolve(), link)
    if closure and not (out / "closure.pt").exists():
        shutil.copy(shared / "closure.pt", out / "closure.pt")


def run_on_shared(shared: str | Path, cfg: RunConfig, out: str | Path, progress: bool = False) -> tuple[Run, dict]:
    """One run of a study: reuse ``shared``'s trajectories and closure, then label, fit
    and evaluate in ``out`` (each stage resumes). Returns the run and its metrics."""
    share_stages(shared, out)
    run = Run(cfg, out, progress=progress)
    label_stage(run)
    ae = closure_stage(run)
    return run, evaluate_stage(run, ae, dynamics_stage(run, ae))


def simulate(run: Run) -> None:
    """Generate training and test trajectories, chunk by chunk."""
    t0 = time.perf_counter()
    d = run.cfg.data
    sys_ = run.system
    layout = ("snapshots",) if sys_.n_coords * 8 >= SNAPSHOT_FILE_BYTES else ()
    for name, n in (("train", d.n_train_trajectories), ("test", d.n_test_trajectories)):
        table = ChunkedTable.create(run.store, name, n, d.chunk_trajectories,
                                    {K.TRAJ: ((run.n_saved, sys_.n_coords), "float64", *layout)},
                                    {"system": run.cfg.system.model_dump(), "seed": run.cfg.seed,
                                     "n_steps": d.n_steps, "save_every": d.save_every, "dt": sys_.dt})
        for_each_chunk(run, simulate_chunk, [(name, c) for c in table.missing_chunks()], f"simulate {name}")
    run._timed("simulate", time.perf_counter() - t0)


def simulate_chunk(run: Run, name: str, c: int) -> None:
    """Integrate the trajectories of chunk ``c`` of table ``name``; a no-op if it is already done."""
    d = run.cfg.data
    table = ChunkedTable.open(run.store, name)
    if table.done()[c]:
        return
    sl = table.chunk_slice(c)
    x0 = run.system.sample_initial(sl.stop - sl.start, run.rng(name, c))
    traj = run.system.trajectories(x0, d.n_steps, d.save_every, progress=False)
    table.write_chunk(c, **{K.TRAJ: traj})


def for_each_chunk(run: Run, task, args: list[tuple], desc: str) -> None:
    """``task(run, *a)`` for each ``a`` in ``args``: in-process, or as Dask tasks if ``parallel.scheduler`` is set."""
    if run.cfg.parallel.scheduler is None:
        for a in tqdm(args, desc=desc, disable=not run.progress, leave=False):
            task(run, *a)
    else:
        from macrodyn.data.distributed import map_chunks

        map_chunks(run, task, args, desc)


def snapshot_mask(run: Run, traj: np.ndarray) -> np.ndarray:
    """``(b, T)`` bool: snapshots kept by ``data.min_observable`` (all if unset)."""
    thr = run.cfg.data.min_observable
    if thr is None:
        return np.ones(traj.shape[:2], dtype=bool)
    obs = run.system.observable()
    with torch.no_grad():
        first = obs(torch.as_tensor(traj.reshape(-1, traj.shape[-1])))[:, 0].numpy()
    return first.reshape(traj.shape[:2]) > thr


def snapshot_pool(run: Run) -> np.ndarray:
    """Flat indices ``trajectory · n_saved + snapshot`` of the training snapshots kept by
    ``data.min_observable`` (all if unset). With a threshold this streams the whole train
    table, so the result is kept in ``run.cache`` for the closure and label stages."""
    d = run.cfg.data
    if d.min_observable is None:
        return np.arange(d.n_train_trajectories * run.n_saved)
    if "pool" not in run.cache:
        train = ChunkedTable.open(run.store, "train")
        run.cache["pool"] = np.flatnonzero(np.concatenate([snapshot_mask(run, ch[K.TRAJ]).ravel()
                                                           for ch in train.iter_chunks([K.TRAJ])]))
    return run.cache["pool"]


def _where(run: Run, flat: np.ndarray) -> np.ndarray:
    return np.stack([flat // run.n_saved, flat % run.n_saved], axis=1)


def pick_configs(run: Run, n_configs: int) -> np.ndarray:
    """Which training snapshots get labels: ``(n_configs, 2)`` of (trajectory, time)."""
    pool = snapshot_pool(run)
    if n_configs > len(pool):
        raise InputError(f"the budget asks for {n_configs} configurations but the training pool has {len(pool)} "
                         "snapshots; raise data.n_train_trajectories or lower training.budget.")
    return _where(run, np.sort(run.rng("pick").choice(pool, n_configs, replace=False)))


def label_stage(run: Run) -> None:
    """Compute forces on a random subset of units of each chosen configuration."""
    sys_, t = run.system, run.cfg.training
    if t.labelling == "on_demand":  # labels are drawn during the dynamics fit
        return
    if t.sampling == "importance":
        closure_stage(run)  # the scores need the closure (not forces); train or load it first
    t0 = time.perf_counter()
    n, k = run.n_configs, run.units_per_config
    kc = k * sys_.coords_per_unit
    where = pick_configs(run, n)
    table = ChunkedTable.create(run.store, "labels", n, t.chunk_configs,
                                {K.WHERE: ((2,), "int64"), K.INDEX: ((kc,), "int64"), K.FORCES: ((kc,), "float64"),
                                 **({K.WEIGHTS: ((kc,), "float64")} if t.sampling == "importance" else {})},
                                {"loss": t.loss, "p": t.p, "budget": t.budget, "seed": run.cfg.seed,
                                 **({"sampling": "importance", "importance_mix": t.importance_mix}
                                    if t.sampling == "importance" else {})})
    spent = sys_.counter.label_seconds
    for_each_chunk(run, label_chunk, [(c, where[table.chunk_slice(c)]) for c in table.missing_chunks()], "label")
    run._timed("label", time.perf_counter() - t0)
    if sys_.counter.label_seconds > spent:  # in-process only (Dask workers count in their own processes)
        run._timed("label_forces", sys_.counter.label_seconds - spent)


def label_chunk(run: Run, c: int, where: np.ndarray) -> None:
    """Label chunk ``c`` (training snapshots ``where``, ``(b, 2)``); a no-op if it is already done."""
    sys_ = run.system
    table = ChunkedTable.open(run.store, "labels")
    if table.done()[c]:
        return
    x = ChunkedTable.open(run.store, "train").gather(K.TRAJ, where)
    if run.cfg.training.sampling == "importance":  # scores from the closure's J⁺ rows, no forces
        t = run.cfg.training
        score = pinv_row_scores(closure_stage(run), x, sys_.coords_per_unit)
        units, w = make_sampler(t.sampling, run.units_per_config, t.importance_mix)(
            sys_.n_units, run.rng("labels", c), score=score)
        idx = sys_.unit_coords(units)
        table.write_chunk(c, **{K.WHERE: where, K.INDEX: idx, K.FORCES: label(sys_, x, idx),
                                K.WEIGHTS: expand_unit_weights(w, sys_.coords_per_unit)})
        return
    idx = sys_.unit_coords(sample_units(len(x), sys_.n_units, run.units_per_config, run.rng("labels", c)))
    table.write_chunk(c, **{K.WHERE: where, K.INDEX: idx, K.FORCES: label(sys_, x, idx)})


def labelled_configs(run: Run, lab: dict[str, np.ndarray]) -> np.ndarray:
    """The configurations ``(M, N)`` of labels ``lab`` (read from the train table; label
    tables written before labels pointed at snapshots hold them in column ``x``)."""
    if K.X in lab:
        return lab[K.X]
    return ChunkedTable.open(run.store, "train").gather(K.TRAJ, lab[K.WHERE])


def make_closure(run: Run) -> ClosureAutoencoder:
    c = run.cfg.closure
    return ClosureAutoencoder(run.system.observable(), run.system.n_coords, c.dim, tuple(c.hidden),
                              c.observable_scale)


def closure_stage(run: Run) -> ClosureAutoencoder:
    """Train the closure autoencoder on training snapshots (no forces)."""
    path = run.out / "closure.pt"
    if path.exists():
        ae = make_closure(run)
        ae.load_state_dict(load_torch(path)["state"])
        return ae
    t0 = time.perf_counter()
    c = run.cfg.closure
    train = ChunkedTable.open(run.store, "train")
    if c.max_configs:  # only the chosen snapshots are read (6 GB of them at 6 400 atoms would not be)
        pool = snapshot_pool(run)
        if len(pool) > c.max_configs:
            pool = pool[np.sort(run.rng("pick", 1).choice(len(pool), c.max_configs, replace=False))]
        x = train.gather(K.TRAJ, _where(run, pool))
    else:
        x = np.concatenate([ch[K.TRAJ][snapshot_mask(run, ch[K.TRAJ])] for ch in train.iter_chunks([K.TRAJ])])
    torch.manual_seed(run.cfg.seed)
    ae = make_closure(run)
    hist = fit_closure(ae, x, epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                       cond_weight=c.cond_weight, closure_only=c.cond_on == "closure", cond_batch=c.cond_batch,
                       input_lr_scale=min(1.0, c.input_lr_coords / x.shape[1]) if c.input_lr_coords else 1.0,
                       seed=run.cfg.seed, progress=run.progress)
    save_torch({"state": ae.state_dict(), "history": hist}, path)
    run._timed("closure", time.perf_counter() - t0)
    return ae


def make_field(run: Run, dim: int) -> StandardizedField:
    m = run.cfg.model
    if m.kind == "onsager":
        core = OnsagerNet(dim, tuple(m.hidden), tuple(m.potential_hidden), m.alpha, m.beta, m.forcing, m.activation)
    elif m.kind == "gfinn":
        core = GFINN(dim, tuple(m.hidden), activation=m.activation)
    else:
        core = MLPField(dim, tuple(m.hidden), m.activation)
    return StandardizedField(core, dim)


def device(run: Run) -> torch.device:
    if run.cfg.device == "cuda" and not torch.cuda.is_available():
        raise InputError("config asks for device: cuda but no CUDA device is visible; set device: cpu.")
    return torch.device(run.cfg.device)


def features_for(run: Run, ae: ClosureAutoencoder) -> dict[str, torch.Tensor]:
    """Features of the stored labels, computed chunk by chunk of the labels table (so only
    one chunk's configurations are in memory: 16 000 of them are 4.9 GB at 6 400 atoms)."""
    t, table = run.cfg.training, ChunkedTable.open(run.store, "labels")
    control = None
    if t.control == "snapshots":
        if K.WHERE not in table.columns:
            raise InputError(f"training.control: snapshots needs labels that name their snapshot; {run.store} holds "
                             "an older labels table: delete its 'labels' folder and label again.")
        lab = table.read([K.WHERE, K.INDEX, K.FORCES])
        control = SnapshotControl(lab[K.WHERE], lab[K.INDEX], lab[K.FORCES], run.system.n_coords, run.n_saved,
                                  t.control_window, run.system.coords_per_unit)
    parts = []
    for c, lab in enumerate(table.iter_chunks()):
        rows = np.arange(table.n_rows)[table.chunk_slice(c)]
        parts.append(compute_features(ae, labelled_configs(run, lab), lab[K.INDEX], lab[K.FORCES],
                                      w=lab.get(K.WEIGHTS), control=None if control is None else control(rows),
                                      rows=t.loss != "L_z"))
    return {k: torch.cat([p[k] for p in parts]).to(device(run)) for k in parts[0]}


def on_demand_labeller(run: Run, ae: ClosureAutoencoder) -> tuple[OnDemandLabeller, dict[str, torch.Tensor], tuple]:
    """Pool of unlabelled configurations (their ``z`` and ``J⁺`` rows), a labeller holding the budget,
    and standardisation statistics from a first fresh label of up to 1 000 of them (cached, reused)."""
    sys_, t = run.system, run.cfg.training
    x = ChunkedTable.open(run.store, "train").gather(K.TRAJ, pick_configs(run, run.n_configs))
    z, P = [], []
    with torch.no_grad():
        ae64 = ae.double()
        for s in range(0, len(x), 512):
            xb = torch.as_tensor(x[s:s + 512])
            z.append(ae64(xb))
            P.append(pinv_rows(_batch_jacobian_rows(ae64, xb)))
        ae.float()
    score = pinv_row_scores(ae, x, sys_.coords_per_unit) if t.sampling == "importance" else None
    lab = OnDemandLabeller(sys_, x, torch.cat(P).float().to(device(run)),
                           make_sampler(t.sampling, run.units_per_config, t.importance_mix), t.budget,
                           score=score, seed=run.cfg.seed)
    feats = {K.Z: torch.cat(z).float().to(device(run))}
    rows = lab.label(np.arange(min(len(x), 1000)))
    first = [lab.cache[i][0] for i in rows]
    est = compute_features(ae, x[rows], *(np.stack([e[j] for e in first]) for j in (0, 1)),
                           w=np.stack([e[2] for e in first]))[K.JF_ESTIMATE].to(feats[K.Z].device)
    z = feats[K.Z]
    return lab, feats, (z.mean(0), z.std(0), est.mean(0), est.std(0))


def save_on_demand_labels(run: Run, lab: OnDemandLabeller) -> None:
    """Write every cached (configuration, subset) label to the ``labels`` table (counted by evaluate)."""
    rows = [(i, *e) for i, es in enumerate(lab.cache) for e in es]
    kc, t = len(rows[0][1]), run.cfg.training
    where = pick_configs(run, run.n_configs)  # the pool the labeller was built on (deterministic)
    table = ChunkedTable.create(run.store, "labels", len(rows), t.chunk_configs,
                                {K.WHERE: ((2,), "int64"), K.INDEX: ((kc,), "int64"),
                                 K.FORCES: ((kc,), "float64"), K.WEIGHTS: ((kc,), "float64")},
                                {"loss": t.loss, "p": t.p, "budget": t.budget, "seed": run.cfg.seed,
                                 "labelling": "on_demand", "spent": lab.spent})
    for c in table.missing_chunks():
        part = rows[table.chunk_slice(c)]
        table.write_chunk(c, **{K.WHERE: where[[r[0] for r in part]], K.INDEX: np.stack([r[1] for r in part]),
                                K.FORCES: np.stack([r[2] for r in part]), K.WEIGHTS: np.stack([r[3] for r in part])})


def dynamics_stage(run: Run, ae: ClosureAutoencoder) -> list[StandardizedField]:
    """Fit ``members`` macroscopic models with the configured loss (resumes member by member).

    With ``parallel.scheduler`` set, the missing members of a fixed-label fit are Dask tasks
    (:func:`member_task`), each trained in a worker process on ``parallel.worker_threads``
    torch threads: for the small LJ models two 1-thread members at once train ~1.8x faster
    on 2 cores than one member on 2 threads (most of a step is too small to split).
    """
    t = run.cfg.training
    folder = run.out / "dynamics"
    missing = [m for m in range(t.members) if not (folder / f"member_{m}.pt").exists()]
    if (run.cfg.parallel.scheduler is not None and len(missing) > 1 and t.labelling == "fixed"
            and world()[1] == 1):
        t0 = time.perf_counter()
        for_each_chunk(run, member_task, [(m,) for m in missing], "dynamics members")
        run._timed("dynamics", time.perf_counter() - t0)  # wall time; workers write no timings
    fields = []
    for m in range(t.members):
        path = folder / f"member_{m}.pt"
        if path.exists():
            torch.manual_seed(run.cfg.seed * 1000 + m)
            field_ = make_field(run, ae.dim).to(device(run))
            field_.load_state_dict(load_torch(path)["state"])
        else:
            t0 = time.perf_counter()
            field_ = fit_member(run, ae, m)
            run._timed("dynamics", time.perf_counter() - t0)
        fields.append(field_)
    return fields


def member_task(run: Run, m: int) -> None:
    """Dask task: fit member ``m`` and write ``dynamics/member_m.pt``; a no-op if it exists."""
    if (run.out / "dynamics" / f"member_{m}.pt").exists():
        return
    if "closure" not in run.cache:  # a worker keeps its Run (and this cache) across tasks
        run.cache["closure"] = closure_stage(run)
    fit_member(run, run.cache["closure"], m)


def fit_member(run: Run, ae: ClosureAutoencoder, m: int) -> StandardizedField:
    """Fit member ``m`` (seed ``seed·1000 + m``) and save it atomically to ``dynamics/member_m.pt``.

    Features, standardisation statistics and the selection score are computed once per
    :class:`Run` and kept in ``run.cache`` for the next member. With on-demand labelling the
    first member spends the budget and later members train on its cached labels.
    """
    t, c = run.cfg.training, run.cache
    folder = run.out / "dynamics"
    seed = run.cfg.seed * 1000 + m
    torch.manual_seed(seed)
    field_ = make_field(run, ae.dim).to(device(run))
    lab = None
    if "feats" not in c and t.labelling == "on_demand" and not (run.store / "labels").exists():
        if t.loss == "L_z":
            raise InputError("labelling: on_demand needs loss L_x or L_xp (L_z needs every force).")
        if world()[1] > 1:
            raise InputError("labelling: on_demand labels in one process; train it without torchrun.")
        lab, feats, stats = on_demand_labeller(run, ae)
    else:
        if "feats" not in c:
            feats = features_for(run, ae)
            v = feats[K.JF] if t.loss == "L_z" else feats[K.JF_ESTIMATE]
            c["feats"], c["stats"] = feats, (feats[K.Z].mean(0), feats[K.Z].std(0), v.mean(0), v.std(0))
        feats, stats = c["feats"], c["stats"]
    field_.set_stats(*stats)
    if "score" not in c:
        c["score"] = selection_score(run, ae)
    hist = fit_dynamics(field_, data_parallel(make_loss(t.loss, t.p), field_), feats, epochs=t.epochs,
                        batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay, amsgrad=t.amsgrad,
                        lr_factor=t.lr_factor, lr_patience=t.lr_patience, min_lr=t.min_lr,
                        lr_schedule=t.lr_schedule, val_fraction=t.val_fraction, stop_patience=t.stop_patience,
                        seed=seed, progress=run.progress, desc=f"dynamics {m + 1}/{t.members}",
                        checkpoint=None if lab else folder / f"member_{m}.partial.pt",
                        checkpoint_every=t.checkpoint_every, visit=lab.visit if lab else None,
                        grad_clip=t.grad_clip, ema_decay=t.ema_decay, ema_warmup=t.ema_warmup, score=c["score"],
                        score_every=t.select_every)
    if lab is not None:
        save_on_demand_labels(run, lab)
        hist["on_demand_spent"] = lab.spent
    save_torch({"state": {k: v.cpu() for k, v in field_.state_dict().items()}, "history": hist},
               folder / f"member_{m}.pt")
    (folder / f"member_{m}.partial.pt").unlink(missing_ok=True)
    return field_


def encoded_truth(run: Run, ae: ClosureAutoencoder, traj: np.ndarray) -> tuple[torch.Tensor, ...]:
    """What a rollout is scored on, for trajectories ``(b, T, N)``: the encoded initial states
    ``z0`` (on the run's device), the given observables ``(T, b, d*)``, the snapshot mask
    ``(T, b)`` of ``data.min_observable`` and the times ``(T,)``."""
    d = run.cfg.data
    with torch.no_grad():
        x = torch.as_tensor(traj, dtype=torch.float32)
        true = ae.observable(x.reshape(-1, x.shape[-1])).reshape(x.shape[0], x.shape[1], -1).transpose(0, 1)
        z0 = ae(x[:, 0]).to(device(run))
    mask = torch.as_tensor(snapshot_mask(run, traj)).T
    times = torch.arange(traj.shape[1], dtype=torch.float32) * (run.system.dt * d.save_every)
    return z0, true, mask, times


def selection_score(run: Run, ae: ClosureAutoencoder):
    """``training.select: rollout``: ``score(field)`` = mean rollout error (the metric of
    METHOD.md §4) on ``select_trajectories`` training trajectories, else None. Uses only
    their configurations and observables: no force evaluations."""
    t, e = run.cfg.training, run.cfg.evaluation
    if t.select != "rollout":
        return None
    train = ChunkedTable.open(run.store, "train")
    rows = np.sort(run.rng("pick", 2).choice(train.n_rows, min(t.select_trajectories, train.n_rows),
                                             replace=False))
    z0, true, mask, times = encoded_truth(run, ae, train.read([K.TRAJ], rows=rows)[K.TRAJ])

    def score(field: torch.nn.Module) -> float:
        return float(np.nanmean(rollout_errors(field, z0, true, times, mask, method=e.method,
                                               step_size=e.step_size).numpy()))
    return score


def evaluate_stage(run: Run, ae: ClosureAutoencoder, fields: list[StandardizedField]) -> dict:
    """Roll out from encoded test initial states; relative error on the given observables."""
    t0 = time.perf_counter()
    d, e = run.cfg.data, run.cfg.evaluation
    test = ChunkedTable.open(run.store, "test")
    errs = np.zeros((len(fields), test.n_rows))
    for ch_i, ch in enumerate(test.iter_chunks([K.TRAJ])):
        z0, true, mask, times = encoded_truth(run, ae, ch[K.TRAJ])
        for m, g in enumerate(fields):
            errs[m, test.chunk_slice(ch_i)] = rollout_errors(g, z0, true, times, mask, method=e.method,
                                                             step_size=e.step_size).numpy()
    per_member = np.nanmean(errs, axis=1)
    lab = ChunkedTable.open(run.store, "labels")
    n_evals = sum(units_in(ch[K.INDEX], run.system.coords_per_unit) for ch in lab.iter_chunks([K.INDEX]))
    run._timed("evaluate", time.perf_counter() - t0)
    metrics = {
        "system": run.cfg.system.name,
        "loss": run.cfg.training.loss,
        "p": run.cfg.training.p,
        "model": run.cfg.model.kind,
        "budget": run.cfg.training.budget,
        "n_configs": lab.n_rows,
        "units_per_config": run.units_per_config,
        "force_evaluations": n_evals,
        "simulation_force_evaluations": 4 * d.n_steps * (d.n_train_trajectories + d.n_test_trajectories)
        * run.system.n_units,
        "rollout_rel_error": float(per_member.mean()),
        "rollout_rel_error_std": float(per_member.std()) if len(fields) > 1 else 0.0,
        "rollout_rel_error_members": per_member.tolist(),
        "rollout_rel_error_max_trajectory": float(np.nanmax(errs.mean(0))),
        "n_members": len(fields),
        "n_test_trajectories": test.n_rows,
        "seed": run.cfg.seed,
        "stage_seconds": {s: round(run.timings.get(s, 0.0), 3) for s in STAGES if s in run.timings},
    }
    np.save(run.out / "test_errors.npy", errs)
    save_json(metrics, run.out / "metrics.json")
    return metrics


def run_all(run: Run, stages: tuple[str, ...] = STAGES) -> dict:
    """Run (or resume) the pipeline; returns ``metrics.json`` as a dict."""
    from macrodyn.evaluation.report import write_report

    unknown = set(stages) - set(STAGES)
    if unknown:
        raise InputError(f"unknown stage(s) {sorted(unknown)}; stages are {STAGES}.")
    from macrodyn.data.distributed import session

    with session(run):  # one Dask client for all chunk loops and the members
        if "simulate" in stages:
            simulate(run)
        if "label" in stages:
            label_stage(run)
        if not {"closure", "dynamics", "evaluate", "report"} & set(stages):
            return {}
        ae = closure_stage(run)
        if not {"dynamics", "evaluate", "report"} & set(stages):
            return {}
        fields = dynamics_stage(run, ae)
    metrics = load_json(run.out / "metrics.json") if (run.out / "metrics.json").exists() else None
    if "evaluate" in stages or metrics is None:
        metrics = evaluate_stage(run, ae, fields)
    if "report" in stages:
        t0 = time.perf_counter()
        write_report(run, ae, fields, metrics)
        run._timed("report", time.perf_counter() - t0)
        metrics["stage_seconds"] = {s: round(run.timings.get(s, 0.0), 3) for s in STAGES if s in run.timings}
        save_json(metrics, run.out / "metrics.json")
    return metrics
