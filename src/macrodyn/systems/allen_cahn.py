"""Allen–Cahn phase field in 2-D (docs/method.md).

    u_t = (u − u³) / ε² + Δu      on [0, 1]²,  Neumann boundaries,

on an ``n × n`` cell-centred grid (cell centres ``((i + ½) h, (j + ½) h)``, ``h = 1/n``).
``Δ`` is the 5-point Laplacian divided by ``h²`` with mirror boundaries (ghost value =
edge value), written in flux form: each interior face between cells ``a`` and ``b``
adds ``(u_b − u_a)/h²`` to ``a`` and subtracts it from ``b``; boundary faces carry no
flux. This is exactly ``−∇E / h²`` for the discrete Ginzburg–Landau free energy
:class:`macrodyn.observables.GinzburgLandau`, so ``E`` decreases along every trajectory
(``dE/dt = −h² Σ f²``).

State: the field ``(n, n)`` with axis 0 = x, flattened row-major, so coordinate
``c = i n + j`` is the cell ``(i, j)`` and its x-neighbours are ``c ± n``.

Defaults (paper scale ``n = 200``): ``ε = 10 h / (2√2 artanh 0.9)``, i.e. the
1-D equilibrium profile ``tanh(x / (√2 ε))`` rises from −0.9 to 0.9 over 10 cells at
any ``n``; ``dt = 0.1 h²`` for RK4.

:class:`CoarseAllenCahn` (``allen_cahn_coarse``) is the cheap surrogate of the multi-fidelity
control variate (``training.surrogate: {name: allen_cahn_coarse, params: {coarsen: 2}}``): the
same equation, same ``ε``, on the grid ``c = coarsen`` times coarser (block means of ``c × c``
cells, spacing ``c h``), its right-hand side copied back to every fine cell of a block. An
interface of 10 fine cells still spans ``10/c`` coarse ones, so for ``c = 2`` it stays resolved;
the fine and coarse forces differ by the discretisation error, and one configuration costs
``N/c²`` stencils instead of ``N``.

Cost: the full right-hand side is ``O(n²)`` per configuration; the partial one
(:meth:`AllenCahn.partial_forces`) gathers the 4 neighbours of each chosen cell only
and costs ``O(k)``. At ``n = 200`` one saved trajectory of 401 snapshots is 128 MB,
so generate trajectories in chunks of a few initial states
(``system.trajectories(x0[i:i + chunk], ...)``).
"""
from __future__ import annotations

import math
from pathlib import Path

from macrodyn.systems._numba import jit  # numba.njit, cached on disk where writable
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from macrodyn.errors import InputError
from macrodyn.observables.free_energy import GinzburgLandau
from macrodyn.systems.base import MicroSystem

#: Real-axis extent of the classical RK4 stability region, ``|dt λ| ≤ 2.785`` for ``λ < 0``.
RK4_REAL_STABILITY = 2.785


def default_eps(n: int) -> float:
    """``ε = 10 h / (2√2 artanh 0.9)`` with ``h = 1/n``: about 10 cells across an interface."""
    return 10.0 / n / (2.0 * math.sqrt(2.0) * math.atanh(0.9))


def allen_cahn_rhs(u: np.ndarray, eps: float, h: float) -> np.ndarray:
    """Full right-hand side ``(u − u³)/ε² + Δ_h u`` of a batch of fields.

    Args:
        u: ``(B, n, n)`` fields (axis 1 = x, axis 2 = y).
        eps: interface width ``ε``.
        h: grid spacing.
    Returns:
        ``(B, n, n)`` time derivatives (float64), mirror (zero-flux) boundaries.
    """
    inv_h2 = 1.0 / (h * h)
    f = u * u
    np.subtract(1.0, f, out=f)
    f *= u
    f *= 1.0 / (eps * eps)
    for axis in (1, 2):
        g = np.diff(u, axis=axis)          # u_{c+1} − u_c on each interior face
        g *= inv_h2
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        f[tuple(lo)] += g                  # flux into the lower cell
        f[tuple(hi)] -= g                  # and out of the upper one
    return f


