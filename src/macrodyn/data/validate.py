"""Value checks shared by the data store, the systems and the training code.

Kept in ``data/`` (which imports nothing from ``systems/`` or ``training/``) so the store and
``macrodyn check`` use the same rules as the code that produces the data.
"""
from __future__ import annotations

import numpy as np

from macrodyn.errors import InputError


def first_nonfinite(a: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/Inf entry of ``a`` (None when every entry is finite)."""
    finite = np.isfinite(a)
    if finite.all():
        return None
    return tuple(int(i) for i in np.argwhere(~finite)[0])


def check_finite(name: str, a: np.ndarray, hint: str = "") -> None:
    """Raise :class:`InputError` naming the first non-finite entry of ``a``."""
    bad = first_nonfinite(a)
    if bad is not None:
        raise InputError(f"{name} contains NaN/Inf (first at index {bad})." + (f" {hint}" if hint else ""))


def units_in(idx: np.ndarray, coords_per_unit: int) -> int:
    """Force evaluations represented by stored indices ``(B, k)``: distinct units per row
    (an atom is one unit of ``coords_per_unit`` coordinates, however many of them are labelled)."""
    idx = np.asarray(idx)
    if coords_per_unit == 1:
        return int(idx.size)
    if idx.size == 0:
        return 0
    units = np.sort(idx // coords_per_unit, axis=1)
    return int((np.diff(units, axis=1) != 0).sum() + units.shape[0])
