"""Allen–Cahn at equal force budget: L_x,p (p = 1/25) vs L_z (docs/method.md).

The paper compares L_z on 2 500 configurations × 40 000 grid points (1.0e8 force
evaluations) with L_x,p on 40 000 configurations × 1 600 points (6.4e7) at 200 × 200.
Here both losses get the *same* budget, on the scaled config (configs/allen_cahn.yaml):
L_x,p labels ``budget / (N/25)`` configurations, L_z ``budget / N`` configurations
with every force. For each seed the trajectories and the closure autoencoder are
shared by both runs (a grid of ``macrodyn.study.run_grid``, data key ``seedS``), so the
losses are compared on the same data and closure; each run labels its own configurations
and trains its own model. L_z uses the paper's L_z optimiser settings (lr 5e-3, batch 256).

    python benchmarks/allen_cahn_study.py [--seeds 1 2 3] [--budget B]
    python benchmarks/allen_cahn_study.py --smoke [--out DIR]
    python benchmarks/allen_cahn_study.py --analyse-only     # the summary from the JSON

Writes OUT/allen_cahn_study.json (after every run, so partial results survive an
interruption; rerunning reads finished runs back from ``--work``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import CONFIGS, need_results, parse, parser, print_table, tiny, write_results
from macrodyn import load_config
from macrodyn.study import GridPoint, iter_grid, reference

LOSSES = ("L_xp", "L_z")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/allen_cahn_study")
    ap.add_argument("--config", default=str(CONFIGS / "allen_cahn.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--budget", type=int, default=None, help="force evaluations per run (default: the config's)")
    ap.add_argument("--lz-lr", type=float, default=5e-3, help="L_z learning rate (paper: 5e-3)")
    ap.add_argument("--lz-batch", type=int, default=256, help="L_z batch size (paper: 256)")
    ap.add_argument("--lz-activation", default=None, help="L_z model activation (default: the config's)")
    ap.add_argument("--name", default="allen_cahn_study")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, args.name))
    base = load_config(args.config)
    if base.training.loss != "L_xp":
        raise SystemExit(f"{args.config}: expected an L_xp config (the L_z runs are derived from it)")
    if args.smoke:  # 12 × 12 grid: L_z labels 10 configurations, L_x,p 6 points of each of 240
        base, args.seeds, args.budget, args.lz_batch = tiny(base, n_train=16, snapshots=20), [1], 12 * 12 * 10, 32
    budget = args.budget or base.training.budget
    shared = {f"seed{seed}": base.model_copy(update={"seed": seed}, deep=True) for seed in args.seeds}
    points = []
    for seed in args.seeds:
        for loss in LOSSES:
            cfg = base.model_copy(deep=True)
            cfg.seed = seed
            cfg.training.loss, cfg.training.budget = loss, budget
            if loss == "L_z":
                cfg.training.p, cfg.training.lr, cfg.training.batch_size = 1.0, args.lz_lr, args.lz_batch
                cfg.model.activation = args.lz_activation or cfg.model.activation
            points.append(GridPoint(f"{loss}_b{budget}", cfg, data=f"seed{seed}"))
    records = []
    for res in iter_grid(points, shared, args.work, desc="Allen-Cahn study"):
        cfg, m, shared_run = res.run.cfg, res.metrics, res.shared
        records.append({"loss": cfg.training.loss, "p": cfg.training.p, "activation": cfg.model.activation,
                        "budget": budget, "seed": cfg.seed, "n_configs": m["n_configs"],
                        "force_evaluations": m["force_evaluations"], "rollout_rel_error": m["rollout_rel_error"],
                        "rollout_rel_error_max_trajectory": m["rollout_rel_error_max_trajectory"],
                        "wall_seconds": round(res.seconds, 1),
                        # stage times are accumulated in the run folders, so they survive resuming
                        "shared_simulate_closure_seconds": round(
                            shared_run.timings.get("simulate", 0.0) + shared_run.timings.get("closure", 0.0), 1)})
        print(records[-1], flush=True)
        write_results(args.out, args.name, records, config=Path(args.config).name, summary=summary(records),
                      reference_200x200=reference("allen_cahn_200x200"),
                      note="wall_seconds: label + dynamics + evaluate of that run (trajectories and closure "
                           "shared per seed, timed in shared_simulate_closure_seconds); 2-core machine shared "
                           "with other jobs, so timings are upper bounds")
    analyse(need_results(args.out, args.name))


def summary(records: list[dict]) -> dict:
    """Mean ± std of the rollout error over seeds, per loss."""
    out = {}
    for loss in LOSSES:
        e = [r["rollout_rel_error"] for r in records if r["loss"] == loss]
        if e:
            out[loss] = {"mean": float(np.mean(e)), "std": float(np.std(e)), "n_seeds": len(e)}
    return out


def analyse(doc: dict) -> None:
    """Mean ± std over seeds per loss, beside the paper's 200 × 200 numbers."""
    ref = reference("allen_cahn_200x200")
    rows = [{"loss": loss, **s, "paper_mean": ref[loss]["rollout_rel_error"], "paper_std": ref[loss]["std"]}
            for loss, s in summary(doc["records"]).items()]
    print_table(rows, ["loss", "mean", "std", "n_seeds", "paper_mean", "paper_std"])


if __name__ == "__main__":
    main()
