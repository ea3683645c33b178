"""Atomic file writes: write to a temporary file in the same folder, then rename."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from macrodyn.errors import InputError


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj, path: str | Path) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    _atomic(Path(path), lambda f: torch.save(obj, f))


def load_torch(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint {path} not found; run the stage that writes it first.")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise InputError(f"checkpoint {path} is corrupt ({type(e).__name__}); delete it and rerun that stage.") from e


def save_text(text: str, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode()))


def save_json(obj, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write((json.dumps(obj, indent=2, default=float) + "\n").encode()))


def load_json(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} not found; run the stage that writes it first.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON ({e}); delete it and rerun that stage.") from e


def peak_rss(reset: bool = False) -> int | None:
    """Peak resident memory of this process in bytes (``VmHWM``), since it started or since the
    last ``reset``; None where ``/proc`` does not say. ``reset`` starts a new peak (Linux's
    ``clear_refs``), so consecutive calls give each stage's own peak."""
    try:
        with open("/proc/self/status") as fh:
            peak = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:")), None)
    except OSError:
        return None
    if reset:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:  # the peak then stays the process's (an upper bound per stage)
            pass
    return peak
