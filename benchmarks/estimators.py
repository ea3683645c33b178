"""Estimators at equal expensive budgets (docs/method.md, "Multi-fidelity control variate";
docs/choosing.md): which one reaches e_tol with the fewest expensive force evaluations?

- ``L_xp``: ``--config`` as it is (the paper's estimator: LJ-800 p = 1/16, Allen–Cahn p = 1/25);
- ``L_xp+surrogate``: the same base with ``training.control`` / ``training.surrogate`` (and
  ``control_window``) of ``--surrogate-config`` (configs/lj800_surrogate.yaml: a Lennard–Jones
  truncated at 1.5σ on all 800 atoms; its other sections must equal the base's);
- ``L_xp@P``: the base with ``training.p = P`` (fewer labelled units per configuration, more
  configurations per budget; on Allen–Cahn the labels are exact at any p, docs/choosing.md).

``--system lj800`` (default; e_tol 3e-3, the force-budget study's), ``--system
lj800_independent`` (the same configs with independent microscopic starts: every run draws its
own placement and velocities; e_tol 1.5e-2, since no model of T0 gets below 1.15e-2 there),
``--system lj800_invariant`` (those independent starts with a closure of invariant pair
descriptors, ``closure.input: descriptors``, and 4 closure variables; the same e_tol),
``--system lj800_energy`` (the same with the pair energy's descriptors added,
``closure.descriptor_energy``),
``--system allen_cahn`` (configs/allen_cahn.yaml, 64²; e_tol 5e-3, the advisor validation's) or
``--system allen_cahn_fixed_epochs`` (the same without early stopping: every fit runs all its
epochs and keeps its best-scored state). ``--budgets-of EST=B,B`` gives an estimator its own
budgets (e.g. L_xp@P at equal configurations to L_xp); ``--only EST:BUDGET:SEED ...`` runs just
those points of the grid.

Each (estimator, budget) is trained for the draws ``seed, seed + 1, ...`` (run seeds): as in the
force-budget study's draws (``macrodyn.study.point_config(..., seed=)``), every point sits on the
same shared run (trajectories + closure of the base config, ``WORK/lj800/shared``) and another
seed redraws only the configurations, labelled atoms, selection runs and initial weights. The
expensive budget is the 2.5σ atom-force evaluations of the labels; the surrogate's own
evaluations and seconds are recorded apart.

    python benchmarks/estimators.py [--work runs/estimators] [--members 1 --jobs 2] \
        [--skip L_xp:500000] [--note "..."]
    python benchmarks/estimators.py --system allen_cahn --estimators L_xp L_xp@0.01 --jobs 2 \
        --budgets-of L_xp=1312000,2624000 --budgets-of L_xp@0.01=328000,656000
    python benchmarks/estimators.py --smoke [--out DIR]   # a tiny LJ system, seconds
    python benchmarks/estimators.py --analyse-only        # table, summary and figure from the JSON

``--jobs J`` (J > 1) trains the points in J processes of this script at once, each in-process on
one thread (``threads: 1``, no Dask; neither is part of a run's identity), after the shared run is
built here with the config's own thread settings; ``--members 1 --jobs 2`` uses two cores for
one-member points. Finished points in ``--work`` are read back.

Writes OUT/estimators.json: one record per (system, estimator, seed, budget) with ``system, n,
estimator, seed, budget, error_at_budget, evaluations_to_tol, surrogate_seconds,
surrogate_force_evaluations, e_tol, starts, p, epochs_run_members, best_epoch_members``
(``evaluations_to_tol``: the smallest tried budget of that (estimator, seed) whose error ≤ e_tol,
else None; the epochs say whether early stopping ended a fit), a ``summary`` (mean ± std over draws
per estimator × budget; mean evaluations_to_tol per estimator and their ratio), ``notes``,
``settings`` (per system: config, control, shared run, and the machine, commit and date
measured); and
OUT/estimators.png (error vs budget, draws as points, mean as line).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from common import (CONFIGS, RESULTS, need_results, parse, parser, print_table, read_results, session, tiny,
                    write_results)
from macrodyn import load_config
from macrodyn.config import parse_config
from macrodyn.run.dynamics import training_record
from macrodyn.study import GridPoint, iter_grid, prepare_shared, shared_folder
from macrodyn.systems import build_system

NAME = "estimators"
#: --system -> base config, surrogate config, e_tol (LJ: the force-budget study's tolerance,
#: ForceBudgetStudy.e_tol; Allen–Cahn: the advisor validation's, its study's L_x,p mean being 4.4e-3)
#: lj800_independent: the same configs on runs with independent microscopic starts; there no
#: model of T0 gets below 1.15e-2 (lj800_floor.json), so its e_tol is 1.5e-2, 1.3x that floor
SYSTEMS = {"lj800": ("lj800.yaml", "lj800_surrogate.yaml", 3.0e-3),
           "lj800_independent": ("lj800.yaml", "lj800_surrogate.yaml", 1.5e-2),
           "lj800_invariant": ("lj800.yaml", "lj800_surrogate.yaml", 1.5e-2),
           "lj800_energy": ("lj800.yaml", "lj800_surrogate.yaml", 1.5e-2),
           "allen_cahn": ("allen_cahn.yaml", None, 5.0e-3),
           "allen_cahn_fixed_epochs": ("allen_cahn.yaml", None, 5.0e-3)}
#: --system variants of their configs: a name suffix and the changes per config section
#: (independent starts: no shared placement or velocities; fixed epochs: no early stopping)
INDEPENDENT = {"system.params": {"placement_seed": None, "velocity_seed": None}}
#: lj800_invariant: independent starts with a closure of invariant pair descriptors (closure.input:
#: descriptors, 8 radial functions per family, so 24 descriptors) and 4 closure variables: an offline
#: probe on these trajectories rolled out best with 2-4 principal components of the descriptors
INVARIANT_CLOSURE = {"input": "descriptors", "descriptor_basis": 8, "dim": 4, "epochs": 30}
#: lj800_energy: the same with the pair energy's family added (closure.descriptor_energy, 27
#: descriptors): an offline probe rolled out (T, U, dU/dt) alone as well as the best of the 24
VARIANTS = {"lj800_independent": ("independent", INDEPENDENT),
            "lj800_invariant": ("invariant", {**INDEPENDENT, "closure": INVARIANT_CLOSURE}),
            "lj800_energy": ("energy", {**INDEPENDENT, "closure": {**INVARIANT_CLOSURE, "descriptor_energy": True}}),
            "allen_cahn_fixed_epochs": ("fixed_epochs", {"training": {"stop_patience": None}})}
BUDGETS = [500_000, 1_000_000]
ESTIMATORS = ["L_xp", "L_xp+surrogate"]
#: training fields that make the surrogate estimator (taken from --surrogate-config)
CONTROL_FIELDS = ("control", "control_window", "surrogate")
COLUMNS = ["estimator", "seed", "budget", "error_at_budget", "evaluations_to_tol", "n_members",
           "surrogate_force_evaluations", "surrogate_seconds", "wall_seconds"]
COLORS = {"L_xp": "C3", "L_xp+surrogate": "C2", "L_xp+snapshots": "C0"}


def control_settings(base, surrogate_cfg) -> dict:
    """The training fields of the surrogate estimator; refuses a surrogate config that differs
    from the base in anything else (then the comparison would not be of the estimator alone)."""
    b, s = base.model_dump(exclude={"name"}), surrogate_cfg.model_dump(exclude={"name"})
    for d in (b, s):
        for f in CONTROL_FIELDS:
            d["training"].pop(f, None)
    differ = [k for k in b if b[k] != s[k]]
    if differ:
        raise SystemExit(f"--surrogate-config differs from --config in {differ} beyond training.{CONTROL_FIELDS}")
    t = surrogate_cfg.training.model_dump()
    return {f: t[f] for f in CONTROL_FIELDS}


def estimator_p(estimator: str, base) -> float:
    """``training.p`` of an estimator: ``L_xp@P`` sets it, the others keep the base's."""
    if estimator in ESTIMATORS:
        return base.training.p
    if not estimator.startswith("L_xp@"):
        raise SystemExit(f"unknown estimator {estimator!r}: choose {ESTIMATORS} or L_xp@P (P a fraction)")
    try:
        p = float(estimator[len("L_xp@"):])
    except ValueError:
        raise SystemExit(f"estimator {estimator!r}: P in L_xp@P must be a number in (0, 1], e.g. L_xp@0.01")
    if not 0 < p <= 1:
        raise SystemExit(f"estimator {estimator!r}: P must lie in (0, 1]")
    return p


