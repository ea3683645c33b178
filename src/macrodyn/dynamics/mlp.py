"""A plain MLP vector field ``dz/dt = g(z)`` (no structure; the paper's baseline model)."""
from __future__ import annotations

import torch
from torch import nn

from macrodyn.nn import mlp


class MLPField(nn.Module):
    """``d -> hidden... -> d``."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), activation: str = "tanh"):
        super().__init__()
        self.dim = dim
        self.net = mlp(dim, hidden, dim, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
