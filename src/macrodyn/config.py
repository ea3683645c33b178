"""Run configuration: YAML validated with pydantic. Unknown fields are refused."""
from __future__ import annotations

import inspect
import math
import os
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, \
    ValidationError, ValidationInfo, field_validator, model_validator

from macrodyn.errors import InputError
from macrodyn.systems.base import MicroSystem
from macrodyn.systems.registry import SYSTEMS, build_system, format_params_error
from macrodyn.training.control import check_surrogate
from macrodyn.training.losses import make_loss
from macrodyn.training.sampling import make_labelling


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Upper bounds of the numeric fields. They are far above any run this package can do on one
# machine (or a cluster, for a year) and only catch typos and unit slips (an extra 000, a
# time in femtoseconds) before they turn into an allocation error, an overflow or a job that
# never ends. Floats are bounded by allow_inf_nan=False (finite) and, where a scale is
# meaningful (learning rates), below.
MAX_STEPS = 10**8  # integration steps per trajectory: 1e8 steps ≈ days of CPU even for 2 coordinates
MAX_TRAJECTORIES = 10**7  # trajectories per set
MAX_CHUNK = 10**6  # rows per stored chunk (trajectories or labelled configurations); a chunk is held in memory
MAX_EPOCHS = 10**6
MAX_BUDGET = 10**13  # force evaluations (≈ 1e9 configurations of 10 000 atoms)
MAX_MEMBERS = 1000  # ensemble members (each a separately trained model)
MAX_BATCH = 10**7
MAX_WIDTH = 10**5  # units of a hidden layer
MAX_COUNT = 10**9  # other counts (configurations, coordinates, patience, windows)
MAX_LR = 10.0  # no optimiser here converges with a step above this
MAX_THREADS_PER_CPU = 8  # threads / worker processes per CPU core (oversubscription beyond this only thrashes)


def _refuse_bool(v):
    # pydantic's lax float accepts true/false as 1.0/0.0; a YAML boolean in a number field is a typo
    if isinstance(v, bool):
        raise ValueError(f"expected a number, got the boolean {str(v).lower()}")
    return v


#: a float field that still accepts ints (``lr: 1`` → 1.0) and strings YAML leaves unparsed (``1e-3``),
#: but not booleans
Float = Annotated[float, BeforeValidator(_refuse_bool)]
Width = Annotated[StrictInt, Field(gt=0, le=MAX_WIDTH)]
Layers = Annotated[list[Width], Field(max_length=64)]


def _cpu_limit() -> int:
    return MAX_THREADS_PER_CPU * (os.cpu_count() or 1)


def _check_threads(v: int | None, field: str) -> int | None:
    if v is not None and v > _cpu_limit():
        raise ValueError(f"{field} = {v} exceeds {MAX_THREADS_PER_CPU} × {os.cpu_count() or 1} CPU core(s) = "
                         f"{_cpu_limit()} on this machine; lower it")
    return v


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
    """Which microscopic system, and its constructor parameters (checked per system).

    ``name`` is a registered system (``macrodyn systems`` lists them), an installed plug-in's
    entry point, or an import path ``package.module:ClassName``; ``params`` are checked against
    the class's ``Params`` model, or one derived from its ``__init__`` signature.
    """

    name: str = "predator_prey"
    params: dict = Field(default_factory=dict, validate_default=True)

    @field_validator("name")
    @classmethod
    def _check_name(cls, v):
        SYSTEMS.resolve(v)  # an InputError (a ValueError) lists the known names and the import-path form
        return v

    @field_validator("params")
    @classmethod
    def _check_params(cls, v, info: ValidationInfo):
        # errors of the system's parameter model are reported as system.params.<field>
        name = info.data.get("name")
        if name is not None:  # None: the name was refused already
            v = SYSTEMS.params_model(name).model_validate(v).model_dump()
        _check_finite_params(v, "")
        return v


