"""``macrodyn advise``: which loss, labelled fraction and control a system needs, and how many
force evaluations, predicted from a pilot that spends a few percent of the budget.

The pilot is small runs on the config's own trajectories and closure, half of it on each of:

- L_z on ``m`` fully labelled configurations: the error of exact labels, ``e_z(m)``, which
  sets ``a`` in ``e_z(n) = a n^-b`` (how many states the model must see). The exponent ``b``
  is not fitted: on pilots of 15 and 30 configurations the error did not even fall
  monotonically, while our studies with exact labels measured ``b`` from 0.7 to 1.9 on
  predator–prey and Lennard–Jones; ``b = 1`` is the default (``exponent``);
- L_x,p (the config's ``p``) on as many evaluations: how much error label noise adds on this
  system and model.

The L_z run comes first: its labels decide what the second half is spent on (below).

The noise of every candidate estimator (L_x,p at several ``p``, with the surrogate control
where one is configured) is measured exactly on the L_z run's labels, which hold every
force (:mod:`macrodyn.training.noise`): ``r²``, the noise variance of the rate the loss fits
relative to the spread of the exact rate. Label noise adds error variance in proportion to
``r² / n`` (a mean over ``n`` independent labels), so a candidate's error with ``n``
configurations is predicted as

    e(n)² = e_z(n)² + A r² / n,

with ``A`` from the L_x,p pilot (its measured error against ``e_z`` at its size). A candidate
needs the ``n`` where ``e(n) = e_tol``, that is ``n`` times its evaluations per configuration;
the recommendation is the candidate that needs the fewest (within 10 %, the least noisy).

Where the config's L_x,p labels are exact (``r²`` below :data:`EXACT`: the forces lie in the
span of the encoder's gradients, as on Allen–Cahn), label noise adds nothing and only the
learning curve matters. The candidates then go on below the smallest ``p``, halving it while
the labels stay exact (:func:`finer_exact`: down to about the closure's dimension in units), and
the second half of the pilot labels as many configurations as it buys at the cheapest exact
``p`` (the most configurations per evaluation) and fits L_x,p on them twice (two initialisations)
and on each of :data:`PARTS` disjoint parts of them, every fit trained for the config's own epochs
like the run the advice sizes; ``e(n) = a n^-b`` is fitted by least squares through the six fits.
The parts reuse the labels, so they cost no evaluations: they average out the spread of single
fits (on Allen–Cahn two fits on the same labels erred 4.4× apart, one stuck early), which made
curves through two single fits land 2.7× and 0.35× from the measured need on two draws.
``b`` is kept within :data:`B_RANGE`, the exponents exact labels measured on predator–prey and
Lennard–Jones: averaging steadies the curve's level more than its slope, and a slope from small
pilots errs flat (learning curves steepen as the set grows; on Allen–Cahn both draws fitted
``b`` below the bound and the prediction rests on it). Not through the L_z
run: its few configurations sit where the error has not yet settled onto its power law. And
the more configurations the pilot buys, the shorter the extrapolation to the budget it predicts.

Two extrapolations carry the prediction: ``e_z``'s power law beyond the pilot's sizes, and the
``1/n`` law of the noise. ``docs/choosing.md`` shows how well they held on the shipped systems.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from macrodyn import keys as K
from macrodyn.config import RunConfig, build_surrogate, parse_config, training_pool_size
from macrodyn.data.store import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.io import save_json
from macrodyn.model.parts import stream_rng
from macrodyn.pipeline import share_stages
from macrodyn.run import Run
from macrodyn.run.closure import load_closure
from macrodyn.run.label import copy_labels
from macrodyn.run.pool import labelled_configs, snapshot_pool
from macrodyn.study.grid import GridPoint, fit_steps, point_folder, run_grid, steps_per_epoch
from macrodyn.systems.registry import build_system
from macrodyn.training.control import SurrogateControl, slot_beta, slot_scale
from macrodyn.training.losses import make_loss
from macrodyn.training.noise import exact_rates, rate_noise, relative_noise

SHARE = 0.5  # of the pilot's evaluations per pilot run (L_z on m configurations, L_x,p on m · N evaluations)
MIN_CONFIGS = 8  # fully labelled configurations of the L_z pilot: fewer say little about the error
P_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # candidate p: these multiples of the pilot's p
EXACT = 1e-9  # label noise r² below this is rounding: the labels are exact
B_RANGE = (0.7, 1.9)  # a fitted exponent is clipped to what exact labels measured on our other systems
PARTS = 4  # disjoint parts of the exact-label pilot's configurations, each fitted on its own
TIE = 0.1  # predictions within 10 % of the cheapest count as a tie (the least noisy is recommended)


@dataclass
class Candidate:
    """One estimator: its training fields, evaluations per configuration (``units``), its noise
    ``r²`` and the predicted configurations and evaluations to reach ``e_tol`` (None: never)."""

    name: str
    training: dict
    units: int
    noise: float
    configs: float | None = None
    evaluations: float | None = None
    beyond_pool: bool = False

    @property
    def noise_per_evaluation(self) -> float:
        """``r² · units``: the noise variance one force evaluation's worth of labels carries."""
        return self.noise * self.units