def starts(cfg) -> str:
    """How a run's trajectories start: ``independent`` microstates when its MD system draws a fresh
    placement per run (``placement_seed: null``), else ``shared``."""
    params = cfg.system.params
    return "independent" if "placement_seed" in params and params["placement_seed"] is None else "shared"


def variant(cfg, system: str):
    """``cfg`` as ``--system`` runs it (:data:`VARIANTS`)."""
    if system not in VARIANTS:
        return cfg
    suffix, changes = VARIANTS[system]
    d = cfg.model_dump()
    for path, values in changes.items():
        node = d
        for part in path.split("."):
            node = node[part]
        node.update(values)
    d["name"] = f"{cfg.name}_{suffix}"
    return parse_config(d, f"{system} config")


def point_config(base, estimator: str, budget: int, seed: int, control: dict | None, members: int | None,
                 in_process: bool):
    """The run config of one point: the base with the estimator's control or p, the budget and the
    seed (on the base's shared trajectories and closure: the seed redraws only what the point
    labels and trains)."""
    d = base.model_dump()
    d["name"] = f"{base.name}_{point_name(estimator, budget, seed)}"
    d["seed"] = seed
    d["training"]["budget"] = budget
    d["training"]["p"] = estimator_p(estimator, base)
    if estimator == "L_xp+surrogate":
        if control is None:
            raise SystemExit("L_xp+surrogate needs --surrogate-config (a config with training.control: surrogate)")
        d["training"].update(control)
    if members:
        d["training"]["members"] = members
    if in_process:  # one process per core (--jobs): no Dask, one thread (not part of the run's identity)
        d["threads"], d["parallel"]["scheduler"] = 1, None
    return parse_config(d, "estimators point")


