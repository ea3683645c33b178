"""Any ASE calculator as a microscopic MD system, with partial forces by carve-out.

State layout as :mod:`macrodyn.systems.md`: atom-major ``x[6a:6a+3]`` positions (Å) and
``x[6a+3:6a+6]`` velocities of atom ``a`` in ASE units (Å per ASE time unit
``Å·√(amu/eV)`` ≈ 10.18 fs, as ``Atoms.get_velocities``); ``f(x) = (v, F/m)`` with
forces in eV/Å and masses in amu, so ``dt`` is in ASE time units (``1 * ase.units.fs``).

Partial forces. The force on atom ``i`` depends only on atoms within some range ``R``
of it (``R = r_c`` for a pair potential, ``2 r_c`` for an embedded-atom / EMT-type
many-body potential, where the energy of every neighbour within ``r_c`` of ``i`` depends
on *its* neighbours). For chosen atoms ``I`` we build a non-periodic cluster holding
``I`` and every periodic image ``r_j + S·cell`` (``S`` integer) within ``R`` of some atom
of ``I``, run the calculator on that cluster, and keep the forces of ``I``. This equals
the full periodic calculation whenever ``interaction_range ≥ R``, and costs the
calculator ``O(|I| · ρ R³)`` atoms instead of ``N``. Choosing the range is the user's
responsibility; too small a range gives silently wrong forces near the carve-out edge.
Calculators whose parameters depend on the elements present (ASE's EMT picks its cutoff
from them) need every element of the system inside each carve-out, or the same cutoff.
"""
from __future__ import annotations

import itertools

import numpy as np

from macrodyn.errors import InputError
from macrodyn.observables.temperature import Temperature
from macrodyn.systems.md import MDSystem, join_state

__all__ = ["ASESystem", "carve_out"]


