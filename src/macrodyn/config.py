"""Run configuration: YAML validated with pydantic. Unknown fields are refused."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, ValidationInfo, field_validator, \
    model_validator

from macrodyn.errors import InputError
from macrodyn.systems.registry import SYSTEMS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _check_finite_params(value, where: str) -> None:
    """NaN/Inf in a system parameter would only surface as a blown-up simulation later."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number; got {value}")
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite_params(v, f"{where}[{i}]")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite_params(v, f"{where}.{k}" if where else str(k))


class SystemConfig(_Strict):
    """Which microscopic system, and its constructor parameters (checked per system)."""

    name: str = "predator_prey"
    params: dict = Field(default_factory=dict, validate_default=True)

    @field_validator("name")
    @classmethod
    def _check_name(cls, v):
        if v not in SYSTEMS:
            raise ValueError(f"unknown system {v!r}; known: {sorted(SYSTEMS)}")
        return v

    @field_validator("params")
    @classmethod
    def _check_params(cls, v, info: ValidationInfo):
        # errors of the system's own Params model are reported as system.params.<field>
        system = SYSTEMS.get(info.data.get("name"))
        if system is not None and hasattr(system, "Params"):
            v = system.Params.model_validate(v).model_dump()
        _check_finite_params(v, "")
        return v


class DataConfig(_Strict):
    """Trajectories: training pool (configurations for both stages) and test set."""

    n_train_trajectories: int = Field(200, gt=0)
    n_test_trajectories: int = Field(100, gt=0)
    n_steps: int = Field(3000, gt=0, description="integration steps per trajectory")
    save_every: int = Field(10, gt=0, description="keep every save_every-th state")
    chunk_trajectories: int = Field(50, gt=0, description="trajectories per stored chunk")
    min_observable: float | None = Field(None, description="use only snapshots whose first given observable "
                                         "exceeds this (training and metric), e.g. free energy > 1e-4")

    @model_validator(mode="after")
    def _check(self):
        if self.n_steps % self.save_every:
            raise ValueError(f"n_steps ({self.n_steps}) must be a multiple of save_every ({self.save_every})")
        return self


class ClosureConfig(_Strict):
    """Closure autoencoder (stage 1)."""

    dim: int = Field(2, ge=0, description="closure variables d − d*")
    hidden: list[PositiveInt] = Field(default_factory=lambda: [32, 32])
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(256, gt=0)
    lr: float = Field(1e-3, gt=0)
    input_lr_coords: int | None = Field(
        4800, gt=0, description="the encoder's input layer learns at lr·min(1, input_lr_coords/N): Adam moves every "
        "weight by about lr, so that layer's outputs move in proportion to N, and at lr 1e-3 a 16 200-coordinate "
        "input collapsed the closure Jacobian (LJ, 2 700 atoms); null: one lr for every layer")
    weight_decay: float = Field(1e-4, ge=0)
    cond_weight: float = Field(1e-6, ge=0, description="λ_cond of the condition-number penalty")
    cond_on: Literal["full", "closure"] = "full"
    cond_batch: int | None = Field(64, gt=0, description="rows per batch used for the κ penalty (None: all)")
    observable_scale: float = Field(1.0, gt=0)
    max_configs: int | None = Field(None, gt=0, description="subsample the training snapshots")


class ModelConfig(_Strict):
    """Macroscopic model ``dz/dt = g(z)``."""

    kind: Literal["onsager", "mlp", "gfinn"] = "onsager"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [64, 64])
    potential_hidden: list[PositiveInt] = Field(default_factory=lambda: [32, 32, 32])
    alpha: float = Field(0.01, ge=0)
    beta: float = Field(0.1, ge=0)
    forcing: bool = False
    activation: Literal["tanh", "relu", "softplus", "gelu", "silu", "requ"] = "tanh"


