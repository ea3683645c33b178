"""Ginzburg–Landau free energy of a 2-D phase field (the Allen–Cahn observable).

On an ``n × n`` cell-centred grid of [0, 1]² with spacing ``h = 1/n`` and field
``u_{ij}`` (axis 0 = x), the discrete free energy is

    E(u) = h² Σ_{ij} (u_{ij}² − 1)² / (4 ε²)
         + h² · ½ Σ_{interior faces} ((u_a − u_b) / h)²,

where the second sum runs over the ``2 n (n − 1)`` faces between neighbouring cells
(forward differences ``u_{i+1,j} − u_{ij}`` and ``u_{i,j+1} − u_{ij}``); boundary faces
contribute nothing, which is the mirror (ghost = edge value) Neumann condition.

Why forward differences over interior faces: differentiating,

    ∂E/∂u_{ij} = h² [(u_{ij}³ − u_{ij}) / ε² − (Δ_h u)_{ij}] = −h² f_{ij}(u),

with ``Δ_h`` the 5-point Laplacian ``/h²`` with mirror boundaries and ``f`` the
Allen–Cahn right-hand side of :class:`macrodyn.systems.AllenCahn`. So ``E`` is the
exact Lyapunov function of the *discrete* dynamics: ``dE/dt = ⟨∇E, f⟩ = −h² Σ f² ≤ 0``.
(Central differences over interior cells, as in the authors' scripts, miss this by
about 0.7 % at 200 × 200; see docs/method.md.)
"""
from __future__ import annotations

import torch

from macrodyn.errors import InputError
from macrodyn.observables.base import Observable


class GinzburgLandau(Observable):
    """Discrete Ginzburg–Landau free energy ``E(u)``, ``dim = 1``.

    Args:
        n: grid points per side; configurations have ``N = n²`` coordinates, the
            field ``(n, n)`` flattened row-major (axis 0 = x).
        eps: interface width ``ε`` (> 0).

    ``forward(x)``: ``(..., n²) -> (..., 1)``, in the dtype of ``x``.

    Example:
        >>> obs = GinzburgLandau(n=8, eps=0.1)
        >>> obs(torch.ones(3, 64)).squeeze(-1)  # u ≡ 1 is a minimiser with E = 0
        tensor([0., 0., 0.])
    """

    def __init__(self, n: int, eps: float):
        super().__init__()
        if int(n) != n or n < 2:
            raise InputError(f"GinzburgLandau: n must be an integer >= 2 (grid points per side); got {n!r}.")
        if not eps > 0:
            raise InputError(f"GinzburgLandau: eps must be > 0 (interface width); got {eps!r}.")
        self.n, self.eps, self.h = int(n), float(eps), 1.0 / int(n)
        self.dim = 1
        self.names = ("free_energy",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.n
        if x.ndim < 1 or x.shape[-1] != n * n:
            raise InputError(f"GinzburgLandau(n={n}): configurations must have {n * n} coordinates "
                             f"(an n × n field); got shape {tuple(x.shape)}.")
        u = x.reshape(*x.shape[:-1], n, n)
        bulk = ((u * u - 1.0) ** 2).sum(dim=(-2, -1)) / (4.0 * self.eps ** 2)
        # h² · ½ Σ (Δu/h)² = ½ Σ (Δu)²: the h factors cancel for the gradient term.
        gx = u[..., 1:, :] - u[..., :-1, :]
        gy = u[..., :, 1:] - u[..., :, :-1]
        grad = 0.5 * ((gx * gx).sum(dim=(-2, -1)) + (gy * gy).sum(dim=(-2, -1)))
        return (self.h ** 2 * bulk + grad).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"n={self.n}, eps={self.eps:.6g}"
