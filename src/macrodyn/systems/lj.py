r"""Lennard–Jones forces on chosen atoms in a periodic cubic box (docs/method.md).

Physics (LJ units: energy ε, length σ, mass m; all float64). The pair energy is

.. math::

    u(r) = 4 ε [(σ/r)^{12} − (σ/r)^6]        for r < r_c,  0 otherwise,

plainly truncated at the cutoff ``r_c`` (no energy shift, no force smoothing, no tail
correction; LAMMPS ``pair_style lj/cut`` with ``pair_modify shift no``). The force on
atom ``i`` from atom ``j``, with ``r_vec = r_i − r_j`` (minimum image) and ``r = |r_vec|``,
is

.. math::

    F_{ij} = −∂u/∂r_i = 24 ε [2 (σ/r)^{12} − (σ/r)^6] r_vec / r^2,

and ``F_i = Σ_j F_ij`` over all atoms and periodic images with ``r < r_c``. The pair
minimum is at ``r = 2^{1/6} σ`` where ``F = 0`` and ``u = −ε``.

Cost. ``lj_forces(..., atoms=I)`` bins *all* atoms once into cells of side
``≥ r_c`` (one pass building per-cell linked lists, a few branch-free arithmetic
operations per atom, also for unwrapped positions) and then walks only the 27
neighbouring cells of each chosen atom, so the pair work is ``O(|I| · ρ · 27 · cell³)``,
independent of ``N`` (about 0.5 ms for 50 atoms at N = 51 200 on one 2.8 GHz core, about
half of it the binning pass; see ``benchmarks/partial_forces.py``). The full evaluation
(``atoms=None``) walks half of the 27-cell stencil per cell, using Newton's third law. Boxes with fewer
than 3 cells per side (``box < 3 r_c``) fall back to an all-pairs loop over every
periodic image within the cutoff, which is correct for any box size (even ``box < 2 r_c``,
where an atom feels several images of the same neighbour, including its own).

As with any floating-point cutoff test, a pair within ~1e-14 σ of ``r_c`` may be counted
either way (cell assignment and ``r² < r_c²`` are rounded).

The kernels are compiled with numba, cached on disk where a cache folder is writable
(``systems._numba``): the first call in a fresh environment compiles for a few seconds,
later processes load the cache.
"""
from __future__ import annotations

import math

from macrodyn.systems._numba import jit  # numba.njit, cached on disk where writable
import numpy as np

from macrodyn.errors import InputError

__all__ = ["lj_forces", "lj_energy", "lj_pair_energy", "lj_pair_force", "cells_per_side"]


# --------------------------------------------------------------------- pair kernels
def lj_pair_energy(r, epsilon: float = 1.0, sigma: float = 1.0):
    """Pair energy ``u(r) = 4 ε [(σ/r)^12 − (σ/r)^6]`` (untruncated).

    Args:
        r: distances (any shape), in σ units.
        epsilon, sigma: well depth and length scale.
    Returns:
        Energies, same shape as ``r``, in ε.

    Example:
        >>> round(float(lj_pair_energy(2 ** (1 / 6))), 12)
        -1.0
    """
    s6 = (sigma / np.asarray(r, dtype=np.float64)) ** 6
    return 4.0 * epsilon * (s6 * s6 - s6)


def lj_pair_force(r, epsilon: float = 1.0, sigma: float = 1.0):
    """Radial pair force ``−du/dr = 24 ε [2 (σ/r)^12 − (σ/r)^6] / r`` (positive = repulsive).

    Example:
        >>> abs(float(lj_pair_force(2 ** (1 / 6)))) < 1e-12
        True
    """
    r = np.asarray(r, dtype=np.float64)
    s6 = (sigma / r) ** 6
    return 24.0 * epsilon * (2.0 * s6 * s6 - s6) / r


# ------------------------------------------------------------------ numba kernels
_HUGE = 1e15  # coordinates beyond this are treated as blown up (and as NaN/Inf)


@jit(error_model="numpy", inline="always")
def _pair_force(r2, eps, sig2):
    """``g(r²)`` of the LJ pair: the force on ``i`` from ``j`` is ``g · (r_i − r_j)``."""
    s2 = sig2 / r2
    s6 = s2 * s2 * s2
    return 24.0 * eps * (2.0 * s6 * s6 - s6) / r2


@jit(error_model="numpy", inline="always")
def _pair_energy(r2, eps, sig2):
    """``4ε((σ/r)¹² − (σ/r)⁶)`` (unshifted)."""
    s2 = sig2 / r2
    s6 = s2 * s2 * s2
    return 4.0 * eps * (s6 * s6 - s6)