@jit()
def allen_cahn_rhs_at(x, idx, n, inv_eps2, inv_h2):  # pragma: no cover - compiled
    """Right-hand side at chosen cells only, cost ``O(B k)``.

    Args:
        x: ``(B, n²)`` flattened fields (float64).
        idx: ``(B, k)`` int64 cell indices ``c = i n + j`` in ``[0, n²)`` (unchecked).
        n: grid points per side.
        inv_eps2, inv_h2: ``1/ε²`` and ``1/h²``.
    Returns:
        ``(B, k)``: ``out[b, m] = f(x[b])[idx[b, m]]``. A missing neighbour (boundary)
        is the mirror ghost, i.e. contributes zero flux.

    The row ``i = c // n`` is computed as ``⌊(c + ½)/n⌋`` in floating point (about 15 %
    faster than an integer division here): ``(c + ½)/n`` lies at least ``½/n`` from
    an integer, far more than the rounding error for any ``c < 10¹⁵``.
    """
    B, k = idx.shape
    out = np.empty((B, k))
    inv_n = 1.0 / n
    for b in range(B):
        xb = x[b]
        for m in range(k):
            c = idx[b, m]
            i = int((c + 0.5) * inv_n)
            j = c - i * n
            u = xb[c]
            lap = 0.0
            if i > 0:
                lap += xb[c - n] - u
            if i < n - 1:
                lap += xb[c + n] - u
            if j > 0:
                lap += xb[c - 1] - u
            if j < n - 1:
                lap += xb[c + 1] - u
            out[b, m] = u * (1.0 - u * u) * inv_eps2 + lap * inv_h2
    return out


@jit()
def _block_mean(xb, bi, bj, n, c):  # pragma: no cover - compiled
    """Mean of the ``c × c`` fine cells of coarse cell ``(bi, bj)`` (row-major, ``n`` per side)."""
    s = 0.0
    for a in range(c):
        row = (bi * c + a) * n + bj * c
        for d in range(c):
            s += xb[row + d]
    return s / (c * c)


@jit()
def coarse_rhs_at(x, idx, n, c, inv_eps2, inv_H2):  # pragma: no cover - compiled
    """The coarse-grid right-hand side (``coarsen = c``) at chosen fine cells, cost ``O(B k c²)``.

    Args:
        x: ``(B, n²)`` flattened fine fields (float64).
        idx: ``(B, k)`` int64 fine cell indices (unchecked).
        n: fine grid points per side (a multiple of ``c``); c: the coarsening.
        inv_eps2, inv_H2: ``1/ε²`` and ``1/(c h)²``.
    Returns:
        ``(B, k)``: the coarse right-hand side of the block holding each chosen cell.

    With ``c = 1`` this is :func:`allen_cahn_rhs_at` bit for bit, but 4× slower (the divisions by
    a run-time ``c``), so the fine system keeps its own kernel.
    """
    B, k = idx.shape
    m = n // c
    out = np.empty((B, k))
    for b in range(B):
        xb = x[b]
        for q in range(k):
            i = idx[b, q] // n
            bi, bj = i // c, (idx[b, q] - i * n) // c
            u = _block_mean(xb, bi, bj, n, c)
            lap = 0.0
            if bi > 0:
                lap += _block_mean(xb, bi - 1, bj, n, c) - u
            if bi < m - 1:
                lap += _block_mean(xb, bi + 1, bj, n, c) - u
            if bj > 0:
                lap += _block_mean(xb, bi, bj - 1, n, c) - u
            if bj < m - 1:
                lap += _block_mean(xb, bi, bj + 1, n, c) - u
            out[b, q] = u * (1.0 - u * u) * inv_eps2 + lap * inv_H2
    return out


