"""Allen–Cahn at equal force budget: L_x,p (p = 1/25) vs L_z (METHOD.md §5).

The paper compares L_z on 2 500 configurations × 40 000 grid points (1.0e8 force
evaluations) with L_x,p on 40 000 configurations × 1 600 points (6.4e7) at 200 × 200.
Here both losses get the *same* budget, on the scaled config (configs/allen_cahn.yaml):
L_x,p labels ``budget / (N/25)`` configurations, L_z ``budget / N`` configurations
with every force. For each seed the trajectories and the closure autoencoder are
shared by both runs (``macrodyn.pipeline.run_on_shared``), so the losses are compared
on the same data and closure; each run labels its own configurations and trains its
own model. L_z uses the paper's L_z optimiser settings (lr 5e-3, batch 256).

    python benchmarks/allen_cahn_study.py [--seeds 1 2 3] [--budget B]

Writes benchmarks/results/allen_cahn_study.json (after every run, so partial results
survive an interruption; rerunning resumes from the run folders).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import write_results
from macrodyn import Run, load_config
from macrodyn.pipeline import closure_stage, run_on_shared, simulate

HERE = Path(__file__).parent
# METHOD.md §5 (ref), 200 × 200, mean ± std over seeds; budgets differ in the paper
REFERENCE = {"L_z": {"rollout_rel_error": 6.93e-3, "std": 2.80e-3, "n_configs": 2500, "force_evaluations": 1.0e8},
             "L_xp": {"rollout_rel_error": 3.98e-3, "std": 1.58e-3, "n_configs": 40000, "force_evaluations": 6.4e7}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "allen_cahn.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--budget", type=int, default=None, help="force evaluations per run (default: the config's)")
    ap.add_argument("--lz-lr", type=float, default=5e-3, help="L_z learning rate (paper: 5e-3)")
    ap.add_argument("--lz-batch", type=int, default=256, help="L_z batch size (paper: 256)")
    ap.add_argument("--lz-activation", default=None, help="L_z model activation (default: the config's)")
    ap.add_argument("--work", default="runs/allen_cahn_study")
    ap.add_argument("--name", default="allen_cahn_study")
    args = ap.parse_args()
    base = load_config(args.config)
    if base.training.loss != "L_xp":
        raise SystemExit(f"{args.config}: expected an L_xp config (the L_z runs are derived from it)")
    budget = args.budget or base.training.budget
    work = Path(args.work)
    records = []
    for seed in args.seeds:
        shared = Run(base.model_copy(update={"seed": seed}, deep=True), work / f"seed{seed}" / "shared",
                     progress=False)
        simulate(shared)
        closure_stage(shared)
        # stage times are accumulated in the run folders, so they survive resuming
        shared_seconds = round(shared.timings["simulate"] + shared.timings["closure"], 1)
        for loss in ("L_xp", "L_z"):
            cfg = base.model_copy(deep=True)
            cfg.seed = seed
            cfg.training.loss, cfg.training.budget = loss, budget
            if loss == "L_z":
                cfg.training.p, cfg.training.lr, cfg.training.batch_size = 1.0, args.lz_lr, args.lz_batch
                cfg.model.activation = args.lz_activation or cfg.model.activation
            out = work / f"seed{seed}" / f"{loss}_b{budget}"
            run, m = run_on_shared(shared.out, cfg, out)
            rec = {"loss": loss, "p": cfg.training.p, "activation": cfg.model.activation, "budget": budget,
                   "seed": seed, "n_configs": m["n_configs"], "force_evaluations": m["force_evaluations"],
                   "rollout_rel_error": m["rollout_rel_error"],
                   "rollout_rel_error_max_trajectory": m["rollout_rel_error_max_trajectory"],
                   "wall_seconds": round(sum(m["stage_seconds"].get(k, 0.0)
                                             for k in ("label", "dynamics", "evaluate")), 1),
                   "shared_simulate_closure_seconds": shared_seconds}
            records.append(rec)
            print(rec, flush=True)
            write_results(args.name, records, config=Path(args.config).name, summary=summary(records),
                          reference_200x200=REFERENCE,
                          note="wall_seconds: label + dynamics + evaluate of that run (trajectories and closure "
                               "shared per seed, timed in shared_simulate_closure_seconds); 2-core machine shared "
                               "with other jobs, so timings are upper bounds")


def summary(records: list[dict]) -> dict:
    """Mean ± std of the rollout error over seeds, per loss."""
    out = {}
    for loss in ("L_xp", "L_z"):
        e = [r["rollout_rel_error"] for r in records if r["loss"] == loss]
        if e:
            out[loss] = {"mean": float(np.mean(e)), "std": float(np.std(e)), "n_seeds": len(e)}
    return out


if __name__ == "__main__":
    main()
