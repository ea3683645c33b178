"""Bring your own system: a 1-D Fisher–KPP equation in a few lines, run end to end.

    u_t = D u_xx + r u (1 − u)     on n cell-centred points, mirror boundaries.

The given observable is the spatial mean ū; one learned closure variable completes it.
Run:  python examples/custom_system.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse

import numpy as np

from macrodyn import Run, parse_config, run_all
from macrodyn.observables import BlockMeans
from macrodyn.systems import MicroSystem, register


@register
class FisherKPP(MicroSystem):
    name = "fisher_kpp"

    def __init__(self, n: int = 64, D: float = 0.002, r: float = 1.0, dt: float = 0.05):
        super().__init__()
        self.n_coords, self.D, self.r, self.dt = n, D * n * n, r, dt  # D in physical units: Δ/h²

    def _forces(self, x):
        lap = np.diff(np.pad(x, ((0, 0), (1, 1)), mode="edge"), 2, axis=1)
        return self.D * lap + self.r * x * (1 - x)

    def _partial_forces(self, x, idx):
        rows = np.arange(len(x))[:, None]
        u = x[rows, idx]
        left = x[rows, np.maximum(idx - 1, 0)]
        right = x[rows, np.minimum(idx + 1, self.n_coords - 1)]
        return self.D * (left - 2 * u + right) + self.r * u * (1 - u)

    def sample_initial(self, n, rng):
        grid = (np.arange(self.n_coords) + 0.5) / self.n_coords
        centre, width = rng.uniform(0.2, 0.8, (n, 1)), rng.uniform(0.05, 0.15, (n, 1))
        return 0.9 * np.exp(-((grid - centre) / width) ** 2)

    def observable(self):
        return BlockMeans(1, names=("u_mean",))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds), as in the test suite")
    ap.add_argument("--out", default="runs/fisher_kpp")
    args = ap.parse_args(argv)
    small = args.quick
    cfg = parse_config({
        "name": "fisher_kpp",
        "system": {"name": "fisher_kpp"},
        "data": {"n_train_trajectories": 20 if small else 100, "n_test_trajectories": 10 if small else 50,
                 "n_steps": 200, "save_every": 5, "chunk_trajectories": 10},
        "closure": {"dim": 1, "epochs": 3 if small else 20, "cond_weight": 1e-6},
        "training": {"loss": "L_xp", "p": 0.125, "budget": 8 * (400 if small else 3000),
                     "epochs": 20 if small else 500, "stop_patience": 50, "batch_size": 128},
    })
    metrics = run_all(Run.create(cfg, args.out, progress=not small))
    print(f"fisher_kpp: rollout_rel_error {metrics['rollout_rel_error']:.3e} "
          f"with {metrics['force_evaluations']} force evaluations")
    return metrics


if __name__ == "__main__":
    main()
