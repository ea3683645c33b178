"""Simulation and labelling chunks, and ensemble members, as Dask tasks (``dask.distributed``).

The stages' chunk loops (:func:`macrodyn.run.simulate.simulate_chunk`,
:func:`macrodyn.run.label.label_chunk`) take a :class:`~macrodyn.run.Run`. Here each
chunk becomes one task whose arguments pickle cheaply: the chunk function (by reference),
the config as a dict, the run folder and the chunk's own arguments. A worker rebuilds the
``Run`` (and so the system) once per config and folder, computes the chunk with the
chunk's own seeded RNG and writes it itself; the driver only waits.

Why nothing is lost or written twice:

- a chunk's data do not depend on which worker computes it, or when (``run.rng(name, c)``);
- a chunk is written column by column and then flagged done (:class:`ChunkedTable`), and a
  task whose chunk is already flagged returns at once. A task retried after an error
  (``retries=2``) or rescheduled after its worker died therefore either finds its chunk
  done or recomputes the same bytes.

The run folder must be on a file system that every worker sees at the same path.

Starting a local cluster costs a few seconds (each worker imports torch and macrodyn), so
:func:`session` keeps one client open for every chunk loop of a run.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from macrodyn.config import parse_config
from macrodyn.errors import InputError
from macrodyn.run.folder import Run

RETRIES = 2
CONNECT_TIMEOUT = 10.0  # seconds to reach a tcp:// scheduler before giving up
TEST_DELAY_ENV = "MACRODYN_TEST_TASK_DELAY"  # seconds slept before each task (tests kill workers mid-job)
_OPEN: dict[tuple[str, int], "distributed.Client"] = {}  # noqa: F821  (clients held open by session())
# Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns off glibc's adaptive
# mmap threshold: every tensor over 128 KiB is then mmap'ed and unmapped again, and a training
# step spends a quarter of its time in page faults (LJ-800 members ran 2x slower than in a
# plain process). These are the values the adaptive rule settles at on 64-bit glibc.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


@contextmanager
def connect(scheduler: str, workers: int = 2) -> Iterator["distributed.Client"]:  # noqa: F821
    """A Dask client for ``parallel.scheduler``.

    Args:
        scheduler: ``"local"`` starts a ``LocalCluster`` of ``workers`` single-threaded
            processes for the duration of the block; anything else is the address of a
            running scheduler (``tcp://host:8786``), which is left running.
        workers: worker processes of the local cluster.
    """
    from dask.distributed import Client, LocalCluster

    if scheduler == "local":
        # glibc reads these at process start, so they must be in the environment the workers are
        # spawned with; the nanny's pre-spawn values give way to os.environ's (its own rule)
        os.environ.update(MALLOC_ENV)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    else:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as e:  # refused, unreachable, no reply, a malformed address
            why = " ".join(str(e).split())[:200]
            why = "" if not why or "timed out" in why.lower() else f" ({why})"
            raise InputError(f"cannot reach Dask scheduler {scheduler} within {CONNECT_TIMEOUT:g} s{why}; start it "
                             "or drop --scheduler.") from None
        with client:
            yield client


@contextmanager
def session(run) -> Iterator[None]:
    """Inside the block, every :func:`map_chunks` call of ``run`` shares one client (and one
    local cluster) instead of starting its own; a no-op in-process or if one is already open."""
    key = (run.cfg.parallel.scheduler, run.cfg.parallel.workers)
    if key[0] is None or key in _OPEN:
        yield
        return
    with connect(*key) as client:
        _OPEN[key] = client
        try:
            yield
        finally:
            del _OPEN[key]


def map_chunks(run, task: Callable, args: list[tuple], desc: str = "chunks") -> None:
    """Run ``task(run, *a)`` for every ``a`` in ``args`` as Dask tasks; returns when all are done.

    Args:
        run: the driver's :class:`~macrodyn.run.Run`; its ``cfg.parallel`` says where.
        task: a module-level chunk function ``(run, *a) -> None`` that writes its own chunk
            and returns at once if the chunk is already done.
        args: one tuple of picklable arguments per chunk.
        desc: progress-bar label.
    Raises:
        the first task error left after ``RETRIES`` retries (other tasks are cancelled).
    """
    if not args:
        return
    from dask.distributed import as_completed

    cfg = json.dumps(run.cfg.model_dump())
    out = str(run.out.resolve())
    key = (run.cfg.parallel.scheduler, run.cfg.parallel.workers)
    with (nullcontext(_OPEN[key]) if key in _OPEN else connect(*key)) as client:
        futures = [client.submit(run_task, task, cfg, out, a, retries=RETRIES, pure=False) for a in args]
        try:
            for f in tqdm(as_completed(futures), total=len(futures), desc=desc, disable=not run.progress,
                          leave=False):
                f.result()  # raises the task's error
        finally:
            client.cancel([f for f in futures if not f.done()])


def run_task(task: Callable, cfg: str, out: str, args: tuple) -> None:
    """Worker side of :func:`map_chunks`: ``task(Run(cfg, out), *args)``."""
    delay = os.environ.get(TEST_DELAY_ENV)
    if delay:
        time.sleep(float(delay))
    task(_worker_run(cfg, out), *args)


@lru_cache(maxsize=4)
def _worker_run(cfg: str, out: str) -> Run:
    """The worker's :class:`Run` of the driver's folder (built once per config and folder; it
    writes nothing: the driver created the folder)."""
    run = Run(parse_config(json.loads(cfg), "<driver config>"), out, progress=False)
    torch.set_num_threads(run.cfg.parallel.worker_threads)
    return run
