"""A grid of runs on shared data: the points of a study, each an ordinary run folder.

Points are grouped by a *data key*: the points of one key share the trajectories and the
closure autoencoder of one shared run, simulated and fitted once, so they are compared on
the same data and closure; each point then labels its own configurations and trains its own
models. Folder layout under ``out``::

    <data>/shared        the key's shared run (trajectories + closure); or an existing run folder
    <data>/<name>        one point (its own labels, models, metrics.json)

(``data`` may be ``""``: the points then sit directly in ``out``.) Rerunning a grid resumes
it: a finished point (``metrics.json`` present) is read back, not retrained, after checking
that its folder holds the point's config (another config is refused); an unfinished one
resumes stage by stage. Several processes may share ``out``: a shared run is built under a
file lock (``<shared>.lock``).

Example::

    points = [GridPoint(f"{loss}_b{b}", cfg_for(loss, b, seed), data=f"seed{seed}")
              for seed in (1, 2) for loss in ("L_z", "L_xp") for b in (1e4, 1e5)]
    shared = {f"seed{seed}": base.model_copy(update={"seed": seed}) for seed in (1, 2)}
    for res in iter_grid(points, shared, "runs/my_study"):
        print(res.point.name, res.metrics["rollout_rel_error"])
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from macrodyn.config import RunConfig
from macrodyn.data.lock import locked
from macrodyn.errors import InputError
from macrodyn.io import load_json
from macrodyn.pipeline import run_on_shared
from macrodyn.run import Run
from macrodyn.run.closure import closure_stage
from macrodyn.run.simulate import simulate

SHARED = "shared"
#: the stages a point runs itself (the shared run does simulate and closure)
POINT_STAGES = ("label", "dynamics", "evaluate")
#: sections a point must have in common with its shared run (its trajectories and closure)
SHARED_SECTIONS = ("system", "data", "closure")


@dataclass(frozen=True, eq=False)
class GridPoint:
    """One run of a grid: ``cfg`` in ``out/<data>/<name>``, on the shared run of key ``data``.
    ``tags``: the caller's labels of the point (e.g. ``{"strategy": ...}``), carried to its result."""

    name: str
    cfg: RunConfig
    data: str = ""
    tags: Mapping = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the progress bar names the point."""
        return f"{self.data}/{self.name}" if self.data else self.name


@dataclass
class PointResult:
    """A finished point: its run, its ``metrics.json``, whether this call trained it (False: read
    back), and the shared run it trained on."""

    point: GridPoint
    run: Run
    metrics: dict
    trained: bool
    shared: Run

    @property
    def seconds(self) -> float:
        """Wall seconds of the point's own stages (label, dynamics, evaluate), accumulated over
        resumed invocations (the shared simulate and closure are not included)."""
        return sum(self.run.timings.get(s, 0.0) for s in POINT_STAGES)


def steps_per_epoch(training: dict, n_configs: int) -> int:
    """Optimiser steps of one epoch over ``n_configs`` configurations (less the validation share)."""
    return -(-max(1, round(n_configs * (1 - training["val_fraction"]))) // training["batch_size"])


def fit_steps(training: dict, n_configs: int, steps: int) -> None:
    """Scale ``training``'s epochs (and its epoch-counted patiences and intervals) in place so a
    point on ``n_configs`` configurations takes about ``steps`` optimiser steps: a fixed epoch
    count would starve small training sets."""
    t = training
    epochs = -(-steps // steps_per_epoch(t, n_configs))
    scale = epochs / t["epochs"]
    for name in ("lr_patience", "stop_patience", "select_every", "checkpoint_every"):
        if t[name]:
            t[name] = max(1, round(t[name] * scale))
    t["epochs"] = epochs


def point_folder(out: str | Path, point: GridPoint) -> Path:
    """Where ``point`` of a grid in ``out`` lives."""
    return Path(out) / point.data / point.name


def shared_folder(out: str | Path, data: str = "") -> Path:
    """Where the shared run of data key ``data`` of a grid in ``out`` lives."""
    return Path(out) / data / SHARED


def run_point(shared: str | Path, cfg: RunConfig, out: str | Path) -> tuple[Run, dict]:
    """``(run, metrics)`` of the point ``cfg`` in ``out`` on the trajectories and closure of the run
    folder ``shared``: trained (resuming what ``out`` holds), or read back when finished.

    Raises:
        InputError: ``out`` holds a run made with another config.
    """
    out = Path(out)
    if (out / "metrics.json").exists():  # a finished point is not recomputed
        return Run.open(out, cfg, progress=False), load_json(out / "metrics.json")
    return run_on_shared(shared, cfg, out)


def prepare_shared(shared: RunConfig | str | Path, folder: str | Path | None = None, *, closure: bool = True,
                   progress: bool = False) -> Run:
    """The shared run of a data key, with its trajectories (and, with ``closure``, its closure).

    ``shared``: the shared run's config (its folder is ``folder``, created if needed), or an
    existing run folder (then ``folder`` is not given). Stages already complete are skipped;
    the work runs under a lock on ``<folder>.lock``, so concurrent studies build it once.
    """
    if isinstance(shared, RunConfig):
        if folder is None:
            raise ValueError("prepare_shared: a shared config needs the folder to create it in")
        folder = Path(folder)
    else:
        folder = Path(shared)
    folder.parent.mkdir(parents=True, exist_ok=True)
    real = folder.resolve()  # a linked shared folder (another study's) is locked where it lives
    with locked(real.parent / f"{real.name}.lock"):
        run = (Run.create(shared, folder, progress=progress) if isinstance(shared, RunConfig)
               else Run.open(folder, progress=progress))
        simulate(run)
        if closure:
            closure_stage(run)
    return run


def iter_grid(points: Sequence[GridPoint], shared: RunConfig | Mapping[str, RunConfig | str | Path],
              out: str | Path, *, progress: bool = True, desc: str = "grid") -> Iterator[PointResult]:
    """Run (or read back) ``points`` in order, yielding each as it finishes.

    ``shared``: per data key, the config of its shared run (made in ``out/<key>/shared``) or
    an existing run folder holding trajectories (the closure is fitted there if missing); a
    single config stands for ``{"": config}``. A key's shared run is prepared when its first
    point comes up. Every point must have the ``system``, ``data`` and ``closure`` sections of
    its shared run (they are its trajectories and closure); names are unique per key.
    """
    out = Path(out)
    shared = {"": shared} if isinstance(shared, RunConfig) else dict(shared)
    _check_names(points, shared)
    runs: dict[str, Run] = {}
    bar = tqdm(points, desc=desc, disable=not progress, unit="point")
    for point in bar:
        if point.data not in runs:
            bar.set_postfix_str(f"{point.data}/{SHARED}" if point.data else SHARED)
            spec = shared[point.data]
            runs[point.data] = (prepare_shared(spec, shared_folder(out, point.data), progress=progress)
                                if isinstance(spec, RunConfig) else prepare_shared(spec, progress=progress))
        _check_sections(point, runs[point.data])
        bar.set_postfix_str(point.label)
        folder = point_folder(out, point)
        finished = (folder / "metrics.json").exists()
        run, metrics = run_point(runs[point.data].out, point.cfg, folder)
        yield PointResult(point, run, metrics, trained=not finished, shared=runs[point.data])
    bar.close()


def run_grid(points: Sequence[GridPoint], shared: RunConfig | Mapping[str, RunConfig | str | Path],
             out: str | Path, *, progress: bool = True, desc: str = "grid") -> list[PointResult]:
    """:func:`iter_grid`, collected: every point's result, in the order of ``points``."""
    return list(iter_grid(points, shared, out, progress=progress, desc=desc))


def _check_names(points: Sequence[GridPoint], shared: dict) -> None:
    seen = set()
    for p in points:
        if p.data not in shared:
            raise InputError(f"grid point {p.label}: no shared run for data key {p.data!r} (keys: {sorted(shared)})")
        if not p.name or p.name == SHARED or (p.data, p.name) in seen:
            raise InputError(f"grid point {p.label}: a point's name must be unique per data key, non-empty and "
                             f"not {SHARED!r}")
        seen.add((p.data, p.name))


def _check_sections(point: GridPoint, shared: Run) -> None:
    differ = [s for s in SHARED_SECTIONS if getattr(point.cfg, s) != getattr(shared.cfg, s)]
    if differ:
        raise InputError(f"grid point {point.label}: config sections {differ} differ from those of its shared run "
                         f"{shared.out} (a point trains on its data key's trajectories and closure)")