def point_name(estimator: str, budget: int, seed: int) -> str:
    return f"{estimator.replace('+', '_').replace('@', '_p')}_b{budget}_s{seed}"


def budgets_of(args) -> dict[str, list[int]]:
    """Each estimator's budgets: ``--budgets``, or its own from ``--budgets-of EST=B,B``."""
    own = {}
    for item in args.budgets_of:
        est, _, values = item.partition("=")
        if est not in args.estimators or not values:
            raise SystemExit(f"--budgets-of {item!r}: give EST=B1,B2 with EST one of --estimators {args.estimators}")
        own[est] = [int(float(v)) for v in values.split(",")]
    return {e: own.get(e, args.budgets) for e in args.estimators}


def make_points(args, base, control) -> list[GridPoint]:
    """Every point, most informative first (each estimator's largest budget, then the others from
    the largest down, plain L_x,p's smaller budgets last); ``--skip EST:BUDGET`` leaves points out."""
    skip = {(s.split(":")[0], int(float(s.split(":")[1]))) for s in args.skip}
    budgets = budgets_of(args)
    order = sorted(((e, b) for e in args.estimators for b in budgets[e]),
                   key=lambda eb: (eb[1] < max(budgets[eb[0]]), eb[0] == "L_xp", -eb[1], eb[0]))
    seeds = [args.seed + d for d in range(args.draws)]
    only = {(e, int(float(b)), int(s)) for e, b, s in (o.rsplit(":", 2) for o in args.only)}
    return [GridPoint(point_name(e, b, s), point_config(base, e, b, s, control, args.members, args.jobs > 1),
                      args.system, tags={"estimator": e, "budget": b, "seed": s,
                                         "configs": b / estimator_p(e, base)})
            for e, b in order if (e, b) not in skip for s in seeds if not only or (e, b, s) in only]


