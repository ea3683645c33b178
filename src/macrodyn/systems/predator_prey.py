"""Predator–prey reaction–diffusion in 1-D (docs/method.md).

    u_t = u (1 − u − v) + D Δu,     v_t = a v (u − b) + Δv

on ``n`` cell-centred points of [0, 1] with mirror boundaries (ghost = edge value) and
the stencil ``Δw_j = w_{j−1} − 2 w_j + w_{j+1}`` *without* the 1/dx² factor, as in the
reference (the effective diffusion constant is dx²). State ``x = (u_1..u_n, v_1..v_n)``.
"""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from macrodyn.observables import BlockMeans
from macrodyn.systems.base import MicroSystem


def mirror_laplacian(w: np.ndarray) -> np.ndarray:
    """``[1, −2, 1]`` stencil along the last axis with ghost = edge value."""
    lap = np.empty_like(w)
    lap[..., 1:-1] = w[..., :-2] - 2 * w[..., 1:-1] + w[..., 2:]
    lap[..., 0] = w[..., 1] - w[..., 0]
    lap[..., -1] = w[..., -2] - w[..., -1]
    return lap


class PredatorPrey(MicroSystem):
    """Predator–prey system with ``N = 2 n`` coordinates.

    Args:
        n: grid points per field (50 in the paper).
        a, b, D: reaction and prey-diffusion parameters (3, 0.4, 0).
        dt: RK4 step (0.01).
    """

    name = "predator_prey"

    class Params(BaseModel):
        """Constructor arguments as validated in YAML configs (``system.params``)."""

        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        n: int = Field(50, ge=3, description="grid points per field")
        a: float = 3.0
        b: float = 0.4
        D: float = Field(0.0, ge=0.0)
        dt: float = Field(0.01, gt=0.0)

    def __init__(self, n: int = 50, a: float = 3.0, b: float = 0.4, D: float = 0.0, dt: float = 0.01):
        super().__init__()
        self.n, self.a, self.b, self.D, self.dt = n, a, b, D, dt
        self.n_coords = 2 * n
        self.grid = (np.arange(n) + 0.5) / n

    def _forces(self, x):
        u, v = x[:, : self.n], x[:, self.n:]
        fu = u * (1 - u - v) + self.D * mirror_laplacian(u)
        fv = self.a * v * (u - self.b) + mirror_laplacian(v)
        return np.concatenate([fu, fv], axis=1)

    def _partial_forces(self, x, idx):
        n = self.n
        rows = np.arange(x.shape[0])[:, None]
        j = idx % n
        base = idx - j  # start of the field the coordinate belongs to
        own = x[rows, idx]
        left = x[rows, base + np.maximum(j - 1, 0)]
        right = x[rows, base + np.minimum(j + 1, n - 1)]
        lap = left - 2 * own + right
        is_u = idx < n
        # the other field at the same grid point
        other = x[rows, np.where(is_u, idx + n, idx - n)]
        u = np.where(is_u, own, other)
        v = np.where(is_u, other, own)
        return np.where(is_u, u * (1 - u - v) + self.D * lap, self.a * v * (u - self.b) + lap)

    def sample_initial(self, n, rng):
        mu = rng.uniform(0.0, 0.2, size=(n, 1))
        sigma = rng.uniform(0.4, 0.6, size=(n, 1))
        c = np.cos(5 * np.pi * self.grid)[None, :]
        return np.concatenate([sigma + mu * c, 1 - sigma - mu * c], axis=1)

    def observable(self):
        return BlockMeans(2, names=("u_mean", "v_mean"))
