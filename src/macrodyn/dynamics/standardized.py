"""Physical-units wrapper around a model that works in standardised coordinates.

As in the reference, the model sees ``ẑ = (z − μ_z)/σ_z`` and predicts standardised
velocities; ``v(z) = μ_v + σ_v ⊙ g(ẑ)``. Statistics come from the training data.
"""
from __future__ import annotations

import torch
from torch import nn


class StandardizedField(nn.Module):
    """``dz/dt`` in physical units from a standardised model ``g``."""

    def __init__(self, model: nn.Module, dim: int):
        super().__init__()
        self.model = model
        for name in ("z_mean", "v_mean"):
            self.register_buffer(name, torch.zeros(dim))
        for name in ("z_std", "v_std"):
            self.register_buffer(name, torch.ones(dim))

    @torch.no_grad()
    def set_stats(self, z_mean, z_std, v_mean, v_std) -> None:
        for name, val in (("z_mean", z_mean), ("z_std", z_std), ("v_mean", v_mean), ("v_std", v_std)):
            getattr(self, name).copy_(torch.as_tensor(val))
        self.z_std.clamp_(min=1e-8)
        self.v_std.clamp_(min=1e-8)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.v_mean + self.v_std * self.model((z - self.z_mean) / self.z_std)