@jit(error_model="numpy")
def _cell_index(x, ibox, nc):
    """Cell along one axis: ``floor(frac(x / box) · nc)``, branch-free (unwrapped input is the norm)."""
    t = x * ibox
    return min(int((t - np.floor(t)) * nc), nc - 1)  # frac may round up to 1.0


@jit(error_model="numpy")
def _bin(pos, box, nc):
    """Bin atoms into ``nc³`` cells as linked lists, in one pass over the atoms.

    Returns ``(head, nxt, ok)``: the atoms of cell ``c`` are ``head[c]``,
    ``nxt[head[c]]``, ... until ``-1``; ``ok`` is False if a coordinate is not finite
    (or beyond ``±1e15``). Cell of a coordinate ``x``: ``floor(frac(x / box) · nc)``.
    """
    n = pos.shape[0]
    ibox = 1.0 / box
    head = np.full(nc * nc * nc, -1, np.int64)
    nxt = np.empty(n, np.int64)
    for a in range(n):
        x, y, z = pos[a, 0], pos[a, 1], pos[a, 2]
        if not (abs(x) < _HUGE and abs(y) < _HUGE and abs(z) < _HUGE):  # NaN, Inf
            return head, nxt, False
        c = (_cell_index(x, ibox, nc) * nc + _cell_index(y, ibox, nc)) * nc + _cell_index(z, ibox, nc)
        nxt[a] = head[c]
        head[c] = a
    return head, nxt, True


@jit(error_model="numpy")
def _forces_chosen_cells(pos, box, atoms, rc2, eps, sig2, nc, head, nxt):
    """Forces on ``atoms`` by walking their 27 neighbour cells (needs ``nc ≥ 3``)."""
    m = atoms.shape[0]
    ibox = 1.0 / box
    out = np.zeros((m, 3))
    for q in range(m):
        i = atoms[q]
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        kx = _cell_index(xi, ibox, nc)
        ky = _cell_index(yi, ibox, nc)
        kz = _cell_index(zi, ibox, nc)
        fx = 0.0
        fy = 0.0
        fz = 0.0
        for dx in range(-1, 2):
            cx = (kx + dx + nc) % nc
            for dy in range(-1, 2):
                cy = (ky + dy + nc) % nc
                for dz in range(-1, 2):
                    cz = (kz + dz + nc) % nc
                    j = head[(cx * nc + cy) * nc + cz]
                    while j >= 0:
                        if j != i:
                            rx = xi - pos[j, 0]
                            ry = yi - pos[j, 1]
                            rz = zi - pos[j, 2]
                            rx -= box * np.rint(rx * ibox)
                            ry -= box * np.rint(ry * ibox)
                            rz -= box * np.rint(rz * ibox)
                            r2 = rx * rx + ry * ry + rz * rz
                            if r2 < rc2:
                                g = _pair_force(r2, eps, sig2)
                                fx += g * rx
                                fy += g * ry
                                fz += g * rz
                        j = nxt[j]
        out[q, 0] = fx
        out[q, 1] = fy
        out[q, 2] = fz
    return out


@jit(error_model="numpy")
def _forces_all_cells(pos, box, rc2, eps, sig2, nc, head, nxt):
    """Forces on all atoms: half stencil (13 neighbour cells + own cell), Newton's third law."""
    n = pos.shape[0]
    ibox = 1.0 / box
    f = np.zeros((n, 3))
    # the 13 "forward" neighbour offsets, then (0, 0, 0) last
    offs = np.empty((14, 3), np.int64)
    k = 0
    for dx in range(-1, 2):
        for dy in range(-1, 2):
            for dz in range(-1, 2):
                if dx > 0 or (dx == 0 and (dy > 0 or (dy == 0 and dz > 0))):
                    offs[k, 0] = dx
                    offs[k, 1] = dy
                    offs[k, 2] = dz
                    k += 1
    offs[13, 0] = 0
    offs[13, 1] = 0
    offs[13, 2] = 0
    for cx in range(nc):
        for cy in range(nc):
            for cz in range(nc):
                c = (cx * nc + cy) * nc + cz
                for o in range(14):
                    c2 = ((((cx + offs[o, 0]) % nc) * nc + (cy + offs[o, 1]) % nc) * nc
                          + (cz + offs[o, 2]) % nc)
                    i = head[c]
                    while i >= 0:
                        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
                        fx = 0.0
                        fy = 0.0
                        fz = 0.0
                        j = nxt[i] if o == 13 else head[c2]
                        while j >= 0:
                            rx = xi - pos[j, 0]
                            ry = yi - pos[j, 1]
                            rz = zi - pos[j, 2]
                            rx -= box * np.rint(rx * ibox)
                            ry -= box * np.rint(ry * ibox)
                            rz -= box * np.rint(rz * ibox)
                            r2 = rx * rx + ry * ry + rz * rz
                            if r2 < rc2:
                                g = _pair_force(r2, eps, sig2)
                                fx += g * rx
                                fy += g * ry
                                fz += g * rz
                                f[j, 0] -= g * rx
                                f[j, 1] -= g * ry
                                f[j, 2] -= g * rz
                            j = nxt[j]
                        f[i, 0] += fx
                        f[i, 1] += fy
                        f[i, 2] += fz
                        i = nxt[i]
    return f


