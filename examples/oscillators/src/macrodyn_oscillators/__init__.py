"""Kuramoto phase oscillators with mean-field coupling, as a macrodyn plug-in.

    dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i) = ω_i + K r sin(ψ − θ_i),

with the complex order parameter ``r e^{iψ} = (1/N) Σ_j e^{iθ_j}``. The given observable is
``(r cos ψ, r sin ψ)``; the learned closure variables complete it.

Partial forces: every oscillator feels all the others, but only through the order parameter,
so ``partial_forces`` makes one pass over the phases (two sums) and then evaluates the ``k``
requested right-hand sides only: O(N + k) cheap operations instead of the O(k·N) pairwise sum,
and ``k`` force evaluations in macrodyn's cost units.

The constructor declares no ``Params`` model: macrodyn derives one from the annotated
signature, so ``system.params`` typos and wrong types are refused by name all the same.
"""
from __future__ import annotations

import numpy as np
import torch

from macrodyn.observables import Observable
from macrodyn.systems import MicroSystem

__all__ = ["Kuramoto", "OrderParameter"]


class OrderParameter(Observable):
    """``(r cos ψ, r sin ψ) = (mean cos θ, mean sin θ)``: ``(B, N) -> (B, 2)``, in torch (differentiable)."""

    def __init__(self):
        super().__init__()
        self.dim, self.names = 2, ("r_cos_psi", "r_sin_psi")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.cos(x).mean(dim=-1), torch.sin(x).mean(dim=-1)], dim=-1)


class Kuramoto(MicroSystem):
    """Kuramoto model of ``n`` phase oscillators.

    Args:
        n: number of oscillators (N).
        K: coupling strength (synchronisation sets in near K_c = 1.6 · spread).
        spread: standard deviation of the natural frequencies ω_i (centred: mean ω = 0).
        omega_seed: seed of the natural frequencies (part of the system, not of the run).
        dt: RK4 step.
    """

    name = "kuramoto"

    def __init__(self, n: int = 64, K: float = 2.0, spread: float = 0.5, omega_seed: int = 0, dt: float = 0.05):
        super().__init__()
        if n < 2 or spread < 0 or dt <= 0:
            raise ValueError(f"need n >= 2, spread >= 0 and dt > 0; got n={n}, spread={spread}, dt={dt}")
        self.n_coords, self.K, self.dt = n, K, dt
        omega = np.random.default_rng(omega_seed).standard_normal(n) * spread
        self.omega = omega - omega.mean()

    @staticmethod
    def _mean_field(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(r cos ψ, r sin ψ)`` per state, ``(B, 1)`` each."""
        return np.cos(x).mean(axis=1, keepdims=True), np.sin(x).mean(axis=1, keepdims=True)

    def _forces(self, x):
        c, s = self._mean_field(x)
        # K r sin(ψ − θ) = K (r sin ψ cos θ − r cos ψ sin θ)
        return self.omega + self.K * (s * np.cos(x) - c * np.sin(x))

    def _partial_forces(self, x, idx):
        c, s = self._mean_field(x)  # one pass over the phases
        th = np.take_along_axis(x, idx, axis=1)  # then only the k requested oscillators
        return self.omega[idx] + self.K * (s * np.cos(th) - c * np.sin(th))

    def sample_initial(self, n, rng):
        """Phases spread over a random fraction of the circle around a random centre (r from ~0 to ~1)."""
        centre = rng.uniform(-np.pi, np.pi, (n, 1))
        width = rng.uniform(0.1, 1.0, (n, 1))
        return centre + width * rng.uniform(-np.pi, np.pi, (n, self.n_coords))

    def observable(self):
        return OrderParameter()
