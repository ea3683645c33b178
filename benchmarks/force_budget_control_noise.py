"""Label noise of L_x,p with and without the control variate (training.control: snapshots).

For each given L_x,p point folder (its labels table and closure), ``--configs`` of its labelled
configurations get every force computed; then, for the window sizes asked, the rate each
configuration's loss pulls ``g`` toward, ``argmin_v ||J⁺_I v − f'_I||²`` (``f' = f`` without the
control, ``f_I − c_I + J⁺_I J c`` with it), and the plain estimate (``JF_ESTIMATE``) are compared
with the exact ``J f``: rms error over the spread of ``J f`` across the configurations, for T and
(median over components) the closure. The prediction ``c`` uses the point's whole labels table,
as training does. No training. Cost, per window: ``control_build_seconds`` (the window sums and
the scales, from the whole table), ``control_predict_seconds`` (``c`` for every labelled
configuration, in the labels' chunks, as ``features_for`` does) and ``features_seconds`` (the
checked configurations' features, with or without ``c``).

Writes OUT/force_budget_control_noise.json.

    python benchmarks/force_budget_control_noise.py --point runs/lj_control/n_atoms6400/L_xp_c12000 \\
        [--point ...] [--configs 100] [--window 6 --window 12 --window 25]
    python benchmarks/force_budget_control_noise.py --smoke [--out DIR]   # a tiny predator-prey point first
    python benchmarks/force_budget_control_noise.py --analyse-only        # the table from the JSON
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from common import need_results, parse, parser, print_table, tiny_study, write_results
from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable
from macrodyn.run import Run
from macrodyn.run.closure import load_closure
from macrodyn.run.pool import labelled_configs
from macrodyn.study import load_study, run_study
from macrodyn.training.control import SnapshotControl
from macrodyn.training.features import compute_features

COLUMNS = ["n_atoms", "point", "control", "window", "fit_T_over_spread", "fit_closure_over_spread_median",
           "estimate_T_over_spread", "estimate_closure_over_spread_median", "control_build_seconds",
           "control_predict_seconds", "features_seconds"]


def noise(point: Path, n_configs: int, windows: list[int], seed: int = 0) -> list[dict]:
    run = Run.open(point, progress=False)
    ae = load_closure(run)
    table = ChunkedTable.open(run.store, "labels")
    lab = table.read()
    rows = np.sort(np.random.default_rng(seed).choice(len(lab[K.WHERE]), n_configs, replace=False))
    x = labelled_configs(run, {K.WHERE: lab[K.WHERE][rows]})
    n = run.system.n_coords
    every = np.broadcast_to(np.arange(n), (len(x), n)).copy()
    exact = compute_features(ae, x, every, run.system.forces(x), rows=False, dtype=torch.float64)[K.JF]
    spread = exact.std(0)
    params = run.cfg.system.params
    out = []
    for w in [None, *windows]:
        t0 = time.perf_counter()
        ctl = None if w is None else SnapshotControl(lab[K.WHERE], lab[K.INDEX], lab[K.FORCES], n, run.n_saved, w,
                                                      run.system.coords_per_unit)
        t1 = time.perf_counter()
        if ctl is not None:
            for ch in range(table.n_chunks):
                ctl(np.arange(table.n_rows)[table.chunk_slice(ch)])
        c = None if ctl is None else ctl(rows)
        t2 = time.perf_counter()
        ft = compute_features(ae, x, lab[K.INDEX][rows], lab[K.FORCES][rows], control=c, dtype=torch.float64)
        t3 = time.perf_counter()
        fit = torch.linalg.lstsq(ft[K.PINV_ROWS], ft[K.FORCES].unsqueeze(-1)).solution.squeeze(-1)
        rel = lambda e: ((e - exact).pow(2).mean(0).sqrt() / spread).numpy()  # noqa: E731
        r_fit, r_est = rel(fit), rel(ft[K.JF_ESTIMATE])
        name = f"{point.parent.parent.name}/{point.parent.name}/{point.name}"
        out.append({"n_atoms": run.system.n_units, "point": name,
                    "n_configs": len(lab[K.WHERE]), "configs_checked": n_configs,
                    "shared_placement": params.get("placement_seed") is not None,
                    "shared_velocities": params.get("velocity_seed") is not None,
                    "control": "none" if w is None else "snapshots", "window": w,
                    "beta": None if ctl is None else ctl.beta.tolist(),
                    "fit_T_over_spread": float(r_fit[0]), "fit_closure_over_spread_median": float(np.median(r_fit[1:])),
                    "estimate_T_over_spread": float(r_est[0]),
                    "estimate_closure_over_spread_median": float(np.median(r_est[1:])),
                    "control_build_seconds": None if ctl is None else t1 - t0,
                    "control_predict_seconds": None if ctl is None else t2 - t1,  # all rows, then the checked
                    "features_seconds": t3 - t2})
        print(out[-1], flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="")
    ap.add_argument("--point", action="append", help="an L_x,p point folder (labels, closure; required, repeatable)")
    ap.add_argument("--configs", type=int, default=100, help="labelled configurations checked per point")
    ap.add_argument("--window", type=int, action="append", help="control windows (default 12)")
    ap.add_argument("--name", default="force_budget_control_noise", help="results file OUT/NAME.json")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    torch.set_num_threads(1)
    if args.smoke:  # one L_x,p point of a tiny study with the control variate
        study = load_study(tiny_study(args.work / "smoke_study.yaml", {"control": "snapshots", "control_window": 2},
                                      sizes=[8], losses=["L_xp"]))
        run_study(study, args.work, progress=False)
        args.point, args.configs, args.window = [str(args.work / "n8" / "L_xp_c250")], 20, [2]
    if not args.point:
        ap.error("--point is required")
    records = [r for p in args.point for r in noise(Path(p), args.configs, args.window or [12])]
    write_results(args.out, args.name, records,
                  note="rms error of the rate L_x,p's loss fits per configuration (fit_*) and of its J f estimate "
                       "(estimate_*), over the spread of the exact J f across the checked configurations; T and the "
                       "median over closure components. control none: the paper's L_x,p; snapshots: the control "
                       "variate with the given window, built from the point's whole labels table.")
    print_table(records, COLUMNS)


if __name__ == "__main__":
    main()
