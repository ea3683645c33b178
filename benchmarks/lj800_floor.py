"""LJ-800: how well can *any* model that knows only T0 predict T(t)? (error floor per protocol)

For each finished run folder (its ``data.zarr``), the temperature curves of the training
runs are fitted as ``T(t) = T(0) · P_t(T(0))`` with ``P_t`` a polynomial of degree
``0..3`` in ``T(0)`` (least squares, one per time step), and scored on the test runs by
the rollout metric (docs/method.md). This is the best a macroscopic model can do when its
closure carries no information beyond ``T0``; if the floor is above the target, only a
closure that reads the run's microscopic details can reach the target.

``--descriptors`` adds the same fit with the run's initial invariant descriptors as well
(``T(t) = T(0) · L_t(T(0), D(x_0))``, ``L_t`` linear, ridge-regularised, features standardised on
the training runs): the pair descriptors of ``closure.input: descriptors`` with and without the
energy family (``closure.descriptor_energy``). If they do not lower the floor, no closure built
on them can know more about a run's future than its ``T0``.

    python benchmarks/lj800_floor.py fresh=runs/lj800_fresh shared=runs/lj800
    python benchmarks/lj800_floor.py --descriptors --name lj800_floor_descriptors independent=RUN_DIR
    python benchmarks/lj800_floor.py --smoke [--out DIR]   # simulates a tiny LJ run first
    python benchmarks/lj800_floor.py --analyse-only        # the table from the JSON

Writes OUT/NAME.json (records: protocol, run, degree, features (``T0``, ``T0+pairs``,
``T0+pairs+energy``), rollout_rel_error, rollout_rel_error_std, n_train, n_test, ratio_std_max).
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
from macrodyn.systems import build_system

#: --descriptors: the initial-state features beside T0 (descriptor_basis 8, as the estimators' closures)
DESCRIPTOR_SETS = {"T0+pairs": False, "T0+pairs+energy": True}
RIDGE = 1e-4  # per training run; the fits have up to 28 features for 90 runs

COLUMNS = ["protocol", "features", "degree", "rollout_rel_error", "rollout_rel_error_std", "n_train", "n_test",
           "ratio_std_max"]


def temperatures(store: Path, table: str) -> np.ndarray:
    """``T(t)`` ``(runs, steps)`` of an MD table, chunk by chunk (unit masses, LJ units)."""
    tab = ChunkedTable.open(store, table)
    out = []
    for ch in tab.iter_chunks([K.TRAJ]):
        x = torch.as_tensor(ch[K.TRAJ])
        out.append(Temperature(x.shape[-1] // 6)(x)[..., 0].numpy())
    return np.concatenate(out)


def initial_states(store: Path, table: str) -> torch.Tensor:
    """Every run's first snapshot ``(runs, N)``, chunk by chunk."""
    chunks = ChunkedTable.open(store, table).iter_chunks([K.TRAJ])
    return torch.cat([torch.as_tensor(ch[K.TRAJ][:, 0]) for ch in chunks])


def floor(train: np.ndarray, test: np.ndarray, degree: int,
          features: tuple[np.ndarray, np.ndarray] | None = None, ridge: float = 0.0) -> np.ndarray:
    """Per-test-run rollout error (docs/method.md) of the best ``T(0)·P_t(T(0))`` fitted on ``train``;
    with ``features`` (train, test) ``(runs, M)``, of ``T(0)·L_t(T(0), features)`` (``degree`` 1)."""
    ratio = train / train[:, :1]
    a, b = np.vander(train[:, 0], degree + 1), np.vander(test[:, 0], degree + 1)
    if features is not None:
        mu, sd = features[0].mean(0), features[0].std(0) + 1e-300
        a, b = np.hstack([a, (features[0] - mu) / sd]), np.hstack([b, (features[1] - mu) / sd])
    penalty = np.sqrt(ridge * len(a)) * np.eye(a.shape[1])  # ridge as extra rows; 0: plain least squares
    coef, *_ = np.linalg.lstsq(np.vstack([a, penalty]), np.vstack([ratio, np.zeros((len(penalty), ratio.shape[1]))]),
                               rcond=None)
    pred = test[:, :1] * (b @ coef)
    as_tb1 = lambda a: torch.as_tensor(a.T[..., None])  # noqa: E731  (runs, T) -> (T, runs, 1)
    return relative_error(as_tb1(pred), as_tb1(test)).numpy()


def descriptor_features(folder: str, store: Path, energy: bool) -> tuple[np.ndarray, np.ndarray]:
    """The initial states' pair descriptors (train, test) of the run in ``folder``."""
    cfg = Run.open(folder, progress=False).cfg
    d = build_system(cfg.system.name, dict(cfg.system.params)).descriptors(8, energy=energy)
    return tuple(d(initial_states(store, t)).numpy() for t in ("train", "test"))


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="")
    ap.add_argument("runs", nargs="*", metavar="PROTOCOL=RUN_DIR", help="finished LJ run folders (required)")
    ap.add_argument("--name", default="lj800_floor")
    ap.add_argument("--descriptors", action="store_true", help="also fit with the initial pair descriptors")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    if args.smoke:  # the trajectories of a tiny LJ run (shared microstates, as configs/lj800.yaml)
        run = Run.create(tiny(load_config(CONFIGS / "lj800.yaml")), args.work / "lj_tiny", progress=False)
        simulate(run)
        args.runs, args.descriptors = [f"shared={run.out}"], True
    if not args.runs:
        ap.error("give at least one PROTOCOL=RUN_DIR")
    records = []
    for item in args.runs:
        protocol, folder = item.split("=", 1)
        store = Path(folder) / "data.zarr"
        params = Run.open(folder, progress=False).cfg.system.params
        train, test = temperatures(store, "train"), temperatures(store, "test")
        spread = float((train / train[:, :1]).std(0).max())
        fits = [("T0", degree, None, 0.0) for degree in range(4)]
        if args.descriptors:
            fits += [(name, 1, descriptor_features(folder, store, energy), RIDGE)
                     for name, energy in DESCRIPTOR_SETS.items()]
        for name, degree, features, ridge in fits:
            err = floor(train, test, degree, features, ridge)
            records.append({"protocol": protocol, "run": folder, "placement_seed": params.get("placement_seed"),
                            "velocity_seed": params.get("velocity_seed"), "features": name, "degree": degree,
                            "rollout_rel_error": float(err.mean()), "rollout_rel_error_std": float(err.std()),
                            "n_train": len(train), "n_test": len(test), "ratio_std_max": spread})
            print(f"{protocol:>8} {name:>16} degree {degree}: {err.mean():.3e} ± {err.std():.1e}  "
                  f"(max std of T/T0 {spread:.3f})")
    print(write_results(args.out, args.name, records))


if __name__ == "__main__":
    main()
