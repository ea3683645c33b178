"""How much a force-budget study point depends on its draw (issue 5).

A study point's ``rollout_rel_error_std`` is over ensemble members that share one draw of
configurations and labelled atoms, so it leaves out the draw itself. This reruns chosen
points of a finished study (``force_budget_study.py --work``) with other run seeds: each seed
draws its own configurations, atom subsets, selection trajectories and initial weights, on
the same trajectories and closure (the study's shared run of the size: a grid of
``macrodyn.study.run_grid`` with the size's data key), and trains ``--members`` members. For
the study's seed, its own point is used when the study trained it (member 0, so every seed is
scored by one member trained the same way). The reruns live in ``SIZE/draws/LOSS_cN_seedS``,
apart from the study's own ``draws`` folders, because they train ``--members`` (1) instead of
the study's.

Writes OUT/force_budget_draws.json: one record per (point, seed) with ``n_atoms, loss,
control, n_configs, seed, force_evaluations, rollout_rel_error, surrogate_force_evaluations,
surrogate_seconds``, a summary per point (mean,
std and min/max over seeds, how many seeds reach e_tol), and OUT/force_budget_draws.png
(``--name``: another file, e.g. for the control-variate study). Each invocation adds to the
JSON (one size per invocation; invocations for different sizes may run at once: each write
merges the file's records under a lock in the work folder). A finished
(point, seed) is read back, not retrained.

    python benchmarks/force_budget_draws.py --size 6400 \\
        --point L_xp:12000 --point L_xp:20000 --point L_z:500 --point L_z:1000 --seed 2 --seed 3
    python benchmarks/force_budget_draws.py --smoke [--out DIR]    # a tiny predator-prey study
    python benchmarks/force_budget_draws.py --analyse-only         # the figure from the JSON
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import (CONFIGS, loglog_crossing, need_results, parse, parser, print_table, read_records, tiny_study,
                    write_results)
from macrodyn.data.lock import locked
from macrodyn.io import load_json
from macrodyn.study import GridPoint, iter_grid, load_study, point_config, size_key

NAME = "force_budget_draws"


def draw_config(study, size: int, loss: str, n_configs: int, seed: int, members: int):
    """The study point's config with another run seed and ``members`` members (same name, so a
    rerun of the script resumes the point)."""
    cfg = point_config(study, size, loss, n_configs, seed=seed)
    cfg.training.members = members
    return cfg


def draw_record(study, size: int, loss: str, n_configs: int, seed: int, m: dict) -> dict:
    return {"n_atoms": size, "loss": loss, "n_configs": n_configs, "seed": seed,
            "control": point_config(study, size, loss, n_configs).training.control,
            "force_evaluations": m["force_evaluations"], "rollout_rel_error": m["rollout_rel_error_members"][0],
            "surrogate_force_evaluations": m.get("surrogate_force_evaluations", 0),
            "surrogate_seconds": m.get("surrogate_seconds"), "e_tol": study.e_tol}


def key(r: dict) -> tuple:
    """A record's point and seed."""
    return r["n_atoms"], r["loss"], r["n_configs"], r["seed"]


def summary(records: list[dict], e_tol: float) -> list[dict]:
    out = []
    keys = dict.fromkeys((r["n_atoms"], r["loss"], r["n_configs"]) for r in records)
    for n_atoms, loss, n_configs in keys:
        e = np.array([r["rollout_rel_error"] for r in records
                      if (r["n_atoms"], r["loss"], r["n_configs"]) == (n_atoms, loss, n_configs)])
        out.append({"n_atoms": n_atoms, "loss": loss, "n_configs": n_configs, "seeds": len(e),
                    "mean": float(e.mean()), "std": float(e.std()), "min": float(e.min()), "max": float(e.max()),
                    "seeds_within_tol": int((e <= e_tol).sum())})
    return out


def over_draws(records: list[dict], e_tol: float) -> dict:
    """Per loss, each size's evaluations to ``e_tol`` counted by the mean over seeds (the smallest
    redrawn point whose mean is within it; ``below``: the redrawn points under it, all above;
    ``interpolated_evaluations``: where the mean crosses ``e_tol`` on the log-log line between the
    last of those and it, since a grid's answer alone can overstate the need by up to its step),
    and the largest over the smallest of those across sizes (``spread``, ``spread_interpolated``).
    A size whose redrawn points all miss has no answer (None)."""
    rows = summary(records, e_tol)
    evals = {(r["n_atoms"], r["loss"], r["n_configs"]): r["force_evaluations"] for r in records}
    out = {}
    for loss in dict.fromkeys(r["loss"] for r in rows):
        sizes = {}
        for n_atoms in sorted({r["n_atoms"] for r in rows if r["loss"] == loss}):
            pts = sorted((r for r in rows if (r["n_atoms"], r["loss"]) == (n_atoms, loss)),
                         key=lambda r: r["n_configs"])
            first = next((r for r in pts if r["mean"] <= e_tol), None)
            if first is None:
                sizes[str(n_atoms)] = {"n_configs": None, "evaluations_to_tol": None, "mean": None, "seeds": None,
                                       "below": [], "interpolated_evaluations": None}
                continue
            below = [r for r in pts if r["n_configs"] < first["n_configs"]]
            ev = evals[(n_atoms, loss, first["n_configs"])]
            sizes[str(n_atoms)] = {
                "n_configs": first["n_configs"], "evaluations_to_tol": ev, "mean": first["mean"],
                "seeds": first["seeds"],
                "below": [{"n_configs": r["n_configs"], "mean": r["mean"], "seeds": r["seeds"]} for r in below],
                "interpolated_evaluations": loglog_crossing(
                    evals[(n_atoms, loss, below[-1]["n_configs"])], below[-1]["mean"], ev, first["mean"], e_tol)
                if below else None}
        found = [v["evaluations_to_tol"] for v in sizes.values() if v["evaluations_to_tol"]]
        inter = [v["interpolated_evaluations"] for v in sizes.values()]
        out[loss] = {"sizes": sizes, "spread": max(found) / min(found) if found else None,
                     "spread_interpolated": max(inter) / min(inter) if inter and all(inter) else None}
    return out


