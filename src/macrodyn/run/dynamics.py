"""Stage dynamics: fit ``training.members`` macroscopic models (resumes member by member)."""
from __future__ import annotations

import time

import numpy as np
import torch

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.closure.jacobian import batch_jacobian, pinv_rows
from macrodyn.data.store import ChunkedTable
from macrodyn.dynamics import StandardizedField
from macrodyn.errors import InputError
from macrodyn.io import load_json, load_torch, save_json, save_torch
from macrodyn.model import steps as S
from macrodyn.model.parts import control_of, device, labelling_of, loss_of, sampler_of, select_trajectories
from macrodyn.run.chunks import for_each_chunk
from macrodyn.run.closure import load_closure
from macrodyn.run.folder import Run
from macrodyn.run.pool import labelled_configs, pick_configs
from macrodyn.training.distributed import world
from macrodyn.training.features import compute_features
from macrodyn.training.sampling import OnDemandLabeller, pinv_row_scores


def dynamics_stage(run: Run, ae: ClosureAutoencoder) -> list[StandardizedField]:
    """Fit the missing members and load the others.

    With ``parallel.scheduler`` set, the missing members of a fixed-label fit are Dask tasks
    (:func:`member_task`), each trained in a worker process on ``parallel.worker_threads``
    torch threads: for the small LJ models two 1-thread members at once train ~1.8x faster
    on 2 cores than one member on 2 threads (most of a step is too small to split).
    """
    t = run.cfg.training
    missing = [m for m in range(t.members) if not run.member_path(m).exists()]
    if (run.cfg.parallel.scheduler is not None and len(missing) > 1 and not labelling_of(t).on_demand
            and world()[1] == 1):
        t0 = time.perf_counter()
        for_each_chunk(run, member_task, [(m,) for m in missing], "dynamics members")
        run.timed("dynamics", time.perf_counter() - t0)  # wall time; workers write no timings
    missing = [m for m in missing if not run.member_path(m).exists()]
    if missing and not labelling_of(t).on_demand and run.state.features is None:
        t0 = time.perf_counter()  # timed apart: at 51 200 atoms this, not the fit, grows with N
        run.state.features = stored_features(run, ae)
        run.state.stats = S.standardisation(run.cfg, run.state.features)
        run.timed("features", time.perf_counter() - t0)
    fields = []
    for m in range(t.members):
        if run.member_path(m).exists():
            fields.append(load_member(run, ae, m))
        else:
            t0 = time.perf_counter()
            fields.append(fit_member(run, ae, m))
            run.timed("dynamics", time.perf_counter() - t0)
    return fields


def load_member(run: Run, ae: ClosureAutoencoder, m: int) -> StandardizedField:
    field = S.new_field(run.cfg, ae.dim, m)
    field.load_state_dict(load_torch(run.member_path(m))["state"])
    return field


def load_members(run: Run, ae: ClosureAutoencoder) -> list[StandardizedField]:
    """Every trained member; one line naming the command when one is missing."""
    missing = [m for m in range(run.cfg.training.members) if not run.member_path(m).exists()]
    if missing:
        raise InputError(f"{run.out} has no trained model (member(s) {missing}); run "
                         f"`macrodyn train-dynamics --out {run.out}` first.")
    return [load_member(run, ae, m) for m in range(run.cfg.training.members)]


def member_task(run: Run, m: int) -> None:
    """Dask task: fit member ``m`` and write its file; a no-op if it exists."""
    if not run.member_path(m).exists():
        fit_member(run, load_closure(run), m)


def stored_features(run: Run, ae: ClosureAutoencoder) -> dict[str, torch.Tensor]:
    """Features of the stored labels, chunk by chunk of the labels table (so only one chunk's
    configurations are in memory: 16 000 of them are 4.9 GB at 6 400 atoms). With a surrogate
    control its force evaluations and seconds are written to ``surrogate.json`` (see
    :func:`surrogate_record`)."""
    table = ChunkedTable.open(run.store, "labels")
    rows = np.arange(table.n_rows)

    def chunks():
        return ((labelled_configs(run, lab), lab, rows[table.chunk_slice(c)])
                for c, lab in enumerate(table.iter_chunks()))

    spec = control_of(run.cfg, run.system)
    before = S.surrogate_counter(spec)
    lab = None
    if spec is not None and spec.needs_where:
        lab = table.read([c for c in (K.WHERE, K.INDEX, K.FORCES) if c in table.columns])
    control = S.build_control(run.cfg, run.system, spec, lab, chunks)
    feats = S.features(run.cfg, ae, chunks(), control)
    if spec is not None and spec.surrogate is not None:
        evals, seconds = S.surrogate_cost(spec, before)
        save_json({"surrogate_force_evaluations": evals, "surrogate_seconds": seconds}, run.out / SURROGATE_FILE)
    return feats


#: what one pass of a surrogate control cost (written by :func:`stored_features`)
SURROGATE_FILE = "surrogate.json"


def surrogate_record(run: Run) -> dict:
    """``{surrogate_force_evaluations, surrogate_seconds}`` of the run's surrogate control: the
    surrogate's own force counter over one features pass (its forces at the labelled units for
    ``β``, then on every unit of each labelled configuration). A process that computes the
    features again (a resumed run, each Dask worker) repeats the pass; the record is of one.
    ``(0, None)`` without a surrogate or before the features were computed."""
    path = run.out / SURROGATE_FILE
    rec = load_json(path) if path.exists() else {}
    return {"surrogate_force_evaluations": int(rec.get("surrogate_force_evaluations", 0)),
            "surrogate_seconds": rec.get("surrogate_seconds")}


