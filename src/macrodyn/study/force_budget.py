"""Force-budget study (the paper's Figure 4): force evaluations needed to reach a rollout
tolerance, as a function of system size, for L_z (all forces) and L_x,p (a few atoms).

For each size the trajectories and the closure are computed once (``SIZE/shared``);
then, for each loss, training sets of increasing size are labelled and trained
(``SIZE/LOSS_cNNNN``, sharing that data) until the ensemble-mean rollout error is
≤ ``e_tol`` (with ``draws`` > 1, its mean over independent draws in ``SIZE/LOSS_cNNNN_drawD``).
Every point is an ordinary run folder, so rerunning the study skips finished points and
resumes an interrupted one. Labelling wall time is recorded per point: macrodyn computes
only the forces it uses, so L_x,p's saving shows in seconds.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tqdm.auto import tqdm

from macrodyn.config import RunConfig, TrainingConfig, parse_config, read_yaml, validate
from macrodyn.data.lock import locked
from macrodyn.data.store import ChunkedTable
from macrodyn.io import load_json, save_json
from macrodyn.model.steps import n_saved
from macrodyn.pipeline import share_stages
from macrodyn.errors import InputError
from macrodyn.preflight import bytes_under, estimate, existing_parent, fmt_bytes
from macrodyn.run import Run
from macrodyn.run.label import label_stage
from macrodyn.study.grid import GridPoint, fit_steps, prepare_shared, run_grid, shared_folder
from macrodyn.study.reference import reference
from macrodyn.systems.registry import SYSTEMS, build_system

#: the paper's force evaluations to reach e_tol = 3e-3, ``{loss: {atoms: evaluations}}`` (reference.yaml)
REFERENCE = reference("force_budget")["evaluations_to_tol"]


class ForceBudgetStudy(BaseModel):
    """``macrodyn study force-budget`` config: a base run plus what the study varies."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run: RunConfig = Field(description="base run; system.params[size_param] is set per size")
    size_param: str = Field("n_atoms", description="the system parameter that sets the size")
    sizes: list[int] = Field(description="values of size_param (numbers of atoms for LJ)", min_length=1)
    losses: list[Literal["L_z", "L_xp"]] = ["L_z", "L_xp"]
    units_per_config: int = Field(50, gt=0, description="units (atoms) labelled per configuration for L_xp")
    configs: list[int] = Field(description="training-set sizes tried in order (multiples of 250)", min_length=1)
    e_tol: float = Field(3.0e-3, gt=0.0, description="rollout tolerance")
    search: Literal["ascending", "bisect"] = Field(
        "ascending", description="ascending: try configs in order until one reaches e_tol; bisect: halve the "
        "bracket (log2 of the points; assumes the error falls as the training set grows)")
    draws: int = Field(1, ge=1, description="independent draws per point: draw d reruns the point with run seed "
                       "run.seed + d (its own configurations, labelled units, selection runs and initial "
                       "weights; d = 0 is the point itself). The point's error is then the mean over draws of "
                       "the members' mean and its std is over draws: members share a draw, so their std "
                       "leaves the draw out. Costs draws × the point; the budget is one draw's")
    steps: int | None = Field(None, gt=0, description="optimiser steps per point: each point's epochs, and with "
                              "them the epoch-counted lr_patience, stop_patience, select_every and "
                              "checkpoint_every of run.training, are scaled so every training-set size gets "
                              "about this many steps (a fixed epoch count starves the small sets); null: "
                              "run.training.epochs for every point")

    closure_max_values: int | None = Field(
        None, gt=0, description="cap on the closure's training data, snapshots × coordinates: at a size where "
        "run.closure.max_configs snapshots would exceed it, the closure trains on max_values // N snapshots and "
        "its epochs grow in proportion, so it takes as many optimiser steps on a smaller subsample (null: "
        "run.closure.max_configs at every size)")

    @field_validator("configs")
    @classmethod
    def _multiples(cls, v):
        bad = [c for c in v if c <= 0 or c % 250]
        if bad:
            raise ValueError(f"training-set sizes must be positive multiples of 250; got {bad}")
        return sorted(v)

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v):
        if any(n < 2 for n in v):
            raise ValueError(f"sizes must be at least 2; got {v}")
        return v

    @model_validator(mode="after")
    def _size_param(self):
        params = SYSTEMS.params_model(self.run.system.name).model_fields
        if self.size_param not in params:
            raise ValueError(f"size_param {self.size_param!r} is not a parameter of system "
                             f"{self.run.system.name!r} (has {sorted(params)})")
        return self


