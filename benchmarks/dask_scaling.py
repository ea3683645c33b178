"""Wall time of data generation + labelling (stages simulate and label) in-process and as Dask
tasks on a LocalCluster of 1 and 2 single-threaded worker processes.

Each measurement runs in a fresh run folder; the Dask times include starting the local
cluster (once per table, as ``parallel.scheduler: local`` does). Every dataset is checked
to be identical to the in-process one. Writes ``benchmarks/results/dask_scaling.json``.

    python benchmarks/dask_scaling.py [--trajectories 64] [--repeats 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_results
from macrodyn.config import parse_config
from macrodyn.data import ChunkedTable
from macrodyn.pipeline import Run, label_stage, simulate


def _config(n_traj: int, scheduler: str | None, workers: int) -> dict:
    return {"data": {"n_train_trajectories": n_traj, "n_test_trajectories": n_traj // 4, "n_steps": 3000,
                     "save_every": 10, "chunk_trajectories": 4},
            "training": {"budget": 150_000, "chunk_configs": 1000},
            "parallel": {"scheduler": scheduler, "workers": workers}}


def _generate(out: Path, cfg: dict) -> float:
    t0 = time.perf_counter()
    run = Run(parse_config(cfg), out, progress=False)
    simulate(run)
    label_stage(run)
    return time.perf_counter() - t0


def _tables(out: Path) -> dict:
    return {t: ChunkedTable.open(out / "data.zarr", t).read() for t in ("train", "test", "labels")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trajectories", type=int, default=64, help="training trajectories (test: a quarter)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        ref = None
        for rep in range(args.repeats):
            for scheduler, workers in ((None, 0), ("local", 1), ("local", 2)):
                out = Path(tmp) / f"{scheduler}_{workers}_{rep}"
                cfg = _config(args.trajectories, scheduler, max(workers, 1))
                seconds = _generate(out, cfg)
                data = _tables(out)
                if ref is None:
                    ref = data
                same = all(np.array_equal(ref[t][c], data[t][c]) for t in ref for c in ref[t])
                d = cfg["data"]
                rec = {"workers": workers, "scheduler": scheduler or "in-process", "seconds": round(seconds, 2),
                       "configs": len(data["labels"]["x"]),
                       "trajectories": d["n_train_trajectories"] + d["n_test_trajectories"],
                       "n_steps": d["n_steps"], "identical_to_in_process": same, "repeat": rep}
                print(rec, flush=True)
                records.append(rec)
    path = write_results("dask_scaling", records,
                         notes="2-core machine shared with other jobs during the measurement; Dask times include "
                               "starting a LocalCluster per table (3 starts). workers=0 is the in-process loop.")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
