"""Closure autoencoder: ``φ(x) = (φ*(x), φ̂(x))`` and a decoder ``ψ(z) ≈ x``.

Trained on configurations only (no forces) with
``L_AE = E||x − ψ(φ(x))||² + λ_cond E(κ(J Jᵀ) − 1)²`` (docs/method.md).
"""
from __future__ import annotations

import torch
from torch import nn

from macrodyn.closure.jacobian import batch_jacobian
from macrodyn.nn import mlp
from macrodyn.observables.base import Observable


class ClosureAutoencoder(nn.Module):
    """Given observables plus learned closure variables.

    Args:
        observable: the given ``φ*`` (``(B, N) -> (B, d*)``).
        n_coords: ``N``.
        closure_dim: number of learned closure variables ``d − d*`` (may be 0).
        hidden: hidden widths of encoder (mirrored in the decoder).
        observable_scale: the given observables are multiplied by this inside the
            decoder input only (e.g. temperature ×20 for LJ), to balance magnitudes.
    Buffers ``x_mean``/``x_std`` (per coordinate) standardise the encoder input;
    set them with :meth:`fit_scaling` before training.
    """

    def __init__(self, observable: Observable, n_coords: int, closure_dim: int,
                 hidden: tuple[int, ...] = (32, 32), observable_scale: float = 1.0):
        super().__init__()
        if closure_dim < 0 or closure_dim + observable.dim >= n_coords:
            raise ValueError(f"closure_dim must be in [0, N − d*) = [0, {n_coords - observable.dim}); got {closure_dim}")
        self.observable, self.n_coords, self.closure_dim = observable, n_coords, closure_dim
        self.dim = observable.dim + closure_dim
        self.observable_scale = observable_scale
        self.encoder = mlp(n_coords, hidden, closure_dim, "softplus", xavier=True) if closure_dim else None
        self.decoder = mlp(self.dim, tuple(reversed(hidden)), n_coords, "softplus", xavier=True)
        self.register_buffer("x_mean", torch.zeros(n_coords))
        self.register_buffer("x_std", torch.ones(n_coords))

    @torch.no_grad()
    def fit_scaling(self, x: torch.Tensor, per_coordinate: bool = False) -> None:
        """Centre per coordinate; scale by one global std (default) or per coordinate.

        A global scale keeps the reconstruction loss in the units of ``x``, so the
        autoencoder spends its capacity on the large fluctuation modes, which are what
        the given observables' dynamics depend on.
        """
        self.x_mean.copy_(x.mean(0))
        std = x.std(0) if per_coordinate else (x - x.mean(0)).pow(2).mean().sqrt().expand(x.shape[1])
        self.x_std.copy_(std.clamp_min(1e-6 * float(std.max()) + 1e-30))

    def closure(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N) -> (B, closure_dim)``."""
        return self.encoder((x - self.x_mean) / self.x_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode: ``(B, N) -> (B, d)``, given observables first."""
        zs = self.observable(x)
        return torch.cat([zs, self.closure(x)], dim=-1) if self.closure_dim else zs

    encode = forward

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, d) -> (B, N)``."""
        d = self.observable.dim
        zin = torch.cat([z[:, :d] * self.observable_scale, z[:, d:]], dim=-1)
        return self.decoder(zin) * self.x_std + self.x_mean

    def jacobian(self, x: torch.Tensor, closure_only: bool = False) -> torch.Tensor:
        """``J = ∇φ(x)``, ``(B, N) -> (B, d, N)`` (``(B, closure_dim, N)`` if ``closure_only``)."""
        return batch_jacobian(self.closure if closure_only else self.forward, x, differentiable=True)
