"""A config's sections turned into the objects that do the work: the closure, the vector
field, the loss, the sampler, the labelling, the control and the fit options.

This is the one place where option names become objects; below it nothing compares a name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from macrodyn.closure.autoencoder import ClosureAutoencoder, DescriptorClosure
from macrodyn.config import (ClosureConfig, ModelConfig, RunConfig, TrainingConfig, build_surrogate,
                             closure_descriptors, configs_bought)
from macrodyn.dynamics import GFINN, MLPField, OnsagerNet, StandardizedField
from macrodyn.errors import InputError
from macrodyn.systems.base import MicroSystem
from macrodyn.training.control import make_control
from macrodyn.training.losses import make_loss
from macrodyn.training.options import EMA, AdamW, Checkpointing, Cosine, FitOptions, Plateau, Selection
from macrodyn.training.sampling import make_labelling, make_sampler

#: independent RNG streams of a run (trajectories, labels, which configurations, the advice pilot's parts)
STREAMS = {"train": 11, "test": 12, "labels": 13, "pick": 14, "pilot_parts": 15}

FIELDS = {
    "onsager": lambda m, d: OnsagerNet(d, tuple(m.hidden), tuple(m.potential_hidden), m.alpha, m.beta, m.forcing,
                                       m.activation),
    "gfinn": lambda m, d: GFINN(d, tuple(m.hidden), activation=m.activation),
    "mlp": lambda m, d: MLPField(d, tuple(m.hidden), m.activation),
}
SCHEDULES = {"plateau": lambda t: Plateau(t.lr_factor, t.lr_patience, t.min_lr), "cosine": lambda t: Cosine(t.min_lr)}


def stream_rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    """The generator of one stream of a run (``extra``: chunk index, ...)."""
    return np.random.default_rng([seed, STREAMS[stream], *extra])


def make_closure(c: ClosureConfig, system: MicroSystem) -> ClosureAutoencoder:
    if c.input == "descriptors":
        return DescriptorClosure(system.observable(), closure_descriptors(c, system), system.n_coords,
                                 c.dim, tuple(c.hidden), c.observable_scale)
    return ClosureAutoencoder(system.observable(), system.n_coords, c.dim, tuple(c.hidden), c.observable_scale)


def make_field(m: ModelConfig, dim: int) -> StandardizedField:
    return StandardizedField(FIELDS[m.kind](m, dim), dim)


def loss_of(t: TrainingConfig):
    return make_loss(t.loss, t.p)


def units_per_config(t: TrainingConfig, system: MicroSystem) -> int:
    return loss_of(t).units(system.n_units)


def sampler_of(t: TrainingConfig, system: MicroSystem):
    return make_sampler(t.sampling, units_per_config(t, system), t.importance_mix)


def labelling_of(t: TrainingConfig):
    return make_labelling(t.labelling, t.on_demand_visits)


def control_of(cfg: RunConfig, system: MicroSystem, surrogate: MicroSystem | None = None):
    """The control's builder (None: no control). ``training.control: surrogate`` uses ``surrogate``,
    or builds the system ``training.surrogate`` names; either must have ``system``'s coordinates."""
    t = cfg.training
    return make_control(t.control, t.control_window, system=system,
                        surrogate=lambda: surrogate if surrogate is not None else build_surrogate(cfg))


def closure_only(c: ClosureConfig) -> bool:
    return {"full": False, "closure": True}[c.cond_on]


def select_trajectories(t: TrainingConfig) -> int:
    """Training trajectories scored by rollout to select the model (0: select by validation loss)."""
    return {"loss": 0, "rollout": t.select_trajectories}[t.select]


def n_configs(cfg: RunConfig, system: MicroSystem) -> int:
    """Configurations the budget buys (an on-demand pool is visited ``visits`` times)."""
    return configs_bought(cfg.training, system.n_units)[1]


def fit_options(t: TrainingConfig, seed: int, *, score=None, checkpoint: Path | None = None) -> FitOptions:
    return FitOptions(
        epochs=t.epochs, batch_size=t.batch_size, seed=seed,
        optimiser=AdamW(t.lr, t.weight_decay, t.amsgrad, t.grad_clip),
        schedule=SCHEDULES[t.lr_schedule](t),
        selection=Selection(t.val_fraction, t.stop_patience, score, t.select_every, t.stop_waits_for_val),
        averaging=None if t.ema_decay is None else EMA(t.ema_decay, t.ema_warmup),
        checkpointing=None if checkpoint is None else Checkpointing(checkpoint, t.checkpoint_every))


def device(cfg: RunConfig) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise InputError("config asks for device: cuda but no CUDA device is visible; set device: cpu.")
    return torch.device(cfg.device)