def load_study(path: str | Path) -> ForceBudgetStudy:
    return validate(ForceBudgetStudy, read_yaml(path), str(path))


def point_config(study: ForceBudgetStudy, size: int, loss: str | None = None, n_configs: int = 0,
                 seed: int | None = None) -> RunConfig:
    """The run config of one study point (``loss=None``: the size's shared run).

    ``seed``: the point's run seed (None: the study's). On the size's shared trajectories and
    closure, another seed is an independent repeat of the point: it redraws the configurations,
    the labelled atoms, the selection trajectories and the initial weights, at the same budget.
    """
    data = study.run.model_dump()
    data["system"]["params"][study.size_param] = size
    if study.size_param == "n_atoms":
        data["system"]["params"]["box"] = None  # box and n_atoms are alternatives
    data["name"] = f"{study.run.name}_{size}" + (f"_{loss}_c{n_configs}" if loss else "")
    if seed is not None:
        data["seed"] = seed
    base = parse_config(data, "study point")
    system = build_system(base.system.name, base.system.params)
    n_units = system.n_units
    data["closure"].update(closure_subsample(study, base, system.n_coords))
    t = data["training"]
    t.update(POINT_TRAINING[loss](study, n_units, n_configs))
    if loss and study.steps:
        fit_steps(t, n_configs, study.steps)
    return parse_config(data, "study point")  # validated once, with the point's values


