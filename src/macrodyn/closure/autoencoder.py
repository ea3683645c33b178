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

    def closure_factors(self, x: torch.Tensor, *, differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, W)`` with ``∇φ̂(x) = A W``: ``W = W₁ / x_std`` ``(H, N)``, the encoder's input layer
        (linear in ``x``), and ``A`` ``(B, d − d*, H)`` the Jacobian of the rest of the encoder.

        Why: a configuration's closure Jacobian then costs one small ``H``-wide Jacobian instead
        of ``d − d*`` passes through the ``N × H`` input layer, and ``J Jᵀ`` needs only ``W Wᵀ``
        ``(H, H)``: at 51 200 atoms (N = 307 200) this is the difference between hours and
        minutes for the features of a study point and most of the closure's κ penalty.
        """
        first = self.encoder[0]
        h = first((x - self.x_mean) / self.x_std)
        return batch_jacobian(self.encoder[1:], h, differentiable=differentiable), first.weight / self.x_std

    def closure_gram(self, x: torch.Tensor, *, differentiable: bool = False) -> torch.Tensor:
        """``J Jᵀ`` of the closure variables alone, ``(B, d − d*, d − d*)`` (:meth:`closure_factors`)."""
        A, W = self.closure_factors(x, differentiable=differentiable)
        return A @ (W @ W.T) @ A.transpose(1, 2)

    def jacobian_products(self, x: torch.Tensor, idx: torch.Tensor, c: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(J Jᵀ, J_I, J c)`` at ``x`` ``(B, N)`` without forming ``J`` ``(B, d, N)``: the given
        observables' rows are formed (cheap for the usual observables), the closure's come from
        :meth:`closure_factors` (a column ``i`` is ``A W[:, i]``).

        Args:
            idx: ``(B, k)`` coordinates; c: ``(B, N)`` vectors for ``J c`` (None: not computed).
        Returns:
            ``(B, d, d)``, ``(B, d, k)`` and ``(B, d)`` (or None).
        """
        rows = batch_jacobian(self.observable, x)  # (B, d*, N)
        gram = rows @ rows.transpose(1, 2)
        cols = torch.gather(rows, 2, idx.unsqueeze(1).expand(-1, rows.shape[1], -1))
        jc = None if c is None else (rows @ c.unsqueeze(-1)).squeeze(-1)
        if not self.closure_dim:
            return gram, cols, jc
        A, W = self.closure_factors(x)
        cross = A @ (rows @ W.T).transpose(1, 2)  # (B, d − d*, d*): closure rows · observable rows
        gram = torch.cat([torch.cat([gram, cross.transpose(1, 2)], 2),
                          torch.cat([cross, A @ (W @ W.T) @ A.transpose(1, 2)], 2)], 1)
        cols = torch.cat([cols, A @ W.T[idx].transpose(1, 2)], 1)  # W[:, idx] per row: (B, H, k)
        if c is not None:
            jc = torch.cat([jc, (A @ (c @ W.T).unsqueeze(-1)).squeeze(-1)], 1)
        return gram, cols, jc

    def jacobian(self, x: torch.Tensor, closure_only: bool = False) -> torch.Tensor:
        """``J = ∇φ(x)``, ``(B, N) -> (B, d, N)`` (``(B, closure_dim, N)`` if ``closure_only``)."""
        return batch_jacobian(self.closure if closure_only else self.forward, x, differentiable=True)
