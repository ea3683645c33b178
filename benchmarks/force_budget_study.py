"""Force budget vs system size (issue 5, the paper's Figure 4) through ``macrodyn study force-budget``.

Two parts, both resumable:

1. the study of ``configs/lj_scaling.yaml`` in ``--work``: per size and loss, the
   smallest training set whose members reach e_tol (``--loss`` runs one loss, so two
   processes, one per loss, can share ``--work``; ``--skip-train`` only collects, and keeps
   the trained points of OUT/NAME.json when ``--work`` holds none);
2. the labelling cost: a label-only study in ``--label-work`` on the same trajectories
   (linked from ``--work``), both losses at ``--label-configs`` configurations, timed with
   nothing else running (``--skip-label`` skips it).

Writes OUT/force_budget_study.json (records ``n_atoms, loss, evaluations_to_tol,
configs_to_tol, labelling_seconds, error_at_tol``; every trained point under ``points``, the
label-only ones under ``labelling_points``) and the figures OUT/force_budget_evaluations.png
and OUT/force_budget_labelling_seconds.png (``--analyse-only`` remakes them from the JSON).

``--name`` writes another results file (NAME.json, NAME_evaluations.png), e.g. for the study
with L_x,p's control variate; ``--compare`` draws another study's results beside it and adds
each record's ratio to that study's L_z (``l_z_evaluations_to_tol``, ``l_z_over_this``):

    python benchmarks/force_budget_study.py [--size 800 --size 2700 --size 6400] [--loss L_xp]
    python benchmarks/force_budget_study.py --config configs/lj_scaling_control.yaml --work runs/lj_control \\
        --name force_budget_study_control --compare benchmarks/results/force_budget_study.json --skip-label
    python benchmarks/force_budget_study.py --config configs/lj_scaling_surrogate.yaml --work runs/lj_surrogate \\
        --name force_budget_study_surrogate --compare benchmarks/results/force_budget_study_full.json --skip-label
    python benchmarks/force_budget_study.py --smoke [--out DIR]   # a tiny predator-prey study, one size
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common import CONFIGS, need_results, parse, parser, print_table, read_results, tiny_study, write_results
from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable
from macrodyn.io import load_json
from macrodyn.run import Run
from macrodyn.run.pool import pick_configs
from macrodyn.study import (labelling_ratio, load_study, plot_evaluations, plot_labelling_seconds, point_config,
                            run_study, shared_folder, size_key)

def warm_page_cache(study, work: Path, sizes: list[int], label_configs: list[int]) -> None:
    """Read the snapshots the label-only points will label once, untimed (both losses label the
    same snapshots, so otherwise whichever runs first pays for the cold disk reads), and load
    the compiled partial-force kernel once (numba's cache, 0.3 s per process)."""
    for n in sizes:
        shared = shared_folder(work, size_key(study, n))
        if (shared / "data.zarr" / "train").exists():
            for n_configs in label_configs:
                run = Run(point_config(study, n, "L_z", n_configs), shared, progress=False)  # touches no file
                x = ChunkedTable.open(run.store, "train").gather(K.TRAJ, pick_configs(run))
            run.system.partial_forces(x[:1], run.system.unit_coords(np.arange(2)[None]))  # numba's JIT cache load


def trained_study(work: Path, out: Path, name: str) -> tuple[dict, str | None]:
    """``--skip-train``: the study in ``work`` and None, or, when ``work`` holds no trained point
    (only label-only runs, or nothing), the trained points of OUT/NAME.json and their commit (the
    labelling can then be re-timed without retraining)."""
    path = work / "study.json"
    res = load_json(path) if path.exists() else {"records": [], "points": []}
    if any(p["rollout_rel_error"] is not None for p in res["points"]):
        return res, None
    old = read_results(out, name)
    if old is None:
        raise SystemExit(f"--skip-train: {work} holds no trained point and there are no results in {out} to keep.")
    return {"records": old["records"], "points": old["points"]}, old.get("trained_commit", old["commit"])


def link_trajectories(study, work: Path, label_work: Path, sizes: list[int]) -> None:
    """The label-only study's shared runs are the training study's (simulated there if missing)."""
    for n in sizes:
        link, target = shared_folder(label_work, size_key(study, n)), shared_folder(work, size_key(study, n))
        if not link.exists() and target.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target.resolve(), link)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/lj_scaling")
    ap.add_argument("--config", default=str(CONFIGS / "lj_scaling.yaml"))
    ap.add_argument("--size", type=int, action="append", dest="sizes", help="sizes to run (default 800 2700 6400)")
    ap.add_argument("--loss", action="append", dest="losses", help="only this loss (repeatable)")
    ap.add_argument("--label-work", type=Path, default=None,
                    help="label-only study (default: runs/lj_scaling_labels; with --smoke: OUT/work_labels)")
    ap.add_argument("--label-configs", type=int, action="append", help="label-only training-set sizes "
                    "(default 1000)")
    ap.add_argument("--skip-train", action="store_true", help="collect the study in --work, train nothing new")
    ap.add_argument("--skip-label", action="store_true", help="no label-only timing")
    ap.add_argument("--name", default="force_budget_study", help="results file OUT/NAME.json")
    ap.add_argument("--compare", help="another study's results JSON, drawn beside this one (its L_z: the ratios)")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, args.name), args.out, args.name)
    if args.smoke:
        args.config = tiny_study(args.work / "smoke_study.yaml")
        args.label_configs = args.label_configs or [250]
    label_work = args.label_work or (args.out / "work_labels" if args.smoke else Path("runs/lj_scaling_labels"))
    study, work = load_study(args.config), args.work
    sizes = args.sizes or ([study.sizes[0]] if args.smoke else [800, 2700, 6400])
    trained_commit = None
    if args.skip_train:
        res, trained_commit = trained_study(work, args.out, args.name)
    else:
        res = run_study(study, work, sizes, losses=args.losses)
    lab = {"points": []}
    if not args.skip_label:
        link_trajectories(study, work, label_work, sizes)
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
    write_results(args.out, args.name, res["records"], points=res["points"], labelling_points=lab["points"],
                  **({"sizes": res["sizes"]} if res.get("sizes") else {}),  # per size: stage seconds, memory, disk
                  **({"compared_with": Path(args.compare).name} if other else {}),
                  config=Path(args.config).name, labelling_ratio_L_z_over_L_xp=ratios,
                  **({"trained_commit": trained_commit} if trained_commit else {}),
                  note="points: trained study points (two processes, one per loss, on the 2 cores); "
                       "labelling_points: label-only runs on the same trajectories, one process, nothing else "
                       "running, after one untimed read of the chosen snapshots (both losses label the same ones) and "
                       "one untimed partial-force call (numba's cache load). "
                       "labelling_seconds: wall time of the label stage (reading the chosen snapshots "
                       "from the trajectory store, force calls, writing forces and snapshot references); "
                       "labelling_force_seconds: time inside the force calls alone. 1 torch thread. trained_commit "
                       "(when present): the commit the kept trained points were measured at (--skip-train re-timed "
                       "only the labelling).")
    analyse(need_results(args.out, args.name), args.out, args.name, compare=other)


def analyse(doc: dict, out: Path, name: str, compare: dict | None = None) -> list[Path]:
    """The figures of OUT/NAME.json (the evaluations to tolerance, beside the study it was compared
    with, read from ``compare`` or OUT/<compared_with>; the labelling seconds when it has
    label-only points) and the records' table."""
    prefix = "force_budget" if name == "force_budget_study" else name
    if compare is None and doc.get("compared_with"):
        compare = read_results(out, Path(doc["compared_with"]).stem)
    records = (compare["records"] if compare else []) + doc["records"]
    figures = [plot_evaluations(records, out / f"{prefix}_evaluations.png")]
    if doc.get("labelling_points"):
        figures.append(plot_labelling_seconds(doc["labelling_points"], out / f"{prefix}_labelling_seconds.png"))
    print_table(doc["records"], ["n_atoms", "loss", "control", "evaluations_to_tol", "configs_to_tol", "error_at_tol",
                                 "reference_evaluations_to_tol"])
    print("labelling time L_z / L_x,p:", doc.get("labelling_ratio_L_z_over_L_xp"))
    return figures


if __name__ == "__main__":
    main()