class DataConfig(_Strict):
    """Trajectories: training pool (configurations for both stages) and test set."""

    n_train_trajectories: StrictInt = Field(200, gt=0, le=MAX_TRAJECTORIES)
    n_test_trajectories: StrictInt = Field(100, gt=0, le=MAX_TRAJECTORIES)
    n_steps: StrictInt = Field(3000, gt=0, le=MAX_STEPS, description="integration steps per trajectory")
    save_every: StrictInt = Field(10, gt=0, le=MAX_STEPS, description="keep every save_every-th state")
    chunk_trajectories: StrictInt = Field(50, gt=0, le=MAX_CHUNK, description="trajectories per stored chunk")
    min_observable: Float | None = Field(None, description="use only snapshots whose first given observable "
                                         "exceeds this (training and metric), e.g. free energy > 1e-4")
    dtype: Literal["float64", "float32"] = Field(
        "float64", description="how trajectories are stored: float32 halves the disk and the memory of every "
        "stage that reads snapshots (forces are still computed in float64, at the stored, rounded state)")

    @model_validator(mode="after")
    def _check(self):
        if self.n_steps % self.save_every:
            raise ValueError(f"n_steps ({self.n_steps}) must be a multiple of save_every ({self.save_every})")
        return self


class ClosureConfig(_Strict):
    """Closure autoencoder (stage 1)."""

    dim: StrictInt = Field(2, ge=0, le=MAX_WIDTH, description="closure variables d − d*")
    hidden: Layers = Field(default_factory=lambda: [32, 32])
    epochs: StrictInt = Field(10, gt=0, le=MAX_EPOCHS)
    batch_size: StrictInt = Field(256, gt=0, le=MAX_BATCH)
    lr: Float = Field(1e-3, gt=0, le=MAX_LR)
    input_lr_coords: StrictInt | None = Field(
        4800, gt=0, le=MAX_COUNT, description="the encoder's input layer learns at lr·min(1, input_lr_coords/N): "
        "Adam moves every weight by about lr, so that layer's outputs move in proportion to N, and at lr 1e-3 a "
        "16 200-coordinate input collapsed the closure Jacobian (LJ, 2 700 atoms); null: one lr for every layer")
    weight_decay: Float = Field(1e-4, ge=0)
    cond_weight: Float = Field(1e-6, ge=0, description="λ_cond of the condition-number penalty")
    cond_on: Literal["full", "closure"] = "full"
    cond_batch: StrictInt | None = Field(64, gt=0, le=MAX_BATCH,
                                         description="rows per batch used for the κ penalty (None: all)")
    observable_scale: Float = Field(1.0, gt=0)
    max_configs: StrictInt | None = Field(None, gt=0, le=MAX_COUNT, description="subsample the training snapshots")
    checkpoint_every: StrictInt = Field(10, gt=0, le=MAX_EPOCHS, description="epochs between resumable "
                                        "checkpoints of the closure's training")
    input: Literal["coordinates", "descriptors"] = Field(
        "coordinates", description="what the encoder reads: the coordinates, or the system's invariant "
        "descriptors (Lennard–Jones: pair descriptors, for runs that each start from their own placement)")
    descriptor_basis: StrictInt = Field(8, gt=0, le=MAX_WIDTH, description="radial basis functions per "
                                        "descriptor family (closure.input: descriptors)")
    descriptor_energy: StrictBool = Field(False, description="add the system's pair energy per atom, its rate and "
                                          "the velocities' part of its second derivative to the descriptors "
                                          "(closure.input: descriptors; Lennard–Jones): energy conservation ties "
                                          "them to the temperature")


class ModelConfig(_Strict):
    """Macroscopic model ``dz/dt = g(z)``."""

    kind: Literal["onsager", "mlp", "gfinn"] = "onsager"
    hidden: Layers = Field(default_factory=lambda: [64, 64])
    potential_hidden: Layers = Field(default_factory=lambda: [32, 32, 32])
    alpha: Float = Field(0.01, ge=0)
    beta: Float = Field(0.1, ge=0)
    forcing: StrictBool = False
    activation: Literal["tanh", "relu", "softplus", "gelu", "silu", "requ"] = "tanh"


class SurrogateConfig(_Strict):
    """The cheap approximate system of ``training.control: surrogate``."""

    name: str | None = Field(None, description="a registered system name or import path `package.module:Class`; "
                             "null: the run's own system (system.name)")
    params: dict = Field(default_factory=dict, description="constructor parameters merged over system.params (for "
                         "another class, over those of them it also takes), e.g. {cutoff: 1.5} for a short-cutoff "
                         "Lennard–Jones on the same atoms and box")

    @field_validator("name")
    @classmethod
    def _check_name(cls, v):
        if v is not None:
            SYSTEMS.resolve(v)
        return v


