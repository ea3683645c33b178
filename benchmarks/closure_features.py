"""What the closure's input costs in the features stage: an encoder of the coordinates against one of
invariant pair descriptors (``closure.input: descriptors``), on the same LJ configurations.

The features of L_x,p (``macrodyn.training.compute_features``: ``z``, the ``J⁺`` rows of the
labelled atoms, and ``J c`` with a control) are computed for ``--configs`` relaxed LJ states with
``--atoms-labelled`` atoms each, once per closure, side by side in one process (median of
``--repeats``). The closures are untrained: the cost does not depend on the weights. The
descriptors' own pass (pairs, values and exact Jacobian) is timed apart.

Writes OUT/closure_features.json, one record per (closure, control):
``{closure, n_atoms, configs, atoms_labelled, control, closure_dim, seconds_per_config,
descriptor_seconds_per_config, ratio_to_coordinates}``.

    python benchmarks/closure_features.py [--atoms 800 --configs 64]
    python benchmarks/closure_features.py --smoke [--out DIR]
    python benchmarks/closure_features.py --analyse-only
"""
from __future__ import annotations

import numpy as np
import torch

from common import CONFIGS, median_time, need_results, parse, parser, print_table, write_results
from macrodyn import load_config
from macrodyn.model.parts import make_closure
from macrodyn.systems import build_system
from macrodyn.training.features import compute_features, sample_units

NAME = "closure_features"
COLUMNS = ["closure", "n_atoms", "configs", "atoms_labelled", "control", "closure_dim", "seconds_per_config",
           "descriptor_seconds_per_config", "ratio_to_coordinates"]
#: the closures of configs/lj800.yaml and of estimators.py's lj800_invariant variant
CLOSURES = {"coordinates": {}, "descriptors": {"input": "descriptors", "descriptor_basis": 8, "dim": 4}}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--atoms", type=int, default=800)
    ap.add_argument("--configs", type=int, default=64)
    ap.add_argument("--atoms-labelled", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, NAME)["records"], COLUMNS)
    if args.smoke:
        args.atoms, args.configs, args.atoms_labelled, args.repeats = 108, 4, 10, 1
    torch.set_num_threads(1)
    cfg = load_config(CONFIGS / "lj800.yaml")
    system = build_system("lennard_jones", {**cfg.system.params, "n_atoms": args.atoms, "engine": "verlet"})
    rng = np.random.default_rng(0)
    x = system.sample_initial(args.configs, rng)
    idx = system.unit_coords(sample_units(args.configs, system.n_units, args.atoms_labelled, rng))
    f = system.partial_forces(x, idx)
    c = system.forces(x)  # any (B, N) vector serves as the control's prediction; these are the forces
    records, base = [], {}
    for name, fields in CLOSURES.items():
        torch.manual_seed(0)
        ae = make_closure(cfg.closure.model_copy(update=fields), system)
        ae.fit_scaling(ae.inputs_of(torch.as_tensor(x, dtype=torch.float32)))
        desc = getattr(ae, "descriptors", None)
        d_sec = (median_time(lambda: desc.values_and_jacobian(torch.as_tensor(x)), args.repeats) / args.configs
                 if desc is not None else None)
        for control in (False, True):
            sec = median_time(lambda: compute_features(ae, x, idx, f, control=c if control else None),
                                 args.repeats) / args.configs
            base.setdefault(control, sec)
            records.append({"closure": name, "n_atoms": args.atoms, "configs": args.configs,
                            "atoms_labelled": args.atoms_labelled, "control": control, "closure_dim": ae.closure_dim,
                            "seconds_per_config": sec, "descriptor_seconds_per_config": d_sec,
                            "ratio_to_coordinates": sec / base[control]})
    print_table(records, COLUMNS)
    write_results(args.out, NAME, records)


if __name__ == "__main__":
    main()