def closure_subsample(study: ForceBudgetStudy, base: RunConfig, n_coords: int) -> dict:
    """The closure fields of one size under ``study.closure_max_values`` (empty: unchanged)."""
    c, pool = base.closure, base.data.n_train_trajectories * n_saved(base)
    m = min(c.max_configs or pool, pool)
    if not study.closure_max_values or m * n_coords <= study.closure_max_values:
        return {}
    cap = max(1, study.closure_max_values // n_coords)
    return {"max_configs": cap, "epochs": -(-c.epochs * m // cap)}


_NO_CONTROL = {"control": "none", "control_window": TrainingConfig.model_fields["control_window"].default,
               "surrogate": None}
#: a point's training fields per loss (None: the size's shared run, which labels nothing). Only
#: L_x,p keeps the control variate: the shared run labels nothing and L_z's labels are exact.
POINT_TRAINING = {
    None: lambda study, n_units, n_configs: _NO_CONTROL,
    "L_z": lambda study, n_units, n_configs: {**_NO_CONTROL, "loss": "L_z", "p": 1.0,
                                              "budget": n_configs * n_units},
    "L_xp": lambda study, n_units, n_configs: {
        "loss": "L_xp", "p": min(study.units_per_config, n_units) / n_units,
        "budget": n_configs * min(study.units_per_config, n_units)},
}


def run_study(study: ForceBudgetStudy, out: str | Path, sizes: list[int] | None = None,
              progress: bool = True, label_only: bool = False, losses: list[str] | None = None,
              label_configs: list[int] | None = None) -> dict:
    """Run (or resume) the study; returns the summary of this call's sizes and losses and writes
    ``out/study.json`` (with the points other calls on ``out`` left there, see :func:`save_study`).

    ``label_only``: simulate and label the training-set sizes ``label_configs`` (default:
    all) of every loss, time the labelling, and train nothing (the labelling-cost half).
    ``losses``: only these losses (default: the study's). Several processes may share
    ``out`` (e.g. one per loss): a size's shared stages are built under a file lock.

    ``records``: one per (size, loss) with ``n_atoms, loss, evaluations_to_tol,
    configs_to_tol, labelling_seconds, error_at_tol`` (None when no tried training set
    reached the tolerance); ``points``: every trained (or labelled) point.
    """
    out = Path(out)
    sizes, losses = sizes or study.sizes, losses or study.losses
    check_study_fits(study, out, sizes, losses, label_configs if label_only else None)
    points = []
    bar = tqdm(total=len(sizes) * len(losses), desc="study (size, loss)", disable=not progress)
    for n_atoms in sizes:
        data = size_key(study, n_atoms)
        shared = prepare_shared(point_config(study, n_atoms), shared_folder(out, data), closure=not label_only,
                                progress=progress)
        for loss in losses:
            if label_only:
                for n_configs in label_configs or study.configs:
                    points.append(_label_point(study, shared.out, out / data, n_atoms, loss, n_configs))
            else:
                def train(n, loss=loss):
                    bar.set_postfix_str(f"{study.size_param}={n_atoms} {loss} {n} configs")
                    return train_point(study, shared.out, out, n_atoms, loss, n)

                search(study, train, points)
            bar.update()
            save_study(study, out, points, sizes, losses)
    bar.close()
    plot_study(save_study(study, out, points, sizes, losses), out / "figures")
    return summarise(study, points, out)


def save_study(study: ForceBudgetStudy, out: Path, points: list[dict], sizes: list[int], losses: list[str]) -> dict:
    """Write and return ``out/study.json`` for ``points`` (of ``sizes`` × ``losses``) and the points
    it already holds for the study's other sizes and losses: those of another process on the same
    folder (one per loss, or per group of sizes), which a plain write would drop. Points are in
    the study's size order."""
    path = out / "study.json"
    with locked(out / "study.json.lock"):
        try:
            held = load_json(path)["points"] if path.exists() else []
        except (InputError, KeyError, TypeError):  # damaged: rebuilt from this process's points
            held = []
        ran = {(n, loss) for n in sizes for loss in losses}
        others = [q for q in held if (q["n_atoms"], q["loss"]) not in ran
                  and q["n_atoms"] in study.sizes and q["loss"] in study.losses]
        order = {n: i for i, n in enumerate(study.sizes)}
        result = summarise(study, sorted(others + points, key=lambda q: order.get(q["n_atoms"], len(order))), out)
        save_json(result, path)
    return result


def size_key(study: ForceBudgetStudy, size: int) -> str:
    """The data key (folder) of one size: its shared run and points sit in ``out/<key>/``."""
    return f"{study.size_param}{size}"


def search(study: ForceBudgetStudy, train, points: list[dict]) -> None:
    """Train points (``train(n_configs) -> point``) until the smallest training set of
    ``study.configs`` within ``e_tol`` is found, or none is (see ``ForceBudgetStudy.search``)."""
    ok = lambda p: p["rollout_rel_error"] is not None and p["rollout_rel_error"] <= study.e_tol  # noqa: E731
    if study.search == "ascending":
        for n_configs in study.configs:
            points.append(train(n_configs))
            if ok(points[-1]):
                return
        return
    lo, hi = -1, len(study.configs)  # configs[lo] is known to miss, configs[hi] to reach (or hi past the end)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        points.append(train(study.configs[mid]))
        lo, hi = (lo, mid) if ok(points[-1]) else (mid, hi)


def draw_points(study: ForceBudgetStudy, n_atoms: int, loss: str, n_configs: int) -> list[GridPoint]:
    """The grid points of one study point: draw ``d`` in ``<size>/LOSS_cN[_drawD]`` with run seed
    ``run.seed + d``, on the size's shared run."""
    return [GridPoint(f"{loss}_c{n_configs}" + (f"_draw{d}" if d else ""),
                      point_config(study, n_atoms, loss, n_configs, seed=study.run.seed + d), size_key(study, n_atoms))
            for d in range(study.draws)]


def train_point(study: ForceBudgetStudy, shared: Path, out: Path, n_atoms: int, loss: str, n_configs: int) -> dict:
    """Train (or read back) the point's ``study.draws`` draws; one point record over them."""
    check_point_fits(study, out, n_atoms, loss, n_configs)
    results = run_grid(draw_points(study, n_atoms, loss, n_configs), {size_key(study, n_atoms): shared}, out,
                       progress=False)
    draws = [_point(r.run, r.metrics, n_atoms, loss, n_configs) for r in results]
    if len(draws) == 1:
        return draws[0]
    err = np.array([p["rollout_rel_error"] for p in draws])

    def mean(key):  # timings can be missing (Dask workers time in their own processes)
        v = [p[key] for p in draws if p[key] is not None]
        return float(np.mean(v)) if v else None

    return {**draws[0], "rollout_rel_error": float(err.mean()), "rollout_rel_error_std": float(err.std()),
            "draw_errors": err.tolist(), "labelling_seconds": mean("labelling_seconds"),
            "labelling_force_seconds": mean("labelling_force_seconds"), "training_seconds": mean("training_seconds"),
            "surrogate_seconds": mean("surrogate_seconds")}


def _label_point(study, shared: Path, folder: Path, n_atoms: int, loss: str, n_configs: int) -> dict:
    check_point_fits(study, folder.parent, n_atoms, loss, n_configs)
    out = folder / f"{loss}_c{n_configs}"
    share_stages(shared, out, closure=False)
    run = Run.create(point_config(study, n_atoms, loss, n_configs), out, progress=False)
    label_stage(run)
    m = {"force_evaluations": run.n_configs * run.units_per_config, "rollout_rel_error": None,
         "rollout_rel_error_std": None, "n_members": 0}
    return _point(run, m, n_atoms, loss, n_configs)


def _point(run, m: dict, n_atoms: int, loss: str, n_configs: int) -> dict:
    return {"n_atoms": n_atoms, "loss": loss, "n_configs": n_configs, "force_evaluations": m["force_evaluations"],
            "rollout_rel_error": m["rollout_rel_error"], "rollout_rel_error_std": m["rollout_rel_error_std"],
            "n_members": m["n_members"], "control": run.cfg.training.control,
            "labelling_seconds": run.timings.get("label"),
            "labelling_force_seconds": run.timings.get("label_forces"),
            "features_seconds": run.timings.get("features"),
            "training_seconds": run.timings.get("dynamics"),
            # the surrogate control's cheap evaluations are not in the budget: reported beside it
            "surrogate_force_evaluations": m.get("surrogate_force_evaluations", 0),
            "surrogate_seconds": m.get("surrogate_seconds"),
            "peak_rss_gb": run.stage_peak_gb()}


def summarise(study: ForceBudgetStudy, points: list[dict], out: Path | None = None) -> dict:
    """``records`` (one per size and loss), ``points`` and, with the study folder ``out``,
    ``sizes`` (:func:`size_record`)."""
    records = []
    for n_atoms in dict.fromkeys(p["n_atoms"] for p in points):
        for loss in [lo for lo in study.losses if any(p["loss"] == lo for p in points)]:
            mine = [p for p in points if p["n_atoms"] == n_atoms and p["loss"] == loss]
            trained = [p for p in mine if p["rollout_rel_error"] is not None]
            hit = min((p for p in trained if p["rollout_rel_error"] <= study.e_tol), key=lambda p: p["n_configs"],
                      default=None)
            control = mine[0].get("control", "none") if mine else "none"
            records.append({"n_atoms": n_atoms, "loss": loss, "control": control, "e_tol": study.e_tol,
                            "evaluations_to_tol": hit and hit["force_evaluations"],
                            "configs_to_tol": hit and hit["n_configs"],
                            "labelling_seconds": hit and hit["labelling_seconds"],
                            "surrogate_force_evaluations": hit and hit.get("surrogate_force_evaluations"),
                            "surrogate_seconds": hit and hit.get("surrogate_seconds"),
                            "error_at_tol": hit and hit["rollout_rel_error"],
                            "error_at_tol_std": hit and hit["rollout_rel_error_std"],
                            "largest_tried_configs": max((p["n_configs"] for p in trained), default=None),
                            "largest_tried_evaluations": max((p["force_evaluations"] for p in trained), default=None),
                            "best_error": min((p["rollout_rel_error"] for p in trained), default=None),
                            "reference_evaluations_to_tol": REFERENCE[loss].get(n_atoms)})
    sizes = [] if out is None else [size_record(study, out, n, points)
                                    for n in dict.fromkeys(p["n_atoms"] for p in points)]
    return {"records": records, "points": points, **({"sizes": sizes} if out is not None else {})}


def size_record(study: ForceBudgetStudy, out: Path, n_atoms: int, points: list[dict]) -> dict:
    """Where one size's time, memory and disk go: the shared run's ``simulate`` and ``closure``, and
    per point stage (``label``, ``features``, ``dynamics`` = the fits) the largest of its points'
    seconds and peak resident memory; ``disk_bytes``: the size's folder (trajectories, closure, every
    point's labels and models), ``trajectory_bytes`` its trajectories alone."""
    folder = out / size_key(study, n_atoms)
    shared = shared_folder(out, size_key(study, n_atoms))
    seconds, peak = {}, {}
    if (shared / "config.yaml").exists():
        run = Run.open(shared, progress=False)
        seconds = {k: v for k, v in run.stage_seconds().items() if k in ("simulate", "closure")}
        peak = {k: v for k, v in run.stage_peak_gb().items() if k in ("simulate", "closure")}
    mine = [p for p in points if p["n_atoms"] == n_atoms]
    for stage, key in (("label", "labelling_seconds"), ("features", "features_seconds"),
                       ("dynamics", "training_seconds")):
        v = [p[key] for p in mine if p.get(key)]
        if v:
            seconds[f"{stage}_max"] = round(max(v), 3)
        g = [p["peak_rss_gb"][stage] for p in mine if stage in (p.get("peak_rss_gb") or {})]
        if g:
            peak[stage] = max(g)
    return {"n_atoms": n_atoms, "disk_bytes": bytes_under(folder),
            "trajectory_bytes": sum(bytes_under(shared / "data.zarr" / t) for t in ("train", "test")),
            "stage_seconds": seconds, "stage_peak_rss_gb": peak}


def check_study_fits(study: ForceBudgetStudy, out: Path, sizes: list[int], losses: list[str],
                     label_configs: list[int] | None = None) -> None:
    """Refuse, before any work, a study whose sizes' trajectories (plus the first point of each loss
    not begun at that size: the middle of ``configs``, or ``label_configs``) do not fit on the disk of ``out``, or whose
    stages cannot fit in memory (:func:`macrodyn.preflight.estimate`). Later points are checked
    one by one before they label (:func:`check_point_fits`)."""
    need, fails = 0, []
    first = label_configs or [study.configs[(len(study.configs) - 1) // 2]]
    for n in sizes:
        cfg = point_config(study, n)
        system = build_system(cfg.system.name, cfg.system.params)
        shared = shared_folder(out, size_key(study, n))
        est, problems = estimate(cfg, system)  # memory only: the disk is summed over sizes below
        fails += [f"size {n}: {p}" for p in problems]
        if not _simulated(shared):  # estimated uncompressed: a finished run may hold less
            need += max(0, est["disk_bytes"] - bytes_under(shared / "data.zarr"))
        need += sum(label_bytes(study, n, loss, c) for loss in losses for c in first
                    if not any(map(_labelled, (out / size_key(study, n)).glob(f"{loss}_c*"))))
    where = existing_parent(out)
    free = shutil.disk_usage(where).free
    if need > free:
        fails.append(f"the study needs about {fmt_bytes(need)} on disk (trajectories of sizes {sizes} and their "
                     f"first points' labels) but {where} has {fmt_bytes(free)} free; use an --out on a larger disk, "
                     "fewer --size, or data.dtype: float32")
    if fails:
        raise InputError("study force-budget cannot run here: " + " | ".join(fails))


def _simulated(shared: Path) -> bool:
    try:
        return all(ChunkedTable.open(shared / "data.zarr", t).is_complete() for t in ("train", "test"))
    except InputError:
        return False


def _labelled(point: Path) -> bool:
    """The point has its labels, or is finished (a finished point may have had its labels deleted
    to free the disk: it is read back, never labelled again)."""
    return (point / "data.zarr" / "labels").exists() or (point / "metrics.json").exists()


def label_bytes(study: ForceBudgetStudy, n_atoms: int, loss: str, n_configs: int) -> int:
    """Bytes of one point's labels table (times its draws)."""
    cfg = point_config(study, n_atoms, loss, n_configs)
    system = build_system(cfg.system.name, cfg.system.params)
    return estimate(cfg, system)[0]["label_bytes"] * study.draws


def check_point_fits(study: ForceBudgetStudy, out: Path, n_atoms: int, loss: str, n_configs: int) -> None:
    """Refuse to label a point whose labels would not fit on the disk (checked before each point,
    as the search decides which points it needs)."""
    folder = out / size_key(study, n_atoms) / f"{loss}_c{n_configs}"
    if _labelled(folder):
        return
    need, where = label_bytes(study, n_atoms, loss, n_configs), existing_parent(folder)
    free = shutil.disk_usage(where).free
    if need > free:
        raise InputError(f"point {folder.name} of size {n_atoms} needs about {fmt_bytes(need)} of labels but "
                         f"{where} has {fmt_bytes(free)} free; free space (finished points keep only their labels "
                         "and models) or use an --out on a larger disk, then rerun: finished points are kept.")


LOSS_COLORS = {"L_z": "C0", "L_xp": "C3"}


def plot_study(result: dict, figs: Path) -> list[Path]:
    """``figs/force_budget.png`` (:func:`plot_evaluations`) and ``figs/labelling_seconds.png``
    (:func:`plot_labelling_seconds`) of a study result."""
    figs.mkdir(parents=True, exist_ok=True)
    return [plot_evaluations(result["records"], figs / "force_budget.png"),
            plot_labelling_seconds(result["points"], figs / "labelling_seconds.png")]


def plot_evaluations(records: list[dict], path: Path) -> Path:
    """Force evaluations to tolerance vs N of study records (with the paper's reference)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for (loss, control), c in _variants(records).items():
        mine = [r for r in records if r["loss"] == loss and r.get("control", "none") == control]
        name = loss + ("" if control == "none" else f" + {control}")
        rec = [r for r in mine if r["evaluations_to_tol"]]
        if rec:
            ax.loglog([r["n_atoms"] for r in rec], [r["evaluations_to_tol"] for r in rec], "o-", color=c,
                      label=f"{name} (macrodyn)")
        miss = [r for r in mine if not r["evaluations_to_tol"] and r.get("largest_tried_evaluations")]
        if miss:  # tolerance not reached: the largest budget tried is a lower bound
            ax.loglog([r["n_atoms"] for r in miss], [r["largest_tried_evaluations"] for r in miss], "^", color=c,
                      mfc="none", ms=9, label=f"{name} (macrodyn, not reached: > this)")
    for loss, c in LOSS_COLORS.items():
        ref = sorted(REFERENCE[loss].items())
        ax.loglog([n for n, _ in ref], [e for _, e in ref], "s--", color=c, alpha=0.5, label=f"{loss} (paper)")
    _size_ticks(ax, {r["n_atoms"] for r in records} | set(REFERENCE["L_z"]))
    ax.set(xlabel="atoms N", ylabel="force evaluations to reach e_tol", title="force budget vs system size")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_labelling_seconds(points: list[dict], path: Path) -> Path:
    """Labelling seconds vs N of study points (label stage, and the force calls alone), for the
    largest training set both losses labelled."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    pts = [p for p in points if p["labelling_seconds"]]
    both = (set.intersection(*[{p["n_configs"] for p in pts if p["loss"] == loss} for loss in LOSS_COLORS])
            if pts else set())
    if both:
        n_configs = max(both)  # the largest training set both losses labelled at every size they share
        for ax, key, what in ((axes[0], "labelling_seconds", "label stage (wall)"),
                              (axes[1], "labelling_force_seconds", "force calls only")):
            for loss, c in LOSS_COLORS.items():
                sel = sorted((p for p in pts if p["loss"] == loss and p["n_configs"] == n_configs and p[key]),
                             key=lambda p: p["n_atoms"])
                ax.loglog([p["n_atoms"] for p in sel], [p[key] for p in sel], "o-", color=c, label=loss)
            _size_ticks(ax, {p["n_atoms"] for p in pts})
            ax.set(xlabel="atoms N", ylabel="seconds", title=f"{what}, {n_configs} configurations")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _variants(records: list[dict]) -> dict[tuple[str, str], str]:
    """``(loss, control) -> colour`` of the variants in ``records`` (L_z blue, L_x,p red, with control green)."""
    keys = dict.fromkeys((r["loss"], r.get("control", "none")) for r in records)
    palette = {**{(loss, "none"): c for loss, c in LOSS_COLORS.items()}, ("L_xp", "snapshots"): "C2"}
    return {k: palette.get(k, f"C{4 + i}") for i, k in enumerate(keys)}


def _size_ticks(ax, sizes) -> None:
    """Label a log x axis at the system sizes only (matplotlib's minor labels overlap)."""
    from matplotlib.ticker import NullFormatter

    sizes = sorted(sizes)
    ax.set_xticks(sizes, [f"{n:,}".replace(",", " ") for n in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())


def labelling_ratio(points: list[dict], n_atoms: int, key: str = "labelling_seconds") -> float | None:
    """Mean L_z / L_x,p ratio of ``key`` at ``n_atoms`` over the training-set sizes both tried."""
    by_loss: dict[str, dict[int, float]] = {loss: {} for loss in LOSS_COLORS}
    for p in points:
        if p["n_atoms"] == n_atoms and p[key] and p["loss"] in by_loss:
            by_loss[p["loss"]][p["n_configs"]] = p[key]
    z, x = by_loss["L_z"], by_loss["L_xp"]
    common = sorted(set(z) & set(x))
    return float(np.mean([z[c] / x[c] for c in common])) if common else None
