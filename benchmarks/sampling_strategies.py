"""Sampling strategies (issue 6): fixed uniform subsets (paper) vs importance sampling vs on-demand labelling.

Predator–prey, L_x,p with p = 0.2, at equal force budgets. Per seed the trajectories and
the closure are shared by every (strategy, budget) run (``run_on_shared``); each run draws
its own labels and trains its own model. The default schedule is the predator-prey
config's (1000 training trajectories, 2000 epochs) with early stopping after 100 epochs
without improvement and batch 256, so that 36 runs fit in about half an hour on 2 cores.
``--resume`` keeps the records already written and runs only the missing ones.

    python benchmarks/sampling_strategies.py [--budgets 30000 60000 150000] [--seeds 1 2 3]

Writes benchmarks/results/sampling_strategies.json (records ``system, strategy, seed,
budget, error_at_budget, evaluations_to_tol, force_evaluations``) and .png.
``evaluations_to_tol`` is the smallest tested budget whose error is ≤ E_TOL for that
(strategy, seed) (None if none is); it is repeated on every record of the pair.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import read_records, write_results  # noqa: E402
from macrodyn import Run, load_config  # noqa: E402
from macrodyn.pipeline import closure_stage, run_on_shared, simulate  # noqa: E402

HERE = Path(__file__).parent
E_TOL = 3e-3
# name -> (training.sampling, training.labelling)
STRATEGIES = {"fixed-uniform (paper)": ("uniform", "fixed"),
              "fixed-importance": ("importance", "fixed"),
              "on_demand-uniform": ("uniform", "on_demand"),
              "on_demand-importance": ("importance", "on_demand")}


def small(cfg, args):
    """The schedule of this study (same for every strategy; closure fitted on 20 000 snapshots)."""
    cfg.data.n_train_trajectories = args.train_trajectories
    cfg.data.n_test_trajectories = args.test_trajectories
    cfg.closure.max_configs = 20_000
    cfg.training.epochs = args.epochs
    cfg.training.stop_patience = args.stop_patience
    cfg.training.lr_patience = max(5, args.stop_patience // 2)
    cfg.training.batch_size = args.batch_size
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "predator_prey.yaml"))
    ap.add_argument("--budgets", type=int, nargs="+", default=[30_000, 60_000, 150_000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--stop-patience", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--train-trajectories", type=int, default=1000)
    ap.add_argument("--test-trajectories", type=int, default=100)
    ap.add_argument("--work", default="runs/sampling_full")
    ap.add_argument("--name", default="sampling_strategies")
    ap.add_argument("--resume", action="store_true",
                    help="keep the records already in results/NAME.json and run only the missing ones")
    args = ap.parse_args()
    schedule = (f"epochs {args.epochs}, stop_patience {args.stop_patience}, batch {args.batch_size}, "
                f"{args.train_trajectories} train / {args.test_trajectories} test trajectories, closure on 20000 snapshots")
    base = small(load_config(args.config), args)
    work = Path(args.work)
    shared = {}
    for seed in args.seeds:
        shared[seed] = Run(base.model_copy(update={"seed": seed}, deep=True), work / f"seed{seed}" / "shared",
                           progress=False)
        simulate(shared[seed])
        closure_stage(shared[seed])
    records = read_records(args.name) if args.resume else []
    have = {(r["strategy"], r["seed"], r["budget"]) for r in records}
    for budget in args.budgets:
        for name in args.strategies:
            sampling, labelling = STRATEGIES[name]
            for seed in args.seeds:
                if (name, seed, budget) in have:
                    continue
                cfg = base.model_copy(deep=True)
                cfg.seed = seed
                cfg.training.budget, cfg.training.sampling, cfg.training.labelling = budget, sampling, labelling
                out = work / f"seed{seed}" / f"{sampling}_{labelling}_b{budget}"
                t0 = time.perf_counter()
                run, m = run_on_shared(shared[seed].out, cfg, out)
                records.append({"system": "predator_prey", "strategy": name, "seed": seed, "budget": budget,
                                "force_evaluations": m["force_evaluations"],
                                "counter_labels": run.system.counter.labels,
                                "error_at_budget": m["rollout_rel_error"],
                                "wall_seconds": round(time.perf_counter() - t0, 1)})
                print(records[-1], flush=True)
                finish(records, args.name, schedule)


def finish(records: list[dict], name: str, schedule: str) -> None:
    for r in records:
        done = sorted((q["budget"], q["error_at_budget"]) for q in records
                      if q["strategy"] == r["strategy"] and q["seed"] == r["seed"])
        r["evaluations_to_tol"] = next((b for b, e in done if e <= E_TOL), None)
    write_results(name, records, e_tol=E_TOL, schedule=schedule)
    plot(records, HERE / "results" / f"{name}.png")


def plot(records: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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
    ax.set_title("predator–prey, L_x,p p=0.2")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
