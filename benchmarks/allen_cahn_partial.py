"""Allen–Cahn: partial against full right-hand side on the paper's 200 × 200 grid.

At p = 1/25 a partial evaluation computes 1 600 of 40 000 grid points, so the ideal
speedup is 25×. For each batch size the script times, in one run and interleaved in
a random order per repeat (median over repeats):

- ``full_seconds``: ``system.forces(x)`` (public: shape/finiteness checks + NumPy stencil);
- ``partial_seconds``: ``system.partial_forces(x, idx)`` (public: shape and index checks + numba kernel);
- ``full_kernel_seconds`` / ``partial_kernel_seconds``: the raw kernels the system calls,
  ``allen_cahn_rhs`` / ``allen_cahn_rhs_at``, without the checks of ``MicroSystem``;
- ``check_x_seconds``: the O(B N) finiteness scan of ``x`` alone
  (``macrodyn.data.validate.check_finite``), which ``forces`` pays.

``speedup = full_seconds / partial_seconds`` (what users get) and ``speedup_kernel =
full_kernel_seconds / partial_kernel_seconds``. Indices are drawn as the pipeline
draws them (:func:`macrodyn.training.features.sample_units`: uniform, distinct, sorted).

    python benchmarks/allen_cahn_partial.py [--n 200] [--p 0.04] [--batches 1 16 64] [--repeats 25]
    python benchmarks/allen_cahn_partial.py --smoke [--out DIR]
    python benchmarks/allen_cahn_partial.py --analyse-only      # the table from the JSON

Writes OUT/allen_cahn_partial.json.
"""
from __future__ import annotations

import time

import numpy as np

from common import need_results, parse, parser, print_table, write_results
from macrodyn.data.validate import check_finite
from macrodyn.systems import AllenCahn
from macrodyn.systems.allen_cahn import allen_cahn_rhs, allen_cahn_rhs_at
from macrodyn.training.features import sample_units

COLUMNS = ["n", "p", "batch", "full_seconds", "partial_seconds", "speedup", "full_kernel_seconds",
           "partial_kernel_seconds", "speedup_kernel", "check_x_seconds"]


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=200, help="grid points per side")
    ap.add_argument("--p", type=float, default=1 / 25, help="fraction of grid points evaluated")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="allen_cahn_partial")
    args = parse(ap, argv)
    if args.analyse_only:
        return print_table(need_results(args.out, args.name)["records"], COLUMNS)
    if args.smoke:
        args.n, args.batches, args.repeats = 16, [1, 2], 2

    system = AllenCahn(n=args.n)
    inv_eps2, inv_h2 = 1.0 / system.eps ** 2, 1.0 / system.h ** 2
    N = system.n_coords
    k = max(1, round(args.p * N))
    rng = np.random.default_rng(args.seed)
    records = []
    for B in args.batches:
        # ring initial data, relaxed a little so the stencil sees smooth interfaces and noise-free bulk
        x = system.trajectories(system.sample_initial(B, rng), 20, save_every=20, progress=False)[:, -1]
        idx = sample_units(B, N, k, rng)
        # correctness and warm-up (numba compile or cache load happens here, untimed)
        err = np.abs(system.partial_forces(x, idx) - np.take_along_axis(system.forces(x), idx, 1)).max()
        calls = {
            "full_seconds": lambda: system.forces(x),
            "partial_seconds": lambda: system.partial_forces(x, idx),
            "full_kernel_seconds": lambda: allen_cahn_rhs(x.reshape(B, args.n, args.n), system.eps, system.h),
            "partial_kernel_seconds": lambda: allen_cahn_rhs_at(x, idx, args.n, inv_eps2, inv_h2),
            "check_x_seconds": lambda: check_finite("configurations", x),
        }
        times = {name: [] for name in calls}
        order = list(calls)
        for _ in range(args.repeats):
            rng.shuffle(order)
            for name in order:
                t0 = time.perf_counter()
                calls[name]()
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(t)) for name, t in times.items()}
        rec = {"n": args.n, "p": k / N, "batch": B, "k": k, **med,
               "speedup": med["full_seconds"] / med["partial_seconds"],
               "speedup_kernel": med["full_kernel_seconds"] / med["partial_kernel_seconds"],
               "repeats": args.repeats, "max_abs_diff_partial_vs_full": float(err)}
        records.append(rec)
        print(f"n={args.n} p=1/{N / k:.0f} batch={B:3d}: full {1e3 * med['full_seconds']:8.3f} ms  "
              f"partial {1e3 * med['partial_seconds']:7.3f} ms  speedup {rec['speedup']:5.1f}x | kernels: "
              f"full {1e3 * med['full_kernel_seconds']:8.3f} ms  partial {1e3 * med['partial_kernel_seconds']:7.3f} ms"
              f"  speedup {rec['speedup_kernel']:5.1f}x | check_x {1e3 * med['check_x_seconds']:6.3f} ms"
              f"  (max |partial − full| = {err:.1e})", flush=True)
    path = write_results(args.out, args.name, records, notes=(
        "median wall seconds per call over interleaved repeats; speedup = full/partial through the public "
        "MicroSystem methods (includes the O(B·N) finiteness scan of x, check_x_seconds); speedup_kernel = "
        "raw allen_cahn_rhs / allen_cahn_rhs_at; ideal 1/p. Full kernel: vectorised NumPy; partial kernel: "
        "numba, serial."))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
