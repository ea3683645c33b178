"""Loops over chunks (and ensemble members): in-process, or as Dask tasks when
``parallel.scheduler`` is set (:mod:`macrodyn.run.dask`)."""
from __future__ import annotations

from tqdm.auto import tqdm

from macrodyn.run.dask import map_chunks
from macrodyn.run.folder import Run


def for_each_chunk(run: Run, task, args: list[tuple], desc: str) -> None:
    """``task(run, *a)`` for each ``a`` in ``args``; each task writes its own chunk and returns at
    once if it is already done, so a loop can be rerun after an interruption."""
    if run.cfg.parallel.scheduler is None:
        for a in tqdm(args, desc=desc, disable=not run.progress, leave=False):
            task(run, *a)
    else:
        map_chunks(run, task, args, desc)