class AllenCahn(MicroSystem):
    """Allen–Cahn on an ``n × n`` grid, ``N = n²`` coordinates, one force per grid point.

    Args:
        n: grid points per side (200 in the paper).
        eps: interface width ``ε``; default ``10 h / (2√2 artanh 0.9)``.
        dt: RK4 step; default ``0.1 h²``. Must lie inside the RK4 stability limit
            ``dt (8/h² + 2/ε²) ≤ 2.785``.
    """

    name = "allen_cahn"

    class Params(BaseModel):
        """Constructor arguments as validated in YAML configs (``system.params``)."""

        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        n: int = Field(200, ge=3, description="grid points per side")
        eps: float | None = Field(None, gt=0.0, description="interface width; default 10h/(2√2 artanh 0.9)")
        dt: float | None = Field(None, gt=0.0, description="RK4 step; default 0.1 h²")

    def __init__(self, n: int = 200, eps: float | None = None, dt: float | None = None):
        super().__init__()
        if int(n) != n or n < 3:
            raise InputError(f"allen_cahn: n must be an integer >= 3 (grid points per side); got {n!r}.")
        n = int(n)
        h = 1.0 / n
        eps = default_eps(n) if eps is None else float(eps)
        if not eps > 0:
            raise InputError(f"allen_cahn: eps must be > 0; got {eps!r}. Leave it unset for 10h/(2√2 artanh 0.9).")
        dt = 0.1 * h * h if dt is None else float(dt)
        dt_max = RK4_REAL_STABILITY / (8.0 / h ** 2 + 2.0 / eps ** 2)
        if not 0 < dt <= dt_max:
            raise InputError(f"allen_cahn: dt = {dt:.3g} is outside the RK4 stability limit (0, {dt_max:.3g}] "
                             f"for n = {n}, eps = {eps:.3g}; use a smaller dt (default 0.1 h² = {0.1 * h * h:.3g}).")
        self.n, self.h, self.eps, self.dt = n, h, eps, dt
        self.n_coords = n * n
        self.grid = (np.arange(n) + 0.5) * h
        self._inv_eps2, self._inv_h2 = 1.0 / eps ** 2, 1.0 / h ** 2

    def _forces(self, x):
        B = x.shape[0]
        return allen_cahn_rhs(x.reshape(B, self.n, self.n), self.eps, self.h).reshape(B, self.n_coords)

    def _partial_forces(self, x, idx):
        return allen_cahn_rhs_at(x, idx, self.n, self._inv_eps2, self._inv_h2)

    def ring(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        """Ring fields ``tanh((r1 − r)/(√2ε)) − tanh((r2 − r)/(√2ε)) − 1``.

        ``r`` is the distance of a cell centre to (0.5, 0.5); the field is ≈ +1 on the
        annulus ``r2 < r < r1`` and ≈ −1 elsewhere, strictly inside (−1, 1).

        Args:
            r1, r2: ``(B,)`` outer and inner radii, ``r2 < r1``.
        Returns:
            ``(B, n²)`` flattened fields.
        """
        r1 = np.asarray(r1, dtype=np.float64).reshape(-1, 1, 1)
        r2 = np.asarray(r2, dtype=np.float64).reshape(-1, 1, 1)
        if r1.shape != r2.shape:
            raise InputError(f"ring: r1 and r2 must have the same length; got {r1.shape[0]} and {r2.shape[0]}.")
        g = self.grid - 0.5
        r = np.sqrt(g[:, None] ** 2 + g[None, :] ** 2)[None]
        s = math.sqrt(2.0) * self.eps
        u = np.tanh((r1 - r) / s) - np.tanh((r2 - r) / s) - 1.0
        return u.reshape(u.shape[0], self.n_coords)

    def sample_initial(self, n, rng):
        """``n`` rings with ``r1 ~ U(0.30, 0.40)``, ``r2 ~ U(0.10, 0.15)``: ``(n, N)``, ``N = self.n²``."""
        r1 = rng.uniform(0.30, 0.40, size=n)
        r2 = rng.uniform(0.10, 0.15, size=n)
        return self.ring(r1, r2)

    def observable(self):
        """The Ginzburg–Landau free energy on this grid (:class:`GinzburgLandau`)."""
        return GinzburgLandau(self.n, self.eps)

    def report_figures(self, figs: Path, traj: np.ndarray, n_snapshots: int = 5) -> str:
        """Images of the phase field for the run report.

        Writes ``figs/allen_cahn_initial.png`` (the initial field of every trajectory)
        and ``figs/allen_cahn_snapshots.png`` (one row per trajectory, ``n_snapshots``
        snapshots evenly spaced from the start to the last saved state that still
        holds some of the ``u > 0`` phase, i.e. up to the collapse of the ring).
        Fields are drawn with x to the right and y up, colour scale [−1, 1].

        Args:
            figs: folder for the PNG files (created if missing); the report lives in
                its parent, so the returned links are ``figs.name/<file>``.
            traj: ``(n_traj, T, N)`` saved states, ``N = self.n²``.
            n_snapshots: columns of the snapshot figure (at most ``T``).
        Returns:
            Markdown with a heading and links to both images.
        """
        from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

        traj = np.asarray(traj)
        if traj.ndim != 3 or traj.shape[-1] != self.n_coords or traj.shape[0] == 0 or traj.shape[1] == 0:
            raise InputError(f"allen_cahn.report_figures: traj must have shape (n_traj, T, {self.n_coords}) with "
                             f"n_traj, T >= 1; got {traj.shape}.")
        if n_snapshots < 1:
            raise InputError(f"allen_cahn.report_figures: n_snapshots must be >= 1; got {n_snapshots}.")
        figs = Path(figs)
        figs.mkdir(parents=True, exist_ok=True)
        b, T = traj.shape[:2]
        fields = traj.reshape(b, T, self.n, self.n)
        extent = (0.0, 1.0, 0.0, 1.0)

        def draw(ax, u, title):  # u: (n, n), axis 0 = x
            im = ax.imshow(u.T, origin="lower", extent=extent, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            return im

        fig = Figure(figsize=(2.3 * b + 0.8, 2.5))
        axes = fig.subplots(1, b, squeeze=False)[0]
        for i in range(b):
            im = draw(axes[i], fields[i, 0], f"test trajectory {i}, t = 0")
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="u")
        fig.savefig(figs / "allen_cahn_initial.png", dpi=100)

        cols = min(n_snapshots, T)
        fig = Figure(figsize=(2.1 * cols + 0.8, 2.2 * b))
        axes = fig.subplots(b, cols, squeeze=False)
        for i in range(b):
            alive = np.flatnonzero((fields[i] > 0).any(axis=(1, 2)))
            last = int(alive[-1]) if len(alive) else T - 1
            picks = np.unique(np.linspace(0, last, cols).round().astype(int))  # fewer if last < cols − 1
            for j in range(cols):
                if j < len(picks):
                    im = draw(axes[i, j], fields[i, picks[j]], f"traj {i}, snapshot {picks[j]}/{T - 1}")
                else:
                    axes[i, j].set_axis_off()
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="u")
        fig.savefig(figs / "allen_cahn_snapshots.png", dpi=100)

        rel = figs.name
        return "\n".join([
            "## Phase field (test trajectories drawn above)", "",
            "Initial fields (u ≈ +1 red on the ring, −1 blue elsewhere):", "",
            f"![initial fields]({rel}/allen_cahn_initial.png)", "",
            "Snapshots from t = 0 to the last saved state with some u > 0 (the ring's collapse); "
            "snapshot k is at time k · dt · save_every:", "",
            f"![snapshots]({rel}/allen_cahn_snapshots.png)", "",
        ])


