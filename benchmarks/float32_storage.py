"""What storing trajectories as float32 (``data.dtype``) changes: the labels, the closure
variables and the rollout error.

One size of a force-budget study (default: 800 atoms of ``configs/lj_scaling.yaml``) is
simulated twice, with float64 and with float32 storage (the integrator runs in float64 both
times, so the float32 trajectories are the float64 ones rounded). Then:

- labels: the forces on ``--atoms`` random atoms of ``--configs`` training snapshots, computed
  at the stored float32 state and at the float64 one: relative rms and max difference;
- closure variables: ``z`` of the float64 run's closure at both states (relative rms difference);
- the error: one study point (``--point LOSS:CONFIGS``, default L_z at 500 configurations, the
  study's members and seeds) trained on each, same seeds.

Writes OUT/float32_storage.json, one record per dtype:
``{n_atoms, dtype, loss, n_configs, label_rel_rms_diff, label_rel_max_diff, z_rel_rms_diff,
rollout_rel_error, rollout_rel_error_std, trajectory_bytes}`` (the diffs are float32 vs float64; 0 for
float64 itself).

    python benchmarks/float32_storage.py [--size 800] [--point L_z:500]
    python benchmarks/float32_storage.py --smoke [--out DIR]       # predator-prey, 8 cells
    python benchmarks/float32_storage.py --analyse-only
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common import CONFIGS, need_results, parse, parser, print_table, tiny_study, write_results
from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable
from macrodyn.preflight import bytes_under
from macrodyn.run.closure import load_closure
from macrodyn.study import GridPoint, load_study, point_config, run_grid
from macrodyn.training.features import label, sample_units

COLUMNS = ["n_atoms", "dtype", "loss", "n_configs", "label_rel_rms_diff", "label_rel_max_diff", "z_rel_rms_diff",
           "rollout_rel_error", "rollout_rel_error_std", "trajectory_bytes"]
DTYPES = ("float64", "float32")


def with_dtype(study, dtype: str):
    data = study.run.data.model_copy(update={"dtype": dtype})
    return study.model_copy(update={"run": study.run.model_copy(update={"data": data})})


def compare_states(shared: dict, n_configs: int, k: int) -> dict:
    """Labels and closure variables at the float32 states vs the float64 ones (same snapshots)."""
    runs = {d: shared[d] for d in DTYPES}
    rng = np.random.default_rng(0)
    n_traj, n_saved = runs["float64"].cfg.data.n_train_trajectories, runs["float64"].n_saved
    where = np.stack([rng.integers(0, n_traj, n_configs), rng.integers(0, n_saved, n_configs)], 1)
    x = {d: ChunkedTable.open(r.store, "train").gather(K.TRAJ, where) for d, r in runs.items()}
    system = runs["float64"].system
    idx = system.unit_coords(sample_units(n_configs, system.n_units, min(k, system.n_units), rng))
    f = {d: label(system, x[d], idx) for d in DTYPES}
    ae = load_closure(runs["float64"])
    with torch.no_grad():  # in float64, as the features are computed
        ae64 = ae.double()
        z = {d: ae64(torch.as_tensor(x[d], dtype=torch.float64)).numpy() for d in DTYPES}
        ae.float()
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    return {"label_rel_rms_diff": rms(f["float32"] - f["float64"]) / rms(f["float64"]),
            "label_rel_max_diff": float(np.max(np.abs(f["float32"] - f["float64"])) / np.max(np.abs(f["float64"]))),
            "z_rel_rms_diff": rms(z["float32"] - z["float64"]) / rms(z["float64"] - z["float64"].mean(0))}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/float32_storage")
    ap.add_argument("--config", default=str(CONFIGS / "lj_scaling.yaml"))
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--point", default="L_z:500", help="LOSS:CONFIGS of the point trained on each storage")
    ap.add_argument("--configs", type=int, default=200, help="snapshots whose labels are compared")
    ap.add_argument("--atoms", type=int, default=50, help="atoms (units) labelled per snapshot")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, "float32_storage")["records"], COLUMNS)
    torch.set_num_threads(1)
    loss, n_configs = args.point.split(":")[0], int(args.point.split(":")[1])
    if args.smoke:
        args.config = tiny_study(args.work / "smoke_study.yaml")
        args.size, loss, n_configs, args.configs, args.atoms = 8, "L_z", 250, 20, 4
    study = load_study(args.config)
    studies = {d: with_dtype(study, d) for d in DTYPES}
    points = [GridPoint(f"{loss}_c{n_configs}", point_config(studies[d], args.size, loss, n_configs), data=d)
              for d in DTYPES]
    results = run_grid(points, {d: point_config(studies[d], args.size) for d in DTYPES}, args.work)
    shared = {r.point.data: r.shared for r in results}
    diffs = compare_states(shared, args.configs, args.atoms)
    records = []
    for r in results:
        d = r.point.data
        records.append({"n_atoms": args.size, "dtype": d, "loss": loss, "n_configs": n_configs,
                        **({k: 0.0 for k in diffs} if d == "float64" else diffs),
                        "rollout_rel_error": r.metrics["rollout_rel_error"],
                        "rollout_rel_error_std": r.metrics["rollout_rel_error_std"],
                        "trajectory_bytes": bytes_under(Path(r.shared.out) / "data.zarr")})
        print(records[-1], flush=True)
    write_results(args.out, "float32_storage", records, config=Path(args.config).name,
                  note="float32: the float64 trajectories rounded at storage (the integrator is float64 in both). "
                       "label_*: forces on the same atoms of the same snapshots at the float32 vs float64 state; "
                       "z_rel_rms_diff: the float64 run's closure variables at both states, rms difference over their "
                       "spread. rollout_rel_error: the point trained on each storage with the same seeds (members' "
                       "mean; std over members).")
    print_table(records, COLUMNS)


if __name__ == "__main__":
    main()
