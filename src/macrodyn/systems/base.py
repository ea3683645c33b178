"""The microscopic-system interface every engine implements.

A system is a small class in the spirit of an ASE ``Calculator``: it states what it
can compute (``provides``) and implements only the private kernels
``_forces``/``_partial_forces``; the public methods here do the shape and finiteness
checks and count every force evaluation.

Cost unit (docs/method.md): one *force evaluation* is the force on one coordinate
(PDE, ``coords_per_unit = 1``) or on one atom (MD, ``coords_per_unit = 6``: positions
and velocities of the atom are returned together, only the velocity derivative
costs a force call).
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError
from tqdm.auto import tqdm

from macrodyn.data.validate import check_finite, units_in
from macrodyn.errors import InputError

#: bytes of float64 configurations a float32 batch is upcast in at once by ``partial_forces``
PARTIAL_BLOCK_BYTES = 8 * 2**20


@dataclass
class ForceCounter:
    """Running totals of force evaluations, in cost units (coordinates or atoms).

    ``labels`` counts forces requested through :meth:`MicroSystem.forces` and
    :meth:`MicroSystem.partial_forces` (the training budget); ``simulation`` counts
    the right-hand-side evaluations spent generating trajectories. ``label_seconds`` is
    the wall time spent inside those label calls (checks included), so studies can
    compare the cost of labels apart from data movement.
    """

    labels: int = 0
    simulation: int = 0
    label_seconds: float = 0.0

    def reset(self) -> None:
        self.labels = 0
        self.simulation = 0
        self.label_seconds = 0.0


class MicroSystem(ABC):
    """A microscopic system ``dx/dt = f(x)`` with ``x`` in ``R^N``.

    Subclasses set ``name``, ``n_coords`` (N), ``dt`` (integration step) and
    ``coords_per_unit``, and implement :meth:`_forces`, :meth:`_partial_forces` and
    :meth:`sample_initial`. Arrays are NumPy float64; batches are ``(B, N)``.
    """

    name: str = "system"
    n_coords: int
    dt: float
    coords_per_unit: int = 1
    provides: tuple[str, ...] = ("forces", "partial_forces")
    #: right-hand-side evaluations per integration step of :meth:`trajectories` (RK4: 4)
    force_calls_per_step: int = 4

    def __init__(self) -> None:
        self.counter = ForceCounter()

    def __getattr__(self, attr: str):
        # reached only when normal lookup fails: name what a subclass forgot, not just the attribute
        cls = type(self).__name__
        if attr == "counter":
            raise AttributeError(f"{cls} has no force counter: call super().__init__() in {cls}.__init__.")
        if attr in ("n_coords", "dt"):
            what = "the number of coordinates N" if attr == "n_coords" else "the integration time step"
            raise AttributeError(f"{cls} sets no {attr}: assign self.{attr} ({what}) in {cls}.__init__.")
        for klass in type(self).__mro__:  # a property failed inside (e.g. n_units without n_coords): say why
            if isinstance(klass.__dict__.get(attr), property):
                return klass.__dict__[attr].__get__(self)
        raise AttributeError(f"{cls!r} object has no attribute {attr!r}")

    # ------------------------------------------------------------------ sizes
    @property
    def n_units(self) -> int:
        """Number of cost units (coordinates for a PDE, atoms for MD)."""
        return self.n_coords // self.coords_per_unit

    def unit_coords(self, units: np.ndarray) -> np.ndarray:
        """Coordinate indices of cost units.

        Args:
            units: ``(B, m)`` integer unit indices.
        Returns:
            ``(B, m * coords_per_unit)`` coordinate indices, unit-major (the
            coordinates of one unit are contiguous).
        """
        units = np.asarray(units, dtype=np.int64)
        c = self.coords_per_unit
        if c == 1:
            return units
        return (units[..., :, None] * c + np.arange(c)).reshape(*units.shape[:-1], -1)

    # ----------------------------------------------------------------- forces
    def forces(self, x: np.ndarray) -> np.ndarray:
        """Full right-hand side ``f(x)``.

        Args:
            x: ``(B, N)`` configurations.
        Returns:
            ``(B, N)`` time derivatives. Counts ``B * n_units`` evaluations.
        """
        t0 = time.perf_counter()
        x = self._check_x(x)
        f = self._forces(x)
        self.counter.labels += x.shape[0] * self.n_units
        check_finite("forces", f, "The configuration may have blown up; check dt and the initial data.")
        self.counter.label_seconds += time.perf_counter() - t0
        return f

    def partial_forces(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Right-hand side at chosen coordinates only, at a cost ``∝ idx.shape[1]``.

        Args:
            x: ``(B, N)`` configurations.
            idx: ``(B, k)`` coordinate indices in ``[0, N)``; for MD every chosen atom
                must contribute all of its coordinates (see :meth:`unit_coords`).
        Returns:
            ``(B, k)`` with ``out[b, j] = f(x[b])[idx[b, j]]``. Counts the number of
            distinct units touched per row.
        """
        # No O(N) finiteness scan of x here: it would cost more than the partial
        # kernel. A non-finite value the stencil reads shows up in the checked output.
        t0 = time.perf_counter()
        x = self._check_x(x, finite=False, upcast=False)
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[0] != x.shape[0]:
            raise InputError(f"idx must have shape (B, k) = ({x.shape[0]}, k); got {idx.shape}.")
        if not np.issubdtype(idx.dtype, np.integer):
            raise InputError(f"idx must be integer coordinate indices; got dtype {idx.dtype}.")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_coords):
            raise InputError(f"idx out of range [0, {self.n_coords}): min {idx.min()}, max {idx.max()}.")
        f = self._partial_forces_float64(x, idx.astype(np.int64))
        self.counter.labels += units_in(idx, self.coords_per_unit)
        check_finite("partial forces", f, "The configuration (or a neighbour it reads) is NaN/Inf or has blown "
                     "up; check the data, dt and the initial conditions.")
        self.counter.label_seconds += time.perf_counter() - t0
        return f

    def _partial_forces_float64(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        # Stored float32 configurations are upcast a few rows at a time: converting a whole
        # batch (0.6 GB for 250 configurations of 51 200 atoms) cost more than the forces.
        if x.dtype == np.float64:
            return self._partial_forces(x, idx)
        rows = max(1, PARTIAL_BLOCK_BYTES // (8 * max(1, x.shape[1])))
        out = np.empty(idx.shape)
        for i in range(0, x.shape[0], rows):
            out[i:i + rows] = self._partial_forces(x[i:i + rows].astype(np.float64), idx[i:i + rows])
        return out

    def _check_x(self, x: np.ndarray, finite: bool = True, upcast: bool = True) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":  # strings, objects, complex: no silent conversion
            raise InputError(f"{self.name}: configurations must be real numbers; got dtype {x.dtype}.")
        if upcast or x.dtype.kind != "f":
            x = x.astype(np.float64, copy=False)
        if x.ndim != 2 or x.shape[1] != self.n_coords:
            raise InputError(f"{self.name}: configurations must have shape (B, {self.n_coords}); got {x.shape}.")
        if finite:
            check_finite("configurations", x)
        return x

    @abstractmethod
    def _forces(self, x: np.ndarray) -> np.ndarray:
        """``(B, N) -> (B, N)``, no checks, no counting."""

    @abstractmethod
    def _partial_forces(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``(B, N), (B, k) -> (B, k)``; must only evaluate the chosen coordinates."""

    # ----------------------------------------------------------- trajectories
    @abstractmethod
    def sample_initial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` initial configurations ``(n, N)`` from the system's initial-data family."""

    def observable(self):
        """The given macroscopic observable ``φ*`` (a :class:`macrodyn.observables.Observable`)."""
        raise NotImplementedError(f"{self.name} defines no default observable; pass one explicitly.")

    def descriptors(self, n_basis: int = 8, energy: bool = False):
        """Invariant descriptors ``(B, N) -> (B, M)`` for ``closure.input: descriptors``: a module with
        ``dim`` and ``values_and_jacobian(x) -> ((B, M), (B, M, N))`` (see :mod:`macrodyn.systems.descriptors`);
        ``energy`` (``closure.descriptor_energy``) adds the system's potential energy and its rates."""
        raise InputError(f"system {self.name!r} defines no invariant descriptors, so closure.input: descriptors "
                         "cannot be used with it. Set closure.input: coordinates, or give the system a "
                         "descriptors() method (docs: bringing your own system).")

    def trajectories(self, x0: np.ndarray, n_steps: int, save_every: int = 1, *,
                     progress: bool = True) -> np.ndarray:
        """Integrate ``dx/dt = f(x)`` with classical RK4 at step ``self.dt``.

        Args:
            x0: ``(B, N)`` initial configurations.
            n_steps: number of RK4 steps.
            save_every: keep every ``save_every``-th state (the first is kept).
        Returns:
            ``(B, n_steps // save_every + 1, N)`` saved states. Raises
            :class:`InputError` naming the step and trajectory if the state blows up.
        """
        x = self._check_x(x0).copy()
        if n_steps % save_every:
            raise InputError(f"n_steps ({n_steps}) must be a multiple of save_every ({save_every}).")
        out = np.empty((x.shape[0], n_steps // save_every + 1, self.n_coords))
        out[:, 0] = x
        h = self.dt
        for step in tqdm(range(1, n_steps + 1), desc=f"simulate {self.name}", disable=not progress,
                         leave=False, mininterval=0.5):
            k1 = self._forces(x)
            k2 = self._forces(x + 0.5 * h * k1)
            k3 = self._forces(x + 0.5 * h * k2)
            k4 = self._forces(x + h * k3)
            x = x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
            if step % save_every == 0:
                out[:, step // save_every] = x
                bad = ~np.isfinite(x).all(axis=1)
                if bad.any():
                    raise InputError(f"{self.name}: simulation blew up at step {step} in trajectory "
                                     f"{int(np.argmax(bad))}; reduce dt or check the initial data.")
        self.counter.simulation += self.force_calls_per_step * n_steps * x.shape[0] * self.n_units
        return out


def validated_params(system: MicroSystem, params: dict):
    """``params`` validated by the system's ``Params`` model; errors name each bad field."""
    try:
        return type(system).Params.model_validate(params)
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'params'}: {err['msg']}" for err in e.errors())
        raise InputError(f"{type(system).__name__}: {bad}.") from None