class TrainingConfig(_Strict):
    """Labelling budget and the dynamics fit (stage 2)."""

    loss: Literal["L_z", "L_x", "L_xp"] = "L_xp"
    p: Float = Field(0.2, gt=0, le=1, description="fraction of units (coordinates/atoms) labelled per config")
    budget: StrictInt = Field(150_000, gt=0, le=MAX_BUDGET, description="force evaluations spent on labels")
    epochs: StrictInt = Field(2000, gt=0, le=MAX_EPOCHS)
    batch_size: StrictInt = Field(256, gt=0, le=MAX_BATCH)
    lr: Float = Field(5e-3, gt=0, le=MAX_LR)
    weight_decay: Float = Field(0.0, ge=0)
    lr_factor: Float = Field(0.5, gt=0, lt=1)
    lr_patience: StrictInt = Field(50, ge=0, le=MAX_EPOCHS)
    min_lr: Float = Field(5e-6, ge=0, le=MAX_LR)
    amsgrad: StrictBool = Field(True, description="AdamW's amsgrad variant (paper); it never lets the per-weight step "
                          "size grow again after a large early gradient")
    lr_schedule: Literal["plateau", "cosine"] = Field(
        "plateau", description="plateau: halve (lr_factor) after lr_patience epochs without a better validation "
        "loss (paper); cosine: anneal from lr to min_lr over the epochs, whatever the validation loss does")
    val_fraction: Float = Field(0.1, ge=0, lt=1)
    stop_patience: StrictInt | None = Field(None, gt=0, le=MAX_EPOCHS,
                                            description="early stopping (epochs without improvement)")
    stop_waits_for_val: StrictBool = Field(
        False, description="select: rollout: stop early only when the validation loss, too, has gone stop_patience "
        "epochs without a new low (a rollout score can pass a transient minimum while the loss still falls)")
    grad_clip: Float | None = Field(None, gt=0.0, description="clip the gradient norm (null: no clipping)")
    ema_decay: Float | None = Field(None, ge=0.0, lt=1.0, description="validate and keep an exponential moving "
                                    "average of the parameters with this decay per step (null: the iterate)")
    ema_warmup: StrictBool = Field(False, description="ramp the EMA decay up as (1 + n)/(10 + n) over the first "
                                                "updates, so the average soon forgets the untrained start")
    select: Literal["loss", "rollout"] = Field(
        "loss", description="which state of the fit is kept and when to stop early: the lowest validation loss, "
        "or the lowest rollout error on training-pool trajectories (no force evaluations)")
    select_trajectories: StrictInt = Field(16, gt=0, le=MAX_TRAJECTORIES,
                                           description="select: rollout: training trajectories scored")
    select_every: StrictInt = Field(5, gt=0, le=MAX_EPOCHS, description="select: rollout: epochs between scorings")
    members: StrictInt = Field(1, gt=0, le=MAX_MEMBERS, description="independently seeded models (mean ± std)")
    chunk_configs: StrictInt = Field(1000, gt=0, le=MAX_CHUNK, description="labelled configurations per stored chunk")
    checkpoint_every: StrictInt = Field(50, gt=0, le=MAX_EPOCHS, description="epochs between resumable checkpoints")
    sampling: Literal["uniform", "importance"] = Field(
        "uniform", description="units per configuration: uniform (paper) or importance-weighted by the J⁺ row "
        "norms, unbiased via Horvitz–Thompson weights (training/sampling.py)")
    importance_mix: Float = Field(0.3, gt=0, le=1, description="importance sampling: weight γ of the uniform part")
    labelling: Literal["fixed", "on_demand"] = Field(
        "fixed", description="fixed: label once before training (paper); on_demand: a fresh subset each time a "
        "configuration is visited during training until the budget is spent, then reuse the cached labels")
    on_demand_visits: StrictInt = Field(2, gt=0, le=MAX_COUNT, description="on_demand: fresh subsets per "
                                        "configuration the budget pays for (pool = budget / (units per config · "
                                        "visits))")
    control: Literal["none", "snapshots", "surrogate"] = Field(
        "none", description="none: fit the sampled forces (paper); snapshots: fit their residual from the other "
        "labelled configurations' mean within ±control_window snapshots, and add J c exactly (unbiased, no "
        "force evaluations; training/control.py); surrogate: the same with c = β s, s the forces of the cheap "
        "system of training.surrogate on every coordinate of each labelled configuration and β a least-squares "
        "scale per coordinate slot (unbiased; its evaluations are reported apart from the budget)")
    control_window: StrictInt = Field(12, ge=0, le=MAX_STEPS, description="control: snapshots either side whose "
                                      "labels predict a configuration's forces")
    surrogate: SurrogateConfig | None = Field(
        None, description="control: surrogate: the cheap system, {name, params}; e.g. {params: {cutoff: 1.5}} is "
        "the run's Lennard–Jones system truncated at 1.5σ. It must have the system's coordinates; other controls "
        "ignore it (a study may switch the control off per point)")

    @model_validator(mode="after")
    def _check(self):
        if self.loss in ("L_z", "L_x") and self.p != 1:
            raise ValueError(f"loss {self.loss} uses every coordinate: set p: 1 (got {self.p}) or use L_xp")
        if self.control != "none" and (self.loss != "L_xp" or self.labelling != "fixed"):
            raise ValueError(f"control: {self.control} needs loss: L_xp with labelling: fixed (got loss: {self.loss}, "
                             f"labelling: {self.labelling}); set control: none")
        if self.control == "surrogate" and self.surrogate is None:
            raise ValueError("control: surrogate needs a surrogate section, e.g. surrogate: {params: {cutoff: 1.5}} "
                             "(the run's system with other parameters) or surrogate: {name: package.module:Class}")
        return self


