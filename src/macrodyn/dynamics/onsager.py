"""OnsagerNet (Yu, Tian, E & Li 2021): a macroscopic vector field with built-in stability.

    dz/dt = −(M(z) + W(z)) ∇V(z) − α ∇V(z) + F(z)

``M = L Lᵀ`` (``L`` lower triangular) is symmetric positive semi-definite (dissipation),
``W = U − Uᵀ`` is antisymmetric (conservative exchange); both come from one MLP of
``z``. ``V(z) = β|z|² + ½|h(z) + Γz|²`` is bounded below, so without forcing
``dV/dt = −∇Vᵀ(M + α)∇V ≤ 0``.
"""
from __future__ import annotations

import torch
from torch import nn

from macrodyn.nn import mlp


class OnsagerNet(nn.Module):
    """Args:
        dim: ``d``.
        hidden: widths of the MLP producing ``L`` and ``U`` (``d²`` outputs).
        potential_hidden: widths of ``h`` (its output width is the last entry).
        alpha, beta: the constants α, β above.
        forcing: add a learned ``F(z)`` (an MLP of the same widths).
        activation: hidden activation.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), potential_hidden: tuple[int, ...] = (32, 32, 32),
                 alpha: float = 0.01, beta: float = 0.1, forcing: bool = False, activation: str = "tanh"):
        super().__init__()
        self.dim, self.alpha, self.beta = dim, alpha, beta
        n_low = dim * (dim + 1) // 2
        self.matrices = mlp(dim, hidden, dim * dim, activation)
        self.h = mlp(dim, potential_hidden[:-1], potential_hidden[-1], activation)
        self.gamma = nn.Linear(dim, potential_hidden[-1], bias=False)
        self.forcing = mlp(dim, hidden, dim, activation) if forcing else None
        # 0/1 maps from the MLP output to the entries of L and U: one matmul each
        # instead of scatter ops (the step cost is op overhead, not flops, at small d)
        place_l = torch.zeros(n_low, dim * dim)
        place_l[torch.arange(n_low), (lambda t: t[0] * dim + t[1])(torch.tril_indices(dim, dim))] = 1
        n_up = dim * (dim - 1) // 2
        place_u = torch.zeros(n_up, dim * dim)
        place_u[torch.arange(n_up), (lambda t: t[0] * dim + t[1])(torch.triu_indices(dim, dim, 1))] = 1
        self.register_buffer("place_l", place_l, persistent=False)
        self.register_buffer("place_u", place_u, persistent=False)
        self._n_low = n_low

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """``V(z)``, ``(B, d) -> (B,)``."""
        r = self.h(z) + self.gamma(z)
        return self.beta * (z * z).sum(-1) + 0.5 * (r * r).sum(-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, d) -> (B, d)``."""
        build_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            zz = z if z.requires_grad else z.detach().requires_grad_(True)
            grad_v, = torch.autograd.grad(self.potential(zz).sum(), zz, create_graph=build_graph)
        B, d = z.shape
        out = self.matrices(z)
        L = (out[:, : self._n_low] @ self.place_l).view(B, d, d)
        U = (out[:, self._n_low:] @ self.place_u).view(B, d, d)
        M_plus_W = L @ L.transpose(1, 2) + U - U.transpose(1, 2)
        dz = -(M_plus_W @ grad_v.unsqueeze(-1)).squeeze(-1) - self.alpha * grad_v
        if self.forcing is not None:
            dz = dz + self.forcing(z)
        return dz
