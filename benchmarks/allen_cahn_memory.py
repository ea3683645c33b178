"""Peak memory of the simulate stage at paper scale (Allen–Cahn 200 × 200).

Runs the simulate stage of configs/allen_cahn_paper.yaml on a reduced number of
trajectories, each setting in a fresh subprocess, and records that process's peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The stage streams
to the store one chunk at a time, so the peak should be the Python/torch baseline plus
about ``chunk_trajectories × (n_steps/save_every + 1) × n² × 8`` bytes (the chunk being
written; 128 MB per trajectory at n = 200, 401 snapshots) and its compressed copy,
independent of the number of trajectories.

    python benchmarks/allen_cahn_memory.py [--n-train 2] [--n-test 1] [--chunks 1 2] [--n-steps 40000]
    python benchmarks/allen_cahn_memory.py --smoke [--out DIR]     # a 16 × 16 grid, 200 steps
    python benchmarks/allen_cahn_memory.py --analyse-only          # the table from the JSON

Writes OUT/allen_cahn_memory.json.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from common import CONFIGS, need_results, parse, parser, print_table, write_results

COLUMNS = ["n", "n_trajectories", "chunk_trajectories", "n_steps", "peak_rss_gb", "baseline_rss_gb", "chunk_gb",
           "store_gb", "seconds", "under_limit"]

# Runs in the child process: argv = config, out, n_train, n_test, chunk, n_steps (0: config's), grid n (0: config's)
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from macrodyn import load_config, parse_config
from macrodyn.run import Run
from macrodyn.run.simulate import simulate

cfg_path, out, n_train, n_test, chunk, n_steps, n_grid = sys.argv[1:8]
data = load_config(cfg_path).model_dump()
d = data["data"]
d.update(n_train_trajectories=int(n_train), n_test_trajectories=int(n_test), chunk_trajectories=int(chunk))
if int(n_steps):
    d["n_steps"] = int(n_steps)
if int(n_grid):
    data["system"]["params"]["n"] = int(n_grid)
cfg = parse_config(data)
d = cfg.data
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run = Run.create(cfg, out, progress=False)
t0 = time.perf_counter()
simulate(run)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"n": run.system.n, "n_steps": d.n_steps, "save_every": d.save_every,
                  "baseline_rss_kib": baseline, "peak_rss_kib": peak, "seconds": seconds}))
"""


def measure(config: str, out: Path, n_train: int, n_test: int, chunk: int, n_steps: int, n_grid: int = 0) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([sys.executable, "-c", _CHILD, config, str(out), str(n_train), str(n_test), str(chunk),
                        str(n_steps), str(n_grid)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"simulate failed for chunk_trajectories={chunk}:\n{r.stderr}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    n_saved = res["n_steps"] // res["save_every"] + 1
    traj_bytes = n_saved * res["n"] ** 2 * 8
    store_bytes = sum(f.stat().st_size for f in (out / "data.zarr").rglob("*") if f.is_file())
    return {"n": res["n"], "n_trajectories": n_train + n_test, "n_train_trajectories": n_train,
            "n_test_trajectories": n_test, "chunk_trajectories": chunk, "n_steps": res["n_steps"],
            "save_every": res["save_every"], "peak_rss_gb": round(res["peak_rss_kib"] / 2 ** 20, 3),
            "baseline_rss_gb": round(res["baseline_rss_kib"] / 2 ** 20, 3),
            "trajectory_gb": round(traj_bytes / 2 ** 30, 3),
            "chunk_gb": round(chunk * traj_bytes / 2 ** 30, 3),
            "store_gb": round(store_bytes / 2 ** 30, 3), "seconds": round(res["seconds"], 1)}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/allen_cahn_memory")
    ap.add_argument("--config", default=str(CONFIGS / "allen_cahn_paper.yaml"))
    ap.add_argument("--n-train", type=int, default=2)
    ap.add_argument("--n-test", type=int, default=1)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 2], help="chunk_trajectories settings to measure")
    ap.add_argument("--n-steps", type=int, default=0, help="override data.n_steps (0: the config's)")
    ap.add_argument("--grid", type=int, default=0, help="override the grid points per side (0: the config's)")
    ap.add_argument("--name", default="allen_cahn_memory")
    ap.add_argument("--limit-gb", type=float, default=8.0)
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    if args.smoke:
        args.grid, args.n_train, args.n_test, args.chunks, args.n_steps = 16, 1, 1, [1], 200
    records = []
    for chunk in args.chunks:
        rec = measure(args.config, args.work / f"chunk{chunk}", args.n_train, args.n_test, chunk, args.n_steps,
                      args.grid)
        rec["under_limit"] = rec["peak_rss_gb"] < args.limit_gb
        records.append(rec)
        print(rec, flush=True)
    write_results(args.out, args.name, records, config=str(Path(args.config).name), limit_gb=args.limit_gb,
                  note="simulate stage only, each setting in a fresh subprocess; peak_rss_gb = ru_maxrss of "
                       "that process (GiB), baseline_rss_gb = the same after importing macrodyn and torch; "
                       "seconds = wall time (on a shared machine, an upper bound)")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
