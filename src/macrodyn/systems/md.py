"""Lennard–Jones molecular dynamics as a microscopic system (docs/method.md).

State layout (atom-major): ``x[6a : 6a+3]`` is the position of atom ``a`` and
``x[6a+3 : 6a+6]`` its velocity, so ``N = 6 n``. The right-hand side is

    f(x) = (v, F(r) / m)         (per atom: 3 velocity components, then 3 accelerations)

in LJ units (ε = σ = m = 1, time τ = σ √(m/ε)). Only the acceleration costs a force
call; the cost unit is one atom (``coords_per_unit = 6``).
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from macrodyn.errors import InputError
from macrodyn.systems.base import MicroSystem, validated_params
from macrodyn.observables.temperature import Temperature
from macrodyn.systems.descriptors import PairDescriptors
from macrodyn.systems.lammps_engine import lammps_trajectories
from macrodyn.systems.lj import lj_forces

__all__ = ["LennardJones", "velocity_verlet", "split_state", "join_state", "fire_relax",
           "gaussian_velocities"]


# ------------------------------------------------------------------ state layout
def split_state(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atom-major MD state ``(..., 6 n)`` -> positions and velocities, each ``(..., n, 3)`` (views)."""
    a = x.reshape(*x.shape[:-1], -1, 6)
    return a[..., :3], a[..., 3:]


