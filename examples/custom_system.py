"""Bring your own system: a 1-D Fisher–KPP equation in a few lines, run end to end.

    u_t = D u_xx + r u (1 − u)     on n cell-centred points, mirror boundaries.

The given observable is the spatial mean ū; one learned closure variable completes it.
Run:  python examples/custom_system.py [--quick] [--out DIR]

Three ways to make a class available to configs (``macrodyn systems`` lists what is):

* ``@register`` (below): in this process, under ``name``;
* an import path in the config, ``system.name: my_package.my_module:FisherKPP`` (the module
  must be importable: installed, on PYTHONPATH, or in the current folder) — this works with
  the ``macrodyn`` command line too;
* a package with an entry point in the group ``macrodyn.systems`` (see examples/oscillators).

``Params`` declares the constructor's parameters for YAML configs: a typo or a wrong type in
``system.params`` is then refused by name (``system.params.DD: unknown field``). Without it,
macrodyn derives the same check from the ``__init__`` signature (annotations and defaults).
``macrodyn validate CONFIG`` (or :func:`macrodyn.preflight.preflight`) checks the system in
seconds before a run: attributes, partial vs full forces, the observable, sizes.
"""
from __future__ import annotations

import argparse

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from macrodyn import Run, parse_config, run_all
from macrodyn.observables import BlockMeans
from macrodyn.preflight import preflight
from macrodyn.systems import MicroSystem, register


@register
class FisherKPP(MicroSystem):
    """Fisher–KPP reaction–diffusion, ``N = n`` coordinates."""

    name = "fisher_kpp"

    class Params(BaseModel):
        """``system.params`` as validated in configs (defaults = the constructor's)."""

        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        n: int = Field(64, ge=3, description="grid points")
        D: float = Field(0.002, gt=0, description="diffusion constant (physical units)")
        r: float = Field(1.0, ge=0, description="growth rate")
        dt: float = Field(0.05, gt=0, description="RK4 step")

    def __init__(self, n: int = 64, D: float = 0.002, r: float = 1.0, dt: float = 0.05):
        super().__init__()  # sets up the force counter
        self.n_coords, self.D, self.r, self.dt = n, D * n * n, r, dt  # D in physical units: Δ/h²

    def _forces(self, x):  # (B, N) -> (B, N)
        lap = np.diff(np.pad(x, ((0, 0), (1, 1)), mode="edge"), 2, axis=1)
        return self.D * lap + self.r * x * (1 - x)

    def _partial_forces(self, x, idx):  # (B, N), (B, k) -> (B, k): only the stencil at idx
        rows = np.arange(len(x))[:, None]
        u = x[rows, idx]
        left = x[rows, np.maximum(idx - 1, 0)]
        right = x[rows, np.minimum(idx + 1, self.n_coords - 1)]
        return self.D * (left - 2 * u + right) + self.r * u * (1 - u)

    def sample_initial(self, n, rng):  # every random number from rng: runs are reproducible
        grid = (np.arange(self.n_coords) + 0.5) / self.n_coords
        centre, width = rng.uniform(0.2, 0.8, (n, 1)), rng.uniform(0.05, 0.15, (n, 1))
        return 0.9 * np.exp(-((grid - centre) / width) ** 2)

    def observable(self):  # a macrodyn Observable in torch, (B, N) -> (B, dim)
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
    print(preflight(cfg, out=args.out).summary())  # seconds; one line per problem, naming the fix
    metrics = run_all(Run.create(cfg, args.out, progress=not small))
    print(f"fisher_kpp: rollout_rel_error {metrics['rollout_rel_error']:.3e} "
          f"with {metrics['force_evaluations']} force evaluations")
    return metrics


if __name__ == "__main__":
    main()