def parts(points: list[GridPoint], jobs: int) -> list[list[GridPoint]]:
    """Points split over ``jobs`` processes: each in turn to the least loaded (training cost ∝
    configurations ∝ budget / p)."""
    load, out = [0.0] * jobs, [[] for _ in range(jobs)]
    for p in points:
        j = int(np.argmin(load))
        out[j].append(p)
        load[j] += p.tags["configs"]
    return out


def record(res, e_tol: float, here: dict) -> dict:
    """One point's record; ``here``: the machine, commit and date of this session."""
    m, tags = res.metrics, res.point.tags
    system = res.run.system
    return {"system": res.point.data, "n": system.n_coords // system.coords_per_unit, "estimator": tags["estimator"],
            "seed": tags["seed"], "budget": tags["budget"], "error_at_budget": m["rollout_rel_error"],
            "evaluations_to_tol": None,  # filled in by add_evaluations_to_tol
            "surrogate_seconds": m.get("surrogate_seconds"),
            "surrogate_force_evaluations": m.get("surrogate_force_evaluations", 0), "e_tol": e_tol,
            "starts": starts(res.run.cfg), "force_evaluations": m["force_evaluations"], "n_configs": m["n_configs"],
            "p": res.run.cfg.training.p, "error_members": m["rollout_rel_error_members"], "n_members": m["n_members"],
            "error_max_trajectory": m["rollout_rel_error_max_trajectory"],
            "training_seconds": res.run.timings.get("dynamics"), "labelling_seconds": res.run.timings.get("label"),
            "wall_seconds": round(res.seconds, 1), "run_folder": str(res.run.out),
            **training_record(res.run, m["n_members"]),  # did early stopping end the fit, and when
            # each session builds its own shared run (re-simulated, closure re-fitted): date and CPU name it
            "measured": here["date"][:10], "cpu_capability": here["machine"]["cpu_capability"]}


def add_evaluations_to_tol(records: list[dict]) -> list[dict]:
    """``evaluations_to_tol`` of each record: the smallest tried budget of its (system, estimator,
    seed) whose error ≤ e_tol (None if none)."""
    for r in records:
        mine = [q for q in records if (q["system"], q["estimator"], q["seed"]) == (r["system"], r["estimator"],
                                                                                    r["seed"])]
        hit = [q["budget"] for q in mine if q["error_at_budget"] is not None and q["error_at_budget"] <= q["e_tol"]]
        r["evaluations_to_tol"] = min(hit) if hit else None
    return records


def summary(records: list[dict]) -> dict:
    """Per system (:func:`summary_of`)."""
    return {sys_: summary_of([r for r in records if r["system"] == sys_])
            for sys_ in dict.fromkeys(r["system"] for r in records)}


