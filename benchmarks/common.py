"""Shared benchmark plumbing: the common options, the results file, tiny configs for smoke runs.

Every script writes ``OUT/NAME.json`` = ``{"records": [...], "machine": {...}, "commit": ...,
"date": ..., ...}`` and its figures beside it, and keeps its run folders in ``--work``:

- ``--out`` (default ``benchmarks/results``, the committed measurements);
- ``--smoke``: tiny sizes, a few seconds, to check the script runs; its results go to ``--out``
  (default: a fresh temporary folder), never to ``benchmarks/results``, and its run folders
  to ``OUT/work`` unless ``--work`` is given;
- ``--analyse-only``: remake the figures and the summary of ``OUT/NAME.json`` without
  measuring anything (the analysis reads only the JSON).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIGS = REPO / "configs"
RESULTS = HERE / "results"


# ----------------------------------------------------------------------------- options
def parser(doc: str, work: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with ``--out``, ``--smoke``, ``--analyse-only`` (and ``--work``, when
    the script keeps run folders, with default ``work``; ``""``: the script sets it)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default: benchmarks/results; with --smoke: a new temporary folder)")
    if work is not None:
        ap.add_argument("--work", type=Path, default=None,
                        help=f"run folders (default: {work or 'see above'}; with --smoke: OUT/work)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks the script runs")
    ap.add_argument("--analyse-only", action="store_true",
                    help="remake the figures and summary from OUT/NAME.json; measure nothing")
    ap.set_defaults(work_default=work)
    return ap


def parse(ap: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and resolve ``--out``/``--work`` (a smoke run never writes to benchmarks/results)."""
    args = ap.parse_args(argv)
    if args.smoke and args.analyse_only:
        ap.error("--smoke measures; --analyse-only does not: give one of them")
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="macrodyn_smoke_")) if args.smoke else RESULTS
    if args.smoke and args.out.resolve() == RESULTS.resolve():
        ap.error("--smoke never writes to benchmarks/results (the committed measurements); give another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.work_default is not None and args.work is None:
        args.work = args.out / "work" if args.smoke else (Path(args.work_default) if args.work_default else None)
    if args.smoke:
        print(f"smoke run: results in {args.out}", flush=True)
    return args


# ---------------------------------------------------------------------------- results
def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            # trained errors depend on the kernels torch picks for the CPU (README: reproducibility)
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def results_path(out: Path, name: str) -> Path:
    return Path(out) / f"{name}.json"


def read_results(out: Path, name: str) -> dict | None:
    """``OUT/NAME.json``, or None if it does not exist yet."""
    path = results_path(out, name)
    return json.loads(path.read_text()) if path.exists() else None


def read_records(out: Path, name: str) -> list[dict]:
    """The records of ``OUT/NAME.json``, or [] if it does not exist yet (for resuming)."""
    doc = read_results(out, name)
    return doc["records"] if doc else []


def need_results(out: Path, name: str) -> dict:
    """``OUT/NAME.json`` for ``--analyse-only`` (one line naming the file when it is missing)."""
    doc = read_results(out, name)
    if doc is None:
        raise SystemExit(f"--analyse-only: {results_path(out, name)} does not exist; run the measurement first.")
    return doc


def median_time(fn, repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn()``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def loglog_crossing(x0: float, y0: float, x1: float, y1: float, y: float) -> float:
    """The ``x`` where the straight line in log-log through ``(x0, y0)`` and ``(x1, y1)`` takes the
    value ``y``: where a mean error crosses the tolerance between two tried budgets."""
    return x0 * (x1 / x0) ** (math.log(y0 / y) / math.log(y0 / y1))


def session() -> dict:
    """``{machine, commit, date}``: where and when this process measures."""
    return {"machine": machine(), "commit": commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def write_results(out: Path, name: str, records: list[dict], **extra) -> Path:
    """Write ``OUT/NAME.json`` = ``{records, machine, commit, date, **extra}``."""
    path = results_path(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"records": records, **session(), **extra}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def print_table(records: list[dict], columns: list[str]) -> None:
    """The ``columns`` of ``records``, one row each (numbers to 3 significant digits)."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return "-" if v is None else str(v)

    rows = [[fmt(r.get(c)) for c in columns] for r in records]
    width = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, width)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, width)))


# ------------------------------------------------------------------------ smoke sizes
#: per system, the parameters of a smoke run (few coordinates; LJ: the smallest box the cutoff allows)
TINY_SYSTEM = {"predator_prey": {"n": 8}, "allen_cahn": {"n": 12},
               "lennard_jones": {"n_atoms": 108, "box": None, "engine": "verlet"}}


def tiny(cfg, n_train: int = 8, n_test: int = 2, snapshots: int = 10):
    """``cfg`` (a RunConfig) shrunk for a smoke run: a few coordinates, ``n_train`` + ``n_test``
    trajectories of ``snapshots`` + 1 snapshots, small networks, one-epoch closure and
    single-member fits selected by validation loss, in-process. Budgets are the caller's (at most
    ``n_train × (snapshots + 1)`` configurations)."""
    from macrodyn.config import parse_config

    d = cfg.model_dump()
    d["system"]["params"].update(TINY_SYSTEM.get(d["system"]["name"], {}))
    save_every = min(d["data"]["save_every"], 10)
    d["data"].update(n_train_trajectories=n_train, n_test_trajectories=n_test, n_steps=snapshots * save_every,
                     save_every=save_every, chunk_trajectories=4)
    d["closure"].update(dim=min(d["closure"]["dim"], 4), hidden=[16, 16], epochs=1, max_configs=None, batch_size=64,
                        cond_batch=8)
    d["model"].update(hidden=[16, 16], potential_hidden=[16, 16])
    d["training"].update(epochs=1, members=1, batch_size=32, stop_patience=None, lr_patience=1, select="loss",
                         chunk_configs=40)
    d["evaluation"]["n_plot"] = 1
    d["threads"] = 1
    d["parallel"]["scheduler"] = None
    return parse_config(d, "smoke config")


def tiny_study(path: Path, training: dict | None = None, **fields) -> Path:
    """A force-budget study YAML for smoke runs, written to ``path``: predator–prey at n = 8 and 12
    (16 and 24 coordinates, 4 labelled per L_x,p configuration), training sets of 250 and 500
    configurations, every point within the tolerance (so each (size, loss) trains one point).
    ``training``: fields of the base run's training section; ``fields``: of the study."""
    import yaml

    from macrodyn.config import load_config

    run = tiny(load_config(CONFIGS / "predator_prey.yaml"), n_train=50).model_dump()
    run["training"].update(training or {})
    study = {"run": run, "size_param": "n", "sizes": [8, 12], "units_per_config": 4, "configs": [250, 500],
             "search": "ascending", "e_tol": 1.0e9, **fields}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
