"""Does ``macrodyn advise`` recommend what our studies measured best, and predict its budget?

For each system the advisor runs its pilot (``macrodyn.study.advise``: L_z and L_x,p on 5 % of
``--budget`` force evaluations, on the config's own trajectories and closure) and predicts the
evaluations every estimator needs to reach the system's tolerance. The measured side comes
from the committed study results, the error of each (estimator, budget) averaged over its
draws and interpolated log-log where the mean error crosses e_tol:

- predator_prey: ``predator_prey_budget.json`` (L_z; L_x,p at p = 0.2 and 0.5), e_tol 2.5e-3;
- lj800, lj6400: the force-budget study (``force_budget_study.json`` points with the draws of
  ``force_budget_draws.json``; L_z and L_x,p with 50 atoms), e_tol 3e-3;
- allen_cahn: L_z from ``allen_cahn_study.json`` (one budget, 2.6e6); L_x,p at p = 0.04, 0.01
  and 0.005 from ``estimators.json`` (3 draws per budget), e_tol 5e-3. An
  estimator already within e_tol at its smallest budget has ``measured_evaluations`` as an
  upper bound (``at most``).

Where an estimator's mean error never reached e_tol within the budgets tried, its evaluations
are extrapolated along the power law of its last (up to three) budgets, and marked so. The
snapshot control is not among the advisor's candidates (its noise depends on how densely the
final run labels each trajectory, which a pilot does not reach). Records: ``{system, n,
recommended, measured_best, predicted_evaluations, measured_evaluations, pilot_evaluations}``:
``recommended`` is the advice among the estimators the studies measured (the choice they can
check; ``recommended_overall`` is the advice among all candidates), ``predicted_evaluations``
the prediction for ``measured_best``; per estimator ``predicted``/``measured`` and their ratio;
``measured``: the commit, date and CPU of the session that ran the record's pilot (systems are
rerun one at a time with ``--system``).

    python benchmarks/advisor_validation.py [--system lj800 ...] [--work runs/advise]
    python benchmarks/advisor_validation.py --smoke [--out DIR]
    python benchmarks/advisor_validation.py --analyse-only
"""
from __future__ import annotations

import ast
import math
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from common import (CONFIGS, RESULTS, loglog_crossing, need_results, parse, parser, print_table, read_results,
                    session, tiny, write_results)
from macrodyn import load_config
from macrodyn.config import parse_config
from macrodyn.study import load_study, point_config
from macrodyn.study.advise import advise, xp_name

COLUMNS = ["system", "pilot_seed", "recommended", "measured_best", "predicted_evaluations", "measured_evaluations",
           "ratio_predicted_over_measured", "pilot_evaluations"]
#: system -> (e_tol, budget the user is prepared to spend; the pilot is 5 % of it, steps per pilot run)
SETTINGS = {"predator_prey": (2.5e-3, 150_000, None), "lj800": (3e-3, 1_000_000, 20_000),
            "lj6400": (3e-3, 6_400_000, 20_000), "allen_cahn": (5e-3, 2_624_000, None)}


def config_of(system: str):
    """The run config the measured study trained (LJ: the force-budget study at that size, with
    L_x,p's 50 atoms per configuration as training.p)."""
    if system.startswith("lj"):
        n = int(system[2:])
        study = load_study(CONFIGS / "lj_scaling.yaml")
        d = point_config(study, n).model_dump()
        d["name"] = f"lj_scaling_{n}"
        d["training"].update({"loss": "L_xp", "p": study.units_per_config / n, "budget": 1_000_000})
        return parse_config(d, system)
    return load_config(CONFIGS / f"{system}.yaml")


def measured(system: str) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """``({estimator: [(evaluations, mean error)]}, n)`` of the committed studies."""
    cells = defaultdict(list)
    if system == "predator_prey":
        for r in need_results(RESULTS, "predator_prey_budget")["records"]:
            if r["loss"] != "L_x":
                cells[_name(r["loss"], r["p"])].append((r["force_evaluations"], r["rollout_rel_error"]))
        n = load_config(CONFIGS / "predator_prey.yaml").system.params.get("n", 100)
    elif system == "allen_cahn":  # L_z from the study; L_x,p at two p from the estimators' one shared run
        for r in need_results(RESULTS, "allen_cahn_study")["records"]:
            if r["loss"] == "L_z":
                cells["L_z"].append((r["force_evaluations"], r["rollout_rel_error"]))
        for r in need_results(RESULTS, "estimators")["records"]:
            if r["system"] == "allen_cahn" and "surrogate" not in r["estimator"]:
                cells[xp_name(r["p"])].append((r["budget"], r["error_at_budget"]))
        n = 64 * 64
    else:
        n = int(system[2:])
        pts = need_results(RESULTS, "force_budget_study")["points"]
        pts = ast.literal_eval(pts) if isinstance(pts, str) else pts
        draws = need_results(RESULTS, "force_budget_draws")["records"]
        for r in [*pts, *draws]:
            if r["n_atoms"] == n and r.get("control", "none") == "none":
                p = 1.0 if r["loss"] == "L_z" else 50 / n
                cells[_name(r["loss"], p)].append((r["force_evaluations"], r["rollout_rel_error"]))
    return {k: _means(v) for k, v in cells.items()}, n


def _name(loss: str, p: float) -> str:
    return "L_z" if loss == "L_z" else xp_name(p)


