"""Preflight: check a config and its system in seconds, before any simulation.

A new system usually fails in the first hour on one of a few mistakes: an attribute
``__init__`` forgot, partial forces that disagree with the full ones, an observable of the
wrong shape or one computed in NumPy, a closure dimension out of range, a run that does
not fit on the disk. :func:`preflight` builds the system, draws a few initial states and
checks each of these, then raises one :class:`InputError` with one line per failure, each
naming the fix — or returns a :class:`Report` of the sizes it estimated.

``macrodyn validate CONFIG`` runs it from the command line.
"""
from __future__ import annotations

import functools
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.func import jacrev, vmap

from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.config import RunConfig, check_before_work
from macrodyn.errors import InputError
from macrodyn.observables.base import BlockMeans, Observable
from macrodyn.systems.base import MicroSystem
from macrodyn.systems.registry import build_system, class_path
from macrodyn.training.closure import fit_closure
from macrodyn.training.losses import make_loss
from macrodyn.training.sampling import make_labelling, make_sampler

#: tolerance of the partial-vs-full force comparison, relative to the largest force of the state
PARTIAL_RTOL = 1e-6


@dataclass
class Report:
    """What :func:`preflight` checked and estimated (bytes are estimates, uncompressed)."""

    system: str
    class_path: str
    n_coords: int
    n_units: int
    coords_per_unit: int
    dt: float
    observable: str
    observable_dim: int
    closure_dim: int
    n_saved: int  # snapshots per trajectory
    units_per_config: int
    n_configs: int  # labelled configurations the budget buys
    pool: int  # training snapshots (before data.min_observable)
    trajectory_bytes: int  # one stored trajectory
    chunk_bytes: int  # one chunk of trajectories, held in memory while it is simulated
    closure_bytes: int  # training snapshots the closure stage holds in memory (stored + float32 copy)
    label_bytes: int
    disk_bytes: int  # the run's data: trajectories + labels
    disk_free: int | None  # free bytes where the run folder goes (None: not checked)
    disk_path: str | None
    memory_available: int | None  # MemAvailable (None: unknown)
    partial_max_rel_diff: float
    partial_checked: int  # coordinates compared
    seconds: float = 0.0
    checks: list[str] = field(default_factory=list)

    def summary(self) -> str:
        d = self.observable_dim + self.closure_dim
        disk = f", {fmt_bytes(self.disk_free)} free at {self.disk_path}" if self.disk_free is not None else ""
        mem = f"{fmt_bytes(self.memory_available)} available" if self.memory_available is not None else "unknown"
        return "\n".join([
            f"config OK ({self.seconds:.1f} s): {', '.join(self.checks)}",
            f"  system       {self.system}{'' if self.system == self.class_path else f' ({self.class_path})'}: "
            f"N = {self.n_coords} coordinates, "
            f"{self.n_units} units, dt = {self.dt:g}",
            f"  observable   {self.observable}, d* = {self.observable_dim}; closure.dim = {self.closure_dim}, d = {d}",
            f"  partial      {self.partial_checked} coordinates agree with forces (max rel. diff "
            f"{self.partial_max_rel_diff:.1e})",
            f"  labels       {self.n_configs} configurations × {self.units_per_config} units = "
            f"{self.n_configs * self.units_per_config:,} force evaluations (pool {self.pool:,} snapshots)",
            f"  memory       chunk {fmt_bytes(self.chunk_bytes)}, closure stage {fmt_bytes(self.closure_bytes)} ({mem})",
            f"  disk         {fmt_bytes(self.disk_bytes)} (trajectory {fmt_bytes(self.trajectory_bytes)}, labels "
            f"{fmt_bytes(self.label_bytes)}){disk}",
        ])


def fmt_bytes(n: float | None) -> str:
    """``n`` bytes to three digits in B, KB, MB, GB or TB (decimal units)."""
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def preflight(cfg: RunConfig, system: MicroSystem | None = None, out: str | Path | None = None, *, n_states: int = 3,
              seed: int = 0) -> Report:
    """Check ``cfg`` (a :class:`macrodyn.config.RunConfig`) and its system in seconds.

    Args:
        cfg: the validated run config (:class:`macrodyn.config.RunConfig`).
        system: the built system (default: built from ``cfg.system``).
        out: the run folder; its disk (the nearest existing parent) must hold the run's data.
        n_states: initial states drawn for the checks.
        seed: seed of the checks' random draws (not the run's).
    Returns:
        a :class:`Report`. Raises :class:`InputError` with one line per failure otherwise.
    The system's force counter is left as it was.
    """
    t0 = time.perf_counter()
    if system is None:
        system = _build(cfg.system.name, cfg.system.params)
    fails = check_structure(system)
    if fails:  # nothing further can run without these
        raise InputError("\n".join(fails))
    saved = _counter_state(system)
    try:
        return _preflight(cfg, system, out, n_states, seed, t0)
    finally:
        _counter_restore(system, saved)


