"""Label noise per estimator, plain and with the surrogate control variate, measured exactly on
configurations with every force known (docs/method.md, "Multi-fidelity control variate").

On Allen–Cahn 64² (``--config`` configs/allen_cahn.yaml, on its shared run ``WORK/allen_cahn/shared``,
the one benchmarks/estimators.py trains on) ``--configs`` training snapshots get all their forces.
The surrogate is the same equation on a grid ``c`` times coarser (``allen_cahn_coarse`` with
``coarsen: c``, for each c of ``--coarsen``). For plain L_x,p at p/4 … 4p and for each with each
surrogate, the script records the relative label noise r². It is the advisor's measure
(``macrodyn.study.advise.estimator_noise``): the mean squared error of the rate the loss fits, over
the spread of the exact rate, where 0 means exact labels. It also records the share of the forces
that the scaled surrogate explains, its scale β, and the seconds of one full evaluation per
configuration of the system and of the surrogate.

On a force-budget study (``--study``, e.g. configs/lj_scaling_surrogate.yaml, at ``--size``, on
the study's shared run ``WORK/<size key>/shared``) the same is measured for L_x,p with the study's
labelled units per configuration (and 1/4 … 4 times as many), with the study's surrogate at each
value of ``--vary KEY=V1,V2`` (e.g. ``cutoff=1.5,2.0``). Its records replace those of the same
system and size in the JSON, so the Allen–Cahn records and each size's are measured apart.

    python benchmarks/surrogate_noise.py [--configs 64] [--coarsen 2 4] [--work runs/estimators]
    python benchmarks/surrogate_noise.py --study configs/lj_scaling_surrogate.yaml --size 51200 \
        --vary cutoff=1.5,2.0 --configs 16 --work runs/lj_surrogate
    python benchmarks/surrogate_noise.py --smoke [--out DIR]
    python benchmarks/surrogate_noise.py --analyse-only

Writes OUT/surrogate_noise.json: one record per estimator with ``system, n, estimator, p, units,
surrogate, relative_noise, explained, beta, force_seconds, surrogate_seconds, configs``.
"""
from __future__ import annotations

import time

import numpy as np
import yaml

from common import CONFIGS, need_results, parse, parser, print_table, read_records, tiny, tiny_study, write_results
from macrodyn import keys as K
from macrodyn import load_config
from macrodyn.config import build_surrogate, parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.model.steps import pick
from macrodyn.run.closure import load_closure
from macrodyn.run.pool import snapshot_pool
from macrodyn.study import load_study, point_config, prepare_shared, shared_folder, size_key
from macrodyn.study.advise import candidates, estimator_noise, surrogate_control
from macrodyn.training.noise import exact_rates

NAME = "surrogate_noise"
SYSTEM = "allen_cahn"
COLUMNS = ["estimator", "units", "surrogate", "relative_noise", "explained", "beta", "force_seconds",
           "surrogate_seconds"]


def seconds_per_config(system, x: np.ndarray) -> tuple[np.ndarray, float]:
    """All forces of ``x`` and the wall seconds per configuration they took."""
    t = time.perf_counter()
    f = system.forces(x)
    return f, (time.perf_counter() - t) / len(x)


def with_surrogate(cfg, surrogate: dict):
    """``cfg`` with the surrogate control and the surrogate section ``surrogate`` ({name, params})."""
    d = cfg.model_dump()
    d["training"].update(control="surrogate", surrogate=surrogate)
    return parse_config(d, f"surrogate {surrogate}")


def coarse_surrogates(coarsens: list[int]) -> dict[str, dict]:
    """Allen–Cahn's surrogates: the equation on a grid ``c`` times coarser."""
    return {f"coarsen {c}": {"name": "allen_cahn_coarse", "params": {"coarsen": c}} for c in coarsens}


def varied_surrogates(cfg, vary: str) -> dict[str, dict]:
    """The config's own surrogate with one parameter at each value of ``KEY=V1,V2,...`` (each read
    as a YAML scalar, so ``coarsen=2,4`` stays integer)."""
    key, _, values = vary.partition("=")
    if not key or not values:
        raise SystemExit(f"--vary {vary!r}: give KEY=V1,V2 (e.g. cutoff=1.5,2.0)")
    base = cfg.training.surrogate.model_dump() if cfg.training.surrogate else {"params": {}}
    return {f"{key} {v}": {**base, "params": {**(base.get("params") or {}), key: yaml.safe_load(v)}}
            for v in values.split(",")}


