"""Why L_x,p's budget does or does not beat L_z's on LJ: the label noise each loss trains on.

For configurations with every force computed (the labels of an L_z point of the force-budget
study), per size:

- ``sigma_thermal``: rms of ``(J f)_T − g_T(z)``, the exact temperature rate minus what the
  point's trained L_z models (mean of the members) predict from ``z``: the part of an exact
  label no function of ``z`` can fit (thermal fluctuation, plus the models' own error);
- ``sigma_xp``: rms of the L_x,p estimate ``(N/k) J_I f_I`` (k = 50 random atoms) minus the
  exact ``(J f)_T``: the extra noise of a 50-atom label.

A loss whose labels are noisy needs configurations in proportion to the label variance; one
whose labels are (nearly) exact needs only enough configurations to cover the states.
Writes benchmarks/results/force_budget_noise.json.

    python benchmarks/force_budget_noise.py [--work runs/lj_scaling] [--configs 200]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from common import write_results
from macrodyn import keys as K
from macrodyn.config import parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.pipeline import Run, closure_stage, dynamics_stage, labelled_configs
from macrodyn.training.features import _batch_jacobian_rows, compute_features, sample_units


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/lj_scaling")
    ap.add_argument("--configs", type=int, default=200, help="labelled configurations used per size")
    ap.add_argument("--draws", type=int, default=20, help="random 50-atom subsets per configuration")
    args = ap.parse_args()
    torch.set_num_threads(1)
    records = []
    for size_dir in sorted(Path(args.work).glob("n_atoms*"), key=lambda p: int(p.name[7:])):
        points = sorted(size_dir.glob("L_z_c*/metrics.json"), key=lambda p: int(p.parent.name.split("_c")[1]))
        if not points:
            continue
        folder = points[-1].parent  # the largest L_z training set: the best g(z)
        run = Run(parse_config(yaml.safe_load((folder / "config.yaml").read_text())), folder, progress=False)
        ae = closure_stage(run)
        fields = dynamics_stage(run, ae)
        lab = ChunkedTable.open(run.store, "labels").read(rows=np.arange(min(args.configs, run.n_configs)))
        x, idx, f = labelled_configs(run, lab), lab[K.INDEX], lab[K.FORCES]
        exact = compute_features(ae, x, idx, f, rows=False, dtype=torch.float64)
        with torch.no_grad():
            pred = torch.stack([g(exact[K.Z].float()).double() for g in fields]).mean(0)
        thermal = (exact[K.JF][:, 0] - pred[:, 0]).numpy()
        n, k = run.system.n_units, 50
        rng = np.random.default_rng(0)
        full_f = torch.as_tensor(np.take_along_axis(f, np.argsort(idx, 1), 1))  # forces in coordinate order
        xp = []
        ae64 = ae.double()
        for s in range(0, len(x), 25):
            J_T = _batch_jacobian_rows(lambda xb: ae64(xb)[:, :1], torch.as_tensor(x[s:s + 25]))[:, 0]  # (b, N)
            for _ in range(args.draws):
                sub = torch.as_tensor(run.system.unit_coords(sample_units(len(J_T), n, k, rng)))
                est = (torch.gather(J_T, 1, sub) * torch.gather(full_f[s:s + 25], 1, sub)).sum(1) * (n / k)
                xp.append((est - exact[K.JF][s:s + 25, 0]).numpy())
        ae.float()
        xp = np.concatenate(xp)
        s_th, s_xp = float(np.sqrt(np.mean(thermal ** 2))), float(np.sqrt(np.mean(xp ** 2)))
        records.append({"n_atoms": n, "component": "T", "configs": len(x), "lz_point": folder.name,
                        "sigma_thermal": s_th, "sigma_xp": s_xp, "spread_exact": float(exact[K.JF][:, 0].std()),
                        "noise_ratio_xp_over_thermal": s_xp / s_th})
        print(records[-1])
    write_results("force_budget_noise", records, work=args.work,
                  note="sigma_thermal: rms of exact (Jf)_T minus the L_z point's ensemble-mean prediction (an "
                       "upper bound on the thermal part); sigma_xp: rms error of the 50-atom estimate (N/k) J_I f_I of "
                       "(Jf)_T over 20 random subsets per configuration; spread_exact: std of (Jf)_T over the "
                       "configurations. Raw units of dT/dt.")


if __name__ == "__main__":
    main()
