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
        # L (lower, with diagonal) and U (strictly upper) tile one d×d matrix: the first
        # n_low MLP outputs fill L row by row, the rest fill U. One gather and two masks
        # place them (the step cost is op overhead, not flops, at small d).
        low, up = torch.tril_indices(dim, dim), torch.triu_indices(dim, dim, 1)
        source = torch.empty(dim * dim, dtype=torch.long)
        source[low[0] * dim + low[1]] = torch.arange(n_low)
        source[up[0] * dim + up[1]] = n_low + torch.arange(dim * (dim - 1) // 2)
        self.register_buffer("source", source, persistent=False)
        self.register_buffer("mask_l", torch.ones(dim, dim).tril(), persistent=False)

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """``V(z)``, ``(B, d) -> (B,)``."""
        r = self.h(z) + self.gamma(z)
        return self.beta * (z * z).sum(-1) + 0.5 * (r * r).sum(-1)

    def operators(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``L`` (lower triangular) and ``U`` (strictly upper), each ``(B, d, d)``."""
        B, d = z.shape
        A = self.matrices(z)[:, self.source].view(B, d, d)
        return A * self.mask_l, A * (1 - self.mask_l)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, d) -> (B, d)``."""
        build_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            zz = z if z.requires_grad else z.detach().requires_grad_(True)
            g, = torch.autograd.grad(self.potential(zz).sum(), zz, create_graph=build_graph)
        L, U = self.operators(z)
        # (L Lᵀ + U − Uᵀ) g as matrix-vector products: no d×d×d product per sample, and
        # broadcast-multiply-sum, whose backward is ~2x cheaper than bmm's at this size
        lt_g = (L * g.unsqueeze(-1)).sum(1)
        mw_g = (L * lt_g.unsqueeze(1)).sum(-1) + (U * g.unsqueeze(1)).sum(-1) - (U * g.unsqueeze(-1)).sum(1)
        dz = -mw_g - self.alpha * g
        if self.forcing is not None:
            dz = dz + self.forcing(z)
        return dz
