"""Given macroscopic observables ``z* = φ*(x)``, differentiable in PyTorch.

An observable is a plain ``nn.Module`` mapping configurations ``(B, N)`` to
``(B, dim)``. Its Jacobian ``∇φ*`` is taken with ``torch.func`` by the closure code,
so any differentiable PyTorch expression is a valid user observable.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from macrodyn.errors import InputError


class Observable(nn.Module):
    """Base class: subclasses set ``dim`` and implement ``forward(x) -> (B, dim)``."""

    dim: int
    names: tuple[str, ...] = ()


class FunctionObservable(Observable):
    """Wrap a differentiable function ``fn(x: (B, N)) -> (B, dim)`` as an observable.

    Example:
        >>> obs = FunctionObservable(lambda x: x.mean(dim=1, keepdim=True), dim=1, names=("mean",))
        >>> obs(torch.ones(2, 5)).shape
        torch.Size([2, 1])
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], dim: int, names: tuple[str, ...] = ()):
        super().__init__()
        self.fn, self.dim = fn, dim
        self.names = names or tuple(f"z{i}" for i in range(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class BlockMeans(Observable):
    """Spatial means of contiguous equal blocks of ``x`` (e.g. ``(ū, v̄)``).

    ``x`` of width ``N = n_blocks * n`` maps to ``(B, n_blocks)``; linear, so its
    Jacobian is the constant ``1/n`` on each block.
    """

    def __init__(self, n_blocks: int, names: tuple[str, ...] = ()):
        super().__init__()
        self.dim = n_blocks
        self.names = names or tuple(f"mean{i}" for i in range(n_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or x.shape[-1] == 0 or x.shape[-1] % self.dim:
            raise InputError(f"BlockMeans({self.dim}): configurations (..., N) need N a positive multiple of "
                             f"{self.dim}; got shape {tuple(x.shape)}.")
        return x.reshape(*x.shape[:-1], self.dim, x.shape[-1] // self.dim).mean(dim=-1)
