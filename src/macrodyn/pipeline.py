"""The pipeline: the stages of :mod:`macrodyn.run` in order, and the shared runs of studies.

Randomness is seeded per stage and per chunk, so the result does not depend on where an
interrupted run stopped.
"""
from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

from macrodyn.data.check import STAGE, repair_run
from macrodyn.errors import InputError
from macrodyn.io import load_json, save_json
from macrodyn.model.parts import sampler_of
from macrodyn.run.closure import closure_stage, load_closure
from macrodyn.run.dask import session
from macrodyn.run.dynamics import dynamics_stage, load_members
from macrodyn.run.evaluate import evaluate_stage
from macrodyn.run.folder import STAGES, Run
from macrodyn.run.label import label_stage
from macrodyn.run.report import report_stage
from macrodyn.run.simulate import simulate


def run_all(run: Run, stages: tuple[str, ...] = STAGES) -> dict:
    """Run (or resume) ``stages`` of ``run`` on the config's ``threads``; returns ``metrics.json``
    as a dict ({} when no stage after dynamics was asked for). A stage that needs an earlier
    stage's output which is missing stops with one line naming the command to run first."""
    with torch_threads(run.cfg.threads):
        return _run_stages(run, stages)


def _run_stages(run: Run, stages: tuple[str, ...]) -> dict:
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise InputError(f"unknown stage(s) {sorted(unknown)}; stages are {STAGES}.")
    want = set(stages)
    # a damaged chunk (missing file, failed checksum, NaN/Inf, bad label index) of a table this call
    # writes is recomputed: chunks are deterministic, so the rerun gives the bytes it should have held.
    # A table linked from a study's shared run is its owner's to verify (not every point's).
    own = tuple(t for t, stage in STAGE.items() if stage in want and not (run.store / t).is_symlink())
    if own and run.store.exists():
        repaired = repair_run(run.out, run.system.n_coords, run.system.coords_per_unit, expected_tables=(),
                              only=own)
        for table, chunks in repaired.items():
            tqdm.write(f"macrodyn: table {table!r}: recomputing damaged chunk(s) {chunks}", file=sys.stderr)
    with session(run):  # one Dask client for all chunk loops and the members
        if "simulate" in want:
            simulate(run)
        scored = sampler_of(run.cfg.training, run.system).needs_score
        if scored and "closure" in want:  # importance sampling scores units with the closure
            closure_stage(run)
        if "label" in want:
            label_stage(run)
        if not want & {"closure", "dynamics", "evaluate", "report"}:
            return {}
        ae = closure_stage(run) if "closure" in want else load_closure(run)
        if not want & {"dynamics", "evaluate", "report"}:
            return {}
        fields = dynamics_stage(run, ae) if "dynamics" in want else load_members(run, ae)
    metrics_path = run.out / "metrics.json"
    if "evaluate" in want or "dynamics" in want or not metrics_path.exists():
        metrics = evaluate_stage(run, ae, fields)
    else:
        metrics = _read_metrics(run)
    if "report" in want:
        report_stage(run, ae, fields, metrics)
        metrics = {**metrics, "stage_seconds": run.stage_seconds(), "stage_peak_rss_gb": run.stage_peak_gb()}
        save_json(metrics, metrics_path)
    return metrics


@contextmanager
def torch_threads(n: int | None):
    """torch's CPU threads set to ``n`` (the config's ``threads``) for the stages, then restored.
    Without it an in-process run (a study's grid, the Python API) used torch's default of one per
    core, so two runs side by side on 2 cores spun 4 threads and trained several times slower."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _read_metrics(run: Run) -> dict:
    try:
        return load_json(run.out / "metrics.json")
    except InputError:  # damaged: evaluate rewrites it
        return {}


def share_stages(shared: str | Path, out: str | Path, tables: tuple[str, ...] = ("train", "test"),
                 closure: bool = True) -> None:
    """Make run folder ``out`` reuse another run's trajectories and closure (for studies).

    Each table in ``tables`` of ``shared/data.zarr`` is symlinked into ``out/data.zarr``
    (the pipeline then finds it complete and skips the stage); ``closure.pt`` is copied,
    so the runs of a study are compared on the same trajectories and the same closure.
    """
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


def run_on_shared(shared: str | Path, cfg, out: str | Path, progress: bool = False) -> tuple[Run, dict]:
    """One run of a study: reuse ``shared``'s trajectories and closure, then label, fit and
    evaluate in ``out`` (each stage resumes). Returns the run and its metrics."""
    share_stages(shared, out)
    run = Run.create(cfg, out, progress=progress)
    return run, run_all(run, ("label", "closure", "dynamics", "evaluate"))
