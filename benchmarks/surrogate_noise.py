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

    python benchmarks/surrogate_noise.py [--configs 64] [--coarsen 2 4] [--work runs/estimators]
    python benchmarks/surrogate_noise.py --smoke [--out DIR]
    python benchmarks/surrogate_noise.py --analyse-only

Writes OUT/surrogate_noise.json: one record per estimator with ``system, n, estimator, p, units,
surrogate, relative_noise, explained, beta, force_seconds, surrogate_seconds, configs``.
"""
from __future__ import annotations

import time

import numpy as np

from common import CONFIGS, need_results, parse, parser, print_table, tiny, write_results
from macrodyn import keys as K
from macrodyn import load_config
from macrodyn.config import build_surrogate, parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.model.steps import pick
from macrodyn.run.closure import load_closure
from macrodyn.run.pool import snapshot_pool
from macrodyn.study import prepare_shared, shared_folder
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


def with_surrogate(cfg, coarsen: int):
    """``cfg`` with the coarse-grid surrogate (``training.control: surrogate``)."""
    d = cfg.model_dump()
    d["training"].update(control="surrogate", surrogate={"name": "allen_cahn_coarse",
                                                                  "params": {"coarsen": coarsen}})
    return parse_config(d, f"surrogate coarsen {coarsen}")


def measure(cfg, work, n_configs: int, coarsens: list[int], draws: int) -> list[dict]:
    run = prepare_shared(cfg, shared_folder(work, SYSTEM))
    where = pick(snapshot_pool(run), n_configs, np.random.default_rng(cfg.seed), run.n_saved)
    x = np.asarray(ChunkedTable.open(run.store, "train").gather(K.TRAJ, where), dtype=np.float64)
    system = run.system
    f, force_s = seconds_per_config(system, x)
    J, exact = exact_rates(load_closure(run), x, f)
    base = {"system": SYSTEM, "n": system.n_units, "force_seconds": force_s, "configs": len(x)}
    records = []
    for i, c in enumerate(coarsens):
        cfg_c = with_surrogate(cfg, c)
        surrogate = build_surrogate(cfg_c)
        s, sur_s = seconds_per_config(surrogate, x)
        control, beta = surrogate_control(surrogate, s, f)
        explained = 1.0 - float(((f - control) ** 2).sum() / (f ** 2).sum())
        cands = [cd for cd in candidates(cfg_c, cfg.training.p, system.n_units)
                 if cd[0] != "L_z" and (cd[3] or i == 0)]  # plain L_x,p once
        noise = estimator_noise(J, exact, system, f, cands, draws, cfg.seed, control)
        for name, t, k, uses in cands:
            records.append({**base, "estimator": name, "p": t["p"], "units": k,
                            "surrogate": f"coarsen {c}" if uses else None, "relative_noise": noise[name],
                            "explained": explained if uses else None, "beta": float(beta[0]) if uses else None,
                            "surrogate_seconds": sur_s if uses else None})
    return records


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/estimators")
    ap.add_argument("--config", default=str(CONFIGS / "allen_cahn.yaml"))
    ap.add_argument("--configs", type=int, default=64, help="snapshots with every force computed")
    ap.add_argument("--coarsen", type=int, nargs="+", default=[2, 4], help="coarsenings of the surrogate")
    ap.add_argument("--draws", type=int, default=20, help="subsets drawn per configuration and estimator")
    args = parse(ap, argv)
    if args.analyse_only:
        return analyse(need_results(args.out, NAME))
    cfg = load_config(args.config)
    if args.smoke:  # 12 × 12 grid, a one-epoch closure
        cfg, args.configs, args.coarsen, args.draws = tiny(cfg, snapshots=20), 8, [2], 4
    records = measure(cfg, args.work, args.configs, args.coarsen, args.draws)
    write_results(args.out, NAME, records, config=str(args.config), draws=args.draws)
    analyse(need_results(args.out, NAME))


def analyse(doc: dict) -> None:
    print_table(doc["records"], COLUMNS)


if __name__ == "__main__":
    main()