@dataclass
class Advice:
    """The pilot's measurements, every candidate's prediction and the recommendation."""

    e_tol: float
    budget: int
    pilot: list[dict]
    pilot_evaluations: int
    surrogate_evaluations: int
    curve: dict
    noise_scale: float
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)

    @property
    def recommended(self) -> Candidate | None:
        """The cheapest prediction; among those within :data:`TIE` of it, the least noisy (the
        predictions do not resolve smaller differences, and noisier labels spread more from
        one draw of configurations to the next)."""
        ok = [c for c in self.candidates if c.evaluations is not None]
        if not ok:
            return None
        cheapest = min(c.evaluations for c in ok)
        return min((c for c in ok if c.evaluations <= (1 + TIE) * cheapest), key=lambda c: (c.noise, c.evaluations))

    def to_dict(self) -> dict:
        rec = self.recommended
        return {"e_tol": self.e_tol, "budget": self.budget, "pilot": self.pilot,
                "pilot_evaluations": self.pilot_evaluations, "pilot_share": self.pilot_evaluations / self.budget,
                "surrogate_evaluations": self.surrogate_evaluations, "curve": self.curve,
                "noise_scale": self.noise_scale,
                "candidates": [{**asdict(c), "noise_per_evaluation": c.noise_per_evaluation} for c in self.candidates],
                "recommended": rec.name if rec else None, "notes": self.notes}

    def table(self) -> str:
        rows = [f"{'estimator':<28} {'evals/config':>12} {'noise r²':>9} {'r² × evals':>10} {'configs':>9} "
                f"{'evaluations to e_tol':>20}"]
        rec = self.recommended
        for c in sorted(self.candidates, key=lambda c: (c.evaluations is None, c.evaluations or 0)):
            ev = "not reached" if c.evaluations is None else f"{c.evaluations:.3g}" + (" (> pool)" if c.beyond_pool
                                                                                          else "")
            cf = "-" if c.configs is None else f"{c.configs:.0f}"
            mark = " <- recommended" if c is rec else ""
            rows.append(f"{c.name:<28} {c.units:>12} {c.noise:>9.3g} {c.noise_per_evaluation:>10.3g} {cf:>9} "
                        f"{ev:>20}{mark}")
        return "\n".join(rows)


