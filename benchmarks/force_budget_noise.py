"""Why L_x,p's budget does or does not beat L_z's on LJ: the label noise each loss trains on.

For configurations with every force computed (the labels of an L_z point of the force-budget
study, the largest trained one of each size in ``--work``), per size:

- ``sigma_thermal``: rms of ``(J f)_T − g_T(z)``, the exact temperature rate minus what the
  point's trained L_z models (mean of the members) predict from ``z``: the part of an exact
  label no function of ``z`` can fit (thermal fluctuation, plus the models' own error);
- ``sigma_xp``: rms of the plain 50-atom estimate ``(N/k) J_I f_I`` (k = ``--atoms`` random
  atoms) minus the exact ``(J f)_T``: the extra noise of a 50-atom label;
- ``sigma_xp_fit``: the same for the rate L_x,p's loss actually pulls ``g`` toward on one
  configuration, ``argmin_v ||J⁺_I v − f_I||²`` (the closure columns of ``J⁺_I`` absorb part
  of the sampled forces, so it can be less noisy than the plain estimate); and both relative
  to the spread of the exact rate, for T and for the closure components.

A loss whose labels are noisy needs configurations in proportion to the label variance; one
whose labels are (nearly) exact needs only enough configurations to cover the states.
Writes OUT/force_budget_noise.json (``--name``: another file, e.g. for a second closure).

    python benchmarks/force_budget_noise.py [--work runs/lj_scaling] [--configs 200]
    python benchmarks/force_budget_noise.py --smoke [--out DIR]    # a tiny predator-prey study first
    python benchmarks/force_budget_noise.py --analyse-only         # the table from the JSON
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common import need_results, parse, parser, print_table, tiny_study, write_results
from macrodyn import keys as K
from macrodyn.closure.jacobian import batch_jacobian, pinv_rows
from macrodyn.data.store import ChunkedTable
from macrodyn.run import Run
from macrodyn.run.closure import load_closure
from macrodyn.run.dynamics import load_members
from macrodyn.run.pool import labelled_configs
from macrodyn.study import load_study, run_study
from macrodyn.training.features import compute_features, sample_units

COLUMNS = ["n_atoms", "closure_dim", "configs", "sigma_thermal", "sigma_xp", "sigma_xp_fit",
           "noise_ratio_xp_over_thermal", "xp_over_spread", "xp_fit_over_spread"]


def largest_lz_points(work: Path) -> list[Path]:
    """Per size folder of the study in ``work``, its largest trained L_z point, smallest size first."""
    out = []
    for size_dir in (d for d in work.iterdir() if d.is_dir()):
        points = sorted(size_dir.glob("L_z_c*/metrics.json"), key=lambda p: int(p.parent.name.split("_c")[1]))
        if points:
            out.append(points[-1].parent)
    return sorted(out, key=lambda f: Run.open(f, progress=False).system.n_units)


def noise(folder: Path, n_configs: int, draws: int, k: int) -> dict:
    run = Run.open(folder, progress=False)
    ae = load_closure(run)
    fields = load_members(run, ae)
    lab = ChunkedTable.open(run.store, "labels").read(rows=np.arange(min(n_configs, run.n_configs)))
    x, idx, f = labelled_configs(run, lab), lab[K.INDEX], lab[K.FORCES]
    exact = compute_features(ae, x, idx, f, rows=False, dtype=torch.float64)
    with torch.no_grad():
        pred = torch.stack([g(exact[K.Z].float()).double() for g in fields]).mean(0)
    thermal = (exact[K.JF][:, 0] - pred[:, 0]).numpy()
    n = run.system.n_units
    k = min(k, n)
    rng = np.random.default_rng(0)
    full_f = torch.as_tensor(np.take_along_axis(f, np.argsort(idx, 1), 1))  # forces in coordinate order
    ht, fit = [], []
    ae64 = ae.double()
    for s in range(0, len(x), 10):
        J = batch_jacobian(ae64, torch.as_tensor(x[s:s + 10]))  # (b, d, N)
        jf = exact[K.JF][s:s + 10]
        P = pinv_rows(J)  # (b, N, d) once; each draw takes its subset's rows
        for _ in range(draws):
            sub = torch.as_tensor(run.system.unit_coords(sample_units(len(J), n, k, rng)))
            JI = torch.gather(J, 2, sub.unsqueeze(1).expand(-1, J.shape[1], -1))
            fI = torch.gather(full_f[s:s + 10], 1, sub)
            ht.append((JI @ fI.unsqueeze(-1)).squeeze(-1) * (n / k) - jf)
            # the rate L_x,p's loss pulls g toward on this configuration: argmin_v ||J⁺_I v − f_I||²
            PI = torch.gather(P, 1, sub.unsqueeze(-1).expand(-1, -1, P.shape[-1]))
            fit.append(torch.linalg.lstsq(PI, fI.unsqueeze(-1)).solution.squeeze(-1) - jf)
    ae.float()
    spread = exact[K.JF].std(0)
    ht, fit = (torch.cat(e).pow(2).mean(0).sqrt() for e in (ht, fit))  # rms per component (d,)
    s_th, s_xp = float(np.sqrt(np.mean(thermal ** 2))), float(ht[0])
    rel = lambda e: (e / spread).numpy()  # noqa: E731
    return {"n_atoms": n, "closure_dim": run.cfg.closure.dim, "component": "T", "configs": len(x),
            "lz_point": folder.name, "atoms_per_estimate": k,
            "sigma_thermal": s_th, "sigma_xp": s_xp, "spread_exact": float(spread[0]),
            "noise_ratio_xp_over_thermal": s_xp / s_th, "sigma_xp_fit": float(fit[0]),
            "xp_over_spread": float(rel(ht)[0]), "xp_fit_over_spread": float(rel(fit)[0]),
            "closure_xp_over_spread_median": float(np.median(rel(ht)[1:])),
            "closure_xp_fit_over_spread_median": float(np.median(rel(fit)[1:]))}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, work="runs/lj_scaling")
    ap.add_argument("--configs", type=int, default=200, help="labelled configurations used per size")
    ap.add_argument("--draws", type=int, default=20, help="random subsets per configuration")
    ap.add_argument("--atoms", type=int, default=50, help="atoms (units) per subset")
    ap.add_argument("--name", default="force_budget_noise", help="results file OUT/NAME.json")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    torch.set_num_threads(1)
    if args.smoke:  # the study's L_z points first
        study = load_study(tiny_study(args.work / "smoke_study.yaml", losses=["L_z"]))
        run_study(study, args.work, progress=False)
        args.configs, args.draws, args.atoms = 20, 2, 4
    records = []
    for folder in largest_lz_points(args.work):
        records.append(noise(folder, args.configs, args.draws, args.atoms))
        print(records[-1], flush=True)
    write_results(args.out, args.name, records, work=str(args.work),
                  note="sigma_thermal: rms of exact (Jf)_T minus the L_z point's ensemble-mean prediction (an "
                       "upper bound on the thermal part); sigma_xp: rms error of the k-atom estimate (N/k) J_I f_I of "
                       f"(Jf)_T over {args.draws} random subsets per configuration; spread_exact: std of (Jf)_T over "
                       "the configurations. Raw units of dT/dt. sigma_xp_fit: rms error of the rate L_x,p's loss fits "
                       "on one configuration, argmin_v ||J_I^+ v - f_I||^2 (the same subsets). *_over_spread: rms "
                       "error over the spread of the exact rate, for T and (median over its components) the closure.")
    print_table(records, COLUMNS)


if __name__ == "__main__":
    main()
