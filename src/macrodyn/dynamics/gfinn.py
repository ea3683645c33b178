"""GENERIC-type macroscopic model (GFINN; Zhang, Shin & Karniadakis 2022).

    dz/dt = L(z) ∇E(z) + M(z) ∇S(z)

with a learned energy ``E`` and entropy ``S`` (scalar MLPs of ``z``), ``L``
antisymmetric and ``M`` symmetric positive semi-definite. The degeneracy conditions
``L ∇S = 0`` and ``M ∇E = 0`` are built in by projecting onto the orthogonal
complements of ``∇S`` and ``∇E``:

    P_S = I − ∇S ∇Sᵀ / |∇S|²,      P_E = I − ∇E ∇Eᵀ / |∇E|²,
    L = P_S A P_S,  A = U − Uᵀ,      M = P_E B Bᵀ P_E,

where ``U (d×d)`` and ``B (d×K)`` are read from one MLP of ``z``. Then ``L`` is
antisymmetric, ``M`` is symmetric PSD, ``P_S ∇S = 0`` and ``P_E ∇E = 0`` exactly, so

    dE/dt = ∇Eᵀ L ∇E + ∇Eᵀ M ∇S = (P_S∇E)ᵀ A (P_S∇E) + (P_E∇E)ᵀ B Bᵀ (P_E∇S) = 0,
    dS/dt = ∇Sᵀ L ∇E + ∇Sᵀ M ∇S = 0 + |Bᵀ P_E ∇S|² ≥ 0

(energy conserved, entropy non-decreasing) for every parameter value. This is our
own construction of the GENERIC structure (the paper builds ``L`` and ``M`` from
skew-symmetric/SPD tensors; the projection form gives the same guarantees with
plain matrix products). The matrices are never formed: ``P v = v − g (gᵀv)/|g|²``.

When wrapped in :class:`~macrodyn.dynamics.StandardizedField`, the structure holds for
the standardised model; the affine unit change ``v = μ_v + σ_v ⊙ g(ẑ)`` does not
preserve it (as for OnsagerNet's dissipation).
"""
from __future__ import annotations

import torch
from torch import nn

from macrodyn.nn import mlp

_TINY = 1e-12  # guards |∇E|², |∇S|² against exact zeros only (does not perturb the projection)


def _project_out(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``(I − g gᵀ/|g|²) v`` row-wise; ``v, g: (B, d) -> (B, d)``."""
    return v - g * ((g * v).sum(-1, keepdim=True) / (g * g).sum(-1, keepdim=True).clamp_min(_TINY))


class GFINN(nn.Module):
    """Args:
        dim: ``d``.
        hidden: widths of the MLPs for ``E``, ``S`` and of the MLP producing ``U, B``
            (``d² + d K`` outputs). The authors use tanh, width 256, 3 layers.
        rank: ``K``, columns of ``B`` (rank bound of ``M``); default ``d``.
        activation: hidden activation (smooth: ``E`` and ``S`` are differentiated).

    ``forward(z)``: ``(B, d) -> (B, d)``; ``energy(z)``, ``entropy(z)``: ``(B, d) -> (B,)``.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), rank: int | None = None,
                 activation: str = "tanh"):
        super().__init__()
        self.dim = dim
        self.rank = dim if rank is None else int(rank)
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1; got {rank}")
        self.E = mlp(dim, hidden, 1, activation)
        self.S = mlp(dim, hidden, 1, activation)
        self.matrices = mlp(dim, hidden, dim * dim + dim * self.rank, activation)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        return self.E(z).squeeze(-1)

    def entropy(self, z: torch.Tensor) -> torch.Tensor:
        return self.S(z).squeeze(-1)

    def gradients(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(∇E, ∇S)``, each ``(B, d)``; differentiable when grad mode is on."""
        build_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            zz = z if z.requires_grad else z.detach().requires_grad_(True)
            grad_e, = torch.autograd.grad(self.energy(zz).sum(), zz, create_graph=build_graph)
            grad_s, = torch.autograd.grad(self.entropy(zz).sum(), zz, create_graph=build_graph)
        return grad_e, grad_s

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, d) -> (B, d)``."""
        grad_e, grad_s = self.gradients(z)
        B, d = z.shape
        out = self.matrices(z)
        U = out[:, : d * d].view(B, d, d)
        Bm = out[:, d * d:].view(B, d, self.rank)
        # reversible part: P_S (U − Uᵀ) P_S ∇E
        u = _project_out(grad_e, grad_s).unsqueeze(-1)
        rev = _project_out(((U - U.transpose(1, 2)) @ u).squeeze(-1), grad_s)
        # irreversible part: P_E B Bᵀ P_E ∇S
        q = _project_out(grad_s, grad_e).unsqueeze(-1)
        irr = _project_out((Bm @ (Bm.transpose(1, 2) @ q)).squeeze(-1), grad_e)
        return rev + irr
