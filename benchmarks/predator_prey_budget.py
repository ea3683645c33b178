"""Predator–prey budget study (Figure 2 of the paper): L_z, L_x, L_x,p at equal force budgets.

For each seed the trajectories and the closure autoencoder are shared by every
(loss, budget) run (a grid of ``macrodyn.study.run_grid``, data key ``seedS``), so the
losses are compared on the same closure; each run then labels its own configurations and
trains its own model. Rerunning reads finished runs back from ``--work``.

    python benchmarks/predator_prey_budget.py [--budgets 60000 150000 300000] [--seeds 1 2]
    python benchmarks/predator_prey_budget.py --smoke [--out DIR]
    python benchmarks/predator_prey_budget.py --analyse-only      # the figure from the JSON

Writes OUT/predator_prey_budget.json (records ``loss, p, budget, seed, n_configs,
force_evaluations, rollout_rel_error, wall_seconds``) and OUT/predator_prey_budget.png.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common import CONFIGS, need_results, parse, parser, print_table, tiny, write_results
from macrodyn import load_config
from macrodyn.study import GridPoint, iter_grid, reference

LOSSES = [("L_z", 1.0), ("L_x", 1.0), ("L_xp", 0.5), ("L_xp", 0.2)]


def label_of(loss: str, p: float) -> str:
    """The loss's name in the figure and in reference.yaml's ``predator_prey_budget``."""
    return "L_z" if loss == "L_z" else ("L_x p=1" if loss == "L_x" else f"L_xp p={p:g}")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/predator_prey_budget")
    ap.add_argument("--config", default=str(CONFIGS / "predator_prey.yaml"))
    ap.add_argument("--budgets", type=int, nargs="+", default=[60_000, 150_000, 300_000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--name", default="predator_prey_budget")
    ap.add_argument("--epochs", type=int, default=None, help="cap on dynamics epochs (default: the config's)")
    ap.add_argument("--stop-patience", type=int, default=None, help="early stopping (default: the config's)")
    ap.add_argument("--batch-size", type=int, default=None, help="dynamics batch size (default: the config's)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: these models are small; extra threads only spin under load)")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, args.name), args.out / f"{args.name}.png")
    torch.set_num_threads(args.threads)
    data_cfg = load_config(args.config)  # the shared runs': the overrides below concern training only
    if args.smoke:
        data_cfg, args.budgets, args.seeds = tiny(data_cfg), [160], [1]
    base = data_cfg.model_copy(deep=True)
    for field, value in (("epochs", args.epochs), ("stop_patience", args.stop_patience),
                         ("batch_size", args.batch_size)):
        if value is not None:
            setattr(base.training, field, value)
    shared = {f"seed{seed}": data_cfg.model_copy(update={"seed": seed}, deep=True) for seed in args.seeds}
    points = []
    for budget in args.budgets:  # budget-major, so partial results cover every loss and seed
        for loss, p in LOSSES:
            for seed in args.seeds:
                cfg = base.model_copy(deep=True)
                cfg.seed = seed
                cfg.training.loss, cfg.training.p, cfg.training.budget = loss, p, budget
                points.append(GridPoint(f"{loss}_p{p}_b{budget}", cfg, data=f"seed{seed}"))
    records = []
    training = base.training.model_dump(include={"epochs", "stop_patience", "batch_size", "lr"})
    for res in iter_grid(points, shared, args.work, desc="predator-prey budget"):
        t, m = res.run.cfg.training, res.metrics
        records.append({"loss": t.loss, "p": t.p, "budget": t.budget, "seed": res.run.cfg.seed,
                        "n_configs": m["n_configs"], "force_evaluations": m["force_evaluations"],
                        "rollout_rel_error": m["rollout_rel_error"],
                        # stage times are accumulated over resumed invocations
                        "wall_seconds": round(res.seconds, 2)})
        # after every run, so partial results survive
        write_results(args.out, args.name, records, training=training)
    analyse(need_results(args.out, args.name), args.out / f"{args.name}.png")


def analyse(doc: dict, figure: Path) -> None:
    """The figure (error vs n·p, mean ± std over seeds, with the paper's) and a table."""
    records = doc["records"]
    rows = []
    for loss, p in LOSSES:
        for b in sorted({r["budget"] for r in records if (r["loss"], r["p"]) == (loss, p)}):
            e = [r["rollout_rel_error"] for r in records if (r["loss"], r["p"], r["budget"]) == (loss, p, b)]
            rows.append({"loss": label_of(loss, p), "budget": b, "seeds": len(e), "mean": float(np.mean(e)),
                         "std": float(np.std(e))})
    print_table(rows, ["loss", "budget", "seeds", "mean", "std"])
    plot(records, figure)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = reference("predator_prey_budget")
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (loss, p) in enumerate(LOSSES):
        label = label_of(loss, p)
        rs = [r for r in records if r["loss"] == loss and r["p"] == p]
        budgets = sorted({r["budget"] for r in rs})
        errs = [[r["rollout_rel_error"] for r in rs if r["budget"] == b] for b in budgets]
        ax.errorbar(np.array(budgets) / 100, [np.mean(e) for e in errs], yerr=[np.std(e) for e in errs],
                    marker="o", color=f"C{i}", label=f"{label} (macrodyn)", capsize=3)
        paper = ref.get(label, {})
        ax.plot(list(paper), list(paper.values()), ls=":", marker="x", color=f"C{i}", alpha=0.7,
                label=f"{label} (paper)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("equivalent full configurations n·p (force evaluations / 100)")
    ax.set_ylabel("rollout relative error")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
