"""Predator–prey budget study (Figure 2 of the paper): L_z, L_x, L_x,p at equal force budgets.

For each seed the trajectories and the closure autoencoder are shared by every
(loss, budget) run, so the losses are compared on the same closure; each run then
labels its own configurations and trains its own model.

    python benchmarks/predator_prey_budget.py [--budgets 60000 150000 300000] [--seeds 1 2]

Writes benchmarks/results/predator_prey_budget.json and predator_prey_budget.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from common import write_results  # noqa: E402
from macrodyn import Run, load_config  # noqa: E402
from macrodyn.pipeline import closure_stage, run_on_shared, simulate  # noqa: E402

HERE = Path(__file__).parent
LOSSES = [("L_z", 1.0), ("L_x", 1.0), ("L_xp", 0.5), ("L_xp", 0.2)]
# METHOD.md §5 reference (mean of 3 seeds) at n·p = budget / 100
REFERENCE = {"L_z": {600: 1.85e-2, 1500: 9.58e-3, 3000: 3.19e-3, 6000: 1.24e-3, 24000: 7.93e-4},
             "L_x p=1": {600: 1.09e-2, 1500: 4.70e-3, 3000: 2.90e-3, 6000: 1.24e-3, 24000: 6.76e-4},
             "L_xp p=0.5": {600: 9.22e-3, 1500: 3.30e-3, 3000: 1.57e-3, 6000: 1.46e-3, 24000: 6.98e-4},
             "L_xp p=0.2": {600: 4.00e-3, 1500: 1.92e-3, 3000: 1.34e-3, 6000: 1.13e-3, 24000: 5.70e-4}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "predator_prey.yaml"))
    ap.add_argument("--budgets", type=int, nargs="+", default=[60_000, 150_000, 300_000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", default="runs/predator_prey_budget")
    ap.add_argument("--name", default="predator_prey_budget")
    ap.add_argument("--epochs", type=int, default=None, help="cap on dynamics epochs (default: the config's)")
    ap.add_argument("--stop-patience", type=int, default=None, help="early stopping (default: the config's)")
    ap.add_argument("--batch-size", type=int, default=None, help="dynamics batch size (default: the config's)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: these models are small; extra threads only spin under load)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_config(args.config)
    for field, value in (("epochs", args.epochs), ("stop_patience", args.stop_patience),
                         ("batch_size", args.batch_size)):
        if value is not None:
            setattr(base.training, field, value)
    work = Path(args.work)
    records = []
    shared = {}
    for seed in args.seeds:  # trajectories and closure once per seed
        shared_cfg = load_config(args.config)  # the overrides above concern training only
        shared[seed] = Run(shared_cfg.model_copy(update={"seed": seed}, deep=True), work / f"seed{seed}" / "shared",
                           progress=False)
        simulate(shared[seed])
        closure_stage(shared[seed])
    for budget in args.budgets:  # budget-major, so partial results cover every loss and seed
        for loss, p in LOSSES:
            for seed in args.seeds:
                cfg = base.model_copy(deep=True)
                cfg.seed = seed
                cfg.training.loss, cfg.training.p, cfg.training.budget = loss, p, budget
                out = work / f"seed{seed}" / f"{loss}_p{p}_b{budget}"
                run, m = run_on_shared(shared[seed].out, cfg, out)
                rec = {"loss": loss, "p": p, "budget": budget, "seed": seed, "n_configs": m["n_configs"],
                       "force_evaluations": m["force_evaluations"], "rollout_rel_error": m["rollout_rel_error"],
                       # stage times are accumulated over resumed invocations
                       "wall_seconds": round(sum(m["stage_seconds"].get(k, 0.0)
                                                 for k in ("label", "dynamics", "evaluate")), 2)}
                records.append(rec)
                print(rec, flush=True)
                # after every run, so partial results survive
                write_results(args.name, records,
                              training=base.training.model_dump(include={"epochs", "stop_patience", "batch_size", "lr"}))
                plot(records, HERE / "results" / f"{args.name}.png")


def plot(records: list[dict], path: Path) -> None:
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (loss, p) in enumerate(LOSSES):
        label = "L_z" if loss == "L_z" else ("L_x p=1" if loss == "L_x" else f"L_xp p={p:g}")
        rs = [r for r in records if r["loss"] == loss and r["p"] == p]
        budgets = sorted({r["budget"] for r in rs})
        errs = [[r["rollout_rel_error"] for r in rs if r["budget"] == b] for b in budgets]
        ax.errorbar(np.array(budgets) / 100, [np.mean(e) for e in errs], yerr=[np.std(e) for e in errs],
                    marker="o", color=f"C{i}", label=f"{label} (macrodyn)", capsize=3)
        ref = REFERENCE.get(label, {})
        ax.plot(list(ref), list(ref.values()), ls=":", marker="x", color=f"C{i}", alpha=0.7, label=f"{label} (paper)")
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
