"""LJ-800: how well can *any* model that knows only T0 predict T(t)? (error floor per protocol)

For each finished run folder (its ``data.zarr``), the temperature curves of the training
runs are fitted as ``T(t) = T(0) · P_t(T(0))`` with ``P_t`` a polynomial of degree
``0..3`` in ``T(0)`` (least squares, one per time step), and scored on the test runs by
the rollout metric (docs/method.md). This is the best a macroscopic model can do when its
closure carries no information beyond ``T0``; if the floor is above the target, only a
closure that reads the run's microscopic details can reach the target.

    python benchmarks/lj800_floor.py fresh=runs/lj800_fresh shared=runs/lj800
    python benchmarks/lj800_floor.py --smoke [--out DIR]   # simulates a tiny LJ run first
    python benchmarks/lj800_floor.py --analyse-only        # the table from the JSON

Writes OUT/lj800_floor.json (records: protocol, run, degree,
rollout_rel_error, rollout_rel_error_std, n_train, n_test, ratio_std_max).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common import CONFIGS, need_results, parse, parser, print_table, tiny, write_results
from macrodyn import keys as K
from macrodyn import load_config
from macrodyn.data.store import ChunkedTable
from macrodyn.evaluation.rollout import relative_error
from macrodyn.observables.temperature import Temperature
from macrodyn.run import Run
from macrodyn.run.simulate import simulate

COLUMNS = ["protocol", "degree", "rollout_rel_error", "rollout_rel_error_std", "n_train", "n_test", "ratio_std_max"]


def temperatures(store: Path, table: str) -> np.ndarray:
    """``T(t)`` ``(runs, steps)`` of an MD table, chunk by chunk (unit masses, LJ units)."""
    tab = ChunkedTable.open(store, table)
    out = []
    for ch in tab.iter_chunks([K.TRAJ]):
        x = torch.as_tensor(ch[K.TRAJ])
        out.append(Temperature(x.shape[-1] // 6)(x)[..., 0].numpy())
    return np.concatenate(out)


def floor(train: np.ndarray, test: np.ndarray, degree: int) -> np.ndarray:
    """Per-test-run rollout error (docs/method.md) of the best ``T(0)·P_t(T(0))`` fitted on ``train``."""
    ratio = train / train[:, :1]
    coef, *_ = np.linalg.lstsq(np.vander(train[:, 0], degree + 1), ratio, rcond=None)
    pred = test[:, :1] * (np.vander(test[:, 0], degree + 1) @ coef)
    as_tb1 = lambda a: torch.as_tensor(a.T[..., None])  # noqa: E731  (runs, T) -> (T, runs, 1)
    return relative_error(as_tb1(pred), as_tb1(test)).numpy()


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="")
    ap.add_argument("runs", nargs="*", metavar="PROTOCOL=RUN_DIR", help="finished LJ run folders (required)")
    ap.add_argument("--name", default="lj800_floor")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    if args.smoke:  # the trajectories of a tiny LJ run (shared microstates, as configs/lj800.yaml)
        run = Run.create(tiny(load_config(CONFIGS / "lj800.yaml")), args.work / "lj_tiny", progress=False)
        simulate(run)
        args.runs = [f"shared={run.out}"]
    if not args.runs:
        ap.error("give at least one PROTOCOL=RUN_DIR")
    records = []
    for item in args.runs:
        protocol, folder = item.split("=", 1)
        store = Path(folder) / "data.zarr"
        params = Run.open(folder, progress=False).cfg.system.params
        train, test = temperatures(store, "train"), temperatures(store, "test")
        spread = float((train / train[:, :1]).std(0).max())
        for degree in range(4):
            err = floor(train, test, degree)
            records.append({"protocol": protocol, "run": folder, "placement_seed": params.get("placement_seed"),
                            "velocity_seed": params.get("velocity_seed"), "degree": degree,
                            "rollout_rel_error": float(err.mean()), "rollout_rel_error_std": float(err.std()),
                            "n_train": len(train), "n_test": len(test), "ratio_std_max": spread})
            print(f"{protocol:>8} degree {degree}: {err.mean():.3e} ± {err.std():.1e}  (max std of T/T0 {spread:.3f})")
    print(write_results(args.out, args.name, records))


if __name__ == "__main__":
    main()
