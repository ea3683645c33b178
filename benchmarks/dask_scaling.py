"""Wall time of data generation + labelling (stages simulate and label) in-process and as Dask
tasks on a LocalCluster of 1 and 2 single-threaded worker processes.

Each measurement runs in a fresh run folder; the Dask times include starting the local
cluster (once per run, as ``macrodyn run`` does with ``parallel.scheduler: local``). Every dataset is checked
to be identical to the in-process one. Writes ``OUT/dask_scaling.json``.

    python benchmarks/dask_scaling.py [--trajectories 128 512] [--repeats 1]
    python benchmarks/dask_scaling.py --smoke [--out DIR]     # 8 trajectories, in-process and 1 worker
    python benchmarks/dask_scaling.py --analyse-only          # the table from the JSON
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from common import need_results, parse, parser, print_table, write_results
from macrodyn.config import parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.run import Run
from macrodyn.run.dask import session
from macrodyn.run.label import label_stage
from macrodyn.run.simulate import simulate

COLUMNS = ["trajectories", "scheduler", "workers", "seconds", "configs", "identical_to_in_process",
           "speedup_vs_in_process", "speedup_vs_one_worker", "repeat"]
#: (scheduler, workers) measured: in-process, then a LocalCluster of 1 and 2 worker processes
SETTINGS = ((None, 0), ("local", 1), ("local", 2))


def _config(n_traj: int, scheduler: str | None, workers: int, n_steps: int = 3000,
            budget: int | None = None) -> dict:
    return {"data": {"n_train_trajectories": n_traj, "n_test_trajectories": max(1, n_traj // 4), "n_steps": n_steps,
                     "save_every": 10, "chunk_trajectories": 4},
            "training": {"budget": budget or 150_000 * n_traj // 128, "chunk_configs": 1000},
            "parallel": {"scheduler": scheduler, "workers": workers}}


def _generate(out: Path, cfg: dict) -> float:
    t0 = time.perf_counter()
    run = Run.create(parse_config(cfg), out, progress=False)
    with session(run):  # as `macrodyn run` does: one cluster for both stages
        simulate(run)
        label_stage(run)
    return time.perf_counter() - t0


def _tables(out: Path) -> dict:
    return {t: ChunkedTable.open(out / "data.zarr", t).read() for t in ("train", "test", "labels")}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--trajectories", type=int, nargs="+", default=[128, 512],
                    help="training trajectories of each job size (test: a quarter more)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--name", default="dask_scaling")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    settings, n_steps, budget = SETTINGS, 3000, None
    if args.smoke:  # one worker process only: a cluster start is the slow part
        args.trajectories, args.repeats, settings, n_steps, budget = [8], 1, SETTINGS[:2], 300, 2000
    records = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for n_traj in args.trajectories:
            ref = None
            for rep in range(args.repeats):
                for scheduler, workers in settings:
                    out = Path(tmp) / f"{n_traj}_{scheduler}_{workers}_{rep}"
                    cfg = _config(n_traj, scheduler, max(workers, 1), n_steps, budget)
                    seconds = _generate(out, cfg)
                    data = _tables(out)
                    ref = data if ref is None else ref
                    same = all(np.array_equal(ref[t][c], data[t][c]) for t in ref for c in ref[t])
                    d = cfg["data"]
                    rec = {"workers": workers, "scheduler": scheduler or "in-process", "seconds": round(seconds, 2),
                           "configs": len(data["labels"]["f"]),
                           "trajectories": d["n_train_trajectories"] + d["n_test_trajectories"],
                           "n_steps": d["n_steps"], "identical_to_in_process": same, "repeat": rep}
                    same_job = [r for r in records if r["trajectories"] == rec["trajectories"] and r["repeat"] == rep]
                    for key, w in (("speedup_vs_in_process", 0), ("speedup_vs_one_worker", 1)):
                        base = next((r["seconds"] for r in same_job if r["workers"] == w), None)
                        rec[key] = round(base / seconds, 2) if base else None
                    print(rec, flush=True)
                    records.append(rec)
    path = write_results(args.out, args.name, records, load_average_before=round(load_before, 2),
                         load_average_after=round(os.getloadavg()[0], 2),
                         notes="Dask times include starting one LocalCluster per measurement. workers=0 is the "
                               "in-process loop. Run with OMP_NUM_THREADS=1 so every process uses one core.")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
