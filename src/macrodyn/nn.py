"""Small network building blocks shared by closure and dynamics models."""
from __future__ import annotations

import torch
from torch import nn


class ReQU(nn.Module):
    """``relu(x)² − relu(x − ½)²``: quadratic near 0, linear (slope 1) beyond ½. Smooth
    enough to be differentiated once more (OnsagerNet's ∇V), and it grows like the
    polynomial terms of a phase-field energy; the Allen–Cahn model of docs/method.md uses it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) ** 2 - torch.relu(x - 0.5) ** 2


ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU,
               "requ": ReQU}


def mlp(n_in: int, hidden: tuple[int, ...] | list[int], n_out: int, activation: str = "tanh",
        xavier: bool = False) -> nn.Sequential:
    """``n_in -> hidden... -> n_out`` with ``activation`` between layers (none at the end)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    sizes = [n_in, *hidden, n_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        if xavier:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
