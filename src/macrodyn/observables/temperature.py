"""Kinetic temperature of an MD state (docs/method.md, Lennard–Jones)."""
from __future__ import annotations

import torch

from macrodyn.errors import InputError
from macrodyn.observables.base import Observable


class Temperature(Observable):
    """``T = Σ_a m_a |v_a|² / (3 (n − 1) k_B)`` from an atom-major MD state.

    The state is ``x = (r_0, v_0, r_1, v_1, …)`` with 3 position then 3 velocity
    components per atom (``N = 6 n``); ``3 (n − 1)`` degrees of freedom, as the total
    momentum is zero (LAMMPS's ``compute temp``). In LJ units (``m = k_B = 1``, the
    default) this is ``Σ|v|² / (3 (n − 1))``. The Jacobian is
    ``∂T/∂v_a = 2 m_a v_a / (3 (n − 1) k_B)`` and zero on positions.

    Args:
        n_atoms: number of atoms ``n``.
        masses: ``(n,)`` masses (default all 1).
        k_B: Boltzmann constant in the state's units (1 in LJ units; ``ase.units.kB``
            for ASE states in eV, giving kelvin).

    Example:
        >>> x = torch.zeros(1, 12, dtype=torch.float64); x[0, 3] = 1.0  # atom 0: v_x = 1
        >>> float(Temperature(2)(x))
        0.3333333333333333
    """

    def __init__(self, n_atoms: int, masses=None, k_B: float = 1.0):
        super().__init__()
        if n_atoms < 2:
            raise ValueError(f"Temperature needs at least 2 atoms; got {n_atoms}.")
        self.n_atoms, self.dim, self.names = int(n_atoms), 1, ("temperature",)
        m = torch.ones(n_atoms, dtype=torch.float64) if masses is None else torch.as_tensor(masses, dtype=torch.float64)
        if m.shape != (n_atoms,):
            raise ValueError(f"masses must have shape ({n_atoms},); got {tuple(m.shape)}.")
        self.register_buffer("weights", m / (3.0 * (n_atoms - 1) * k_B))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or x.shape[-1] != 6 * self.n_atoms:
            raise InputError(f"Temperature({self.n_atoms} atoms): configurations must have {6 * self.n_atoms} "
                             f"coordinates (3 positions + 3 velocities per atom); got shape {tuple(x.shape)}.")
        v = x.reshape(*x.shape[:-1], self.n_atoms, 6)[..., 3:]
        w = self.weights.to(dtype=x.dtype, device=x.device)
        return ((v * v).sum(dim=-1) * w).sum(dim=-1, keepdim=True)
