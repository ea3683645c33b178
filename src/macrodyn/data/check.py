"""Integrity check of a run's dataset: every problem found, as readable lines."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from macrodyn import keys as K
from macrodyn.data.store import DONE, ChunkedTable


def check_run(out: str | Path, n_coords: int | None = None, coords_per_unit: int = 1,
              expected_evaluations: int | None = None) -> list[str]:
    """Verify ``out/data.zarr``: chunk completeness and readability, shapes, finiteness,
    index ranges and the force-evaluation count.

    Args:
        out: run folder.
        n_coords: ``N`` (taken from the stored arrays when None).
        coords_per_unit: 6 for MD (atoms), 1 for PDEs.
        expected_evaluations: the budget recorded in ``metrics.json``, if any.
    Returns:
        list of problems (empty when the dataset is sound).
    """
    store = Path(out) / "data.zarr"
    if not store.exists():
        return [f"{store}: missing (run `macrodyn simulate` first)"]
    problems: list[str] = []
    try:
        root = zarr.open_group(str(store), mode="r")
        names = sorted(k for k, _ in root.groups())
    except Exception as e:
        return [f"{store}: unreadable ({e})"]
    try:  # labels point into the train table (its problems are reported with the table itself)
        train_shape = root["train"][K.TRAJ].shape if "train" in names else None
    except Exception:
        train_shape = None
    for name in names:
        try:
            table = ChunkedTable(root[name])
        except Exception as e:
            problems.append(f"table {name}: metadata unreadable or incomplete ({e}); delete it and rerun its stage")
            continue
        done = np.asarray(root[name][DONE][:])
        if not done.all():
            problems.append(f"table {name}: {int((~done).sum())} of {len(done)} chunks incomplete "
                            f"({np.flatnonzero(~done)[:10].tolist()}...); rerun the stage to complete them")
        for c in np.flatnonzero(done):
            try:
                chunk = table.read_chunk(int(c))
            except Exception as e:
                problems.append(f"table {name}, chunk {c}: unreadable ({type(e).__name__}: {e}); "
                                "delete the chunk's files or the table and rerun")
                continue
            for col, a in chunk.items():
                if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
                    bad = np.argwhere(~np.isfinite(a))[0]
                    problems.append(f"table {name}, column {col}: NaN/Inf at row "
                                    f"{int(table.chunk_slice(int(c)).start + bad[0])}")
            if K.INDEX in chunk:
                idx = chunk[K.INDEX]
                n = n_coords or (chunk[K.X].shape[1] if K.X in chunk else train_shape and train_shape[-1])
                if n and (idx.min() < 0 or idx.max() >= n):
                    problems.append(f"table {name}, chunk {c}: index out of range [0, {n}) "
                                    f"(min {idx.min()}, max {idx.max()})")
                if (np.diff(np.sort(idx, axis=1), axis=1) == 0).any():
                    problems.append(f"table {name}, chunk {c}: repeated index within a configuration")
                if K.WHERE in chunk and train_shape:
                    w, shape = chunk[K.WHERE], train_shape[:2]
                    if (w < 0).any() or (w >= np.asarray(shape)).any():
                        problems.append(f"table {name}, chunk {c}: a label points outside the train table {shape}")
                if chunk[K.FORCES].shape != idx.shape:
                    problems.append(f"table {name}, chunk {c}: forces {chunk[K.FORCES].shape} vs index {idx.shape}")
        if name == "labels" and expected_evaluations is not None and done.all() and not problems:
            from macrodyn.training.features import units_in

            got = sum(units_in(ch[K.INDEX], coords_per_unit) for ch in table.iter_chunks([K.INDEX]))
            if got != expected_evaluations:
                problems.append(f"labels: {got} force evaluations stored, metrics.json says {expected_evaluations}")
    return problems