class EvaluationConfig(_Strict):
    """Rollouts on the test trajectories."""

    method: Literal["rk4", "euler", "midpoint", "dopri5"] = "rk4"
    step_size: Float | None = Field(None, gt=0, description="default: the saved-data time step")
    n_plot: StrictInt = Field(4, ge=0, le=1000, description="test trajectories drawn in the report")


class ParallelConfig(_Strict):
    """Where the simulate and label chunks and the ensemble members are computed; the data do not
    depend on it (a member's float rounding may, through the thread count).

    Not stored in the run folder's ``config.yaml``, so a run may be resumed with another
    scheduler (or in-process).
    """

    scheduler: str | None = Field(None, description="null: in-process; 'local': a Dask LocalCluster of "
                                  "`workers` processes; 'tcp://host:port': an existing Dask scheduler")
    workers: StrictInt = Field(2, gt=0, le=10**4, description="worker processes when scheduler is 'local'")
    worker_threads: StrictInt = Field(1, gt=0, le=10**4, description="torch threads per worker process (members "
                                      "trained in parallel, see dynamics_stage; checked on the worker's machine)")

    @model_validator(mode="after")
    def _check_workers(self):
        if self.scheduler == "local":  # a remote scheduler's workers live on other machines
            _check_threads(self.workers, "parallel.workers")
        return self

    @field_validator("scheduler")
    @classmethod
    def _check_scheduler(cls, v):
        if v is not None and v != "local" and "://" not in v:
            raise ValueError(f"scheduler must be null, 'local' or a scheduler address like tcp://host:8786; got {v!r}")
        return v


