"""Force budget vs system size (issue 5, the paper's Figure 4) through ``macrodyn study force-budget``.

Two parts, both resumable:

1. the study of ``configs/lj_scaling.yaml`` in ``--work``: per size and loss, the
   smallest training set whose members reach e_tol (``--loss`` runs one loss, so two
   processes, one per loss, can share ``--work``; ``--skip-train`` only collects, and keeps
   the trained points of the committed JSON when ``--work`` holds none);
2. the labelling cost: a label-only study in ``--label-work`` on the same trajectories
   (linked from ``--work``), both losses at ``--label-configs`` configurations, timed with
   nothing else running (``--skip-label`` skips it).

Writes benchmarks/results/force_budget_study.json (records ``n_atoms, loss,
evaluations_to_tol, configs_to_tol, labelling_seconds, error_at_tol``; every trained
point under ``points``, the label-only ones under ``labelling_points``) and the two
figures as benchmarks/results/force_budget_*.png.

``--name`` writes another results file (NAME.json, NAME_evaluations.png), e.g. for the study
with L_x,p's control variate; ``--compare`` draws another study's results beside it and adds
each record's ratio to that study's L_z (``l_z_evaluations_to_tol``, ``l_z_over_this``):

    python benchmarks/force_budget_study.py [--size 800 --size 2700 --size 6400] [--loss L_xp]
    python benchmarks/force_budget_study.py --config configs/lj_scaling_control.yaml --work runs/lj_control \
        --name force_budget_study_control --compare benchmarks/results/force_budget_study.json --skip-label
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np

from common import RESULTS, write_results
from macrodyn.io import load_json
from macrodyn.study import labelling_ratio, load_study, plot_study, run_study

HERE = Path(__file__).parent


def warm_page_cache(study, work: Path, sizes: list[int], label_configs: list[int]) -> None:
    """Read the snapshots the label-only points will label once, untimed (both losses label the
    same snapshots, so otherwise whichever runs first pays for the cold disk reads), and load
    the compiled partial-force kernel once (numba's cache, 0.3 s per process)."""
    from macrodyn import keys as K
    from macrodyn.data.store import ChunkedTable
    from macrodyn.pipeline import Run, pick_configs
    from macrodyn.study import point_config

    for n in sizes:
        shared = work / f"{study.size_param}{n}" / "shared"
        if (shared / "data.zarr" / "train").exists():
            run = Run(point_config(study, n), shared, progress=False)
            for n_configs in label_configs:
                x = ChunkedTable.open(run.store, "train").gather(K.TRAJ, pick_configs(run, n_configs))
            run.system.partial_forces(x[:1], run.system.unit_coords(np.arange(2)[None]))  # numba's JIT cache load


def trained_study(work: Path, name: str = "force_budget_study") -> tuple[dict, str | None]:
    """``--skip-train``: the study in ``work`` and None, or, when ``work`` holds no trained point
    (only label-only runs, or nothing), the trained points of the committed results and their
    commit (the labelling can then be re-timed without retraining)."""
    path = work / "study.json"
    res = load_json(path) if path.exists() else {"records": [], "points": []}
    if any(p["rollout_rel_error"] is not None for p in res["points"]):
        return res, None
    if not (RESULTS / f"{name}.json").exists():
        raise SystemExit(f"--skip-train: {work} holds no trained point and there are no committed results to keep.")
    old = load_json(RESULTS / f"{name}.json")
    return {"records": old["records"], "points": old["points"]}, old.get("trained_commit", old["commit"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "lj_scaling.yaml"))
    ap.add_argument("--size", type=int, action="append", dest="sizes", help="sizes to run (default 800 2700 6400)")
    ap.add_argument("--loss", action="append", dest="losses", help="only this loss (repeatable)")
    ap.add_argument("--work", default="runs/lj_scaling")
    ap.add_argument("--label-work", default="runs/lj_scaling_labels")
    ap.add_argument("--label-configs", type=int, action="append", help="label-only training-set sizes "
                    "(default 1000)")
    ap.add_argument("--skip-train", action="store_true", help="collect the study in --work, train nothing new")
    ap.add_argument("--skip-label", action="store_true", help="no label-only timing")
    ap.add_argument("--name", default="force_budget_study", help="results file benchmarks/results/NAME.json")
    ap.add_argument("--compare", help="another study's results JSON, drawn beside this one (its L_z: the ratios)")
    args = ap.parse_args()
    study, work, label_work = load_study(args.config), Path(args.work), Path(args.label_work)
    sizes = args.sizes or [800, 2700, 6400]
    trained_commit = None
    if args.skip_train:
        res, trained_commit = trained_study(work, args.name)
    else:
        res = run_study(study, work, sizes, losses=args.losses)
    lab = {"points": []}
    if not args.skip_label:
        for n in sizes:  # the same trajectories as the training study (simulated there if missing)
            link = label_work / f"{study.size_param}{n}" / "shared"
            if not link.exists() and (work / f"{study.size_param}{n}" / "shared").exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink((work / f"{study.size_param}{n}" / "shared").resolve(), link)
        label_configs = args.label_configs or [1000]
        warm_page_cache(study, work, sizes, label_configs)
        lab = run_study(study, label_work, sizes, label_only=True, label_configs=label_configs)
    ratios = {n: {"labelling_wall": labelling_ratio(lab["points"], n),
                  "force_calls": labelling_ratio(lab["points"], n, "labelling_force_seconds")} for n in sizes}
    other = load_json(Path(args.compare)) if args.compare else None
    if other:
        l_z = {r["n_atoms"]: r["evaluations_to_tol"] for r in other["records"] if r["loss"] == "L_z"}
        for r in res["records"]:
            r["l_z_evaluations_to_tol"] = l_z.get(r["n_atoms"])
            r["l_z_over_this"] = (r["l_z_evaluations_to_tol"] / r["evaluations_to_tol"]
                                  if r["l_z_evaluations_to_tol"] and r["evaluations_to_tol"] else None)
    write_results(args.name, res["records"], points=res["points"], labelling_points=lab["points"],
                  **({"compared_with": Path(args.compare).name} if other else {}),
                  config=Path(args.config).name, labelling_ratio_L_z_over_L_xp=ratios,
                  **({"trained_commit": trained_commit} if trained_commit else {}),
                  note="points: trained study points (two processes, one per loss, on the 2 cores); "
                       "labelling_points: label-only runs on the same trajectories, one process, nothing else "
                       "running, after one untimed read of the chosen snapshots (both losses label the same ones) and "
                       "one untimed partial-force call (numba's cache load). "
                       "labelling_seconds: wall time of the label stage (reading the chosen snapshots "
                       "from the trajectory store, force calls, writing forces and snapshot references); "
                       "labelling_force_seconds: time inside the force calls alone. 1 torch thread. trained_commit (when "
                       "present): the commit the kept trained points were measured at (--skip-train re-timed only the "
                       "labelling).")
    prefix = "force_budget" if args.name == "force_budget_study" else args.name
    figures = {label_work / "figures" / "labelling_seconds.png": f"{prefix}_labelling_seconds.png"}
    if other:  # both studies' records in one figure
        plot_study({"records": other["records"] + res["records"], "points": other["points"] + res["points"]},
                   work / "figures_compared")
        figures[work / "figures_compared" / "force_budget.png"] = f"{prefix}_evaluations.png"
    elif trained_commit is None:  # else the committed figure already shows the kept points
        figures[work / "figures" / "force_budget.png"] = f"{prefix}_evaluations.png"
    for src, name in figures.items():
        if src.exists():
            shutil.copy(src, RESULTS / name)
    print(ratios)


if __name__ == "__main__":
    main()
