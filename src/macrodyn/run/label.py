"""Stage label: forces on a random subset of units of each chosen training snapshot."""
from __future__ import annotations

import time

import numpy as np

from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable
from macrodyn.model import steps as S
from macrodyn.model.parts import labelling_of, sampler_of
from macrodyn.run.chunks import for_each_chunk
from macrodyn.run.closure import load_closure
from macrodyn.run.folder import Run
from macrodyn.run.pool import pick_configs


def labels_attrs(run: Run, **extra) -> dict:
    """What a labels table was made with (a table made otherwise is refused, not mixed)."""
    t = run.cfg.training
    sampler = sampler_of(t, run.system)
    weighted = {"sampling": sampler.name, "importance_mix": t.importance_mix} if sampler.weighted else {}
    return {"loss": t.loss, "p": t.p, "budget": t.budget, "seed": run.cfg.seed, **weighted, **extra}


def label_stage(run: Run) -> None:
    """Label the configurations the budget buys; a no-op for on-demand labelling (labels are
    then drawn during the dynamics fit). A sampler that scores units needs the trained closure."""
    t = run.cfg.training
    if labelling_of(t).on_demand:
        return
    if sampler_of(t, run.system).needs_score:
        load_closure(run)  # one line naming train-closure if it is missing
    t0 = time.perf_counter()
    where = pick_configs(run)
    table = ChunkedTable.create(run.store, "labels", len(where), t.chunk_configs, S.label_columns(run.cfg, run.system),
                                labels_attrs(run))
    spent = run.system.counter.label_seconds
    missing = table.missing_chunks()
    for_each_chunk(run, label_chunk, [(c, where[table.chunk_slice(c)]) for c in missing], "label")
    if not missing:  # labelled by an earlier, killed process: its time is not this call's
        return
    run.timed("label", time.perf_counter() - t0)
    if run.system.counter.label_seconds > spent:  # in-process only (Dask workers count in their own processes)
        run.timed("label_forces", run.system.counter.label_seconds - spent, memory=False)


def label_chunk(run: Run, c: int, where: np.ndarray) -> None:
    """Label chunk ``c`` (training snapshots ``where``, ``(b, 2)``); a no-op if it is already done."""
    table = ChunkedTable.open(run.store, "labels")
    if table.done()[c]:
        return
    x = ChunkedTable.open(run.store, "train").gather(K.TRAJ, where)
    ae = load_closure(run) if sampler_of(run.cfg.training, run.system).needs_score else None
    table.write_chunk(c, **{K.WHERE: where, **S.label_rows(run.cfg, run.system, x, run.rng("labels", c), ae)})


def copy_labels(source: Run, run: Run, rows: np.ndarray) -> None:
    """Give ``run`` rows ``rows`` of ``source``'s labels as its own labels table, so a fit on a
    subset of labelled configurations costs no force evaluations (``source`` paid for them);
    ``run``'s label stage then finds its table complete. Both must share one training table."""
    rows = np.sort(np.asarray(rows))
    if len(rows) != run.n_configs:
        raise ValueError(f"copy_labels: {len(rows)} rows for a run that labels {run.n_configs} configurations")
    lab = ChunkedTable.open(source.store, "labels").read(rows=rows)
    columns, chunk = S.label_columns(run.cfg, run.system), run.cfg.training.chunk_configs
    table = ChunkedTable.create(run.store, "labels", len(rows), chunk, columns, labels_attrs(run))
    for c in table.missing_chunks():
        sl = table.chunk_slice(c)
        table.write_chunk(c, **{k: v[sl] for k, v in lab.items()})
