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
        per_coordinate = per_coordinate or self.per_input_scale
        std = x.std(0) if per_coordinate else (x - x.mean(0)).pow(2).mean().sqrt().expand(x.shape[1])
        self.x_std.copy_(std.clamp_min(1e-6 * float(std.max()) + 1e-30))

    #: scale every encoder input by its own std in :meth:`fit_scaling` (inputs in different units)
    per_input_scale = False

    @property
    def n_inputs(self) -> int:
        """Width of the encoder's input (``N`` here: the coordinates themselves)."""
        return self.n_coords

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder reads and the decoder reconstructs, before standardising: ``x`` itself."""
        return x

    def inputs_of(self, x: torch.Tensor, rows: int = 256) -> torch.Tensor:
        """:meth:`inputs` of a whole training set ``(M, N)``, ``rows`` at a time."""
        return x

    def standardize(self, inputs: torch.Tensor) -> torch.Tensor:
        return (inputs - self.x_mean) / self.x_std

    def closure(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N) -> (B, closure_dim)``."""
        return self.encoder(self.standardize(self.inputs(x)))

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
        (:class:`DescriptorClosure`: ``W`` is per configuration, ``(B, M, N)``.)

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
        return A @ (W @ W.transpose(-1, -2)) @ A.transpose(1, 2)

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
        return self._products(x, idx, c, *(self.closure_factors(x) if self.closure_dim else (None, None)))

    def encode_and_products(self, x: torch.Tensor, idx: torch.Tensor, c: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(φ(x), J Jᵀ, J_I, J c)``: :meth:`jacobian_products` and the encoding, sharing what both need
        (a :class:`DescriptorClosure` evaluates its descriptors once)."""
        z, A, W = self._encode_factors(x)
        return (z, *self._products(x, idx, c, A, W))

    def _encode_factors(self, x: torch.Tensor):
        return (self(x), *(self.closure_factors(x) if self.closure_dim else (None, None)))

    def _products(self, x, idx, c, A, W):
        rows = batch_jacobian(self.observable, x)  # (B, d*, N)
        gram = rows @ rows.transpose(1, 2)
        cols = torch.gather(rows, 2, idx.unsqueeze(1).expand(-1, rows.shape[1], -1))
        jc = None if c is None else (rows @ c.unsqueeze(-1)).squeeze(-1)
        if A is None:
            return gram, cols, jc
        Wt = W.transpose(-1, -2)
        cross = A @ (rows @ Wt).transpose(1, 2)  # (B, d − d*, d*): closure rows · observable rows
        gram = torch.cat([torch.cat([gram, cross.transpose(1, 2)], 2),
                          torch.cat([cross, A @ (W @ Wt) @ A.transpose(1, 2)], 2)], 1)
        Wb = W.expand(len(idx), -1, -1)  # a view when W is shared by the batch
        cols = torch.cat([cols, A @ torch.gather(Wb, 2, idx.unsqueeze(1).expand(-1, Wb.shape[1], -1))], 1)
        if c is not None:
            jc = torch.cat([jc, (A @ (W @ c.unsqueeze(-1))).squeeze(-1)], 1)
        return gram, cols, jc

    def jvp(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(φ(x), J v)``: one forward-mode product per configuration."""
        return torch.func.jvp(self, (x,), (v,))

    def jacobian(self, x: torch.Tensor, closure_only: bool = False) -> torch.Tensor:
        """``J = ∇φ(x)``, ``(B, N) -> (B, d, N)`` (``(B, closure_dim, N)`` if ``closure_only``)."""
        return batch_jacobian(self.closure if closure_only else self.forward, x, differentiable=True)


class DescriptorClosure(ClosureAutoencoder):
    """A closure that reads invariant descriptors ``D(x)`` ``(B, M)`` instead of the coordinates:
    ``φ̂(x) = encoder(D(x))``, and the decoder reconstructs ``D(x)``, not ``x``.

    Why: with raw coordinates the encoder can only separate microstates by which atom is where,
    which carries no meaning when every run starts from its own random placement; descriptors that
    ignore atom labels (:class:`macrodyn.systems.descriptors.PairDescriptors`) keep only the state.
    The closure Jacobian factors as ``(A W₁ / std) ∂D/∂x`` with the descriptors' own exact
    Jacobian, ``(B, M, N)``, so nothing ``(B, H, N)``-sized is formed.

    Args:
        descriptors: a module ``(B, N) -> (B, M)`` with ``dim`` and
            ``values_and_jacobian(x) -> ((B, M), (B, M, N))``.
        The rest as :class:`ClosureAutoencoder`.
    """

    per_input_scale = True  # descriptors come in different units

    def __init__(self, observable: Observable, descriptors, n_coords: int, closure_dim: int,
                 hidden: tuple[int, ...] = (32, 32), observable_scale: float = 1.0):
        if not 0 < closure_dim <= descriptors.dim:
            raise ValueError(f"closure_dim must be in [1, {descriptors.dim}] (the number of descriptors); "
                             f"got {closure_dim}")
        super().__init__(observable, n_coords, closure_dim, hidden, observable_scale)
        self.descriptors = descriptors
        self.encoder = mlp(descriptors.dim, hidden, closure_dim, "softplus", xavier=True)
        self.decoder = mlp(self.dim, tuple(reversed(hidden)), descriptors.dim, "softplus", xavier=True)
        self.x_mean = torch.zeros(descriptors.dim)
        self.x_std = torch.ones(descriptors.dim)

    @property
    def n_inputs(self) -> int:
        return self.descriptors.dim

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.descriptors(x)

    def inputs_of(self, x: torch.Tensor, rows: int = 256) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.descriptors(x[s:s + rows]) for s in range(0, len(x), rows)])

    def closure_factors(self, x: torch.Tensor, *, differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return self._factors(x, differentiable)[:2]

    def _factors(self, x: torch.Tensor, differentiable: bool = False):
        """``(A, W, h)``: :meth:`closure_factors` and the input layer's output ``h``, from one pass
        over the descriptors (the closure variables are ``encoder[1:](h)``)."""
        first = self.encoder[0]
        vals, dx = self.descriptors.values_and_jacobian(x.detach())
        h = first(self.standardize(vals.to(first.weight.dtype)))
        A = batch_jacobian(self.encoder[1:], h, differentiable=differentiable)
        return A @ (first.weight / self.x_std), dx.to(first.weight.dtype), h

    def _encode_factors(self, x: torch.Tensor):
        A, W, h = self._factors(x)
        return torch.cat([self.observable(x), self.encoder[1:](h)], 1), A, W

    def jvp(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, A, W = self._encode_factors(x)
        js = torch.func.jvp(self.observable, (x,), (v,))[1]
        return z, torch.cat([js, (A @ (W @ v.unsqueeze(-1))).squeeze(-1)], 1)

    def jacobian(self, x: torch.Tensor, closure_only: bool = False) -> torch.Tensor:
        A, W = self.closure_factors(x, differentiable=True)
        if closure_only:
            return A @ W
        return torch.cat([batch_jacobian(self.observable, x, differentiable=True), A @ W], 1)
