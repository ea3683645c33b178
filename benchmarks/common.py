"""Shared benchmark output: benchmarks/results/NAME.json = {records, machine, commit, date}."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

from macrodyn.pipeline import share_stages as link_shared  # noqa: F401  (defined in the package)

RESULTS = Path(__file__).parent / "results"


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
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def read_records(name: str) -> list[dict]:
    """The records of results/NAME.json, or [] if it does not exist yet (for --resume)."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["records"] if path.exists() else []


def write_results(name: str, records: list[dict], **extra) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"records": records, "machine": machine(), "commit": commit(),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
