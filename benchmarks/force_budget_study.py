"""Force budget vs system size (issue 5, the paper's Figure 4) through ``macrodyn study force-budget``.

Runs (or resumes) the study of ``configs/lj_scaling.yaml`` in ``--work`` and writes
benchmarks/results/force_budget_study.json (records ``n_atoms, loss, evaluations_to_tol,
configs_to_tol, labelling_seconds, error_at_tol``; every trained or labelled point under
``points``) and the two figures as benchmarks/results/force_budget_*.png.

    python benchmarks/force_budget_study.py [--size 800 --size 2700 --size 6400] [--label-only]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import RESULTS, write_results
from macrodyn.study import labelling_ratio, load_study, run_study

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "lj_scaling.yaml"))
    ap.add_argument("--size", type=int, action="append", dest="sizes", help="sizes to run (default 800 2700 6400)")
    ap.add_argument("--label-only", action="store_true", help="time labelling only, train nothing")
    ap.add_argument("--work", default="runs/lj_scaling")
    args = ap.parse_args()
    sizes = args.sizes or [800, 2700, 6400]
    res = run_study(load_study(args.config), args.work, sizes, label_only=args.label_only)
    ratios = {n: {"labelling_wall": labelling_ratio(res["points"], n),
                  "force_calls": labelling_ratio(res["points"], n, "labelling_force_seconds")} for n in sizes}
    write_results("force_budget_study", res["records"], points=res["points"], config=Path(args.config).name,
                  label_only=args.label_only, labelling_ratio_L_z_over_L_xp=ratios,
                  note="labelling_seconds: wall time of the label stage (gathering the configurations from the "
                       "trajectory store, force calls, writing x and the forces); labelling_force_seconds: time "
                       "inside the force calls alone. One process, 1 torch thread, 2-core machine.")
    for fig in ("force_budget.png", "labelling_seconds.png"):
        src = Path(args.work) / "figures" / fig
        if src.exists():
            shutil.copy(src, RESULTS / f"force_budget_{fig.removesuffix('.png').replace('force_budget', 'evaluations')}.png")
    print(ratios)


if __name__ == "__main__":
    main()