def summary_of(records: list[dict]) -> dict:
    """One system: mean ± std over draws per estimator × budget; per estimator the draws'
    evaluations_to_tol and their mean; per control estimator its ratio to plain L_x,p.

    A draw that missed e_tol needs more than its largest tried budget. ``mean`` is over the
    draws that reached it; ``mean_at_least`` counts a missed draw as its largest tried budget,
    so it is a lower bound on the true mean. The ratio divides the control's mean (exact when
    all its draws reached e_tol) by plain L_x,p's ``mean_at_least``: an upper bound when plain
    missed draws."""
    cells = []
    for e in dict.fromkeys(r["estimator"] for r in records):
        for b in sorted({r["budget"] for r in records if r["estimator"] == e}):
            err = [r["error_at_budget"] for r in records if (r["estimator"], r["budget"]) == (e, b)
                   and r["error_at_budget"] is not None]
            cells.append({"estimator": e, "budget": b, "draws": len(err),
                          "mean_error": float(np.mean(err)) if err else None,
                          "std_error": float(np.std(err)) if err else None, "errors": err})
    to_tol = {}
    for e in dict.fromkeys(r["estimator"] for r in records):
        mine = [r for r in records if r["estimator"] == e]
        per_seed = {r["seed"]: r["evaluations_to_tol"] for r in mine}
        largest = {s: max(r["budget"] for r in mine if r["seed"] == s) for s in per_seed}
        reached = [v for v in per_seed.values() if v is not None]
        to_tol[e] = {"per_seed": {str(s): v for s, v in sorted(per_seed.items())},
                     "budgets_tried": sorted({r["budget"] for r in mine}),
                     "draws_reached": len(reached), "draws": len(per_seed),
                     "mean": float(np.mean(reached)) if reached else None,
                     "mean_at_least": float(np.mean([v if v is not None else largest[s]
                                                     for s, v in per_seed.items()]))}
    plain = to_tol.get("L_xp", {})
    ratios = {}
    for e, v in to_tol.items():
        if e == "L_xp" or not plain or v["mean"] is None:
            continue
        exact_sur = v["draws_reached"] == v["draws"]
        exact_plain = plain["draws_reached"] == plain["draws"]
        ratios[e] = {"ratio": v["mean"] / plain["mean_at_least"],
                     "kind": ("exact" if exact_sur and exact_plain else "upper bound" if exact_sur else
                              "undetermined")}
    return {"cells": cells, "evaluations_to_tol": to_tol, "ratio_to_plain": ratios,
            "ratio_definition": "mean evaluations_to_tol of the estimator (its draws all within e_tol) over plain "
                                "L_xp's mean with a missed draw counted as its largest tried budget (it needs "
                                "more), so missed plain draws make the ratio an upper bound"}