def measure(cfg, run, n_configs: int, surrogates: dict[str, dict], draws: int) -> list[dict]:
    """Records of plain L_x,p (p/4 … 4p of ``cfg.training.p``) and of each with each surrogate,
    on ``n_configs`` training snapshots of ``run`` (its trajectories and closure)."""
    where = pick(snapshot_pool(run), n_configs, np.random.default_rng(cfg.seed), run.n_saved)
    x = np.asarray(ChunkedTable.open(run.store, "train").gather(K.TRAJ, where), dtype=np.float64)
    system = run.system
    f, force_s = seconds_per_config(system, x)
    J, exact = exact_rates(load_closure(run), x, f)
    base = {"system": cfg.system.name, "n": system.n_units, "force_seconds": force_s, "configs": len(x)}
    records = []
    for i, (label, spec) in enumerate(surrogates.items()):
        cfg_c = with_surrogate(cfg, spec)
        surrogate = build_surrogate(cfg_c)
        s, sur_s = seconds_per_config(surrogate, x)
        control, beta = surrogate_control(surrogate, s, f)
        explained = 1.0 - float(((f - control) ** 2).sum() / (f ** 2).sum())
        cands = [cd for cd in candidates(cfg_c, cfg.training.p, system.n_units)
                 if cd[0] != "L_z" and (cd[3] or i == 0)]  # plain L_x,p once
        noise = estimator_noise(J, exact, system, f, cands, draws, cfg.seed, control)
        for name, t, k, uses in cands:
            records.append({**base, "estimator": name, "p": t["p"], "units": k,
                            "surrogate": label if uses else None, "relative_noise": noise[name],
                            "explained": explained if uses else None, "beta": float(beta[0]) if uses else None,
                            "surrogate_seconds": sur_s if uses else None})
    return records


def study_run(path, size: int, work):
    """The study's L_x,p config at ``size`` (p: its units per configuration) and its shared run."""
    study = load_study(path)
    cfg = point_config(study, size, "L_xp", 1)
    return cfg, prepare_shared(point_config(study, size), shared_folder(work, size_key(study, size)))


def merged(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` without the records of the systems and sizes that ``new`` measured, then ``new``."""
    done = {(r["system"], r["n"]) for r in new}
    return [r for r in old if (r["system"], r["n"]) not in done] + new


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/estimators")
    ap.add_argument("--config", default=str(CONFIGS / "allen_cahn.yaml"))
    ap.add_argument("--configs", type=int, default=64, help="snapshots with every force computed")
    ap.add_argument("--coarsen", type=int, nargs="+", default=[2, 4], help="coarsenings of the surrogate")
    ap.add_argument("--draws", type=int, default=20, help="subsets drawn per configuration and estimator")
    ap.add_argument("--study", help="a force-budget study YAML: measure at --size on its shared run instead")
    ap.add_argument("--size", type=int, help="with --study: the size")
    ap.add_argument("--vary", default=None, help="with --study: KEY=V1,V2 of the study's surrogate's params")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, NAME))
    if args.smoke:  # Allen–Cahn on a 12 × 12 grid, then a predator–prey study of 8 species
        cfg = tiny(load_config(args.config), snapshots=20)
        records = measure(cfg, prepare_shared(cfg, shared_folder(args.work, SYSTEM)), 8, coarse_surrogates([2]), 4)
        study = tiny_study(args.work / "study.yaml", {"control": "surrogate", "surrogate": {"params": {"a": 2.9}}})
        cfg, run = study_run(study, 8, args.work / "study")
        records += measure(cfg, run, 8, varied_surrogates(cfg, "a=2.9,2.5"), 4)
    elif args.study:
        if args.size is None or args.vary is None:
            ap.error("--study needs --size and --vary")
        cfg, run = study_run(args.study, args.size, args.work)
        records = measure(cfg, run, args.configs, varied_surrogates(cfg, args.vary), args.draws)
    else:
        cfg = load_config(args.config)
        records = measure(cfg, prepare_shared(cfg, shared_folder(args.work, SYSTEM)), args.configs,
                          coarse_surrogates(args.coarsen), args.draws)
    records = records if args.smoke else merged(read_records(args.out, NAME), records)
    write_results(args.out, NAME, records, draws=args.draws)
    analyse(need_results(args.out, NAME))


def analyse(doc: dict) -> None:
    print_table(doc["records"], COLUMNS)


if __name__ == "__main__":
    main()