class RunConfig(_Strict):
    """A whole run: simulate → label → closure → dynamics → evaluate → report."""

    name: str = "run"
    seed: StrictInt = Field(1, ge=0, lt=2**63, description="numpy's SeedSequence takes any int ≥ 0; torch's "
                            "manual_seed wraps above 2**63")
    system: SystemConfig = Field(default_factory=SystemConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    closure: ClosureConfig = Field(default_factory=ClosureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    device: Literal["cpu", "cuda"] = "cpu"
    threads: StrictInt | None = Field(None, gt=0, description="torch CPU threads (default: torch's choice)")
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)

    @field_validator("threads")
    @classmethod
    def _check_threads(cls, v):
        return _check_threads(v, "threads")

    @model_validator(mode="after")
    def _check_surrogate(self):
        s = self.training.surrogate
        if s is not None:
            name, params = surrogate_spec(self)
            try:
                SYSTEMS.params_model(name).model_validate(params)
            except ValidationError as e:
                raise ValueError(format_params_error(e, "training.surrogate.params")) from None
        return self


def surrogate_spec(cfg: RunConfig) -> tuple[str, dict]:
    """``(name, params)`` of the surrogate system of ``training.surrogate``: its name (default
    ``system.name``) and its params merged over ``system.params`` (for another class, over
    those of them that class also takes)."""
    s, system = cfg.training.surrogate, cfg.system
    if s is None:
        raise InputError("training.surrogate is not set; give it for training.control: surrogate.")
    name = s.name or system.name
    inherited = system.params
    if SYSTEMS.resolve(name) is not SYSTEMS.resolve(system.name):
        known = SYSTEMS.params_model(name).model_fields
        inherited = {k: v for k, v in inherited.items() if k in known}
    return name, {**inherited, **s.params}


def build_surrogate(cfg: RunConfig) -> MicroSystem:
    """The surrogate system of ``training.surrogate`` (built with the system registry)."""
    return build_system(*surrogate_spec(cfg))


def _format_errors(err: ValidationError, source: str) -> str:
    """One line: ``invalid config SOURCE: a.b: problem | c: problem`` (messages may contain ';')."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = " ".join(str(e["msg"]).removeprefix("Value error, ").split())
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling, or see the config reference: docs/config.md)"
        elif e["type"] in _SHOW_INPUT and isinstance(e.get("input"), (bool, int, float, str)):
            value = e["input"]
            msg += f" (got {str(value).lower() if isinstance(value, bool) else repr(value)})"
        parts.append(f"{loc or '(top level)'}: {msg}")
    return f"invalid config {source}: " + " | ".join(parts)


# pydantic error types whose message does not show the offending value
_SHOW_INPUT = {"int_type", "float_type", "bool_type", "string_type", "greater_than", "greater_than_equal",
               "less_than", "less_than_equal", "int_parsing", "float_parsing", "bool_parsing", "literal_error"}


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (PyYAML keeps the last
    one silently, so a second ``training:`` section would replace the first)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges are meant to override
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # unhashable key: SafeLoader reports it
                    continue
                if first != key_node.start_mark.line + 1:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first}); keep one of them",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = " ".join(str(getattr(e, "problem", None) or e).split())
    return f"config {path}{where} is not valid YAML: {problem}"


def read_yaml(path: str | Path):
    """The YAML document in ``path`` (None when empty); errors name the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} not found{' (it is a folder)' if path.is_dir() else ''}; "
                         "check the path.")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as e:
        raise InputError(f"config {path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                         "is it the right file?") from None
    except yaml.YAMLError as e:
        raise InputError(_yaml_error(path, e)) from None
    except OSError as e:
        raise InputError(f"cannot read config {path}: {e.strerror or e}.") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML config; errors name the offending field."""
    data = read_yaml(path)
    if data is None:  # an empty file (or only comments) is most likely a mistake, not "all defaults"
        raise InputError(f"config {path} is empty; give at least `name:` or omit the argument to run the "
                         "embedded default.")
    return parse_config(data, str(path))


def default_config_path() -> Path:
    """The embedded predator–prey config shipped with the package."""
    return Path(__file__).parent / "configs" / "predator_prey.yaml"


def training_pool_size(cfg: RunConfig) -> int | None:
    """Training snapshots the label stage picks configurations from: ``n_train_trajectories ·
    (n_steps // save_every + 1)``; None with ``data.min_observable`` (known only after simulate)."""
    d = cfg.data
    if d.min_observable is not None:
        return None
    return d.n_train_trajectories * (d.n_steps // d.save_every + 1)


SCHEDULER_TIMEOUT = 10.0  # seconds to reach a tcp:// Dask scheduler before giving up


def check_scheduler(address: str, timeout: float | None = None) -> None:
    """Refuse a ``tcp://`` or ``tls://`` scheduler address whose port does not answer within
    ``timeout`` seconds (default :data:`SCHEDULER_TIMEOUT`): a TCP connection only, so a
    closed port fails at once instead of after Dask's 30 s of retries. Other schemes pass."""
    timeout = SCHEDULER_TIMEOUT if timeout is None else timeout
    url = urlsplit(address)
    if url.scheme not in ("tcp", "tls"):
        return
    try:
        host, port = url.hostname, url.port
    except ValueError:  # a port that is not a number
        host = port = None
    if not host or port is None:
        raise InputError(f"Dask scheduler address {address} needs a host and a port, e.g. tcp://host:8786; fix "
                         "--scheduler or parallel.scheduler.")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise InputError(f"cannot reach Dask scheduler {address} within {timeout:g} s ({why}); start it or drop "
                         "--scheduler.") from None


def check_closure_dim(cfg: RunConfig, system: MicroSystem) -> None:
    """``closure.dim`` must leave room below ``N`` minus the system's given observables (and, for
    ``closure.input: descriptors``, be at most the number of descriptors the system gives)."""
    try:
        n, d_obs = system.n_coords, system.observable().dim
    except NotImplementedError:  # no default observable: the closure stage will say so
        return
    if not cfg.closure.dim < n - d_obs:
        raise InputError(f"closure.dim = {cfg.closure.dim} is too large: with {d_obs} given observable(s) and "
                         f"N = {n} coordinates it must be < {n - d_obs}.")
    if cfg.closure.input == "descriptors":  # the system must offer them, and they bound the closure's width
        m = closure_descriptors(cfg.closure, system).dim
        if not 0 < cfg.closure.dim <= m:
            raise InputError(f"closure.dim = {cfg.closure.dim} with closure.input: descriptors must lie in [1, {m}] "
                             f"(the {m} descriptors {system.name} gives for closure.descriptor_basis = "
                             f"{cfg.closure.descriptor_basis}); change closure.dim or closure.descriptor_basis.")


def closure_descriptors(c: ClosureConfig, system: MicroSystem):
    """The system's invariant descriptors that ``c`` asks for. ``energy`` is passed only when asked, so a
    system whose ``descriptors()`` takes ``n_basis`` alone still works without it."""
    if not c.descriptor_energy:
        return system.descriptors(c.descriptor_basis)
    if "energy" not in inspect.signature(system.descriptors).parameters:
        raise InputError(f"closure.descriptor_energy: true, but system {system.name!r} offers no energy "
                         "descriptors (its descriptors() takes no `energy`); set it to false.")
    return system.descriptors(c.descriptor_basis, energy=True)


def configs_bought(t: TrainingConfig, n_units: int) -> tuple[int, int]:
    """``(units labelled per configuration, configurations the budget buys)``; an on-demand pool is
    visited ``on_demand_visits`` times. Fewer than 2 configurations is refused."""
    units = make_loss(t.loss, t.p).units(n_units)
    n_configs = t.budget // units // make_labelling(t.labelling, t.on_demand_visits).visits
    if n_configs < 2:
        raise InputError(f"budget {t.budget} buys fewer than 2 configurations at {units} force evaluations each; "
                         "raise training.budget.")
    return units, n_configs


def check_before_work(cfg: RunConfig, system: MicroSystem | None = None) -> None:
    """Refuse, before anything is simulated or written, a config that a later stage would refuse.

    - a ``tcp://`` Dask scheduler that does not answer (:func:`check_scheduler`);
    - ``device: cuda`` without a visible CUDA device;
    - a ``closure.dim`` that leaves no room below the system's coordinates minus its given
      observables;
    - a ``training.surrogate`` whose coordinates are not the system's;
    - a ``training.budget`` that buys fewer than 2 configurations, or more configurations
      (``budget // units_per_config``, divided by ``on_demand_visits`` for on-demand
      labelling) than the training pool holds (skipped with ``data.min_observable``,
      whose pool is known only after simulating).

    Args:
        cfg: the validated config.
        system: the run's :class:`~macrodyn.systems.base.MicroSystem` (its ``n_units``,
            ``n_coords``, ``observable()``); default: built from ``cfg.system`` with the registry.
    Raises:
        InputError: one line naming the problem and the fix.
    """
    if cfg.parallel.scheduler not in (None, "local"):
        check_scheduler(cfg.parallel.scheduler)
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("config asks for device: cuda but no CUDA device is visible; set device: cpu "
                             "(or check CUDA_VISIBLE_DEVICES and the driver).")
    t = cfg.training
    if system is None:
        system = build_system(cfg.system.name, cfg.system.params)
    check_closure_dim(cfg, system)
    if t.control == "surrogate":
        check_surrogate(build_surrogate(cfg), system)
    units, n_configs = configs_bought(t, system.n_units)
    pool = training_pool_size(cfg)
    if pool is not None and n_configs > pool:
        raise InputError(f"the budget asks for {n_configs} configurations ({t.budget} force evaluations / {units} per "
                         f"configuration) but the training pool has {pool} snapshots ({cfg.data.n_train_trajectories} "
                         f"trajectories × {cfg.data.n_steps // cfg.data.save_every + 1}); raise "
                         "data.n_train_trajectories or lower training.budget.")
