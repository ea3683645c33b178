"""The force-budget study at the paper's full scale, 21 600 and 51 200 atoms, beside the sizes
measured before (800, 2 700, 6 400).

At ``--size`` (default 21 600 and 51 200), all resumable and read back when finished:

1. the main study (``configs/lj_scaling.yaml``) in ``--work``: L_z, and the paper's L_x,p
   unless ``--no-plain``;
2. the control study (``configs/lj_scaling_control.yaml``, L_x,p with the snapshot control
   variate) in ``--work-control``, whose shared folders are links to ``--work``'s (one copy of
   the trajectories and the closure);
3. label-only timing of both losses at ``--label-configs`` (default 500) training
   configurations on the same trajectories, in ``--label-work`` (``--skip-label``: none).

The study CLI can do 1 and 2 in parallel processes beforehand (``--loss L_z`` and the control
study); this script then only reads them back. Writes OUT/force_budget_study_full.json:

- ``records``: one per (size, loss, control) for all five sizes, ``{n_atoms, loss, control,
  evaluations_to_tol, configs_to_tol, error_at_tol, error_at_tol_std, reference_evaluations_to_tol,
  source}``: the sizes measured here (``source`` "this run") and the others from
  OUT/force_budget_study.json and OUT/force_budget_study_control.json;
- ``sizes``: per size measured here, disk and trajectory bytes, and seconds and peak resident
  memory per stage (simulate and closure of the shared run; label, features and the fits,
  largest over the size's points);
- ``points``, ``labelling_points`` and ``labelling_ratio_L_z_over_L_xp`` as in the study's JSON.

Figures: OUT/force_budget_full_evaluations.png (all sizes, with the paper's, and the surrogate
studies' L_x,p points from OUT/force_budget_study_surrogate.json and
OUT/force_budget_study_surrogate_2sigma.json when they are there) and
OUT/force_budget_full_stages.png (seconds per stage vs size).

    python benchmarks/force_budget_full.py [--size 21600 --size 51200] [--no-plain]
    python benchmarks/force_budget_full.py --smoke [--out DIR]     # a tiny predator-prey study
    python benchmarks/force_budget_full.py --analyse-only
"""
from __future__ import annotations

import os
from pathlib import Path

from common import CONFIGS, need_results, parse, parser, print_table, read_results, tiny_study, write_results
from macrodyn.study import (labelling_ratio, load_study, plot_evaluations, run_study, shared_folder, size_key)

NAME = "force_budget_study_full"
EARLIER = ("force_budget_study", "force_budget_study_control")
#: studies drawn beside this one in its figure, results file -> how the legend names their control
#: (L_x,p with the surrogate control, each its own config: a 1.5σ and a 2.0σ truncated LJ)
BESIDE = {"force_budget_study_surrogate": "surrogate 1.5σ", "force_budget_study_surrogate_2sigma": "surrogate 2.0σ"}
RECORD = ["n_atoms", "loss", "control", "evaluations_to_tol", "configs_to_tol", "error_at_tol", "error_at_tol_std",
          "largest_tried_evaluations", "best_error", "reference_evaluations_to_tol", "source"]


def link_shared(study, work: Path, other: Path, sizes: list[int]) -> None:
    """``other``'s shared runs are links to ``work``'s (the same trajectories and closure)."""
    for n in sizes:
        link, target = shared_folder(other, size_key(study, n)), shared_folder(work, size_key(study, n))
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            target.mkdir(parents=True, exist_ok=True)
            os.symlink(target.resolve(), link)


