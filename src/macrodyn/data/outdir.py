"""Checks on an output folder (``--out``) before anything is written to it.

What counts as a macrodyn run folder (so that ``--out`` may reuse it to resume):

- a ``config.yaml`` that macrodyn wrote: a YAML mapping with every top-level section of
  :class:`~macrodyn.config.RunConfig` that the run writes (``name, seed, system, data,
  closure, model, training, evaluation, device``); a hand-written config rarely lists all of
  them, so a folder of the user's configs is not mistaken for a run; or
- a ``data.zarr`` folder (the dataset; a run whose ``config.yaml`` was lost).

A study folder (``macrodyn study``) holds ``study.json``, or a size folder with a ``shared``
run folder in it. An empty folder, or one holding only the lock file, is free to use. Any
other non-empty folder is refused: a mistyped ``--out`` (``.``, ``~``, a project folder)
must not receive a dataset, nor have its ``config.yaml`` overwritten.
"""
from __future__ import annotations

import os
from pathlib import Path

from macrodyn.errors import InputError

#: the top-level keys of the config.yaml that :class:`macrodyn.pipeline.Run` writes
RUN_CONFIG_KEYS = frozenset({"name", "seed", "system", "data", "closure", "model", "training", "evaluation", "device"})
#: entries that do not make a folder "non-empty" (the run lock, desktop litter)
IGNORED = frozenset({".lock", ".DS_Store"})


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a macrodyn run (see the module docstring)."""
    folder = Path(folder)
    if (folder / "data.zarr").is_dir():
        return True
    cfg = folder / "config.yaml"
    if not cfg.is_file():
        return False
    import yaml

    try:
        data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and RUN_CONFIG_KEYS <= set(map(str, data))


def is_study_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a macrodyn study (``study.json``, ``advice.json``, or a ``shared``
    or ``<size>/shared`` run)."""
    folder = Path(folder)
    if (folder / "study.json").is_file() or (folder / "advice.json").is_file() or is_run_folder(folder / "shared"):
        return True
    try:
        return any(child.is_dir() and is_run_folder(child / "shared") for child in folder.iterdir())
    except OSError:
        return False


def check_out_dir(out: Path | str, *, creating: bool, kind: str = "run") -> None:
    """Refuse an output folder that macrodyn must not write to; writes nothing itself.

    Args:
        out: the ``--out`` value; a ``str`` is checked for emptiness first (``Path("")`` is
            the current folder, so ``--out "$UNSET"`` must be caught before the conversion).
        creating: True for commands that may create the run (``run``, ``simulate``): ``out``
            may be missing, empty, or an existing run. False for commands that need an
            existing run (the later stages, ``check``): ``out`` must be a run folder.
        kind: ``"run"`` or ``"study"`` (which marker makes an existing folder reusable).
    Raises:
        InputError: one line naming the problem and the fix. Refused: an empty or blank
            value; an existing file; a path under a file; a location that cannot be created
            or written; a non-empty folder that is not a macrodyn run (or study).
    """
    name = "study" if kind == "study" else "run"
    if isinstance(out, str):
        if not out.strip():
            raise InputError("--out is empty (an unset shell variable?); give the run folder, e.g. "
                             "--out runs/my_run.")
        out = Path(out)
    out = Path(out).expanduser()
    try:
        if out.is_file() or (out.exists() and not out.is_dir()):
            raise InputError(f"--out {out} is a file, not a folder; give a new folder or an existing {name} folder.")
        if not out.exists():
            parent = _existing_ancestor(out)
            if parent is not None and not parent.is_dir():
                raise InputError(f"--out {out} lies under {parent}, which is a file, not a folder; choose another "
                                 "--out.")
            if not creating:
                raise InputError(f"{name} folder {out} does not exist; run `macrodyn run CONFIG --out {out}` (or "
                                 "`macrodyn simulate`) first, or check --out.")
            if parent is None or not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"cannot create --out {out}: {parent or out.anchor or '.'} is not writable; choose "
                                 "another --out.")
            return
        entries = {e.name for e in out.iterdir()} - IGNORED
        reusable = is_study_folder(out) if kind == "study" else is_run_folder(out)
        if entries and not reusable:
            shown = ", ".join(sorted(entries)[:3]) + (", …" if len(entries) > 3 else "")
            if not creating:
                raise InputError(f"{out} is not a macrodyn {name} folder (it holds {shown}); give the folder a "
                                 f"{name} wrote (its --out).")
            raise InputError(f"--out {out} is a non-empty folder that is not a macrodyn {name} (it holds {shown}); "
                             f"give a new or empty folder, or an existing {name} folder.")
        if not creating and not reusable:
            raise InputError(f"{name} folder {out} is empty; run `macrodyn run CONFIG --out {out}` (or "
                             "`macrodyn simulate`) first, or check --out.")
        if creating and not os.access(out, os.W_OK | os.X_OK):
            raise InputError(f"--out {out} is not writable; choose another --out or fix its permissions.")
    except OSError as e:  # permission denied while looking, a name too long, an I/O error
        raise InputError(f"cannot use --out {out}: {e.strerror or e}; choose another --out.") from None


def _existing_ancestor(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` that exists (as a file or folder), or None."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return None
