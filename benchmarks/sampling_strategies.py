"""Sampling strategies (issue 6): fixed uniform subsets (paper) vs importance sampling vs on-demand labelling.

Predator–prey (L_x,p with p = 0.2) or LJ-800 (``--system lj800``: p = 1/16, the MLP of the
LJ-800 study, the config's schedule), at equal force budgets. Per seed the trajectories and
the closure are shared by every (strategy, budget) run (``run_on_shared``); each run draws
its own labels and trains its own model. The default schedule is the predator-prey
config's (1000 training trajectories, 2000 epochs) with early stopping after 100 epochs
without improvement and batch 256, so that 36 runs fit in about half an hour on 2 cores.
``--resume`` keeps the records already written and runs only the missing ones.

    python benchmarks/sampling_strategies.py [--budgets 30000 60000 150000] [--seeds 1 2 3]
    python benchmarks/sampling_strategies.py --system lj800 --budgets 125000 250000 500000 --resume

Writes benchmarks/results/sampling_strategies.json (records ``system, strategy, seed,
budget, error_at_budget, evaluations_to_tol, force_evaluations``) and .png.
``evaluations_to_tol`` is the smallest tested budget whose error is ≤ E_TOL for that
(strategy, seed) (None if none is); it is repeated on every record of the pair.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import RESULTS, read_records, write_results  # noqa: E402
from lj800_study import MODELS  # noqa: E402
from macrodyn import Run, load_config  # noqa: E402
from macrodyn.pipeline import closure_stage, run_on_shared, simulate  # noqa: E402

HERE = Path(__file__).parent
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    ap.add_argument("--work", default=None, help="default: runs/sampling_full (predator-prey), runs/sampling_lj800")
    ap.add_argument("--prepare-only", action="store_true", help="simulate and fit the per-seed closures, then stop")
    ap.add_argument("--name", default="sampling_strategies")
    ap.add_argument("--resume", action="store_true",
                    help="keep the records already in results/NAME.json and run only the missing ones")
    args = ap.parse_args()
    args.config = args.config or str(HERE.parent / "configs" / SYSTEMS[args.system])
    args.work = args.work or ("runs/sampling_full" if args.system == "predator_prey" else "runs/sampling_lj800")
    base = small(load_config(args.config), args)
    t = base.training
    schedule = (f"epochs {t.epochs}, stop_patience {t.stop_patience}, batch {t.batch_size}, select {t.select}, "
                f"model {base.model.kind} {base.model.hidden}, {base.data.n_train_trajectories} train / "
                f"{base.data.n_test_trajectories} test trajectories"
                + (", closure on 20000 snapshots" if args.system == "predator_prey" else ", closure as configured"))
    work = Path(args.work)
    shared = {}
    for seed in args.seeds:
        shared[seed] = Run(base.model_copy(update={"seed": seed}, deep=True), work / f"seed{seed}" / "shared",
                           progress=False)
        simulate(shared[seed])
        closure_stage(shared[seed])
    if args.prepare_only:
        return
    records = read_records(args.name) if args.resume else []
    have = {(r["system"], r["strategy"], r["seed"], r["budget"]) for r in records}
    for budget in args.budgets:
        for name in args.strategies:
            sampling, labelling = STRATEGIES[name]
            for seed in args.seeds:
                if (base.system.name, name, seed, budget) in have:
                    continue
                cfg = base.model_copy(deep=True)
                cfg.seed = seed
                cfg.training.budget, cfg.training.sampling, cfg.training.labelling = budget, sampling, labelling
                out = work / f"seed{seed}" / f"{sampling}_{labelling}_b{budget}"
                t0 = time.perf_counter()
                run, m = run_on_shared(shared[seed].out, cfg, out)
                records.append({"system": base.system.name, "strategy": name, "seed": seed, "budget": budget,
                                "force_evaluations": m["force_evaluations"],
                                "counter_labels": run.system.counter.labels,
                                "error_at_budget": m["rollout_rel_error"],
                                "wall_seconds": round(time.perf_counter() - t0, 1)})
                print(records[-1], flush=True)
                finish(records, args.name, {base.system.name: schedule})


def finish(records: list[dict], name: str, schedule: dict) -> None:
    for r in records:
        done = sorted((q["budget"], q["error_at_budget"]) for q in records
                      if (q["system"], q["strategy"], q["seed"]) == (r["system"], r["strategy"], r["seed"]))
        r["evaluations_to_tol"] = next((b for b, e in done if e <= E_TOL), None)
    old = read_schedule(name)
    write_results(name, records, e_tol=E_TOL, schedule={**old, **schedule})
    plot(records, HERE / "results" / f"{name}.png")


def read_schedule(name: str) -> dict:
    """The per-system schedules already in results/NAME.json ({} if none)."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()).get("schedule", {}) if path.exists() else {}


def plot(records: list[dict], path: Path) -> None:
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