def _preflight(cfg: RunConfig, system: MicroSystem, out, n_states: int, seed: int, t0: float) -> Report:
    fails: list[str] = []
    checks = ["build"]
    N, C = system.n_coords, type(system).__name__
    x, f = None, None

    x, msg = _initial_states(system, n_states, seed)
    if msg:
        fails.append(msg)
    else:
        checks.append("sample_initial")
        f, msg = _forces(system, x)
        fails += [msg] if msg else []
    rel, n_checked = 0.0, 0
    if f is not None:
        checks.append("forces")
        rel, n_checked, msg = check_partial_forces(system, x, f, seed=seed)
        if msg:
            fails.append(msg)
        else:
            checks.append("partial_forces")

    obs, d_star = None, 0
    try:
        obs = system.observable()
    except NotImplementedError:
        fails.append(f"{C} defines no observable: return a macrodyn Observable from {C}.observable() "
                     "(e.g. macrodyn.observables.BlockMeans, or your own Observable subclass).")
    except Exception as e:  # noqa: BLE001 - report the user's error as one line
        fails.append(f"{C}.observable() failed: {type(e).__name__}: {e}")
    if obs is not None:
        probe = x if x is not None else np.zeros((2, N))
        obs_fails = check_observable(obs, probe, where=f"{C}.observable()")
        fails += obs_fails
        if not obs_fails:
            checks.append("observable")
            d_star = int(obs.dim)

    dim = cfg.closure.dim
    if d_star and dim + d_star >= N:
        fails.append(f"closure.dim = {dim} is too large: with d* = {d_star} given observable(s) and N = {N} "
                     f"coordinates it must be < N − d* = {N - d_star}; lower closure.dim.")
    if obs is not None and d_star:  # the config's own up-front checks (device, scheduler, budget vs pool)
        try:
            check_before_work(cfg, system)
        except InputError as e:
            line = " ".join(str(e).split())
            if not any(f.split(" ")[0] == line.split(" ")[0] == "closure.dim" for f in fails):  # said above
                fails.append(line)

    sizes, msgs = estimate(cfg, system, out)
    fails += msgs
    if fails:
        raise InputError("\n".join(fails))
    checks.append("budget, memory and disk")
    return Report(system=cfg.system.name, class_path=class_path(type(system)), n_coords=N, n_units=system.n_units,
                  coords_per_unit=system.coords_per_unit, dt=float(system.dt), observable=type(obs).__name__,
                  observable_dim=d_star, closure_dim=dim, partial_max_rel_diff=rel, partial_checked=n_checked,
                  seconds=time.perf_counter() - t0, checks=checks, **sizes)


# ----------------------------------------------------------------------- pieces
def _build(name: str, params: dict) -> MicroSystem:
    try:
        return build_system(name, params)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's constructor: one line, not a traceback
        raise InputError(f"building system {name!r} from system.params failed: {type(e).__name__}: {e}") from None


def check_structure(system: MicroSystem) -> list[str]:
    """What ``__init__`` must set: the base class's counter, ``n_coords``, ``dt``, ``coords_per_unit``."""
    C = type(system).__name__
    if not isinstance(system, MicroSystem):
        return [f"{C} is not a macrodyn.systems.MicroSystem; subclass it (see the README, 'Bring your own system')."]
    fails = []
    if "counter" not in getattr(system, "__dict__", {}):
        fails.append(f"{C}.__init__ does not call the base class's: call super().__init__() in {C}.__init__ "
                     "(it sets up the force counter).")
    n = getattr(system, "n_coords", None)
    if n is None:
        fails.append(f"{C} sets no n_coords: assign self.n_coords = N (the number of coordinates) in {C}.__init__.")
    elif isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        fails.append(f"{C}.n_coords must be an integer ≥ 2 (the number of coordinates N); got {n!r}.")
    dt = getattr(system, "dt", None)
    if dt is None:
        fails.append(f"{C} sets no dt: assign self.dt (the integration time step) in {C}.__init__.")
    elif isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)) or not (
            math.isfinite(dt) and dt > 0):
        fails.append(f"{C}.dt must be a positive finite number (the integration time step); got {dt!r}.")
    c = system.coords_per_unit
    if not isinstance(c, (int, np.integer)) or c < 1 or (isinstance(n, (int, np.integer)) and n % c):
        fails.append(f"{C}.coords_per_unit = {c!r} must be a positive integer dividing n_coords = {n!r} "
                     "(1 for a PDE, 6 for MD: positions and velocities of one atom).")
    return fails


