"""Integrity check of a run's dataset (``macrodyn check``): every problem found, as readable
lines, and the repair that hands bad chunks back to the stages that write them.

The check never raises on what it inspects: damaged metadata, a garbage flag or an
unreadable chunk each become one problem, and the rest is still checked.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable, Problem, _one_line
from macrodyn.data.validate import units_in
from macrodyn.errors import InputError

EXPECTED_TABLES = ("train", "test", "labels")
#: the command that writes each table
STAGE = {"train": "simulate", "test": "simulate", "labels": "label"}


def find_problems(out: str | Path, n_coords: int | None = None, coords_per_unit: int = 1,
                  expected_evaluations: int | None = None,
                  expected_tables: tuple[str, ...] = EXPECTED_TABLES,
                  only: tuple[str, ...] | None = None) -> list[Problem]:
    """Verify ``out/data.zarr``: expected tables present, metadata readable, chunks complete,
    chunk files present with intact checksums, values finite, label indices in range and
    distinct, labels pointing inside the train table, and the force-evaluation count.

    Args:
        out: run folder.
        n_coords: ``N`` (taken from the stored arrays when None).
        coords_per_unit: 6 for MD (atoms), 1 for PDEs.
        expected_evaluations: the budget recorded in ``metrics.json``, if any.
        expected_tables: tables that must exist (a deleted table is a problem).
        only: check just these tables (None: every table in the store).
    Returns:
        the problems (empty when the dataset is sound); those naming a chunk are repaired by
        :func:`repair_run`.
    """
    store = Path(out) / "data.zarr"
    if not store.is_dir():
        return [Problem(None, f"{store}: missing (run `macrodyn simulate` first)")]
    problems: list[Problem] = []
    try:  # the tables are still checked one by one (each opened as its own group) if this fails
        zarr.open_group(str(store), mode="r")
    except Exception as e:
        problems.append(Problem(None, f"{store}: store metadata unreadable ({_one_line(e)}); "
                                "delete the store and rerun `macrodyn simulate`"))
    try:
        present = sorted(p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        return [*problems, Problem(None, f"{store}: unreadable ({_one_line(e)})")]
    train_shape = _train_shape(store)
    for name in sorted(set(present) | set(expected_tables)):
        if only is not None and name not in only:
            continue
        stage = f"`macrodyn {STAGE[name]}`" if name in STAGE else "the stage that writes it"
        if name not in present:
            problems.append(Problem(name, f"missing; run {stage} to create it"))
            continue
        try:
            table = _open(store, name, "r")
        except Exception as e:
            problems.append(Problem(name, f"metadata unreadable or incomplete ({_one_line(e)}); "
                                    f"delete the table and rerun {stage}"))
            continue
        try:
            problems += _check_table(table, stage, n_coords, train_shape, coords_per_unit,
                                     expected_evaluations if name == "labels" else None)
        except Exception as e:  # a bug in the check itself must not hide the other tables
            problems.append(Problem(name, f"check stopped ({_one_line(e)})"))
    return problems


def check_run(out: str | Path, n_coords: int | None = None, coords_per_unit: int = 1,
              expected_evaluations: int | None = None,
              expected_tables: tuple[str, ...] = EXPECTED_TABLES) -> list[str]:
    """:func:`find_problems` as one line per problem (empty when the dataset is sound)."""
    return [str(p) for p in find_problems(out, n_coords, coords_per_unit, expected_evaluations, expected_tables)]


def repair_run(out: str | Path, n_coords: int | None = None, coords_per_unit: int = 1,
               expected_tables: tuple[str, ...] = EXPECTED_TABLES,
               only: tuple[str, ...] | None = None) -> dict[str, list[int]]:
    """Invalidate every chunk a problem names (bad file, checksum, NaN/Inf, garbage flag, bad
    label indices), so rerunning the stage that writes its table recomputes it (chunks are
    deterministic). Problems naming no chunk (a missing or unreadable table, a wrong count)
    are left for :func:`check_run` to report. ``only``: repair just these tables.

    Returns:
        ``{table: [invalidated chunks]}`` (empty when nothing needed it).
    """
    bad: dict[str, set[int]] = {}
    for p in find_problems(out, n_coords, coords_per_unit, None, expected_tables, only):
        if p.chunk is not None and p.table is not None:
            bad.setdefault(p.table, set()).add(p.chunk)
    done = {}
    for name, chunks in sorted(bad.items()):
        try:
            _open(Path(out) / "data.zarr", name, "r+").invalidate(sorted(chunks))
        except Exception as e:
            raise InputError(f"table {name!r}: cannot invalidate chunks {sorted(chunks)} ({_one_line(e)}); "
                             "delete the table and rerun the stage that writes it.") from e
        done[name] = sorted(chunks)
    return done


def _open(store: Path, name: str, mode: str) -> ChunkedTable:
    """The table opened as its own group, so damaged store metadata does not hide it."""
    return ChunkedTable(zarr.open_group(str(store / name), mode=mode), name)


def _train_shape(store: Path) -> tuple[int, ...] | None:
    """``(trajectories, snapshots, N)`` of the train table (its problems are reported with it)."""
    try:
        return tuple(zarr.open_array(str(store / "train" / K.TRAJ), mode="r").shape)
    except Exception:
        return None


def _check_table(table: ChunkedTable, stage: str, n_coords: int | None, train_shape, coords_per_unit: int,
                 expected_evaluations: int | None) -> list[Problem]:
    name, problems, evaluations = table.name, [], 0
    for c, chunk, probs in table.scan():
        problems += probs
        if c is None:
            continue
        try:
            evaluations += _check_labels(name, c, table.chunk_slice(c).start, chunk, n_coords, train_shape,
                                         problems, coords_per_unit)
        except Exception as e:
            problems.append(Problem(name, f"labels unreadable as indices ({_one_line(e)})", c))
    try:
        missing = table.missing_chunks()
    except InputError:  # the flags' metadata: reported by the scan
        return problems
    if missing:
        problems.append(Problem(name, f"{len(missing)} of {table.n_chunks} chunks not written "
                                f"({missing[:10]}{'...' if len(missing) > 10 else ''}); rerun {stage} "
                                "to complete them"))
    elif expected_evaluations is not None and not problems and evaluations != expected_evaluations:
        problems.append(Problem(name, f"{evaluations} force evaluations stored, metrics.json says "
                                f"{expected_evaluations}"))
    return problems


def _check_labels(name: str, c: int, row0: int, chunk: dict, n_coords, train_shape, problems: list,
                  coords_per_unit: int) -> int:
    """Problems of a labels chunk's indices (appended to ``problems``); its force evaluations."""
    if K.INDEX not in chunk:
        return 0
    idx = chunk[K.INDEX]
    if not np.issubdtype(idx.dtype, np.integer):
        problems.append(Problem(name, f"indices stored as {idx.dtype}, not integers", c, K.INDEX))
        return 0
    n = n_coords or (chunk[K.X].shape[1] if K.X in chunk else train_shape and train_shape[-1])
    if n and idx.size and (idx.min() < 0 or idx.max() >= n):
        row = int(np.argwhere((idx < 0) | (idx >= n))[0, 0])
        problems.append(Problem(name, f"index out of range [0, {n}) at row {row0 + row} "
                                f"(min {idx.min()}, max {idx.max()})", c, K.INDEX))
    if idx.ndim == 2 and (repeated := (np.diff(np.sort(idx, axis=1), axis=1) == 0).any(axis=1)).any():
        problems.append(Problem(name, f"repeated index within a configuration at row "
                                f"{row0 + int(np.argmax(repeated))}", c, K.INDEX))
    if K.WHERE in chunk and train_shape:
        w, shape = chunk[K.WHERE], train_shape[:2]
        if (w < 0).any() or (w >= np.asarray(shape)).any():
            row = int(np.argwhere(((w < 0) | (w >= np.asarray(shape))).any(axis=-1))[0, 0])
            problems.append(Problem(name, f"label at row {row0 + row} points outside the train table {shape}",
                                    c, K.WHERE))
    if K.FORCES in chunk and chunk[K.FORCES].shape != idx.shape:
        problems.append(Problem(name, f"forces {chunk[K.FORCES].shape} vs index {idx.shape}", c, K.FORCES))
    return units_in(idx, coords_per_unit)
