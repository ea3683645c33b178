"""Shared benchmark output: benchmarks/results/NAME.json = {records, machine, commit, date}."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write_results(name: str, records: list[dict], **extra) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"records": records, "machine": machine(), "commit": commit(),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def link_shared(shared: Path, out: Path, tables: tuple[str, ...] = ("train", "test"), closure: bool = True) -> None:
    """Make run folder ``out`` reuse another run's data and closure.

    Each table in ``tables`` of ``shared/data.zarr`` is symlinked into ``out/data.zarr``
    (the pipeline then finds it complete and skips the stage); ``closure.pt`` is copied,
    so every run of a study is compared on the same trajectories and the same closure.
    """
    import os
    import shutil

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