def carve_out(positions: np.ndarray, cell: np.ndarray, pbc, centres: np.ndarray,
              interaction_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Atoms and periodic images within ``interaction_range`` of the centre atoms.

    Args:
        positions: ``(n, 3)`` Cartesian positions (any periodic image).
        cell: ``(3, 3)`` lattice vectors as rows (a complete, invertible cell when any
            axis is periodic).
        pbc: three booleans, periodicity per cell axis.
        centres: ``(m,)`` distinct atom indices.
        interaction_range: radius ``R`` (same length unit as ``positions``).
    Returns:
        ``(atoms, shifts)``: ``(k,)`` atom indices and ``(k, 3)`` integer lattice shifts
        with cluster positions ``positions[atoms] + shifts @ cell``, every image with
        ``|r_j + S·cell − r_i| < R`` for some centre ``i`` exactly once. The first ``m``
        entries are the centres themselves (zero shift), in the given order.
    """
    pos = np.asarray(positions, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.int64)
    pbc = np.asarray(pbc, dtype=bool)
    r2max = float(interaction_range) ** 2
    rows = [np.concatenate([centres[:, None], np.zeros((len(centres), 3), np.int64)], axis=1)]
    if not pbc.any():
        for i in centres:
            d2 = np.sum((pos - pos[i]) ** 2, axis=1)
            j = np.nonzero(d2 < r2max)[0]
            rows.append(np.concatenate([j[:, None], np.zeros((len(j), 3), np.int64)], axis=1))
    else:
        cell = np.asarray(cell, dtype=np.float64)
        inv = np.linalg.inv(cell)
        frac = pos @ inv
        # distance between lattice planes along each axis: V / |b × c| = 1 / |row of inv.T|
        heights = 1.0 / np.linalg.norm(inv.T, axis=1)
        reach = [int(np.ceil(interaction_range / h + 0.5)) if p else 0 for h, p in zip(heights, pbc)]
        shifts = np.array(list(itertools.product(*[range(-k, k + 1) for k in reach])), dtype=np.int64)
        for i in centres:
            df = frac - frac[i]
            base = np.where(pbc, np.rint(df), 0.0)
            df -= base  # minimum image in fractional coordinates on periodic axes
            dc = df @ cell
            for n in shifts:
                d = dc + n @ cell
                j = np.nonzero(np.einsum("ij,ij->i", d, d) < r2max)[0]
                if j.size:
                    s = (n[None, :] - base[j]).astype(np.int64)
                    rows.append(np.concatenate([j[:, None], s], axis=1))
    allrows = np.concatenate(rows, axis=0)
    _, first = np.unique(allrows, axis=0, return_index=True)
    keep = allrows[np.sort(first)]  # centres first (they come first in allrows)
    return keep[:, 0], keep[:, 1:]


class ASESystem(MDSystem):
    """Wrap an ASE ``Calculator`` and an ``Atoms`` template as an MD system (``N = 6 n``).

    Args:
        calculator: any ASE calculator providing ``forces``.
        atoms: template ``ase.Atoms`` (species, masses, cell, pbc; its positions are the
            reference for :meth:`sample_initial`).
        interaction_range: radius in Å beyond which atoms do not affect the force on an
            atom (``r_c`` for pair potentials, ``2 r_c`` for EMT/EAM-type ones).
        dt: velocity-Verlet step in ASE time units (default ``1 fs``).
        temperature_K: temperature of the Maxwell–Boltzmann initial velocities.
        rattle: standard deviation (Å) of Gaussian displacements of the initial positions.

    Example:
        >>> from ase.build import bulk
        >>> from ase.calculators.emt import EMT
        >>> sys_ = ASESystem(EMT(), bulk("Cu", cubic=True) * (3, 3, 3), interaction_range=10.6)
        >>> sys_.n_coords
        648
    """

    name = "ase"

    def __init__(self, calculator, atoms, interaction_range: float, dt: float | None = None,
                 temperature_K: float = 300.0, rattle: float = 0.0):
        super().__init__()
        try:
            from ase import units  # noqa: PLC0415
        except ImportError as e:
            raise InputError(f"ASESystem needs ASE: pip install 'macrodyn[md]' (or pip install ase) ({e})") from None

        if interaction_range is None or not interaction_range > 0:
            raise InputError(f"ASESystem: interaction_range must be a positive distance in Å "
                             f"(r_c for pair potentials, 2 r_c for EMT/EAM); got {interaction_range}.")
        if len(atoms) < 2:
            raise InputError("ASESystem: the atoms template needs at least 2 atoms.")
        self.calc = calculator
        self.template = atoms.copy()
        self.template.set_constraint()
        self.template.calc = None
        self.interaction_range = float(interaction_range)
        self.n_atoms = len(atoms)
        self.n_coords = 6 * self.n_atoms
        self.dt = float(dt) if dt is not None else 1.0 * units.fs
        self.temperature_K, self.rattle = float(temperature_K), float(rattle)
        self.masses = self.template.get_masses().astype(np.float64)
        self._inv_mass = (1.0 / self.masses)[:, None]
        self._pbc = np.asarray(self.template.pbc, dtype=bool)
        periodic = self.template.cell.array[self._pbc]
        if len(periodic) and np.linalg.matrix_rank(periodic, tol=1e-9) < len(periodic):
            raise InputError("ASESystem: every periodic axis needs a non-zero, independent cell vector; "
                             "set atoms.cell (or atoms.pbc = False).")
        self._cell = self.template.cell.complete().array  # fills non-periodic zero vectors

    # ----------------------------------------------------------------- forces
    def atom_forces(self, positions: np.ndarray, atoms: np.ndarray | None = None) -> np.ndarray:
        """Forces (eV/Å) on ``atoms`` (all when ``None``): ``(m, 3)``; carve-out when given."""
        if not np.isfinite(positions).all():  # O(N), as the carve-out search itself
            raise InputError("ASESystem: positions contain NaN/Inf; the configuration may have blown up "
                             "(check dt and the initial data).")
        if atoms is None:
            a = self.template.copy()
            a.positions = positions
            a.calc = self.calc
            return np.array(a.get_forces(apply_constraint=False), dtype=np.float64)
        atoms = np.asarray(atoms, dtype=np.int64)
        js, shifts = carve_out(positions, self._cell, self._pbc, atoms, self.interaction_range)
        cluster = self.template[js]
        cluster.set_constraint()
        cluster.positions = positions[js] + shifts @ self._cell
        cluster.pbc = False
        cluster.cell = np.zeros((3, 3))
        cluster.calc = self.calc
        return np.array(cluster.get_forces(apply_constraint=False)[: len(atoms)], dtype=np.float64)

    # ----------------------------------------------------------- trajectories
    def sample_initial(self, n, rng):
        """Template positions plus ``N(0, rattle²)`` displacements; Maxwell–Boltzmann
        velocities at ``temperature_K`` with zero total momentum. Returns ``(n, 6 n_atoms)``."""
        from ase import units  # noqa: PLC0415

        out = np.empty((n, self.n_coords))
        m = self.masses[:, None]
        for k in range(n):
            r = self.template.positions + self.rattle * rng.standard_normal((self.n_atoms, 3))
            v = rng.standard_normal((self.n_atoms, 3)) * np.sqrt(units.kB * self.temperature_K / m)
            v -= (m * v).sum(axis=0) / m.sum()
            out[k] = join_state(r, v)
        return out

    def trajectories(self, x0, n_steps, save_every=1, *, progress=True):
        """Velocity-Verlet NVE with the calculator; ``(B, n_steps // save_every + 1, N)``."""
        return self._verlet(self._check_x(x0), n_steps, save_every, progress)

    def observable(self):
        from ase import units  # noqa: PLC0415  (ASE is optional: imported when used)

        return Temperature(self.n_atoms, masses=self.masses, k_B=units.kB)