def earlier_records(out: Path, sizes: list[int]) -> list[dict]:
    """The committed records of the sizes not measured here."""
    recs = []
    for name in EARLIER:
        doc = read_results(out, name) or {"records": [], "commit": None}
        recs += [{**{k: r.get(k, "none" if k == "control" else None) for k in RECORD},
                  "source": f"{name}.json ({doc['commit']})"} for r in doc["records"] if r["n_atoms"] not in sizes]
    return recs


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/lj_scaling")
    ap.add_argument("--size", type=int, action="append", dest="sizes", help="sizes (default 21600 51200)")
    ap.add_argument("--work-control", type=Path, default=None, help="control study (default runs/lj_control)")
    ap.add_argument("--label-work", type=Path, default=None, help="label-only study (default runs/lj_scaling_labels)")
    ap.add_argument("--label-configs", type=int, action="append", help="label-only training-set sizes (default 500)")
    ap.add_argument("--no-plain", action="store_true", help="no plain L_x,p points (L_z and the control only)")
    ap.add_argument("--skip-label", action="store_true", help="no label-only timing")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, NAME), args.out)
    config, control_config = CONFIGS / "lj_scaling.yaml", CONFIGS / "lj_scaling_control.yaml"
    if args.smoke:
        config = tiny_study(args.work / "smoke_study.yaml")
        control_config = tiny_study(args.work / "smoke_control.yaml", training={"control": "snapshots"},
                                    losses=["L_xp"])
        args.sizes, args.label_configs = [12], [250]
    sizes = args.sizes or [21600, 51200]
    work_control = args.work_control or (args.out / "work_control" if args.smoke else Path("runs/lj_control"))
    label_work = args.label_work or (args.out / "work_labels" if args.smoke else Path("runs/lj_scaling_labels"))
    study, control = load_study(config), load_study(control_config)
    main_res = run_study(study, args.work, sizes, losses=["L_z"] if args.no_plain else None)
    link_shared(study, args.work, work_control, sizes)
    control_res = run_study(control, work_control, sizes)
    lab = {"points": []}
    if not args.skip_label:
        link_shared(study, args.work, label_work, sizes)
        lab = run_study(study, label_work, sizes, label_only=True, label_configs=args.label_configs or [500])
    ratios = {n: {"labelling_wall": labelling_ratio(lab["points"], n),
                  "force_calls": labelling_ratio(lab["points"], n, "labelling_force_seconds")} for n in sizes}
    here = [{**{k: r.get(k) for k in RECORD}, "source": "this run"}
            for r in main_res["records"] + control_res["records"]]
    records = sorted(earlier_records(args.out, sizes) + here,
                     key=lambda r: (r["n_atoms"], r["loss"], r["control"] or "none"))
    write_results(args.out, NAME, records, sizes=main_res["sizes"], points=main_res["points"] + control_res["points"],
                  labelling_points=lab["points"], labelling_ratio_L_z_over_L_xp=ratios,
                  configs=[Path(config).name, Path(control_config).name],
                  note="sizes measured here: the two studies' points trained in parallel processes on the 2 cores "
                       "(L_z; L_x,p with the control; plain L_x,p), so stage seconds include sharing the cores. "
                       "labelling_points: label-only runs of both losses on the same snapshots. Trajectories stored "
                       "as float32 (data.dtype; benchmarks/float32_storage.py measures the effect). Records of other "
                       "sizes: copied from the named results file (source).")
    analyse(need_results(args.out, NAME), args.out)


def analyse(doc: dict, out: Path) -> list[Path]:
    """The figures of OUT/force_budget_study_full.json and its tables; the evaluations figure also
    draws the L_x,p points of the studies in ``BESIDE`` that OUT holds (their own configs and JSON)."""
    beside = [{**r, "control": label} for name, label in BESIDE.items()
              for r in (read_results(out, name) or {"records": []})["records"] if r["loss"] == "L_xp"]
    figures = [plot_evaluations(doc["records"] + beside, out / "force_budget_full_evaluations.png"),
               plot_stages(doc["sizes"], out / "force_budget_full_stages.png")]
    print_table(doc["records"], RECORD[:-1])
    rows = [{"n_atoms": s["n_atoms"], "disk_gb": s["disk_bytes"] / 1e9,
             **{f"{k}_s": v for k, v in s["stage_seconds"].items()},
             **{f"{k}_gb": v for k, v in s["stage_peak_rss_gb"].items()}} for s in doc["sizes"]]
    print_table(rows, list(dict.fromkeys(k for r in rows for k in r)))
    print("labelling time L_z / L_x,p:", doc.get("labelling_ratio_L_z_over_L_xp"))
    return figures


def plot_stages(sizes: list[dict], path: Path) -> Path:
    """Seconds per stage vs size (log-log), from the ``sizes`` records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    stages = sorted({k for s in sizes for k in s["stage_seconds"]})
    for i, stage in enumerate(stages):
        pts = sorted((s["n_atoms"], s["stage_seconds"][stage]) for s in sizes if s["stage_seconds"].get(stage))
        if pts:
            ax.loglog(*zip(*pts), "o-", color=f"C{i}", label=stage)
    ax.set(xlabel="atoms N", ylabel="seconds", title="where the time goes (per stage)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