@jit(error_model="numpy")
def _allpairs(pos, box, atoms, rc2, eps, sig2, nimg, ushift, energy):
    """Forces on ``atoms`` from every atom and every periodic image with ``|n_a| ≤ nimg``; with
    ``energy``, also ``½ Σ`` of the shifted pair energy over those ordered pairs (the total
    energy when ``atoms`` is every atom: each pair, an atom's own images included, is seen twice)."""
    n = pos.shape[0]
    m = atoms.shape[0]
    out = np.zeros((m, 3))
    e = 0.0
    for q in range(m):
        i = atoms[q]
        for j in range(n):
            rx0 = pos[i, 0] - pos[j, 0]
            ry0 = pos[i, 1] - pos[j, 1]
            rz0 = pos[i, 2] - pos[j, 2]
            rx0 -= box * math.floor(rx0 / box + 0.5)
            ry0 -= box * math.floor(ry0 / box + 0.5)
            rz0 -= box * math.floor(rz0 / box + 0.5)
            for a in range(-nimg, nimg + 1):
                for b in range(-nimg, nimg + 1):
                    for c in range(-nimg, nimg + 1):
                        if j == i and a == 0 and b == 0 and c == 0:
                            continue
                        rx = rx0 + a * box
                        ry = ry0 + b * box
                        rz = rz0 + c * box
                        r2 = rx * rx + ry * ry + rz * rz
                        if r2 < rc2:
                            g = _pair_force(r2, eps, sig2)
                            out[q, 0] += g * rx
                            out[q, 1] += g * ry
                            out[q, 2] += g * rz
                            if energy:
                                e += 0.5 * (_pair_energy(r2, eps, sig2) - ushift)
    return out, e


# ----------------------------------------------------------------------- public API
def cells_per_side(box: float, cutoff: float) -> int:
    """Cells per box side used by the cell list: ``floor(box / cutoff)`` (side ``≥ cutoff``).

    Below 3 the 27-cell stencil would visit a cell twice; :func:`lj_forces` then uses
    the all-pairs path.
    """
    return int(math.floor(box / cutoff + 1e-12))


def _image_range(box: float, cutoff: float) -> int:
    # with the minimum-image vector |d_a| ≤ box/2, image n contributes only if
    # |n| box − box/2 < cutoff, i.e. |n| < cutoff/box + 1/2
    return int(math.ceil(cutoff / box + 0.5)) - 1


_NOT_FINITE = "positions contain NaN/Inf (or |x| > 1e15); the configuration may have blown up (check dt)."


def _check_finite(pos):
    if not np.all(np.abs(pos) < _HUGE):
        raise InputError(_NOT_FINITE)


def _check(positions, box, cutoff):
    # finiteness of the positions is checked by the callers (for free in the binning pass)
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise InputError(f"positions must have shape (n_atoms, 3); got {pos.shape}.")
    box = float(box)
    if not (box > 0 and math.isfinite(box)):
        raise InputError(f"box must be a positive side length; got {box}.")
    cutoff = float(cutoff)
    if not (cutoff > 0 and math.isfinite(cutoff)):
        raise InputError(f"cutoff must be positive; got {cutoff}.")
    return pos, box, cutoff