def _means(pairs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    by = defaultdict(list)
    for b, e in pairs:
        by[b].append(e)
    return sorted((b, sum(v) / len(v)) for b, v in by.items())


def crossing(curve: list[tuple[float, float]], e_tol: float) -> tuple[float | None, str]:
    """Evaluations where the mean error first falls to ``e_tol``: ``(value, kind)``, kind
    ``interpolated`` (log-log between tried budgets), ``at most`` (already within at the
    smallest budget), ``extrapolated`` (never within: the power law through the last up to three
    budgets, carried on to e_tol) or ``more than`` (never within and not falling: the largest
    budget)."""
    if curve[0][1] <= e_tol:
        return curve[0][0], "at most"
    for (b0, e0), (b1, e1) in zip(curve, curve[1:]):
        if e1 <= e_tol:
            return loglog_crossing(b0, e0, b1, e1, e_tol), "interpolated"
    tail = curve[-3:]
    if len(tail) >= 2:
        slope, icpt = np.polyfit(np.log([b for b, _ in tail]), np.log([e for _, e in tail]), 1)
        if slope < 0:
            return float(math.exp((math.log(e_tol) - icpt) / slope)), "extrapolated"
    return curve[-1][0], "more than"


def validate(system: str, work: Path, cfg=None, settings=None, seed: int | None = None) -> dict:
    """One system's record; ``seed``: another run seed for the pilot (its own trajectories,
    closure and draws, in ``WORK/SYSTEM_seedS``), against the same measured studies."""
    e_tol, budget, steps = settings or SETTINGS[system]
    cfg = cfg or config_of(system)
    folder = work / system
    if seed is not None and seed != cfg.seed:
        cfg = cfg.model_copy(update={"seed": seed})
        folder = work / f"{system}_seed{seed}"
    advice = advise(cfg, folder, e_tol, budget=budget, steps=steps, progress=False)
    meas, n = measured(system) if settings is None else ({}, 0)
    pred = {c.name: c.evaluations for c in advice.candidates}
    m = {k: crossing(v, e_tol) for k, v in meas.items()}
    known = {k: v for k, (v, kind) in m.items() if kind != "more than"}
    best = min(known, key=known.get) if known else None
    # the advice restricted to the estimators the studies measured: the choice they can check
    among = replace(advice, candidates=[c for c in advice.candidates if c.name in meas]).recommended
    rec = advice.recommended.name if advice.recommended else None
    per = [{"estimator": k, "predicted": pred.get(k), "measured": v, "measured_kind": kind,
            "ratio": (pred[k] / v) if pred.get(k) and kind != "more than" else None} for k, (v, kind) in m.items()]
    best_m = m.get(best, (None, None))
    return {"system": system, "pilot_seed": cfg.seed,
            "n": n or cfg.system.params.get("n_atoms") or cfg.system.params.get("n"),
            "e_tol": e_tol, "budget": budget,
            "recommended": among.name if among else None, "measured_best": best,
            "predicted_evaluations": pred.get(best) if best else None,
            "measured_evaluations": best_m[0], "measured_kind": best_m[1],
            "ratio_predicted_over_measured": (pred[best] / best_m[0]) if best and pred.get(best) else None,
            "agrees": bool(among and among.name == best),
            "recommended_overall": rec,
            "recommended_overall_evaluations": advice.recommended.evaluations if advice.recommended else None,
            "pilot_evaluations": advice.pilot_evaluations, "pilot": advice.pilot,
            "curve": advice.curve, "noise_scale": advice.noise_scale,
            "candidates": [{"name": c.name, "noise": c.noise, "evaluations": c.evaluations,
                            "beyond_pool": c.beyond_pool} for c in advice.candidates],
            "per_estimator": per, "notes": advice.notes}


def stamp(doc: dict) -> dict:
    """Where and when a record was measured (the file's own fields describe only its last session)."""
    return {"commit": doc.get("commit"), "date": doc.get("date"),
            "cpu_capability": doc.get("machine", {}).get("cpu_capability")}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/advise")
    ap.add_argument("--system", action="append", choices=sorted(SETTINGS), help="only these (repeatable)")
    ap.add_argument("--seed", type=int, default=None,
                    help="the pilot's run seed (default: the config's); a record per (system, seed)")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, "advisor_validation")["records"], COLUMNS)
    here = stamp(session())
    if args.smoke:
        cfg = tiny(load_config(CONFIGS / "predator_prey.yaml"), n_train=20)
        records = [{**validate("predator_prey", args.work, cfg, (1e9, 20_000, 20)), "measured": here}]
        return write_results(args.out, "advisor_validation", records)
    prev = read_results(args.out, "advisor_validation") or {}
    old = {}
    for r in prev.get("records", []):  # older records: their file's stamp, and the config's seed
        seed = r.get("pilot_seed", config_of(r["system"]).seed)
        old[(r["system"], seed)] = {"measured": stamp(prev), **r, "pilot_seed": seed}
    for system in args.system or list(SETTINGS):
        rec = validate(system, args.work, seed=args.seed)
        old[(system, rec["pilot_seed"])] = {**rec, "measured": here}
        print(yaml.safe_dump({k: rec[k] for k in COLUMNS}), flush=True)
        write_results(args.out, "advisor_validation", list(old.values()))
    print_table(list(old.values()), COLUMNS)


if __name__ == "__main__":
    main()