def pilot_points(cfg: RunConfig, budget: int, fraction: float, p: float, members: int,
                 steps: int | None, n_units: int | None = None) -> list[GridPoint]:
    """The two pilot runs (see the module doc): L_z on ``m`` configurations and L_x,p at ``p`` on
    ``m · N`` evaluations, each trained for about ``steps`` optimiser steps (``n_units``: the
    system's, built from the config when not given)."""
    n_units = n_units or build_system(cfg.system.name, cfg.system.params).n_units
    spend = fraction * budget
    m = int(SHARE * spend // n_units)
    if m < MIN_CONFIGS:
        raise InputError(f"a pilot of {spend:.3g} force evaluations ({fraction:g} of the budget {budget}) labels only "
                         f"{m} configurations in full at {n_units} units each (at least {MIN_CONFIGS} are needed); "
                         f"raise --budget or --pilot-fraction.")
    k = make_loss("L_xp", p).units(n_units)
    # capped by the training pool; where that is known only after simulating (data.min_observable),
    # by the L_z pilot's evaluations instead
    m_xp = min(int(SHARE * spend // k), training_pool_size(cfg) or m * n_units // k)
    steps = steps or pilot_steps(cfg, m_xp)
    return [_pilot(cfg, "L_z", 1.0, m, n_units, members, steps), _pilot(cfg, "L_xp", p, m_xp, k, members, steps)]


def exact_pilot_points(cfg: RunConfig, budget: int, fraction: float, q: float, members: int, steps: int | None,
                       n_units: int, pool: int) -> list[GridPoint]:
    """The second half of the pilot where L_x,p's labels are exact (see the module doc): L_x,p at
    ``q`` on all the configurations that half buys (at most the ``pool`` of training snapshots),
    fitted twice (the second from another initialisation), then on each of :data:`PARTS`
    disjoint parts of them. Only the first point labels; the others reuse its labels (their
    tags' ``labels_of`` and ``rows``: :func:`macrodyn.run.label.copy_labels`). Each trains the
    config's own epochs over its set unless ``steps`` is given: the exponent fitted through them
    is carried to the run the advice sizes, which trains that way too (a common step count gives
    the smaller set more epochs than such a run would, and flattens the fitted curve)."""
    k = make_loss("L_xp", q).units(n_units)
    total = min(int(SHARE * fraction * budget // k), pool)
    part = total // PARTS
    if part < MIN_CONFIGS:
        raise InputError(f"the exact-label pilot at p = {q:g} buys {total} configurations ({k} units each), too few "
                         f"for {PARTS} parts of at least {MIN_CONFIGS}; raise --budget or --pilot-fraction.")
    owner = _pilot(cfg, "L_xp", q, total, k, members, steps, f"L_xp_p{q:.4g}_c{total}")
    again = _pilot(cfg.model_copy(update={"seed": cfg.seed + 1}), "L_xp", q, total, k, members, steps,
                   f"L_xp_p{q:.4g}_c{total}_init2", labels_of=owner.name, rows=np.arange(total))
    order = stream_rng(cfg.seed, "pilot_parts").permutation(total)
    parts = [_pilot(cfg, "L_xp", q, part, k, members, steps, f"L_xp_p{q:.4g}_c{part}_part{i + 1}",
                    labels_of=owner.name, rows=np.sort(order[i * part:(i + 1) * part])) for i in range(PARTS)]
    return [owner, again, *parts]


def reuse_labels(source: Run, shared: Run, point: GridPoint, out: str | Path) -> None:
    """Make ``point``'s folder in the grid ``out`` (on ``shared``'s trajectories and closure) hold
    rows ``point.tags["rows"]`` of ``source``'s labels, so it trains without labelling; a
    finished point is left as it is."""
    folder = point_folder(out, point)
    if (folder / "metrics.json").exists():
        return
    share_stages(shared.out, folder)
    copy_labels(source, Run.create(point.cfg, folder, progress=False), point.tags["rows"])


def pilot_steps(cfg: RunConfig, n_configs: int) -> int:
    """A full run's epochs over the largest pilot set: the optimiser steps of every pilot run."""
    return cfg.training.epochs * steps_per_epoch(cfg.training.model_dump(), n_configs)


def _pilot(cfg: RunConfig, loss: str, p: float, n: int, units: int, members: int, steps: int | None,
           tag: str | None = None, labels_of: str | None = None, rows: np.ndarray | None = None) -> GridPoint:
    """One pilot run, named ``pilot_<tag>``: ``loss`` at ``p`` on ``n`` configurations of ``units`` evaluations
    each, trained for about ``steps`` optimiser steps (None: the config's epochs); with ``labels_of``, on
    rows ``rows`` of that pilot's labels instead of its own."""
    tag = tag or f"{loss}_c{n}"
    d = cfg.model_dump()
    d["name"] = f"{cfg.name}_pilot_{tag}"
    d["training"].update({"loss": loss, "p": p, "budget": n * units, "members": members, "control": "none",
                          "labelling": "fixed"})
    if steps:
        fit_steps(d["training"], n, steps)
    tags = {"loss": loss, "p": p, "configs": n, "labels_of": labels_of, "rows": rows}
    return GridPoint(f"pilot_{tag}", parse_config(d, "advise pilot"), tags=tags)


def candidates(cfg: RunConfig, p: float, n_units: int) -> list[tuple[str, dict, int, bool]]:
    """``(name, training fields, units per configuration, uses the surrogate)`` of every estimator
    the advice compares (``units == n_units``: exact labels)."""
    out = [("L_z", {"loss": "L_z", "p": 1.0, "control": "none"}, n_units, False)]
    ps = sorted({min(1.0, p * f) for f in P_FACTORS if make_loss("L_xp", min(1.0, p * f)).units(n_units) < n_units})
    surrogate = cfg.training.surrogate is not None
    for q in ps:
        k = make_loss("L_xp", q).units(n_units)
        out.append((xp_name(q), {"loss": "L_xp", "p": q, "control": "none"}, k, False))
        if surrogate:
            out.append((f"{xp_name(q)} + surrogate", {"loss": "L_xp", "p": q, "control": "surrogate"}, k, True))
    return out


def finer_exact(cands: list[tuple[str, dict, int, bool]], noise: dict[str, float], n_units: int,
                measure) -> list[tuple[tuple[str, dict, int, bool], float]]:
    """``[(candidate, r²)]``: plain L_x,p below the smallest candidate ``p``, halving it while
    ``measure(candidate)`` (its noise ``r²``) finds the labels exact.

    Why: where every label is exact, the fewest units that still determine the rate (at least
    the closure's dimension ``d``: ``J⁺_I`` must have full column rank) are the cheapest
    estimator, and the exact-label pilot buys the most configurations there, so its learning
    curve reaches closest to the budget it predicts. Nothing is added unless the smallest
    candidate is itself exact."""
    plain = [c for c in cands if c[2] < n_units and not c[3]]
    if not plain:
        return []
    name, t, k, _ = min(plain, key=lambda c: c[2])
    if noise[name] >= EXACT:
        return []
    q, out = t["p"], []
    while k > 1:  # halving p halves round(p · n): the units fall every step
        q /= 2
        k = make_loss("L_xp", q).units(n_units)
        c = (xp_name(q), {"loss": "L_xp", "p": q, "control": "none"}, k, False)
        r = measure(c)
        if r >= EXACT:
            break
        out.append((c, r))
    return out


def xp_name(p: float) -> str:
    """How the advice names plain L_x,p at ``p``."""
    return f"L_xp p={p:.4g}"


def pilot_rates(run: Run) -> tuple:
    """``(x, f, J, J f)`` of the fully labelled pilot ``run``: its configurations, all their forces
    (coordinate order), encoder Jacobians and exact rates (:func:`exact_rates`)."""
    lab = ChunkedTable.open(run.store, "labels").read()
    x = labelled_configs(run, lab)
    f = np.take_along_axis(lab[K.FORCES], np.argsort(lab[K.INDEX], 1), 1)
    return (x, f, *exact_rates(load_closure(run), x, f))


def measure_noise(run: Run, cands: list[tuple[str, dict, int, bool]], draws: int, seed: int,
                  surrogate=None, rates: tuple | None = None) -> tuple[dict[str, float], int]:
    """``({name: r²}, surrogate evaluations)`` of the candidates on the fully labelled pilot ``run``
    (``rates``: its :func:`pilot_rates`, computed when not given)."""
    x, f, J, exact = rates or pilot_rates(run)
    control, spent = None, 0
    if surrogate is not None and any(uses for *_, uses in cands):
        before = surrogate.counter.labels
        s = surrogate.forces(np.asarray(x, dtype=np.float64))
        spent = surrogate.counter.labels - before
        control, _ = surrogate_control(surrogate, s, f)
    return estimator_noise(J, exact, run.system, f, cands, draws, seed, control), spent


def surrogate_control(surrogate, s: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(β s, β)``: the surrogate's forces ``s`` scaled per slot as the surrogate control scales
    them, with ``β`` at its limit where every force ``f`` is labelled (both ``(M, N)``)."""
    sums = slot_scale(np.broadcast_to(np.arange(s.shape[1]), s.shape), f, s, surrogate.coords_per_unit)
    beta = slot_beta(*sums)
    return SurrogateControl(surrogate, beta).scaled(s), beta


def estimator_noise(J, exact, system, f: np.ndarray, cands: list[tuple[str, dict, int, bool]], draws: int,
                    seed: int, control: np.ndarray | None = None) -> dict[str, float]:
    """``{name: r²}`` of the candidates on configurations with encoder Jacobians ``J`` and exact
    rates ``exact`` (:func:`exact_rates`) and all their forces ``f`` (coordinate order); the
    candidates that use the surrogate subtract ``control`` (:func:`surrogate_control`)."""
    out = {}
    for name, _, k, uses in cands:
        if k == system.n_units:  # every force labelled: exact
            out[name] = 0.0
            continue
        c = control if uses else None
        mse = rate_noise(J, f, system.unit_coords, system.n_units, k, draws, np.random.default_rng(seed), c)
        out[name] = relative_noise(mse, exact)
    return out


def learning_curve(n: int, error: float, b: float) -> dict:
    """``e_z(n') = a n'^-b`` through the L_z pilot's ``(n, error)``."""
    return {"a": error * n ** b, "b": b}


def fitted_curve(fits: list[dict]) -> dict:
    """``e(n) = a n^-b`` by least squares in log-log through exact-label pilot fits (``configs``,
    ``error``): ``b`` is the fitted slope clipped to :data:`B_RANGE` (``b_fitted``: before
    clipping), ``a`` the least-squares intercept at that slope (the line through the centre of
    all the fits). In log space because fits spread by factors (a fit stuck early errs several
    times its twin on the same labels); every fit counts once, so several at one size weigh by
    their number. ``diverged``: how many fits had no finite error (left out).

    Raises:
        InputError: fewer than two sizes have a finite error.
    """
    ok = [f for f in fits if f["error"] is not None and math.isfinite(f["error"])]
    x = np.log([f["configs"] for f in ok])
    y = np.log([f["error"] for f in ok])
    if len(set(x)) < 2:
        raise InputError(f"{len(fits) - len(ok)} of the exact-label pilot's {len(fits)} fits diverged, leaving fewer "
                         "than two sizes to fit the learning curve through; check the training settings (lr, "
                         "epochs) or give --steps, and advise again in a new --out.")
    slope = float(np.polyfit(x, y, 1)[0])
    b = float(np.clip(-slope, *B_RANGE))
    a = math.exp(float(np.mean(y + b * x)))
    return {"a": a, "b": b, "b_fitted": -slope, "diverged": len(fits) - len(ok)}


def configs_to_tol(curve: dict, scale: float, noise: float, e_tol: float) -> float | None:
    """The ``n`` where ``a² n^-2b + scale · noise / n = e_tol²`` (the left side falls with ``n``)."""
    err2 = lambda n: curve["a"] ** 2 * n ** (-2 * curve["b"]) + scale * noise / n  # noqa: E731
    lo, hi = 1.0, 1e15
    if err2(hi) > e_tol ** 2:
        return None
    if err2(lo) <= e_tol ** 2:
        return lo
    for _ in range(200):  # bisection in log n
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if err2(mid) > e_tol ** 2 else (lo, mid)
    return hi


def advise(cfg: RunConfig, out: str | Path, e_tol: float, *, budget: int | None = None, fraction: float = 0.05,
           p: float | None = None, members: int | None = None, steps: int | None = None, draws: int = 20,
           exponent: float = 1.0, progress: bool = True) -> Advice:
    """Run (or read back) the pilot in ``out`` and predict every candidate's evaluations to ``e_tol``."""
    if not 0 < fraction <= 0.05:
        raise InputError(f"--pilot-fraction {fraction} must be in (0, 0.05]: the pilot is a small part of the budget.")
    budget = budget or cfg.training.budget
    n_units = build_system(cfg.system.name, cfg.system.params).n_units
    partial = make_loss(cfg.training.loss, cfg.training.p).units(n_units) < n_units
    p = p or (cfg.training.p if partial else 0.1)
    members = members or min(cfg.training.members, 2)
    z_point, xp_point = pilot_points(cfg, budget, fraction, p, members, steps, n_units)
    results = run_grid([z_point], cfg, out, progress=progress, desc="advise pilot")
    cands = candidates(cfg, p, n_units)
    surrogate = build_surrogate(cfg) if cfg.training.surrogate is not None else None
    rates = pilot_rates(results[0].run)
    noise, surrogate_evals = measure_noise(results[0].run, cands, draws, cfg.seed, surrogate, rates)
    r_xp = noise[xp_name(p)]
    exact = r_xp < EXACT  # label noise adds nothing: the rest of the pilot goes to the learning curve
    notes = []
    if exact:
        finer = finer_exact(cands, noise, n_units,
                            lambda c: measure_noise(results[0].run, [c], draws, cfg.seed, rates=rates)[0][c[0]])
        cands += [c for c, _ in finer]
        noise.update({c[0]: r for c, r in finer})
        q = min(((k, t["p"]) for name, t, k, uses in cands if k < n_units and not uses and noise[name] < EXACT))[1]
        pool = len(snapshot_pool(results[0].shared))
        owner, *reuse = exact_pilot_points(cfg, budget, fraction, q, members, steps, n_units, pool)
        owned = run_grid([owner], cfg, out, progress=progress, desc="advise pilot")[0]
        for point in reuse:
            reuse_labels(owned.run, owned.shared, point, out)
        results += [owned, *run_grid(reuse, cfg, out, progress=progress, desc="advise pilot")]
    else:
        results += run_grid([xp_point], cfg, out, progress=progress, desc="advise pilot")
    pilot = [{"name": r.point.name, "loss": r.point.tags["loss"], "p": r.point.tags["p"],
              "configs": r.point.tags["configs"], "evaluations": r.metrics["force_evaluations"],
              "error": r.metrics["rollout_rel_error"], "members": r.metrics["n_members"],
              "seconds": round(r.seconds, 1), "labels_of": r.point.tags["labels_of"]} for r in results]
    if exact:
        curve = fitted_curve(pilot[1:])
        scale = 0.0
        sizes = sorted({r["configs"] for r in pilot[1:]})
        clipped = curve["b"] != curve["b_fitted"]
        notes.append(f"L_x,p's labels are exact here (noise r² = {r_xp:.1e}: the forces lie in the span of the "
                     f"encoder's gradients); b = {curve['b']:.2f} by least squares through {len(pilot) - 1} L_x,p fits "
                     f"at p = {q:g} ({sizes[-1]} labelled configurations, fitted twice, and {PARTS} disjoint parts of "
                     f"{sizes[0]})")
        if clipped:
            notes[-1] += (f"; the fits gave {curve['b_fitted']:.2f}, outside {B_RANGE[0]:g}-{B_RANGE[1]:g} (what "
                          "exact labels measured on our other systems), so the prediction rests on that bound")
        notes[-1] += (". Trust the choice more than the budget: on Allen-Cahn, fits on the same labels erred up to 4x "
                      "apart")
        if curve["diverged"]:
            notes.append(f"{curve['diverged']} pilot fits diverged (no finite rollout error) and are left out of "
                         "the curve")
    else:
        xp = pilot[1]
        curve = learning_curve(pilot[0]["configs"], pilot[0]["error"], exponent)
        ez = curve["a"] * xp["configs"] ** (-curve["b"])
        scale = max(0.0, xp["error"] ** 2 - ez ** 2) * xp["configs"] / r_xp
        if scale == 0.0:
            notes.append("the L_x,p pilot was no worse than exact labels extrapolated to its size: label noise did "
                         "not show, so the noisy estimators are predicted as L_z at equal configurations")
    pool = training_pool_size(cfg)
    out_c = []
    for name, t, k, _ in cands:
        n = configs_to_tol(curve, scale, noise[name], e_tol)
        out_c.append(Candidate(name, t, k, noise[name], n and math.ceil(n), n and math.ceil(n) * k,
                               bool(n and pool and n > pool)))
    spent = sum(r["evaluations"] for r in pilot if not r["labels_of"])  # a reused label is paid for once
    advice = Advice(e_tol, budget, pilot, spent, surrogate_evals, curve, scale,
                    out_c, notes)
    save_json(advice.to_dict(), Path(out) / "advice.json")
    return advice


def recommended_config(cfg: RunConfig, advice: Advice) -> RunConfig:
    """``cfg`` with the recommended estimator and its predicted evaluations as the budget (and,
    when that needs more configurations than the training pool holds, more training runs)."""
    rec = advice.recommended
    if rec is None:
        raise InputError(f"no candidate is predicted to reach e_tol = {advice.e_tol:g}; raise the tolerance or "
                         "enlarge the pilot (--pilot-fraction, --budget) and advise again.")
    d = cfg.model_dump()
    d["training"].update(rec.training)
    d["training"]["budget"] = max(int(rec.evaluations), 2 * rec.units)
    if rec.beyond_pool:  # more configurations than the training runs hold: simulate more runs
        per_run = training_pool_size(cfg) // cfg.data.n_train_trajectories
        d["data"]["n_train_trajectories"] = math.ceil(rec.configs / per_run)
    return parse_config(d, "advice")