class TrainingConfig(_Strict):
    """Labelling budget and the dynamics fit (stage 2)."""

    loss: Literal["L_z", "L_x", "L_xp"] = "L_xp"
    p: float = Field(0.2, gt=0, le=1, description="fraction of units (coordinates/atoms) labelled per config")
    budget: int = Field(150_000, gt=0, description="force evaluations spent on labels")
    epochs: int = Field(2000, gt=0)
    batch_size: int = Field(256, gt=0)
    lr: float = Field(5e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    lr_factor: float = Field(0.5, gt=0, lt=1)
    lr_patience: int = Field(50, ge=0)
    min_lr: float = Field(5e-6, ge=0)
    amsgrad: bool = Field(True, description="AdamW's amsgrad variant (paper); it never lets the per-weight step "
                          "size grow again after a large early gradient")
    lr_schedule: Literal["plateau", "cosine"] = Field(
        "plateau", description="plateau: halve (lr_factor) after lr_patience epochs without a better validation "
        "loss (paper); cosine: anneal from lr to min_lr over the epochs, whatever the validation loss does")
    val_fraction: float = Field(0.1, ge=0, lt=1)
    stop_patience: int | None = Field(None, gt=0, description="early stopping (epochs without improvement)")
    grad_clip: float | None = Field(None, gt=0.0, description="clip the gradient norm (null: no clipping)")
    ema_decay: float | None = Field(None, ge=0.0, lt=1.0, description="validate and keep an exponential moving "
                                    "average of the parameters with this decay per step (null: the iterate)")
    ema_warmup: bool = Field(False, description="ramp the EMA decay up as (1 + n)/(10 + n) over the first "
                                                "updates, so the average soon forgets the untrained start")
    select: Literal["loss", "rollout"] = Field(
        "loss", description="which state of the fit is kept and when to stop early: the lowest validation loss, "
        "or the lowest rollout error on training-pool trajectories (no force evaluations)")
    select_trajectories: int = Field(16, gt=0, description="select: rollout: training trajectories scored")
    select_every: int = Field(5, gt=0, description="select: rollout: epochs between scorings")
    members: int = Field(1, gt=0, description="independently seeded models (mean ± std)")
    chunk_configs: int = Field(1000, gt=0, description="labelled configurations per stored chunk")
    checkpoint_every: int = Field(50, gt=0, description="epochs between resumable checkpoints")
    sampling: Literal["uniform", "importance"] = Field(
        "uniform", description="units per configuration: uniform (paper) or importance-weighted by the J⁺ row "
        "norms, unbiased via Horvitz–Thompson weights (training/sampling.py)")
    importance_mix: float = Field(0.3, gt=0, le=1, description="importance sampling: weight γ of the uniform part")
    labelling: Literal["fixed", "on_demand"] = Field(
        "fixed", description="fixed: label once before training (paper); on_demand: a fresh subset each time a "
        "configuration is visited during training until the budget is spent, then reuse the cached labels")
    on_demand_visits: int = Field(2, gt=0, description="on_demand: fresh subsets per configuration the budget "
                                  "pays for (pool = budget / (units per config · visits))")
    control: Literal["none", "snapshots"] = Field(
        "none", description="none: fit the sampled forces (paper); snapshots: fit their residual from the other "
        "labelled configurations' mean within ±control_window snapshots, and add J c exactly (unbiased, no "
        "force evaluations; training/control.py)")
    control_window: int = Field(12, ge=0, description="control: snapshots either side whose labels predict a "
                                "configuration's forces")

    @model_validator(mode="after")
    def _check(self):
        if self.loss in ("L_z", "L_x") and self.p != 1:
            raise ValueError(f"loss {self.loss} uses every coordinate: set p: 1 (got {self.p}) or use L_xp")
        if self.control != "none" and (self.loss != "L_xp" or self.labelling != "fixed"):
            raise ValueError(f"control: {self.control} needs loss: L_xp with labelling: fixed (got loss: {self.loss}, "
                             f"labelling: {self.labelling}); set control: none")
        return self


class EvaluationConfig(_Strict):
    """Rollouts on the test trajectories."""

    method: Literal["rk4", "euler", "midpoint", "dopri5"] = "rk4"
    step_size: float | None = Field(None, gt=0, description="default: the saved-data time step")
    n_plot: int = Field(4, ge=0, description="test trajectories drawn in the report")


class ParallelConfig(_Strict):
    """Where the simulate and label chunks and the ensemble members are computed; the data do not
    depend on it (a member's float rounding may, through the thread count).

    Not stored in the run folder's ``config.yaml``, so a run may be resumed with another
    scheduler (or in-process).
    """

    scheduler: str | None = Field(None, description="null: in-process; 'local': a Dask LocalCluster of "
                                  "`workers` processes; 'tcp://host:port': an existing Dask scheduler")
    workers: int = Field(2, gt=0, description="worker processes when scheduler is 'local'")
    worker_threads: int = Field(1, gt=0, description="torch threads per worker process (members trained "
                                "in parallel, see dynamics_stage)")

    @field_validator("scheduler")
    @classmethod
    def _check_scheduler(cls, v):
        if v is not None and v != "local" and "://" not in v:
            raise ValueError(f"scheduler must be null, 'local' or a scheduler address like tcp://host:8786; got {v!r}")
        return v


class RunConfig(_Strict):
    """A whole run: simulate → label → closure → dynamics → evaluate → report."""

    name: str = "run"
    seed: int = 1
    system: SystemConfig = Field(default_factory=SystemConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    closure: ClosureConfig = Field(default_factory=ClosureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's choice)")
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the config reference in the README)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def validate(model: type[BaseModel], data, source: str = "<dict>"):
    """Validate ``data`` as ``model``; an error names every offending dotted field."""
    if not isinstance(data, dict):
        raise InputError(f"config {source} must be a YAML mapping at the top level, got {type(data).__name__}.")
    try:
        return model.model_validate(data)  # not model(**data): YAML keys need not be strings
    except ValidationError as e:
        raise InputError(_format_errors(e, source)) from None


def parse_config(data: dict, source: str = "<dict>") -> RunConfig:
    return validate(RunConfig, data, source)


def read_yaml(path: str | Path):
    """The YAML document in ``path`` (None when empty); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} not found.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"config {path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                         "is it the right file?") from None
    except yaml.YAMLError as e:
        raise InputError(f"config {path} is not valid YAML: {e}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML config; errors name the offending field."""
    data = read_yaml(path)
    # an empty file is the default config; any other non-mapping (0, [], false) is refused
    return parse_config({} if data is None else data, str(path))


def default_config_path() -> Path:
    """The embedded predator–prey config shipped with the package."""
    return Path(__file__).parent / "configs" / "predator_prey.yaml"
