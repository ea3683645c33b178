"""Does ``training.stop_waits_for_val`` free fits that early stopping left stuck?

Selection by rollout score with early stopping (``stop_patience``) stops a fit after that many
epochs without a better score. A score can pass a transient minimum early in a fit whose loss is
still falling fast, and the fit then stops there. ``stop_waits_for_val: true`` also waits until
the validation loss has gone ``stop_patience`` epochs without a new low.

For each finished run folder given (``--run``, e.g. the advisor's pilot fits), this retrains its
labels twice, with the rule off (the folder's own config, which checks that the fit reproduces on
this host) and on, on the same labels, closure, seeds and trajectories: no force is evaluated.
``--cosine RUN``: that run also with the rule on and ``lr_schedule: cosine`` (a plateau schedule
can cut the rate early, after spikes of the validation loss). Records: ``{run, system, n_configs,
stop_waits_for_val, lr_schedule, rollout_rel_error, epochs_run, best_epoch, fit_seconds,
source_rollout_rel_error}``.

    python benchmarks/stop_rule.py --run runs/advise/allen_cahn/pilot_L_xp_p0.005_c3280 [--run ...] [--cosine ...]
    python benchmarks/stop_rule.py --smoke [--out DIR]
    python benchmarks/stop_rule.py --analyse-only
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import CONFIGS, need_results, parse, parser, print_table, read_records, tiny, write_results
from macrodyn import load_config
from macrodyn.io import load_json, load_torch
from macrodyn.pipeline import run_all
from macrodyn.run import Run
from macrodyn.study.advise import reuse_labels
from macrodyn.study.grid import GridPoint, point_folder, run_point

NAME = "stop_rule"
COLUMNS = ["run", "n_configs", "stop_waits_for_val", "lr_schedule", "rollout_rel_error", "epochs_run", "best_epoch",
           "fit_seconds", "source_rollout_rel_error"]


def label(source: Path) -> str:
    """A source folder's name in the records: its parent and its own name."""
    return f"{source.parent.name}/{source.name}"


def retrain(source: Path, waits: bool, work: Path, schedule: str | None = None) -> dict:
    """``source``'s labels fitted again with ``stop_waits_for_val = waits`` (and ``lr_schedule =
    schedule``, None: the source's) in ``work``; its record."""
    src = Run.open(source, progress=False)
    cfg = src.cfg.model_copy(deep=True)
    cfg.training.stop_waits_for_val, cfg.threads = waits, 1  # one core per fit: pilots run beside it
    name = f"{source.parent.name}__{source.name}__waits{int(waits)}"
    if schedule is not None:
        cfg.training.lr_schedule = schedule
        name = f"{name}_{schedule}"
    point = GridPoint(name, cfg, tags={"rows": np.arange(src.n_configs)})
    reuse_labels(src, src, point, work)  # the source run is its own shared run: trajectories, closure
    _, m = run_point(source, cfg, point_folder(work, point))
    hist = load_torch(point_folder(work, point) / "dynamics" / "member_0.pt")["history"]
    return {"run": label(source), "system": cfg.system.name, "n_configs": m["n_configs"],
            "stop_waits_for_val": waits, "lr_schedule": cfg.training.lr_schedule,
            "rollout_rel_error": m["rollout_rel_error"],
            "epochs_run": hist["epochs_run"], "best_epoch": hist["best_epoch"],
            "fit_seconds": round(hist["seconds"], 1),
            "source_rollout_rel_error": load_json(source / "metrics.json")["rollout_rel_error"]}


def smoke_source(work: Path) -> Path:
    """A tiny finished Allen–Cahn run selected by rollout with early stopping (the smoke's source)."""
    cfg = tiny(load_config(CONFIGS / "allen_cahn.yaml"), n_train=12, snapshots=10)
    cfg.training.budget = cfg.system.params.get("n", 12) ** 2 // 4 * 20  # 20 configurations at p = 1/4
    cfg.training.p, cfg.training.epochs, cfg.training.select = 0.25, 12, "rollout"
    cfg.training.select_every, cfg.training.stop_patience, cfg.training.select_trajectories = 1, 2, 2
    out = work / "source" / "run"
    run_all(Run.create(cfg, out, progress=False))
    return out


def summary(records: list[dict]) -> None:
    print_table(records, COLUMNS)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/stop_rule")
    ap.add_argument("--run", type=Path, action="append", default=[], help="a finished run folder (repeatable)")
    ap.add_argument("--cosine", type=Path, action="append", default=[],
                    help="a finished run folder also refitted with the rule and lr_schedule: cosine (repeatable)")
    args = parse(ap, argv)
    if args.analyse_only:
        summary(need_results(args.out, NAME)["records"])
        return
    sources = [smoke_source(args.work)] if args.smoke else args.run
    if not sources and not args.cosine:
        ap.error("give --run FOLDER (a finished run whose labels are fitted again)")
    arms = [(s, waits, None) for s in sources for waits in (False, True)]
    arms += [(s, True, "cosine") for s in (sources if args.smoke else args.cosine)]
    done = {(r["run"], r["stop_waits_for_val"], r["lr_schedule"]): r for r in read_records(args.out, NAME)}
    for source, waits, schedule in arms:
        rec = retrain(source, waits, args.work, schedule)
        done[(rec["run"], waits, rec["lr_schedule"])] = rec
        write_results(args.out, NAME, list(done.values()))  # after every fit: an interruption keeps them
        print(rec, flush=True)
    summary(list(done.values()))


if __name__ == "__main__":
    main()
