"""LJ-800: how well can *any* model that knows only T0 predict T(t)? (error floor per protocol)

For each finished run folder (its ``data.zarr``), the temperature curves of the training
runs are fitted as ``T(t) = T(0) · P_t(T(0))`` with ``P_t`` a polynomial of degree
``0..3`` in ``T(0)`` (least squares, one per time step), and scored on the test runs by
the METHOD.md §4 rollout metric. This is the best a macroscopic model can do when its
closure carries no information beyond ``T0``; if the floor is above the target, only a
closure that reads the run's microscopic details can reach the target.

    python benchmarks/lj800_floor.py fresh=runs/lj800_fresh shared=runs/lj800

Writes benchmarks/results/lj800_floor.json (records: protocol, run, degree,
rollout_rel_error, rollout_rel_error_std, n_train, n_test, ratio_std_max).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from common import write_results
from macrodyn.data.store import ChunkedTable


def temperatures(store: Path, table: str) -> np.ndarray:
    """``T(t)`` ``(runs, steps)`` of an MD table (atom-major ``(r, v)``, unit masses)."""
    traj = ChunkedTable.open(store, table).read(["traj"])["traj"]
    v = traj.reshape(*traj.shape[:2], -1, 6)[..., 3:]
    return (v**2).sum((-1, -2)) / (3 * (v.shape[2] - 1))


def rollout_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """METHOD.md §4 per trajectory: ``Σ_t |T̂ − T| / Σ_t |T|``."""
    return np.abs(pred - true).sum(1) / np.abs(true).sum(1)


def floor(train: np.ndarray, test: np.ndarray, degree: int) -> np.ndarray:
    ratio = train / train[:, :1]
    coef, *_ = np.linalg.lstsq(np.vander(train[:, 0], degree + 1), ratio, rcond=None)
    return rollout_error(test[:, :1] * (np.vander(test[:, 0], degree + 1) @ coef), test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="PROTOCOL=RUN_DIR")
    ap.add_argument("--name", default="lj800_floor")
    args = ap.parse_args()
    records = []
    for item in args.runs:
        protocol, folder = item.split("=", 1)
        store = Path(folder) / "data.zarr"
        params = yaml.safe_load((Path(folder) / "config.yaml").read_text())["system"]["params"]
        train, test = temperatures(store, "train"), temperatures(store, "test")
        spread = float((train / train[:, :1]).std(0).max())
        for degree in range(4):
            err = floor(train, test, degree)
            records.append({"protocol": protocol, "run": folder, "placement_seed": params.get("placement_seed"),
                            "velocity_seed": params.get("velocity_seed"), "degree": degree,
                            "rollout_rel_error": float(err.mean()), "rollout_rel_error_std": float(err.std()),
                            "n_train": len(train), "n_test": len(test), "ratio_std_max": spread})
            print(f"{protocol:>8} degree {degree}: {err.mean():.3e} ± {err.std():.1e}  (max std of T/T0 {spread:.3f})")
    print(write_results(args.name, records))


if __name__ == "__main__":
    main()
