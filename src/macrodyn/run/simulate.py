"""Stage simulate: training and test trajectories, chunk by chunk."""
from __future__ import annotations

import time

import numpy as np

from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable
from macrodyn.run.chunks import for_each_chunk
from macrodyn.run.folder import Run

#: snapshots at least this large are stored one per file (labelling reads them singly)
SNAPSHOT_FILE_BYTES = 64 * 1024


def trajectory_columns(run: Run) -> dict[str, tuple]:
    dtype = run.cfg.data.dtype
    layout = ("snapshots",) if run.system.n_coords * np.dtype(dtype).itemsize >= SNAPSHOT_FILE_BYTES else ()
    return {K.TRAJ: ((run.n_saved, run.system.n_coords), dtype, *layout)}


def simulate(run: Run) -> None:
    """Generate the train and test tables (each chunk seeded on its own: resumable in any order)."""
    t0 = time.perf_counter()
    d, system = run.cfg.data, run.system
    worked = False
    for name, n in (("train", d.n_train_trajectories), ("test", d.n_test_trajectories)):
        table = ChunkedTable.create(run.store, name, n, d.chunk_trajectories, trajectory_columns(run),
                                    {"system": run.cfg.system.model_dump(), "seed": run.cfg.seed,
                                     "n_steps": d.n_steps, "save_every": d.save_every, "dt": system.dt})
        missing = table.missing_chunks()
        worked |= bool(missing)
        for_each_chunk(run, simulate_chunk, [(name, c) for c in missing], f"simulate {name}")
    if worked:  # a finished table read back is not a stage run (its time and memory are not this call's)
        run.timed("simulate", time.perf_counter() - t0)


def simulate_chunk(run: Run, name: str, c: int) -> None:
    """Integrate the trajectories of chunk ``c`` of table ``name``; a no-op if it is already done."""
    d = run.cfg.data
    table = ChunkedTable.open(run.store, name)
    if table.done()[c]:
        return
    sl = table.chunk_slice(c)
    x0 = run.system.sample_initial(sl.stop - sl.start, run.rng(name, c))
    traj = run.system.trajectories(x0, d.n_steps, d.save_every, progress=False)
    table.write_chunk(c, **{K.TRAJ: traj.astype(d.dtype, copy=False)})


def simulation_force_evaluations(run: Run) -> int:
    """Force evaluations the trajectories cost (the system's integrator's calls per step)."""
    d = run.cfg.data
    return (run.system.force_calls_per_step * d.n_steps * (d.n_train_trajectories + d.n_test_trajectories)
            * run.system.n_units)
