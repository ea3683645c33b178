"""Losses for the macroscopic model (METHOD.md §3) as small callable objects.

A batch is a dict of tensors (see :mod:`macrodyn.keys`); each loss lists the keys it
``needs`` and returns a scalar.
"""
from __future__ import annotations

import torch
from torch import nn

from macrodyn import keys as K


class LatentLoss:
    """``L_z = E ||g(φ(x)) − J f||²`` in standardised units (needs all forces)."""

    name = "L_z"
    needs = (K.Z, K.JF)

    def __call__(self, field: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        v = field(batch[K.Z])
        return (((v - batch[K.JF]) / field.v_std) ** 2).mean()


class PartialForceLoss:
    """``L_x,p = E_x E_I (1/|I|) Σ_{i∈I} w_i ([J⁺ g(φ(x))]_i − f_i(x))²``.

    With every coordinate chosen (``p = 1``) this is ``L_x / N``. The weights ``w``
    are 1 for uniform subsets; importance sampling stores ``1/(N q_i)`` so that the
    estimate stays unbiased.
    """

    needs = (K.Z, K.PINV_ROWS, K.FORCES, K.WEIGHTS)

    def __init__(self, p: float = 1.0):
        if not 0 < p <= 1:
            raise ValueError(f"p must be in (0, 1]; got {p}")
        self.p = p
        self.name = "L_x" if p == 1 else "L_xp"

    def __call__(self, field: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        v = field(batch[K.Z])
        r = (batch[K.PINV_ROWS] @ v.unsqueeze(-1)).squeeze(-1) - batch[K.FORCES]
        return (batch[K.WEIGHTS] * r * r).mean()


def make_loss(name: str, p: float = 1.0):
    """``"L_z" | "L_x" | "L_xp"`` → loss object."""
    if name == "L_z":
        return LatentLoss()
    if name == "L_x":
        return PartialForceLoss(1.0)
    if name == "L_xp":
        return PartialForceLoss(p)
    raise ValueError(f"unknown loss {name!r}; choose L_z, L_x or L_xp")