def lj_forces(positions, box, atoms=None, cutoff: float = 2.5, *, epsilon: float = 1.0,
              sigma: float = 1.0, method: str = "auto") -> np.ndarray:
    """Lennard–Jones forces on chosen atoms of a periodic cubic box.

    ``F_i = Σ_j 24 ε [2 (σ/r)^12 − (σ/r)^6] r_vec / r²`` over all neighbours ``j`` and
    periodic images with ``r < cutoff``, ``r_vec = r_i − r_j`` (minimum image); plain
    truncation, no shift. Costs one O(N) binning pass plus O(len(atoms)) pair work.

    Args:
        positions: ``(n, 3)`` positions in σ; may lie outside ``[0, box)`` (unwrapped).
        box: side of the periodic cubic box, in σ.
        atoms: ``(m,)`` integer atom indices (repeats allowed), or ``None`` for all atoms.
        cutoff: interaction cutoff ``r_c`` in σ (2.5).
        epsilon, sigma: LJ parameters (keyword-only; 1 in LJ units).
        method: ``"auto"`` (cell lists when ``box ≥ 3 cutoff``), ``"cells"`` or
            ``"allpairs"`` (the O(N·m) reference path, valid for any box).
    Returns:
        ``(m, 3)`` float64 forces in ε/σ (``(n, 3)`` when ``atoms`` is ``None``), row ``q``
        being the force on atom ``atoms[q]``.

    Example:
        >>> pos = np.array([[0.0, 0, 0], [2 ** (1 / 6), 0, 0]])
        >>> bool(np.abs(lj_forces(pos, box=10.0)).max() < 1e-12)
        True
    """
    pos, box, cutoff = _check(positions, box, cutoff)
    n = pos.shape[0]
    if atoms is None:
        sel = None
    else:
        sel = np.ascontiguousarray(atoms)
        if sel.ndim != 1 or not (np.issubdtype(sel.dtype, np.integer) or sel.size == 0):
            raise InputError(f"atoms must be a 1-D array of integer atom indices; got shape {sel.shape}, "
                             f"dtype {sel.dtype}.")
        sel = sel.astype(np.int64)
        if sel.size and (sel.min() < 0 or sel.max() >= n):
            raise InputError(f"atoms out of range [0, {n}): min {sel.min()}, max {sel.max()}.")
    if method not in ("auto", "cells", "allpairs"):
        raise InputError(f"method must be 'auto', 'cells' or 'allpairs'; got {method!r}.")
    nc = cells_per_side(box, cutoff)
    if method == "cells" and nc < 3:
        raise InputError(f"cell lists need box ≥ 3·cutoff ({3 * cutoff}); got box {box}. Use method='auto'.")
    rc2, sig2 = cutoff * cutoff, float(sigma) ** 2
    eps = float(epsilon)
    if n == 0 or (sel is not None and sel.size == 0):
        return np.zeros((0 if sel is not None else n, 3))
    if method == "allpairs" or nc < 3:
        _check_finite(pos)
        idx = np.arange(n, dtype=np.int64) if sel is None else sel
        return _allpairs(pos, box, idx, rc2, eps, sig2, _image_range(box, cutoff), 0.0, False)[0]
    head, nxt, ok = _bin(pos, box, nc)
    if not ok:
        raise InputError(_NOT_FINITE)
    if sel is None:
        return _forces_all_cells(pos, box, rc2, eps, sig2, nc, head, nxt)
    return _forces_chosen_cells(pos, box, sel, rc2, eps, sig2, nc, head, nxt)


def lj_energy(positions, box, cutoff: float = 2.5, *, epsilon: float = 1.0, sigma: float = 1.0,
              shift: bool = False) -> float:
    """Total potential energy ``E = Σ_{i<j} u(r_ij)`` (all images, ``r < cutoff``).

    An O(N²) reference for tests; ``lj_forces`` is ``−∇E``. With the plain truncation
    (``shift=False``, the model's energy) ``E`` jumps by ``u(r_c)`` whenever a pair
    crosses the cutoff. ``shift=True`` subtracts ``u(r_c)`` from every pair inside the
    cutoff: that energy is continuous, has the same gradient, and is the one velocity
    Verlet conserves (up to ``O(dt²)`` fluctuations).

    Args:
        positions: ``(n, 3)`` positions in σ (may lie outside the box).
        box: periodic cubic box side in σ.
        cutoff: truncation radius in σ.
        shift: subtract ``u(cutoff)`` per interacting pair.
    Returns:
        The energy in ε (float).
    """
    pos, box, cutoff = _check(positions, box, cutoff)
    _check_finite(pos)
    ushift = float(lj_pair_energy(cutoff, epsilon, sigma)) if shift else 0.0
    return float(_allpairs(pos, box, np.arange(len(pos)), cutoff * cutoff, float(epsilon), float(sigma) ** 2,
                           _image_range(box, cutoff), ushift, True)[1])