class CoarseAllenCahn(AllenCahn):
    """A cheap surrogate of Allen–Cahn: its right-hand side on a grid ``coarsen`` times coarser.

    It has the fine grid's coordinates, so it can stand beside :class:`AllenCahn` as
    ``training.surrogate`` (module docstring).

    Args:
        n, eps, dt: as for :class:`AllenCahn` (the fine grid; ``ε`` is kept on the coarse one).
        coarsen: ``c ≥ 2`` dividing ``n``; each ``c × c`` block of cells gets the coarse
            right-hand side of its mean, at spacing ``c h``.
    """

    name = "allen_cahn_coarse"

    class Params(AllenCahn.Params):
        coarsen: int = Field(2, ge=2, description="coarsening c >= 2 dividing n: forces of the c-times coarser grid")

    def __init__(self, n: int = 200, eps: float | None = None, dt: float | None = None, coarsen: int = 2):
        super().__init__(n, eps, dt)
        if int(coarsen) != coarsen or coarsen < 2 or self.n % int(coarsen):
            raise InputError(f"allen_cahn_coarse: coarsen must be an integer >= 2 dividing n = {self.n}; "
                             f"got {coarsen!r}.")
        self.coarsen = int(coarsen)
        self._inv_H2 = 1.0 / (self.h * self.coarsen) ** 2

    def _forces(self, x):
        B, c, m = x.shape[0], self.coarsen, self.n // self.coarsen
        f = allen_cahn_rhs(x.reshape(B, m, c, m, c).mean(axis=(2, 4)), self.eps, self.h * c)
        return np.repeat(np.repeat(f, c, axis=1), c, axis=2).reshape(B, self.n_coords)

    def _partial_forces(self, x, idx):
        return coarse_rhs_at(x, idx, self.n, self.coarsen, self._inv_eps2, self._inv_H2)