def plot(records: list[dict], e_tol: float, path: Path) -> Path:
    """Rollout error per seed (dots) and the mean over seeds (bar) of every point, e_tol dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary(records, e_tol)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(rows), 3.6))
    for i, r in enumerate(rows):
        e = [q["rollout_rel_error"] for q in records
             if (q["n_atoms"], q["loss"], q["n_configs"]) == (r["n_atoms"], r["loss"], r["n_configs"])]
        color = "C0" if r["loss"] == "L_z" else "C3"
        ax.bar(i, r["mean"], color=color, alpha=0.3)
        ax.plot([i] * len(e), e, "o", color=color, ms=4)
    ax.axhline(e_tol, color="k", ls="--", lw=1, label=f"e_tol = {e_tol:g}")
    ax.set_xticks(range(len(rows)),
                  [f"{r['n_atoms']}\n{r['loss']}\n{r['n_configs']}" for r in rows], fontsize=7)
    ax.set(ylabel="rollout error (one member per seed)", title="study points: spread over draws")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def analyse(doc: dict, figure: Path) -> Path:
    """The figure and the per-point summary of OUT/NAME.json."""
    e_tol = doc["records"][0]["e_tol"] if doc["records"] else 0.0
    print_table(summary(doc["records"], e_tol), ["n_atoms", "loss", "n_configs", "seeds", "mean", "std", "min", "max",
                                                 "seeds_within_tol"])
    for loss, v in over_draws(doc["records"], e_tol).items():
        answers = ", ".join(f"{n}: {a['evaluations_to_tol']}" for n, a in v["sizes"].items())
        spread = "-" if v["spread"] is None else f"{v['spread']:.2f}x"
        print(f"{loss}, evaluations to e_tol by the mean over seeds: {answers} (largest / smallest {spread})")
        inter = ", ".join(f"{n}: {a['interpolated_evaluations']:.3g}" if a["interpolated_evaluations"]
                          else f"{n}: -" for n, a in v["sizes"].items())
        spread = "-" if v["spread_interpolated"] is None else f"{v['spread_interpolated']:.2f}x"
        print(f"{loss}, interpolated between the grid's points: {inter} (largest / smallest {spread})")
    return plot(doc["records"], e_tol, figure)


def save(out: Path, name: str, work: Path, done: dict, e_tol: float, note: str) -> None:
    """Write OUT/NAME.json from ``done`` (``{key: record}``, updated in place) and the records
    another invocation (another size) wrote meanwhile, under a lock in ``work``."""
    with locked(Path(work) / f".{name}.lock"):
        done.update({key(r): r for r in read_records(out, name) if key(r) not in done})
        records = sorted(done.values(), key=key)
        write_results(out, name, records, summary=summary(records, e_tol), over_draws=over_draws(records, e_tol),
                      note=note)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.splitlines()[0], work="runs/lj_scaling")
    ap.add_argument("--config", default=str(CONFIGS / "lj_scaling.yaml"))
    ap.add_argument("--size", type=int, help="the study size whose points are redrawn (required)")
    ap.add_argument("--point", action="append", help="LOSS:N_CONFIGS, e.g. L_xp:12000 (required, repeatable)")
    ap.add_argument("--seed", type=int, action="append", help="run seeds besides the study's (required, repeatable)")
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--name", default=NAME, help="results file OUT/NAME.json (and NAME.png)")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, args.name), args.out / f"{args.name}.png")
    if args.smoke:
        args.config = tiny_study(args.work / "smoke_study.yaml")
        args.size, args.point, args.seed = 8, ["L_xp:250"], [2]
    if args.size is None or not args.point or not args.seed:
        ap.error("--size, --point and --seed are required")
    study = load_study(args.config)
    data = size_key(study, args.size)
    done = {key(r): r for r in read_records(args.out, args.name)}
    points = []
    for spec in args.point:
        loss, n = spec.split(":")
        for seed in [study.run.seed, *args.seed]:
            own = args.work / data / f"{loss}_c{n}" / "metrics.json"
            if seed == study.run.seed and own.exists():  # the study's own point
                rec = draw_record(study, args.size, loss, int(n), seed, load_json(own))
                done[key(rec)] = rec
                continue
            points.append(GridPoint(f"draws/{loss}_c{n}_seed{seed}",
                                    draw_config(study, args.size, loss, int(n), seed, args.members), data,
                                    tags={"loss": loss, "n_configs": int(n), "seed": seed}))
    note = f"one member per seed; seed {study.run.seed} is the study's point (member 0) where it was trained"

    save(args.out, args.name, args.work, done, study.e_tol, note)
    for res in iter_grid(points, {data: point_config(study, args.size)}, args.work, desc="draws"):
        t = res.point.tags
        rec = draw_record(study, args.size, t["loss"], t["n_configs"], t["seed"], res.metrics)
        done[key(rec)] = rec
        print(f"{args.size} {t['loss']} {t['n_configs']} seed {t['seed']}: {rec['rollout_rel_error']:.2e}", flush=True)
        save(args.out, args.name, args.work, done, study.e_tol, note)
    analyse(need_results(args.out, args.name), args.out / f"{args.name}.png")


if __name__ == "__main__":
    main()
