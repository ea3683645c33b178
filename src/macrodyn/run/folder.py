"""A run folder bound to its config and system.

Run folder::

    config.yaml          the validated config (without where/how many threads: not the run's identity)
    fingerprint.json     forces of the system on fixed states: data made by other code are refused
    data.zarr/           tables train, test (trajectories) and labels (where, idx, f): a label
                         points at its training snapshot instead of copying it
    closure.pt           closure autoencoder + training history
    closure.partial.pt   its epoch checkpoint while it trains (a killed run goes on from there)
    dynamics/member_K.pt macroscopic models + histories
    surrogate.json       training.control: surrogate: the surrogate's force evaluations and seconds
    metrics.json         the numbers (force evaluations, rollout error, timings)
    report.md, figures/  the report

:meth:`Run.create` writes the folder (and refuses one made with another config);
:meth:`Run.open` only reads. Constructing a :class:`Run` directly touches nothing on disk
(Dask workers and DDP ranks do that, on a folder the driver created).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.config import RunConfig, check_closure_dim, parse_config
from macrodyn.errors import InputError
from macrodyn.io import load_json, peak_rss, save_json, save_text
from macrodyn.model import steps as S
from macrodyn.model.parts import n_configs, stream_rng, units_per_config
from macrodyn.systems.base import MicroSystem
from macrodyn.systems.fingerprint import compare_fingerprint, fingerprint
from macrodyn.systems.registry import build_system

#: the stages in order; ``features`` (the labels' features, computed once before the members are
#: fitted) is timed apart from ``dynamics`` (the fits)
STAGES = ("simulate", "label", "closure", "features", "dynamics", "evaluate", "report")
#: fields of the config that say where and on how many threads work runs: they do not change the data
_NOT_IDENTITY = {"parallel", "threads"}
#: per-stage peak resident memory in bytes (see :meth:`Run.timed`)
PEAK_FILE = "stage_peak_rss.json"


@dataclass
class RunState:
    """What one process computed for a run and keeps for the next stage or member."""

    pool: np.ndarray | None = None                 # flat training snapshots kept by data.min_observable
    closure: ClosureAutoencoder | None = None
    features: dict | None = None                   # features of the stored labels (on the run's device)
    stats: S.Stats | None = None                   # their standardisation
    score: Callable | None = None                  # rollout selection score (training.select: rollout)
    score_built: bool = False


@dataclass
class Run:
    """A run folder ``out`` bound to ``cfg`` and its ``system`` (built from the config if not given)."""

    cfg: RunConfig
    out: Path
    system: MicroSystem | None = None
    progress: bool = True
    timings: dict = field(default_factory=dict)
    peak_memory: dict = field(default_factory=dict)
    state: RunState = field(default_factory=RunState, repr=False)

    def __post_init__(self):
        self.out = Path(self.out)
        if self.system is None:
            self.system = build_system(self.cfg.system.name, self.cfg.system.params)

    # ------------------------------------------------------------ create/open
    @classmethod
    def create(cls, cfg: RunConfig, out: str | Path, system: MicroSystem | None = None,
               progress: bool = True) -> "Run":
        """Create the folder ``out`` for ``cfg`` (or reopen it if it holds the same run)."""
        run = cls(cfg, Path(out), system, progress)
        check_closure_dim(cfg, run.system)
        run.out.mkdir(parents=True, exist_ok=True)
        path = run.out / "config.yaml"
        new = run.identity()
        if path.exists():
            old = _read_config(path).model_dump(exclude=_NOT_IDENTITY)
            if old != new:
                diff = [k for k in new if old.get(k) != new.get(k)]
                raise InputError(f"{run.out} holds a run with a different config (sections {diff}); "
                                 "use another --out or delete it.")
        else:
            save_text(yaml.safe_dump(new, sort_keys=False), path)
        run.check_fingerprint()
        run.clean_temporary()
        run.timings, run.peak_memory = run._read_timings(), run._read_timings(PEAK_FILE)
        return run

    def clean_temporary(self) -> list[Path]:
        """Remove what a killed process left: half-written files of atomic writes (``.NAME.*.partial``)
        and the epoch checkpoint of a closure or member whose final file exists. Returns what was removed."""
        folders = [f for f in (self.out, self.out / "dynamics") if f.is_dir()]
        gone = [p for f in folders for p in f.glob(".*.partial")]
        gone += [p for f in folders for p in f.glob("*.partial.pt")
                 if p.with_name(p.name.replace(".partial.pt", ".pt")).exists()]
        for p in gone:
            p.unlink(missing_ok=True)
        return gone

    def check_fingerprint(self) -> None:
        """Refuse data made by other system code (same config, changed forces or initial data):
        the fingerprint of a few forces on fixed states is stored with the folder's data."""
        path = self.out / "fingerprint.json"
        new = fingerprint(self.system, self.cfg.system.name, self.cfg.system.params)
        try:
            old = load_json(path) if path.exists() else None
        except InputError:  # damaged: written again below
            old = None
        msg = compare_fingerprint(old, new)
        if msg:
            raise InputError(f"{self.out}: {msg}")
        if old is None:
            save_json(new, path)

    @classmethod
    def open(cls, out: str | Path, cfg: RunConfig | None = None, system: MicroSystem | None = None,
             progress: bool = True) -> "Run":
        """The run in ``out`` (its ``config.yaml``); with ``cfg``, check it is the same run. Writes nothing."""
        out = Path(out)
        path = out / "config.yaml"
        if not path.exists():
            raise InputError(f"{out} is not a run folder (no config.yaml); run `macrodyn run CONFIG --out {out}`.")
        stored = _read_config(path)
        if cfg is not None and stored.model_dump(exclude=_NOT_IDENTITY) != cfg.model_dump(exclude=_NOT_IDENTITY):
            raise InputError(f"{out} holds a run with a different config; use another --out or delete it.")
        run = cls(cfg or stored, out, system, progress)
        run.timings, run.peak_memory = run._read_timings(), run._read_timings(PEAK_FILE)
        return run

    def identity(self) -> dict:
        """The config as stored in ``config.yaml`` (what makes two runs the same)."""
        return self.cfg.model_dump(exclude=_NOT_IDENTITY)

    # ----------------------------------------------------------------- paths
    @property
    def store(self) -> Path:
        return self.out / "data.zarr"

    @property
    def closure_path(self) -> Path:
        return self.out / "closure.pt"

    @property
    def closure_checkpoint(self) -> Path:
        """The closure's epoch checkpoint while it trains (removed once ``closure.pt`` is written)."""
        return self.out / "closure.partial.pt"

    def member_path(self, m: int) -> Path:
        return self.out / "dynamics" / f"member_{m}.pt"

    # ------------------------------------------------------------- numbers
    def rng(self, stream: str, *extra: int) -> np.random.Generator:
        return stream_rng(self.cfg.seed, stream, *extra)

    @property
    def n_saved(self) -> int:
        """Snapshots saved per trajectory."""
        return S.n_saved(self.cfg)

    @property
    def units_per_config(self) -> int:
        return units_per_config(self.cfg.training, self.system)

    @property
    def n_configs(self) -> int:
        return n_configs(self.cfg, self.system)

    # --------------------------------------------------------------- timings
    def timed(self, stage: str, seconds: float, *, memory: bool = True) -> None:
        """Add ``seconds`` to ``stage``; with ``memory``, also record this process's peak resident
        memory since the previous stage ended (the largest over resumed invocations) and start a
        new peak."""
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        save_json(self.timings, self.out / "stage_seconds.json")
        peak = peak_rss(reset=True) if memory else None
        if peak is not None:
            self.peak_memory[stage] = max(self.peak_memory.get(stage, 0), peak)
            save_json(self.peak_memory, self.out / PEAK_FILE)

    def stage_peak_gb(self) -> dict:
        """Peak resident memory per stage in GB (stages timed in this folder)."""
        return {s: round(self.peak_memory[s] / 1e9, 3) for s in STAGES if s in self.peak_memory}

    def stage_seconds(self) -> dict:
        return {s: round(self.timings.get(s, 0.0), 3) for s in STAGES if s in self.timings}

    def _read_timings(self, name: str = "stage_seconds.json") -> dict:
        path = self.out / name
        try:
            t = load_json(path) if path.exists() else {}
        except InputError:  # a damaged timings file is rewritten, not a reason to stop
            return {}
        return t if isinstance(t, dict) else {}


def _read_config(path: Path) -> RunConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is damaged ({type(e).__name__}); delete the run folder or restore config.yaml.") \
            from None
    return parse_config(data or {}, str(path))