def force_budget_records(n: int = 6400, e_tol: float = SYSTEMS["lj800"][2]) -> list[dict]:
    """Records of plain L_x,p and L_x,p with the snapshot or the surrogate control at ``n`` atoms
    from the force-budget studies' committed draws (``force_budget_draws*.json``; 50 atoms per
    configuration, the same shared run per size, the run seed redraws configurations, atoms and
    weights)."""
    out = []
    for name in ("force_budget_draws", "force_budget_draws_control", "force_budget_draws_surrogate"):
        for r in need_results(RESULTS, name)["records"]:
            if r["n_atoms"] != n or r["loss"] != "L_xp":
                continue
            ctrl = r.get("control", "none")
            out.append({"system": f"lj{n}", "n": n, "estimator": "L_xp" if ctrl == "none" else f"L_xp+{ctrl}",
                        "seed": r["seed"], "budget": r["force_evaluations"], "error_at_budget": r["rollout_rel_error"],
                        "evaluations_to_tol": None, "surrogate_seconds": r.get("surrogate_seconds"),
                        "surrogate_force_evaluations": r.get("surrogate_force_evaluations", 0),
                        "e_tol": e_tol, "starts": "shared", "force_evaluations": r["force_evaluations"],
                        "n_configs": r["n_configs"], "source": f"benchmarks/results/{name}.json"})
    return add_evaluations_to_tol(out)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/estimators")
    ap.add_argument("--system", default="lj800", choices=list(SYSTEMS))
    ap.add_argument("--config", default=None, help="default: the system's (configs/lj800.yaml, allen_cahn.yaml)")
    ap.add_argument("--surrogate-config", default=None, help="default: configs/lj800_surrogate.yaml on LJ-800")
    ap.add_argument("--estimators", nargs="+", default=ESTIMATORS, help=f"{ESTIMATORS} or L_xp@P")
    ap.add_argument("--budgets", nargs="+", type=lambda s: int(float(s)), default=BUDGETS,
                    help="expensive force evaluations (LJ: atom forces)")
    ap.add_argument("--budgets-of", action="append", default=[], metavar="EST=B,B",
                    help="an estimator's own budgets (repeatable), e.g. L_xp@0.01=328000,656000")
    ap.add_argument("--seed", type=int, default=None, help="first draw's run seed (default: the config's)")
    ap.add_argument("--draws", type=int, default=3, help="draws: run seeds seed, seed + 1, ...")
    ap.add_argument("--members", type=int, default=None, help="members per point (default: the config's)")
    ap.add_argument("--jobs", type=int, default=1, help="processes training points at once (see above)")
    ap.add_argument("--skip", nargs="*", default=[], metavar="EST:BUDGET", help="points not run, e.g. L_xp:5e5")
    ap.add_argument("--only", nargs="*", default=[], metavar="EST:BUDGET:SEED",
                    help="run only these points of the grid, e.g. L_xp+surrogate:7.5e5:2")
    ap.add_argument("--e-tol", type=float, default=None, help="default: the system's (see SYSTEMS)")
    ap.add_argument("--note", action="append", default=[], help="a note stored in the JSON (repeatable)")
    ap.add_argument("--collect-only", action="store_true",
                    help="record the points that finished in --work; train nothing")
    ap.add_argument("--part", type=int, default=None, help=argparse.SUPPRESS)  # one of the --jobs processes
    ap.add_argument("--import-force-budget", action="store_true",
                    help="add LJ-6400's plain, snapshot-control and surrogate-control draws of the force-budget "
                         "studies to OUT/NAME.json")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, NAME), args.out)
    if args.import_force_budget:
        doc = need_results(args.out, NAME)
        records = [r for r in doc["records"] if r["system"] != "lj6400"] + force_budget_records()
        write_results(args.out, NAME, records, summary=summary(records), notes=[*doc.get("notes", []), *args.note],
                      settings=system_settings(doc))
        return analyse(need_results(args.out, NAME), args.out)
    config, surrogate_config, e_tol = SYSTEMS[args.system]
    args.config = args.config or str(CONFIGS / config)
    if args.surrogate_config is None and surrogate_config:
        args.surrogate_config = str(CONFIGS / surrogate_config)
    args.e_tol = e_tol if args.e_tol is None else args.e_tol
    shrink = (lambda c: tiny(c, snapshots=20)) if args.smoke else (lambda c: c)  # smoke: a tiny system
    base = variant(shrink(load_config(args.config)), args.system)
    sur = variant(shrink(load_config(args.surrogate_config)), args.system) if args.surrogate_config else None
    if args.smoke:
        system = build_system(base.system.name, base.system.params)
        n = system.n_coords // system.coords_per_unit
        args.budgets, args.budgets_of, args.draws, args.e_tol = [5 * n, 10 * n], [], 2, 1.0e9
    args.seed = base.seed if args.seed is None else args.seed
    control = control_settings(base, sur) if sur is not None else None
    points = make_points(args, base, control)
    shared = {args.system: base}
    if args.part is not None:  # one of --jobs processes: train its share, record nothing
        for _ in iter_grid(parts(points, args.jobs)[args.part], shared, args.work, progress=False):
            pass
        return
    measuring = not args.collect_only  # a --collect-only call records points another session measured
    if args.jobs > 1 and not args.collect_only:
        prepare_shared(base, shared_folder(args.work, args.system), progress=False)  # once, with the config's threads
        given = sys.argv[1:] if argv is None else list(argv)
        procs = [subprocess.Popen([sys.executable, __file__, *given, "--out", str(args.out), "--work", str(args.work),
                                   "--part", str(j)]) for j in range(args.jobs)]
        failed = [j for j, p in enumerate(procs) if p.wait() != 0]
        if failed:
            print(f"parts {failed} failed; recording the finished points", flush=True)
            args.collect_only = True
    if args.collect_only:
        points = [p for p in points if (args.work / p.data / p.name / "metrics.json").exists()]
    old = {} if args.smoke else (read_results(args.out, NAME) or {})
    notes = [*old.get("notes", []), *args.note]
    members = f"{args.system}: members per point {args.members} (the config's: {base.training.members})"
    if args.members and measuring and members not in notes:
        notes.append(members)
    if args.skip:
        notes.append(f"points not run: {args.skip}")
    # records of OUT/NAME.json that this grid does not remeasure stay (other systems, other budgets)
    mine = {(p.tags["estimator"], p.tags["budget"], p.tags["seed"]) for p in points}
    keep = [r for r in old.get("records", [])
            if r["system"] != args.system or (r["estimator"], r["budget"], r["seed"]) not in mine]
    settings = system_settings(old)
    here = session()
    settings[args.system] = {"config": str(args.config), "surrogate_config": args.surrogate_config,
                             "control": control, "jobs": args.jobs, "e_tol": args.e_tol,
                             "shared_run": str(shared_folder(args.work, args.system)),
                             "measured": [*settings.get(args.system, {}).get("measured", []),
                                          *([here] if measuring else [])]}
    records = []
    for res in iter_grid(points, shared, args.work, progress=False, desc="estimators"):
        records.append(record(res, args.e_tol, here))
        print({k: records[-1][k] for k in COLUMNS if k != "evaluations_to_tol"}, flush=True)
        both = add_evaluations_to_tol(keep + records)
        write_results(args.out, NAME, both, summary=summary(both), notes=notes, settings=settings)
    if not records:
        raise SystemExit("no finished point to record")
    analyse(need_results(args.out, NAME), args.out)


