"""Control variates for L_x,p's labels: from the other labelled configurations, or from a
cheap surrogate of the forces.

A configuration's 50-atom label is noisy because the forces it did not compute are unknown.
But the other configurations' labels are already paid for, and in trajectory data they are
informative: the same atom a few snapshots earlier or later, in the same or another run,
feels a similar force (with the paper's shared microstates every run starts from the same
positions, so atom ``i``'s force at snapshot ``t`` is much alike across runs).

For configuration ``m`` at snapshot ``t``, :class:`SnapshotControl` predicts every
coordinate's force as ``c_i = β_s · mean`` of the labels of coordinate ``i`` in the *other*
labelled configurations whose snapshot is within ``±window`` of ``t`` (0 where there is
none); ``β_s`` is one least-squares scale per coordinate slot ``s = i mod coords_per_unit``
(for MD the three position and three velocity rates), so a useless prediction is scaled to
~0 instead of adding noise. The loss then fits the residual ``f − c`` and adds ``J c``
exactly (docs/method.md's identity, applied to ``f − c``):

    Σ_{i∈I} w_i ([J⁺(g − J c)]_i − (f_i − c_i))²  =  Σ_{i∈I} w_i ([J⁺ g]_i − f'_i)²,
    f'_I = f_I − c_I + J⁺_I (J c)

so only the stored forces change (:func:`macrodyn.training.features.compute_features`),
and the estimate of ``J f`` becomes ``J c + (N/k) J_I (f_I − c_I)``. Because ``m``'s own
labels are left out, ``c`` does not depend on ``m``'s subset and both stay unbiased; the
noise falls with how well ``c`` predicts ``f`` (README, force budget section). No force is
evaluated.

:class:`SurrogateControl` (``training.control: surrogate``) predicts ``c = β_s · s(x)`` with
``s`` a cheap approximate system of the same coordinates (a short-cutoff force field beside
DFT, say), evaluated on every coordinate of each labelled configuration; ``β_s`` is the
least-squares scale per slot from ``s`` at the labelled coordinates only. ``c`` depends on
the configuration, not on its subset, so for fixed ``β`` both stay exactly unbiased whatever
the surrogate; the noise falls with how well ``β s`` predicts ``f``.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from macrodyn import keys as K
from macrodyn.errors import InputError
from macrodyn.systems.base import MicroSystem
from macrodyn.training.features import label

#: ``chunks()`` yields ``(x (b, N), labels {INDEX, FORCES, ...}, rows (b,))`` of every labelled configuration
Chunks = Callable[[], Iterable[tuple[np.ndarray, dict, np.ndarray]]]


class SnapshotControl:
    """Leave-one-out snapshot-window means of the labels, scaled per coordinate slot.

    Args:
        where: ``(M, 2)`` (trajectory, snapshot) of each labelled configuration.
        idx, forces: ``(M, k)`` labelled coordinates and their forces.
        n_coords: coordinates per configuration (N).
        n_saved: snapshots per trajectory.
        window: snapshots either side that contribute (0: the same snapshot only).
        coords_per_unit: coordinates per cost unit; one ``β`` per slot.
    """

    def __init__(self, where: np.ndarray, idx: np.ndarray, forces: np.ndarray, n_coords: int, n_saved: int,
                 window: int, coords_per_unit: int = 1):
        if not (len(where) == len(idx) == len(forces)) or idx.shape != forces.shape:
            raise ValueError(f"where {where.shape}, idx {idx.shape} and forces {forces.shape} do not match")
        self.where, self.idx, self.forces = where, idx, forces
        self.window, self.cpu = int(window), coords_per_unit
        t = np.repeat(where[:, 1], idx.shape[1])
        # cumulative sums over snapshots, so any window's sum is two rows (float64: N·T·16 bytes)
        s, c = np.zeros((n_saved + 1, n_coords)), np.zeros((n_saved + 1, n_coords))
        np.add.at(s, (t + 1, idx.ravel()), forces.ravel())
        np.add.at(c, (t + 1, idx.ravel()), 1.0)
        self._sum, self._count = np.cumsum(s, 0), np.cumsum(c, 0)
        self.beta = np.ones(coords_per_unit)
        lo, hi = self._window(np.arange(len(where)))
        at_sum = self._sum[hi[:, None], idx] - self._sum[lo[:, None], idx] - forces  # labelled coordinates only
        at_count = self._count[hi[:, None], idx] - self._count[lo[:, None], idx] - 1.0
        raw = np.where(at_count > 0.5, at_sum / np.maximum(at_count, 1.0), 0.0)
        slot = idx % coords_per_unit
        for j in range(coords_per_unit):  # β = argmin Σ (f − β c)² over the slot's labels
            m = slot == j
            den = float((raw[m] ** 2).sum())
            self.beta[j] = float((raw[m] * forces[m]).sum()) / den if den > 0 else 0.0

    def _window(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the cumulative sums bounding each configuration's snapshot window."""
        t = self.where[rows, 1]
        return np.maximum(t - self.window, 0), np.minimum(t + self.window + 1, self._sum.shape[0] - 1)

    def _raw(self, rows: np.ndarray) -> np.ndarray:
        """``(b, N)`` unscaled leave-one-out window means for labelled configurations ``rows``."""
        lo, hi = self._window(rows)
        s, c = self._sum[hi] - self._sum[lo], self._count[hi] - self._count[lo]
        own = np.arange(len(rows))[:, None]
        s[own, self.idx[rows]] -= self.forces[rows]  # leave the configuration's own labels out
        c[own, self.idx[rows]] -= 1.0
        return np.where(c > 0.5, s / np.maximum(c, 1.0), 0.0)

    def __call__(self, rows: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """``(b, N)`` predicted forces of labelled configurations ``rows`` (indices into the labels;
        their configurations ``x`` are not needed)."""
        raw = self._raw(np.asarray(rows))
        return raw * np.tile(self.beta, raw.shape[1] // self.cpu)[None]


def slot_scale(idx: np.ndarray, forces: np.ndarray, pred: np.ndarray, coords_per_unit: int,
               sums: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Accumulate ``(Σ f·s, Σ s²)`` per slot ``idx mod coords_per_unit`` over labelled coordinates
    (``idx, forces, pred`` of one shape); ``β = Σ f s / Σ s²`` (0 where ``Σ s² = 0``)."""
    num, den = sums if sums is not None else (np.zeros(coords_per_unit), np.zeros(coords_per_unit))
    slot = (np.asarray(idx) % coords_per_unit).ravel()
    num += np.bincount(slot, (forces * pred).ravel(), coords_per_unit)
    den += np.bincount(slot, (pred * pred).ravel(), coords_per_unit)
    return num, den


def slot_beta(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``β = Σ f s / Σ s²`` per slot from :func:`slot_scale`'s sums (0 where ``Σ s² = 0``)."""
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


class SurrogateControl:
    """``c = β_s · s(x)``: a cheap system's forces on every coordinate, scaled per coordinate slot.

    Args:
        surrogate: the cheap system (same coordinates as the expensive one); its ``counter``
            counts what the control costs.
        beta: ``(coords_per_unit,)`` scales, one per slot ``i mod coords_per_unit``.
    """

    def __init__(self, surrogate: MicroSystem, beta: np.ndarray):
        self.surrogate, self.beta = surrogate, np.asarray(beta, dtype=np.float64)

    def __call__(self, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``(b, N)`` predicted forces of the labelled configurations ``x`` ``(b, N)`` (``rows`` unused)."""
        return self.scaled(self.surrogate.forces(np.asarray(x, dtype=np.float64)))

    def scaled(self, s: np.ndarray) -> np.ndarray:
        """``β_s · s`` of surrogate forces ``s`` ``(b, N)`` already evaluated."""
        return s * np.tile(self.beta, s.shape[1] // len(self.beta))[None]


class Snapshots:
    """``training.control: snapshots``: builds a :class:`SnapshotControl` from a labels table."""

    needs_where = True  # labels must name their snapshot (and all of them are read at once)
    surrogate = None  # evaluates no force

    def __init__(self, window: int = 12):
        self.window = window

    def build(self, lab: dict[str, np.ndarray], chunks: Chunks | None, n_coords: int, n_saved: int,
              coords_per_unit: int = 1) -> SnapshotControl:
        return SnapshotControl(lab[K.WHERE], lab[K.INDEX], lab[K.FORCES], n_coords, n_saved, self.window,
                               coords_per_unit)


class Surrogate:
    """``training.control: surrogate``: builds a :class:`SurrogateControl` from a cheap system.

    Args:
        surrogate: the cheap system; like: the expensive one (the surrogate must have its
            ``n_coords`` and ``coords_per_unit``, else :class:`InputError`).
    """

    needs_where = False

    def __init__(self, surrogate: MicroSystem, like: MicroSystem):
        check_surrogate(surrogate, like)
        self.surrogate = surrogate

    def build(self, lab: dict | None, chunks: Chunks, n_coords: int, n_saved: int,
              coords_per_unit: int = 1) -> SurrogateControl:
        """``β`` from a first pass over ``chunks``: the surrogate at the labelled coordinates only."""
        sums = None
        for x, lab_c, _ in chunks():
            pred = label(self.surrogate, x, lab_c[K.INDEX])
            sums = slot_scale(lab_c[K.INDEX], lab_c[K.FORCES], pred, coords_per_unit, sums)
        if sums is None:
            raise InputError("training.control: surrogate found no labelled configuration; run `macrodyn label`.")
        return SurrogateControl(self.surrogate, slot_beta(*sums))


def check_surrogate(surrogate: MicroSystem, like: MicroSystem) -> None:
    """Refuse a surrogate whose coordinates are not the system's (one line naming the fix)."""
    if (surrogate.n_coords, surrogate.coords_per_unit) != (like.n_coords, like.coords_per_unit):
        raise InputError(f"training.surrogate ({type(surrogate).__name__}) has N = {surrogate.n_coords} coordinates "
                         f"({surrogate.coords_per_unit} per unit) but the system ({type(like).__name__}) has N = "
                         f"{like.n_coords} ({like.coords_per_unit} per unit); give the surrogate the same size "
                         "(e.g. the same n_atoms or n) in training.surrogate.params.")


def make_control(kind: str, window: int = 12, *, system: MicroSystem | None = None,
                 surrogate: Callable[[], MicroSystem] | None = None) -> Snapshots | Surrogate | None:
    """``"none" | "snapshots" | "surrogate"`` → None or the control's builder (``surrogate()``
    builds the cheap system, checked against ``system``; called only for ``"surrogate"``)."""
    kinds = {"none": lambda: None, "snapshots": lambda: Snapshots(window),
             "surrogate": lambda: Surrogate(surrogate(), system)}
    if kind not in kinds:
        raise ValueError(f"unknown control {kind!r}; choose none, snapshots or surrogate")
    if kind == "surrogate" and (surrogate is None or system is None):
        raise ValueError("control surrogate needs the system and a surrogate factory")
    return kinds[kind]()