def member_histories(run: Run, n_members: int) -> list[dict]:
    """The training history each member's checkpoint holds (:func:`macrodyn.training.dynamics.fit_dynamics`)."""
    return [load_torch(run.member_path(m))["history"] for m in range(n_members)]


def training_record(run: Run, n_members: int) -> dict:
    """``{epochs_run_members, best_epoch_members}``: per member, the epochs its fit ran (fewer than
    ``training.epochs`` when early stopping ended it) and the epoch whose state it kept (None in
    checkpoints from before these were stored)."""
    hists = member_histories(run, n_members)
    return {"epochs_run_members": [h.get("epochs_run") for h in hists],
            "best_epoch_members": [h.get("best_epoch") for h in hists]}


def selection_score(run: Run, ae: ClosureAutoencoder):
    """``training.select: rollout``: the rollout error on training trajectories (no forces), else None."""
    n = select_trajectories(run.cfg.training)
    if not n:
        return None
    train = ChunkedTable.open(run.store, "train")
    rows = S.selection_rows(train.n_rows, run.rng("pick", 2), n)
    return S.rollout_score(run.cfg, run.system, ae, train.read([K.TRAJ], rows=rows)[K.TRAJ])


def fit_member(run: Run, ae: ClosureAutoencoder, m: int) -> StandardizedField:
    """Fit member ``m`` and save it atomically. Features, their standardisation and the
    selection score are computed once per process and kept in ``run.state`` for the next
    member. With on-demand labelling the first member spends the budget and writes the
    labels table; later members train on those labels."""
    st, t = run.state, run.cfg.training
    lab = None
    if st.features is None and labelling_of(t).on_demand and not (run.store / "labels").exists():
        if not loss_of(t).partial:
            raise InputError("labelling: on_demand needs loss L_x or L_xp (L_z needs every force); set "
                             "training.labelling: fixed.")
        if world()[1] > 1:
            raise InputError("labelling: on_demand labels in one process; train it without torchrun.")
        lab, feats, stats = on_demand_labeller(run, ae)
    else:
        if st.features is None:
            st.features = stored_features(run, ae)
            st.stats = S.standardisation(run.cfg, st.features)
        feats, stats = st.features, st.stats
    if not st.score_built:
        st.score, st.score_built = selection_score(run, ae), True
    partial = run.out / "dynamics" / f"member_{m}.partial.pt"
    field, hist = S.fit_member(run.cfg, ae.dim, m, feats, stats, score=st.score,
                               checkpoint=None if lab else partial, visit=lab.visit if lab else None,
                               progress=run.progress)
    if lab is not None:
        save_on_demand_labels(run, lab)
        hist["on_demand_spent"] = lab.spent
    save_torch({"state": {k: v.cpu() for k, v in field.state_dict().items()}, "history": hist}, run.member_path(m))
    partial.unlink(missing_ok=True)
    return field


def on_demand_labeller(run: Run, ae: ClosureAutoencoder) -> tuple[OnDemandLabeller, dict, S.Stats]:
    """Pool of unlabelled configurations (their ``z`` and ``J⁺`` rows), a labeller holding the budget,
    and standardisation statistics from a first fresh label of up to 1 000 of them."""
    system, t = run.system, run.cfg.training
    x = ChunkedTable.open(run.store, "train").gather(K.TRAJ, pick_configs(run))
    z, P = [], []
    with torch.no_grad():
        ae64 = ae.double()
        for s in range(0, len(x), 512):
            xb = torch.as_tensor(x[s:s + 512])
            z.append(ae64(xb))
            P.append(pinv_rows(batch_jacobian(ae64, xb)))
        ae.float()
    sampler = sampler_of(t, system)
    score = pinv_row_scores(ae, x, system.coords_per_unit) if sampler.needs_score else None
    lab = OnDemandLabeller(system, x, torch.cat(P).float().to(device(run.cfg)), sampler, t.budget,
                           score=score, seed=run.cfg.seed)
    feats = {K.Z: torch.cat(z).float().to(device(run.cfg))}
    rows = lab.label(np.arange(min(len(x), 1000)))
    first = [lab.cache[i][0] for i in rows]
    est = compute_features(ae, x[rows], *(np.stack([e[j] for e in first]) for j in (0, 1)),
                           w=np.stack([e[2] for e in first]))[K.JF_ESTIMATE].to(feats[K.Z].device)
    z = feats[K.Z]
    return lab, feats, (z.mean(0), z.std(0), est.mean(0), est.std(0))


def save_on_demand_labels(run: Run, lab: OnDemandLabeller) -> None:
    """Write every cached (configuration, subset) label to the ``labels`` table (counted by evaluate)."""
    rows = [(i, *e) for i, es in enumerate(lab.cache) for e in es]
    kc = len(rows[0][1])
    where = pick_configs(run)  # the pool the labeller was built on (deterministic)
    table = ChunkedTable.create(run.store, "labels", len(rows), run.cfg.training.chunk_configs,
                                {K.WHERE: ((2,), "int64"), K.INDEX: ((kc,), "int64"),
                                 K.FORCES: ((kc,), "float64"), K.WEIGHTS: ((kc,), "float64")},
                                {"loss": run.cfg.training.loss, "p": run.cfg.training.p,
                                 "budget": run.cfg.training.budget, "seed": run.cfg.seed,
                                 "labelling": "on_demand", "spent": lab.spent})
    for c in table.missing_chunks():
        part = rows[table.chunk_slice(c)]
        table.write_chunk(c, **{K.WHERE: where[[r[0] for r in part]], K.INDEX: np.stack([r[1] for r in part]),
                                K.FORCES: np.stack([r[2] for r in part]), K.WEIGHTS: np.stack([r[3] for r in part])})