def _initial_states(system: MicroSystem, n: int, seed: int) -> tuple[np.ndarray | None, str | None]:
    C, N = type(system).__name__, system.n_coords
    try:
        x = system.sample_initial(n, np.random.default_rng(seed))
    except Exception as e:  # noqa: BLE001
        return None, f"{C}.sample_initial(n, rng) failed: {type(e).__name__}: {e}"
    x = np.asarray(x) if isinstance(x, (np.ndarray, list, tuple)) else x
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        return None, (f"{C}.sample_initial(n, rng) returned {type(x).__name__}"
                      f"{' of dtype ' + str(x.dtype) if isinstance(x, np.ndarray) else ''}; return a NumPy float "
                      f"array of shape (n, N) = ({n}, {N}).")
    if x.shape != (n, N):
        return None, f"{C}.sample_initial({n}, rng) returned shape {x.shape}; it must return (n, N) = ({n}, {N})."
    if not np.all(np.isfinite(x)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        return None, f"{C}.sample_initial returned NaN/Inf (first at {first}); return finite initial states."
    try:
        again = np.asarray(system.sample_initial(n, np.random.default_rng(seed)))
    except Exception as e:  # noqa: BLE001
        return None, f"{C}.sample_initial(n, rng) failed on a second call: {type(e).__name__}: {e}"
    if again.shape != x.shape or not np.array_equal(again, x):
        return None, (f"{C}.sample_initial is not reproducible: two calls with the same seeded rng gave different "
                      "states; draw every random number from its rng argument (not np.random.* or the clock).")
    return x.astype(np.float64), None


def _forces(system: MicroSystem, x: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    C = type(system).__name__
    try:
        f = system.forces(x)
    except InputError as e:
        return None, f"forces on sample_initial's states: {e}"
    except Exception as e:  # noqa: BLE001
        return None, f"{C}._forces failed on sample_initial's states: {type(e).__name__}: {e}"
    f = np.asarray(f)
    if f.shape != x.shape:
        return None, (f"{C}._forces returned shape {f.shape} for x of shape {x.shape}; it must return "
                      f"(B, N) = {x.shape}.")
    return f, None


def check_partial_forces(system: MicroSystem, x: np.ndarray, f: np.ndarray | None = None, *, seed: int = 0,
                         units_per_row: int = 6, rtol: float = PARTIAL_RTOL) -> tuple[float, int, str | None]:
    """Compare ``partial_forces(x, idx)`` with ``forces(x)[idx]`` on random unit subsets.

    Each row gets ``units_per_row`` distinct units (sorted, as the label stage draws them);
    the first row always includes the first and last unit, where stencils have their edge
    cases. Returns ``(max rel. diff, coordinates compared, failure line or None)``; the
    difference is relative to the state's largest force.
    """
    C = type(system).__name__
    if f is None:
        f = system.forces(x)
    n_units = system.n_units
    k = min(units_per_row, n_units)
    rng = np.random.default_rng([seed, 1])
    units = np.sort(np.stack([rng.choice(n_units, k, replace=False) for _ in range(len(x))]), axis=1)
    if k >= 2 and n_units > 2:
        inner = rng.choice(np.arange(1, n_units - 1), k - 2, replace=False)
        units[0] = np.sort(np.concatenate([[0, n_units - 1], inner]))
    idx = system.unit_coords(units)
    try:
        p = system.partial_forces(x, idx)
    except InputError as e:
        return math.inf, 0, f"partial_forces on sample_initial's states: {e}"
    except Exception as e:  # noqa: BLE001
        return math.inf, 0, f"{C}._partial_forces failed: {type(e).__name__}: {e}"
    p = np.asarray(p)
    if p.shape != idx.shape:
        return math.inf, 0, (f"{C}._partial_forces returned shape {p.shape} for idx of shape {idx.shape}; it must "
                             "return (B, k), one force per requested coordinate.")
    want = np.take_along_axis(f, idx, axis=1)
    scale = np.abs(f).max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(p == want, 0.0, np.abs(p - want) / np.where(scale > 0, scale, np.finfo(float).tiny))
    worst = float(rel.max()) if rel.size else 0.0
    if not worst <= rtol:
        bad = np.argwhere(rel > rtol)
        where = ", ".join(f"[{b}, {int(idx[b, j])}]" for b, j in bad[:3]) + (", …" if len(bad) > 3 else "")
        edge = np.isin(units[bad[:, 0], bad[:, 1] // system.coords_per_unit], [0, n_units - 1]).all()
        hint = " — all at the first/last unit: check the stencil's boundary cases" if edge else ""
        return worst, idx.size, (f"partial_forces disagrees with forces at [state, coordinate] {where} "
                                 f"({len(bad)} of {idx.size} checked, max rel. diff {worst:.2g}{hint}); "
                                 "partial_forces(x, idx)[b, j] must equal forces(x)[b, idx[b, j]].")
    return worst, idx.size, None


def check_observable(obs, x: np.ndarray, where: str = "the observable") -> list[str]:
    """Failures of an observable on configurations ``x`` ``(B, N)``: type, ``dim``, output shape and
    dtype, differentiability (autograd and ``torch.func``, as the closure uses it), row independence."""
    if not isinstance(obs, Observable):
        kind = ("a plain function" if callable(obs) and not isinstance(obs, torch.nn.Module)
                else f"a {type(obs).__name__}")
        return [f"{where} returns {kind}, not a macrodyn Observable: wrap it in an Observable subclass (an "
                "nn.Module with dim and forward(x) -> (B, dim)), e.g. "
                "macrodyn.observables.FunctionObservable(fn, dim=...)."]
    name = type(obs).__name__
    dim = getattr(obs, "dim", None)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        return [f"{name} declares dim = {dim!r}: set self.dim (the number of output columns, ≥ 1) in its __init__."]
    xt = torch.as_tensor(np.asarray(x)[:4], dtype=torch.float32).clone().requires_grad_(True)
    B = xt.shape[0]
    try:
        z = obs(xt)
    except Exception as e:  # noqa: BLE001
        if "numpy" in str(e).lower():
            return [f"{name} computes with NumPy ({type(e).__name__}: {e}): write the observable with torch "
                    "operations, so the closure can differentiate it."]
        return [f"{name} failed on a (B, N) = {tuple(xt.shape)} float32 tensor: {type(e).__name__}: {e}"]
    if not isinstance(z, torch.Tensor):
        return [f"{name}.forward returns {type(z).__name__}; return a torch.Tensor of shape (B, {dim}) computed with "
                "torch operations."]
    if z.ndim == 1 and z.shape[0] == B:
        return [f"{name} returns shape (B,) = {tuple(z.shape)}: return shape (B, 1)"
                f"{'' if dim == 1 else f' — or (B, {dim}) as declared'} (e.g. .sum(dim=1, keepdim=True) or "
                ".unsqueeze(1))."]
    if z.ndim != 2 or z.shape[0] != B:
        return [f"{name} returns shape {tuple(z.shape)} for input {tuple(xt.shape)}; it must return (B, dim) = "
                f"({B}, {dim})."]
    if z.shape[1] != dim:
        return [f"{name} declares dim={dim} but returns {z.shape[1]} columns; set dim = {z.shape[1]} or "
                f"return {dim} columns."]
    if not z.dtype.is_floating_point:
        return [f"{name} returns dtype {z.dtype}; return floating-point values (integers carry no gradient)."]
    fails = []
    names = tuple(getattr(obs, "names", ()) or ())
    if names and len(names) != dim:
        fails.append(f"{name}.names has {len(names)} entries for dim = {dim}; give one name per column.")
    grad = None
    if z.requires_grad:
        grad = torch.autograd.grad(z.sum(), xt, allow_unused=True)[0]
    if grad is None:
        return fails + [f"{name} is not differentiable (its output is not computed from x by torch operations): "
                        "write the observable with torch operations — no numpy, .item(), .detach() or "
                        "torch.tensor(...) of a computed value."]
    if not torch.isfinite(z).all() or not torch.isfinite(grad).all():
        fails.append(f"{name} gives NaN/Inf values or gradients on sample_initial's states.")
    with torch.no_grad():
        first = obs(xt[:1].detach())
        if B > 1 and isinstance(first, torch.Tensor) and first.shape == z[:1].shape and not torch.allclose(
                first, z[:1].detach(), rtol=1e-4, atol=1e-6 * float(z.abs().max()) + 1e-12):
            fails.append(f"{name} mixes the rows of a batch (row 0 alone gives another value): each output row must "
                         "depend on its own configuration only (reduce over dim=1, not over the batch).")
        try:
            obs(torch.as_tensor(np.asarray(x)[:2], dtype=torch.float64))
        except Exception as e:  # noqa: BLE001
            fails.append(f"{name} fails on float64 input (the stages pass stored float64 snapshots): "
                         f"{type(e).__name__}: {e}")
    try:
        vmap(jacrev(lambda xi: obs(xi.unsqueeze(0)).squeeze(0)))(xt[:2].detach())
    except Exception as e:  # noqa: BLE001
        fails.append(f"{name} fails under torch.func (the closure takes its Jacobian with vmap/jacrev): "
                     f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; avoid .item(), in-place "
                     "writes into x and Python branches on tensor values.")
    return fails


@functools.cache
# ----------------------------------------------------------------------- sizes
def memory_available() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def existing_parent(path: Path) -> Path:
    """The nearest folder of ``path`` (itself included) that exists: where its disk space is."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def bytes_under(path: Path) -> int:
    """Bytes of the files under ``path``; links are counted, not followed (a study point's links to
    its shared tables cost nothing)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def estimate(cfg: RunConfig, system: MicroSystem, out: str | Path | None = None) -> tuple[dict, list[str]]:
    """Sizes of the run (the :class:`Report` fields) and the failures they imply: memory or disk
    that cannot hold the data (the budget is :func:`macrodyn.config.check_before_work`'s)."""
    d, t, c = cfg.data, cfg.training, cfg.closure
    N, n_units, cpu = system.n_coords, system.n_units, system.coords_per_unit
    fails = []
    n_saved = d.n_steps // d.save_every + 1
    item = np.dtype(d.dtype).itemsize
    traj = n_saved * N * item
    chunk = min(d.chunk_trajectories, max(d.n_train_trajectories, d.n_test_trajectories)) * traj
    upc = make_loss(t.loss, t.p).units(n_units)
    visits = make_labelling(t.labelling, t.on_demand_visits).visits
    n_configs = t.budget // upc // visits
    pool = d.n_train_trajectories * n_saved
    weighted = make_sampler(t.sampling, upc, t.importance_mix).weighted  # stores a weight per coordinate
    labels = n_configs * (upc * cpu * (16 + 8 * weighted) + 16) * visits
    disk = (d.n_train_trajectories + d.n_test_trajectories) * traj + labels
    n_closure = min(pool, c.max_configs) if c.max_configs else pool
    closure = n_closure * N * (item + 4)  # stored snapshots + a float32 copy (tensor, or centred in fit_scaling)
    mem = memory_available()
    if mem is not None:
        if chunk > mem:
            fit = mem // (2 * traj)
            fails.append(f"one chunk of trajectories needs {fmt_bytes(chunk)} in memory ({d.chunk_trajectories} × "
                         f"{fmt_bytes(traj)}) but {fmt_bytes(mem)} is available; "
                         + (f"lower data.chunk_trajectories to {fit} or less." if fit >= 1 else
                            "lower data.n_steps or raise data.save_every (one trajectory does not fit)."))
        if closure > mem:
            upto = "up to " if d.min_observable is not None else ""  # the threshold drops some, unknown yet
            fails.append(f"the closure stage holds {upto}{n_closure:,} snapshots ({fmt_bytes(closure)}) in memory but "
                         f"{fmt_bytes(mem)} is available; set closure.max_configs to {max(1, mem // (2 * N * (item + 4))):,} "
                         "or less.")
    free, where = None, None
    if out is not None:
        out = Path(out)
        parent = existing_parent(out)
        free, where = shutil.disk_usage(parent).free, str(parent)
        have = bytes_under(out / "data.zarr") if (out / "data.zarr").is_dir() else 0  # a resumed run
        need = max(0, disk - have)
        if need > free:
            fails.append(f"the run needs about {fmt_bytes(need)} on disk (trajectories {fmt_bytes(disk - labels)}, labels "
                         f"{fmt_bytes(labels)}) but {where} has {fmt_bytes(free)} free; use an --out on a larger disk or lower "
                         "data.n_train_trajectories, data.n_test_trajectories or data.n_steps / data.save_every.")
    sizes = dict(n_saved=n_saved, units_per_config=upc, n_configs=n_configs, pool=pool, trajectory_bytes=traj,
                 chunk_bytes=chunk, closure_bytes=closure, label_bytes=labels, disk_bytes=disk, disk_free=free,
                 disk_path=where, memory_available=mem)
    return sizes, fails


# ----------------------------------------------------------------------- counter
def _counter_state(system: MicroSystem):
    c = system.counter
    return c.labels, c.simulation, c.label_seconds


def _counter_restore(system: MicroSystem, state) -> None:
    system.counter.labels, system.counter.simulation, system.counter.label_seconds = state