def join_state(positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Positions and velocities ``(..., n, 3)`` -> atom-major state ``(..., 6 n)``."""
    a = np.concatenate([positions, velocities], axis=-1)
    return a.reshape(*a.shape[:-2], -1)


# ------------------------------------------------------------------- integrators
def velocity_verlet(force_fn: Callable[[np.ndarray], np.ndarray], positions: np.ndarray,
                    velocities: np.ndarray, inv_mass, dt: float, n_steps: int,
                    save_every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Velocity-Verlet NVE integration of one configuration.

    ``v ← v + ½ dt F/m;  r ← r + dt v;  F ← F(r);  v ← v + ½ dt F/m`` (the scheme of
    LAMMPS's ``fix nve``); positions are never wrapped.

    Args:
        force_fn: ``(n, 3) -> (n, 3)`` forces.
        positions, velocities: ``(n, 3)`` initial state.
        inv_mass: ``1/m`` as a scalar or ``(n, 1)``.
        dt: time step; n_steps: number of steps; save_every: save stride.
    Returns:
        ``(positions, velocities)``, each ``(n_steps // save_every + 1, n, 3)``.
    """
    r = np.array(positions, dtype=np.float64)
    v = np.array(velocities, dtype=np.float64)
    n_saved = n_steps // save_every + 1
    out_r = np.empty((n_saved, *r.shape))
    out_v = np.empty((n_saved, *v.shape))
    out_r[0], out_v[0] = r, v
    a = force_fn(r) * inv_mass
    for step in range(1, n_steps + 1):
        v += 0.5 * dt * a
        r += dt * v
        a = force_fn(r) * inv_mass
        v += 0.5 * dt * a
        if step % save_every == 0:
            if not np.isfinite(v).all():
                raise InputError(f"MD blew up at step {step}; reduce dt or relax the initial configuration.")
            out_r[step // save_every], out_v[step // save_every] = r, v
    return out_r, out_v


def fire_relax(force_fn: Callable[[np.ndarray], np.ndarray], positions: np.ndarray, *,
               max_steps: int = 300, fmax: float = 1.0, dt: float = 0.002, dt_max: float = 0.01,
               max_move: float = 0.1) -> np.ndarray:
    """Short energy minimisation with FIRE (Bitzek et al., PRL 97, 170201, 2006), unit masses.

    Each step moves no atom further than ``max_move``, so overlapping random placements
    (forces ~1e20) are pushed apart safely. Stops when ``max_i |F_i| < fmax``.

    Args:
        force_fn: ``(n, 3) -> (n, 3)`` forces; positions: ``(n, 3)`` start.
    Returns:
        Relaxed positions ``(n, 3)``.
    """
    r = np.array(positions, dtype=np.float64)
    v = np.zeros_like(r)
    alpha, n_pos = 0.1, 0
    for _ in range(max_steps):
        f = force_fn(r)
        fnorm = np.linalg.norm(f, axis=1)
        if fnorm.max() < fmax:
            break
        p = float(np.sum(f * v))
        if p > 0:
            vn, fn = np.linalg.norm(v), np.linalg.norm(f)
            v = (1 - alpha) * v + alpha * vn * f / fn
            n_pos += 1
            if n_pos > 5:
                dt, alpha = min(dt * 1.1, dt_max), alpha * 0.99
        else:
            v[:] = 0.0
            dt, alpha, n_pos = dt * 0.5, 0.1, 0
        # cap the velocity so a single overlap cannot launch atoms
        v += dt * np.minimum(1.0, max_move / (dt * np.maximum(fnorm, 1e-300)))[:, None] * f
        step = dt * v
        move = np.linalg.norm(step, axis=1)
        scale = np.minimum(1.0, max_move / np.maximum(move, 1e-300))[:, None]
        v *= scale
        r += step * scale
    return r


def gaussian_velocities(n_atoms: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian velocities ``(n, 3)`` with zero total momentum, rescaled so that
    ``Σ|v|² / (3 (n − 1)) = temperature`` exactly (unit masses, k_B = 1; as LAMMPS's
    ``velocity create ... dist gaussian mom yes``)."""
    v = rng.normal(0.0, math.sqrt(temperature), size=(n_atoms, 3))
    v -= v.mean(axis=0)
    t_now = np.sum(v * v) / (3 * (n_atoms - 1))
    return v * math.sqrt(temperature / t_now)


# ------------------------------------------------------------------------ systems
class MDSystem(MicroSystem):
    """Shared plumbing of molecular systems: state ``x = (r, v)`` atom-major, ``f = (v, F/m)``.

    Subclasses implement ``atom_forces(positions (n, 3), atoms=None) -> (m, 3)`` (forces
    on ``atoms`` only when given) and set ``n_atoms`` and ``_inv_mass`` ``(n, 1)``.
    The cost unit is one atom (``coords_per_unit = 6``).
    """

    coords_per_unit = 6
    force_calls_per_step = 1  # velocity Verlet reuses the step's end forces at the next step
    n_atoms: int
    _inv_mass: np.ndarray

    def atom_forces(self, positions: np.ndarray, atoms: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def _forces(self, x):
        out = np.empty_like(x)
        pos, vel = split_state(x)
        o_pos, o_vel = split_state(out)
        for b in range(x.shape[0]):
            o_pos[b] = vel[b]
            o_vel[b] = self.atom_forces(pos[b]) * self._inv_mass
        return out

    def _partial_forces(self, x, idx):
        pos, vel = split_state(x)
        atom, comp = idx // 6, idx % 6
        out = np.empty(idx.shape)
        for b in range(x.shape[0]):
            is_acc = comp[b] >= 3
            out[b, ~is_acc] = vel[b, atom[b, ~is_acc], comp[b, ~is_acc]]
            if is_acc.any():
                chosen, where = np.unique(atom[b, is_acc], return_inverse=True)
                f = self.atom_forces(pos[b], chosen) * self._inv_mass[chosen]  # chosen atoms only
                out[b, is_acc] = f[where, comp[b, is_acc] - 3]
        return out

    def _verlet(self, x: np.ndarray, n_steps: int, save_every: int, progress: bool) -> np.ndarray:
        """Velocity-Verlet NVE on :meth:`atom_forces`: ``(B, n_saved, N)``, counted."""
        if n_steps % save_every:
            raise InputError(f"n_steps ({n_steps}) must be a multiple of save_every ({save_every}).")
        pos, vel = split_state(x)
        n_saved = n_steps // save_every + 1
        r = np.empty((x.shape[0], n_saved, self.n_atoms, 3))
        v = np.empty_like(r)
        for b in tqdm(range(x.shape[0]), desc="verlet NVE", disable=not progress, leave=False):
            r[b], v[b] = velocity_verlet(self.atom_forces, pos[b], vel[b], self._inv_mass, self.dt,
                                         n_steps, save_every)
        self.counter.simulation += self.force_calls_per_step * n_steps * x.shape[0] * self.n_atoms
        return join_state(r, v)


class LennardJones(MDSystem):
    """``n`` Lennard–Jones atoms in a periodic cubic box, NVE, LJ units (``N = 6 n``).

    Give ``n_atoms`` (the box follows from ``density``) or ``box`` (then
    ``n_atoms = round(density · box³)``), not both; neither means 800 atoms (box 10).

    Args:
        n_atoms: number of atoms.
        box: cubic box side in σ.
        density: number density in σ⁻³ (0.8).
        cutoff: LJ cutoff in σ (2.5), plain truncation.
        dt: velocity-Verlet step in τ (0.001).
        t0_range: initial temperatures are drawn from ``U(t0_range)`` ((0.5, 1.5)).
        engine: ``"lammps"`` (LAMMPS's ``fix nve`` through its Python module) or
            ``"verlet"`` (our own velocity Verlet on :func:`lj_forces`).
        relax_steps: FIRE steps of the short minimisation after random placement.
        placement_seed: ``None`` (default): every run gets its own random placement.
            An integer: every run starts from the *same* placement (drawn with this
            seed, then minimised) and only the velocities differ, as when a LAMMPS
            script fixes the seed of ``create_atoms random``. The reference LJ data
            appear to be made this way; then positions carry a clock (how far atoms have
            moved from the shared start), which makes the closure much easier to learn.
        velocity_seed: ``None`` (default): fresh Gaussian velocities per run. An integer:
            every run gets the *same* velocity pattern (drawn with this seed at T = 1,
            zero momentum) scaled to its ``T0``, as when a LAMMPS script fixes the seed
            of ``velocity all create``. With ``placement_seed`` too, runs differ only in
            ``T0``; with fresh velocities T(t)/T0 carries run-to-run thermal noise of
            about 1 % that no function of ``T0`` predicts (README, LJ-800).
    """

    name = "lennard_jones"

    class Params(BaseModel):
        """Constructor arguments as validated in YAML configs (``system.params``)."""

        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        n_atoms: int | None = Field(None, ge=2, description="number of atoms (default 800 unless box is given)")
        box: float | None = Field(None, gt=0.0, description="cubic box side in σ (alternative to n_atoms)")
        density: float = Field(0.8, gt=0.0, description="number density in σ⁻³")
        cutoff: float = Field(2.5, gt=0.0, description="LJ cutoff in σ, no shift")
        dt: float = Field(0.001, gt=0.0, description="velocity-Verlet step in τ")
        t0_range: tuple[float, float] = Field((0.5, 1.5), description="initial temperature range")
        engine: Literal["lammps", "verlet"] = Field("lammps", description="trajectory engine")
        relax_steps: int = Field(200, ge=0, description="FIRE minimisation steps after random placement")
        placement_seed: int | None = Field(None, ge=0, description="one shared initial placement for all runs "
                                                                     "(None: a fresh placement per run)")
        velocity_seed: int | None = Field(None, ge=0, description="one shared velocity pattern, scaled to each "
                                                                    "run's T0 (None: fresh velocities per run)")

        @model_validator(mode="after")
        def _check(self):
            if self.n_atoms is not None and self.box is not None:
                raise ValueError("give n_atoms or box, not both (density fixes the other)")
            lo, hi = self.t0_range
            if not 0 < lo <= hi:
                raise ValueError(f"t0_range must satisfy 0 < low <= high; got {self.t0_range}")
            return self

    def __init__(self, **params):
        """Keyword arguments as in :class:`LennardJones.Params` (the one place defaults and bounds live)."""
        super().__init__()
        p = validated_params(self, params)
        n_atoms, box, density, velocity_seed = p.n_atoms, p.box, p.density, p.velocity_seed
        cutoff, dt, t0_range, engine, relax_steps, placement_seed = (p.cutoff, p.dt, p.t0_range, p.engine,
                                                                     p.relax_steps, p.placement_seed)
        if box is not None:
            n_atoms = int(round(density * box**3))
        elif n_atoms is None:
            n_atoms = 800
        self.n_atoms = int(n_atoms)
        self.box = float(box) if box is not None else (n_atoms / density) ** (1.0 / 3.0)
        self.density = self.n_atoms / self.box**3
        self.cutoff, self.dt = float(cutoff), float(dt)
        self.t0_range = (float(t0_range[0]), float(t0_range[1]))
        self.engine, self.relax_steps = engine, int(relax_steps)
        self.placement_seed = None if placement_seed is None else int(placement_seed)
        self._shared_start = None  # the minimised shared placement, computed once
        self._shared_velocities = None if velocity_seed is None else gaussian_velocities(
            self.n_atoms, 1.0, np.random.default_rng(int(velocity_seed)))
        self.n_coords = 6 * self.n_atoms
        self._inv_mass = np.ones((self.n_atoms, 1))  # unit mass (LJ units)

    # ----------------------------------------------------------------- forces
    def atom_forces(self, positions: np.ndarray, atoms: np.ndarray | None = None) -> np.ndarray:
        """LJ forces on ``atoms`` (all when None), ``(m, 3)``; see :func:`lj_forces`."""
        return lj_forces(positions, self.box, atoms, self.cutoff)

    # ----------------------------------------------------------- initial data
    def sample_initial(self, n, rng):
        """Random placement, FIRE minimisation (``relax_steps``), Gaussian velocities at
        ``T0 ~ U(t0_range)`` with zero total momentum (shared ones with ``velocity_seed``). Returns ``(n, 6 n_atoms)``."""
        out = np.empty((n, self.n_coords))
        for k in range(n):
            if self.placement_seed is None:
                r = self._placement(rng)
            else:
                if self._shared_start is None:
                    self._shared_start = self._placement(np.random.default_rng(self.placement_seed))
                r = self._shared_start.copy()
            t0 = rng.uniform(*self.t0_range)
            v = (gaussian_velocities(self.n_atoms, t0, rng) if self._shared_velocities is None
                 else self._shared_velocities * math.sqrt(t0))
            out[k] = join_state(r, v)
        return out

    def _placement(self, rng):
        r = rng.uniform(0.0, self.box, size=(self.n_atoms, 3))
        r = fire_relax(self.atom_forces, r, max_steps=self.relax_steps)
        return r - self.box * np.floor(r / self.box)

    def observable(self):
        return Temperature(self.n_atoms)

    def descriptors(self, n_basis: int = 8, energy: bool = False):
        return PairDescriptors(self.n_atoms, self.box, self.cutoff, n_basis, energy=energy)

    # ----------------------------------------------------------- trajectories
    def trajectories(self, x0, n_steps, save_every=1, *, progress=True):
        """NVE trajectories with the chosen engine (velocity Verlet at ``self.dt``).

        Args:
            x0: ``(B, 6 n)`` initial states; n_steps: steps; save_every: save stride.
        Returns:
            ``(B, n_steps // save_every + 1, 6 n)`` saved states, positions unwrapped.
            Counts ``B · n_steps · n`` simulation force evaluations.
        """
        x = self._check_x(x0)
        if self.engine != "lammps":
            out = self._verlet(x, n_steps, save_every, progress)
        else:
            if n_steps % save_every:
                raise InputError(f"n_steps ({n_steps}) must be a multiple of save_every ({save_every}).")
            pos, vel = split_state(x)
            r, v = lammps_trajectories(pos, vel, self.box, n_steps, save_every, dt=self.dt,
                                       cutoff=self.cutoff, progress=progress)
            out = join_state(r, v)
            self.counter.simulation += self.force_calls_per_step * n_steps * x.shape[0] * self.n_atoms
        bad = ~np.isfinite(out).all(axis=(1, 2))
        if bad.any():
            raise InputError(f"{self.name}: trajectory {int(np.argmax(bad))} blew up; reduce dt or check x0.")
        return out