def system_settings(doc: dict) -> dict:
    """Per system: the config, control, shared run, and the machine, commit and date of each
    session that measured points (a file written before per-system settings holds LJ-800's at
    the top: the first session's under ``lj800_measured``, the last one's as the file's own)."""
    settings = {k: dict(v) for k, v in doc.get("settings", {}).items()}
    if "config" in doc and "lj800" not in settings:
        settings["lj800"] = {k: doc[k] for k in ("config", "surrogate_config", "control", "jobs", "shared_run")
                             if k in doc}
        top = {k: doc.get(k) for k in ("machine", "commit", "date")}
        settings["lj800"]["measured"] = [m for m in (doc.get("lj800_measured"), top) if m]
    return settings


def analyse(doc: dict, out: Path) -> None:
    """The table, the summary per system, and OUT/estimators.png, from the JSON alone."""
    records = sorted(doc["records"], key=lambda r: (r["system"], r["estimator"], r["budget"], r["seed"]))
    print_table(records, ["system", *COLUMNS])
    for system, s in summary(records).items():
        print(f"== {system}")
        print_table(s["cells"], ["estimator", "budget", "draws", "mean_error", "std_error"])
        for e, v in s["evaluations_to_tol"].items():
            print(f"{e}: evaluations to e_tol per seed {v['per_seed']} (tried {v['budgets_tried']}), mean of those "
                  f"within {v['mean']}, at least {v['mean_at_least']}")
        for e, v in s["ratio_to_plain"].items():
            print(f"{e} / plain L_xp, mean evaluations to e_tol: {v['ratio']:.3g} ({v['kind']})")
    for n in doc.get("notes", []):
        print("note:", n)
    plot(records, Path(out) / f"{NAME}.png")


def plot(records: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(r["system"] for r in records)) or [""]
    fig, axes = plt.subplots(1, len(systems), figsize=(5 * len(systems), 4), squeeze=False)
    for ax, system in zip(axes[0], systems):
        mine = [r for r in records if r["system"] == system]
        cells = summary_of(mine)["cells"] if mine else []
        for i, e in enumerate(dict.fromkeys(r["estimator"] for r in mine)):
            c = COLORS.get(e, f"C{4 + i}")
            pts = [r for r in mine if r["estimator"] == e and r["error_at_budget"] is not None]
            ax.scatter([r["budget"] * (1.03 if i else 0.97) for r in pts], [r["error_at_budget"] for r in pts],
                       color=c, alpha=0.6, s=18)
            mean = sorted((c_ for c_ in cells if c_["estimator"] == e and c_["mean_error"] is not None),
                          key=lambda c_: c_["budget"])
            ax.plot([c_["budget"] for c_ in mean], [c_["mean_error"] for c_ in mean], "o-", color=c,
                    label=f"{e} (mean of {max((c_['draws'] for c_ in mean), default=0)} draws)")
        if mine:
            ax.axhline(mine[0]["e_tol"], color="k", ls="--", lw=0.8, label=f"e_tol = {mine[0]['e_tol']:.2g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel="expensive atom-force evaluations", ylabel="rollout relative error",
               title=f"{system}: estimators at equal budget")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
