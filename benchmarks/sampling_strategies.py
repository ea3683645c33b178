"""Sampling strategies (issue 6): fixed uniform subsets (paper) vs importance sampling vs on-demand labelling.

Predator–prey (L_x,p with p = 0.2) or LJ-800 (``--system lj800``: p = 1/16, the MLP of the
LJ-800 study, the config's schedule), at equal force budgets. Per seed the trajectories and
the closure are shared by every (strategy, budget) run (a grid of ``macrodyn.study.run_grid``,
data key ``seedS``); each run draws its own labels and trains its own model. The default
schedule is the predator-prey config's (1000 training trajectories, 2000 epochs) with early
stopping after 100 epochs without improvement and batch 256, so that 36 runs fit in about
half an hour on 2 cores. Finished runs in ``--work`` are read back; ``--resume`` also keeps
the records already in OUT/NAME.json (e.g. the other system's) and runs only the missing ones.

    python benchmarks/sampling_strategies.py [--budgets 30000 60000 150000] [--seeds 1 2 3]
    python benchmarks/sampling_strategies.py --system lj800 --budgets 125000 250000 500000 --resume
    python benchmarks/sampling_strategies.py --smoke [--out DIR]
    python benchmarks/sampling_strategies.py --analyse-only

Writes OUT/sampling_strategies.json (records ``system, strategy, seed, budget,
error_at_budget, evaluations_to_tol, force_evaluations, counter_labels, wall_seconds``) and
OUT/sampling_strategies.png. ``evaluations_to_tol`` is the smallest tested budget whose error
is ≤ E_TOL for that (strategy, seed) (None if none is); it is repeated on every record of the
pair. ``counter_labels``: force evaluations counted while labelling in this process (None for
a run read back); ``wall_seconds``: the run's label + dynamics + evaluate stages.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import CONFIGS, need_results, parse, parser, print_table, read_records, read_results, tiny, write_results
from lj800_study import MODELS
from macrodyn import load_config
from macrodyn.study import GridPoint, iter_grid, prepare_shared, shared_folder

E_TOL = 3e-3
# name -> (training.sampling, training.labelling)
STRATEGIES = {"fixed-uniform (paper)": ("uniform", "fixed"),
              "fixed-importance": ("importance", "fixed"),
              "on_demand-uniform": ("uniform", "on_demand"),
              "on_demand-importance": ("importance", "on_demand")}
SYSTEMS = {"predator_prey": "predator_prey.yaml", "lj800": "lj800.yaml"}


def small(cfg, args):
    """The schedule of this study (same for every strategy; closure fitted on 20 000 snapshots).
    LJ-800 keeps its config's data and schedule, in-process, with the study's MLP."""
    if args.system == "lj800":
        cfg.parallel.scheduler = None
        cfg.threads = 1
        cfg.training.members = 1
        cfg.model = cfg.model.model_validate(MODELS["mlp"])
        return cfg
    cfg.data.n_train_trajectories = args.train_trajectories
    cfg.data.n_test_trajectories = args.test_trajectories
    cfg.closure.max_configs = 20_000
    cfg.training.epochs = args.epochs
    cfg.training.stop_patience = args.stop_patience
    cfg.training.lr_patience = max(5, args.stop_patience // 2)
    cfg.training.batch_size = args.batch_size
    return cfg


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="")  # default: runs/sampling_full (predator-prey), runs/sampling_lj800
    ap.add_argument("--system", default="predator_prey", choices=list(SYSTEMS))
    ap.add_argument("--config", default=None, help="default: configs/predator_prey.yaml or configs/lj800.yaml")
    ap.add_argument("--budgets", type=int, nargs="+", default=[30_000, 60_000, 150_000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    # the schedule options below apply to predator-prey; LJ-800 keeps its config's
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--stop-patience", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--train-trajectories", type=int, default=1000)
    ap.add_argument("--test-trajectories", type=int, default=100)
    ap.add_argument("--prepare-only", action="store_true", help="simulate and fit the per-seed closures, then stop")
    ap.add_argument("--name", default="sampling_strategies")
    ap.add_argument("--resume", action="store_true",
                    help="keep the records already in OUT/NAME.json and run only the missing ones")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, args.name), args.out / f"{args.name}.png")
    args.work = args.work or Path("runs/sampling_full" if args.system == "predator_prey" else "runs/sampling_lj800")
    args.config = args.config or str(CONFIGS / SYSTEMS[args.system])
    if args.smoke:
        base = tiny(load_config(args.config))
        args.budgets, args.seeds = [90], [1]
    else:
        base = small(load_config(args.config), args)
    t = base.training
    schedule = (f"epochs {t.epochs}, stop_patience {t.stop_patience}, batch {t.batch_size}, select {t.select}, "
                f"model {base.model.kind} {base.model.hidden}, {base.data.n_train_trajectories} train / "
                f"{base.data.n_test_trajectories} test trajectories"
                + (", closure on 20000 snapshots" if args.system == "predator_prey" else ", closure as configured"))
    shared = {f"seed{seed}": base.model_copy(update={"seed": seed}, deep=True) for seed in args.seeds}
    if args.prepare_only:
        for key, cfg in shared.items():
            prepare_shared(cfg, shared_folder(args.work, key), progress=True)
        return
    records = read_records(args.out, args.name) if args.resume else []
    have = {(r["system"], r["strategy"], r["seed"], r["budget"]) for r in records}
    points = []
    for budget in args.budgets:
        for name in args.strategies:
            sampling, labelling = STRATEGIES[name]
            for seed in args.seeds:
                if (base.system.name, name, seed, budget) in have:
                    continue
                cfg = base.model_copy(deep=True)
                cfg.seed = seed
                cfg.training.budget, cfg.training.sampling, cfg.training.labelling = budget, sampling, labelling
                points.append(GridPoint(f"{sampling}_{labelling}_b{budget}", cfg, data=f"seed{seed}",
                                        tags={"strategy": name}))
    for res in iter_grid(points, shared, args.work, desc="sampling strategies"):
        m, cfg = res.metrics, res.run.cfg
        records.append({"system": cfg.system.name, "strategy": res.point.tags["strategy"], "seed": cfg.seed,
                        "budget": cfg.training.budget, "force_evaluations": m["force_evaluations"],
                        "counter_labels": res.run.system.counter.labels if res.trained else None,
                        "error_at_budget": m["rollout_rel_error"], "wall_seconds": round(res.seconds, 1)})
        finish(records, args.out, args.name, {base.system.name: schedule})
    analyse(need_results(args.out, args.name), args.out / f"{args.name}.png")


def finish(records: list[dict], out: Path, name: str, schedule: dict) -> None:
    for r in records:
        done = sorted((q["budget"], q["error_at_budget"]) for q in records
                      if (q["system"], q["strategy"], q["seed"]) == (r["system"], r["strategy"], r["seed"]))
        r["evaluations_to_tol"] = next((b for b, e in done if e is not None and e <= E_TOL), None)
    old = (read_results(out, name) or {}).get("schedule", {})  # the other system's schedule stays
    write_results(out, name, records, e_tol=E_TOL, schedule={**old, **schedule})


def analyse(doc: dict, figure: Path) -> None:
    """The figure (error vs budget per strategy, one panel per system) and a table."""
    records = doc["records"]
    rows = []
    for system in sorted({r["system"] for r in records}):
        for name in STRATEGIES:
            for b in sorted({r["budget"] for r in records if (r["system"], r["strategy"]) == (system, name)}):
                e = [r["error_at_budget"] for r in records
                     if (r["system"], r["strategy"], r["budget"]) == (system, name, b)]
                rows.append({"system": system, "strategy": name, "budget": b, "seeds": len(e),
                             "mean": float(np.mean(e)), "std": float(np.std(e))})
    print_table(rows, ["system", "strategy", "budget", "seeds", "mean", "std"])
    plot(records, figure)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r["system"] for r in records}, key=lambda s: s != "predator_prey")
    fig, axes = plt.subplots(1, len(systems), figsize=(6 * len(systems), 4.2), squeeze=False)
    for ax, system in zip(axes[0], systems):
        _panel(ax, [r for r in records if r["system"] == system], system)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _panel(ax, records: list[dict], system: str) -> None:
    for i, name in enumerate(STRATEGIES):
        rs = [r for r in records if r["strategy"] == name]
        if not rs:
            continue
        budgets = sorted({r["budget"] for r in rs})
        errs = [[r["error_at_budget"] for r in rs if r["budget"] == b] for b in budgets]
        ax.errorbar(np.array(budgets) * (1 + 0.03 * i), [np.mean(e) for e in errs], yerr=[np.std(e) for e in errs],
                    marker="o", color=f"C{i}", label=name, capsize=3)
    ax.axhline(E_TOL, color="k", ls=":", lw=1, label="e_tol")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("force evaluations (budget)")
    ax.set_ylabel("rollout relative error (mean ± std over seeds)")
    ax.set_title("predator–prey, L_x,p p=0.2" if system == "predator_prey" else "LJ-800, L_x,p p=1/16, MLP")
    ax.legend(fontsize=7, frameon=False)


if __name__ == "__main__":
    main()
