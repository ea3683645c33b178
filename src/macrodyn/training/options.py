"""Options of the dynamics fit as small typed objects (in the spirit of diffrax's solver and
step-size objects): each knows how to do its part, so a new option touches its object and
the config, not the training loop.

    FitOptions(epochs=200, batch_size=256, optimiser=AdamW(5e-3), schedule=Cosine(1e-5),
               selection=Selection(val_fraction=0.1), averaging=EMA(0.999))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from macrodyn.io import load_torch, save_torch


@dataclass(frozen=True)
class AdamW:
    """AdamW (amsgrad by default: it never lets a weight's step grow again after a large early gradient)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    amsgrad: bool = True
    grad_clip: float | None = None  # clip the gradient norm (rare near-singular J Jᵀ rows spike the loss)

    def make(self, params) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, amsgrad=self.amsgrad,
                                 fused=True)

    def clip(self, module: nn.Module) -> None:
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)


@dataclass(frozen=True)
class Plateau:
    """Multiply the rate by ``factor`` after ``patience`` epochs without a better validation loss."""

    factor: float = 0.5
    patience: int = 50
    min_lr: float = 5e-6

    def make(self, opt: torch.optim.Optimizer, epochs: int):
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=self.factor, patience=self.patience,
                                                          min_lr=self.min_lr)

    @staticmethod
    def step(sched, val_loss: float) -> None:
        sched.step(val_loss)


@dataclass(frozen=True)
class Cosine:
    """Anneal from the optimiser's rate to ``min_lr`` over the epochs, whatever the validation loss does:
    a noisy loss may improve too slowly for the plateau rule to ever fire."""

    min_lr: float = 5e-6

    def make(self, opt: torch.optim.Optimizer, epochs: int):
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs - 1), eta_min=self.min_lr)

    @staticmethod
    def step(sched, val_loss: float) -> None:
        sched.step()


@dataclass(frozen=True)
class Selection:
    """Which state of the fit is kept and when to stop.

    ``val_fraction`` of the configurations are held out (0: the training loss decides).
    ``score(model) -> float`` (lower is better), if given, replaces the validation loss as the
    criterion, evaluated every ``score_every`` epochs and at the last; the schedule keeps
    following the validation loss. ``stop_patience``: stop after that many epochs without a
    new best (None: run every epoch). ``stop_waits_for_val``: with a score, also wait until the
    validation loss has gone ``stop_patience`` epochs without a new low: a rollout score can pass
    a transient minimum early in a fit whose loss is still falling, and stopping there keeps it.
    """

    val_fraction: float = 0.1
    stop_patience: int | None = None
    score: Callable[[nn.Module], float] | None = None
    score_every: int = 1
    stop_waits_for_val: bool = False


@dataclass(frozen=True)
class EMA:
    """Validate, keep and return an exponential moving average of the parameters.

    ``warmup``: decay ``min(decay, (1 + n)/(10 + n))`` at the ``n``-th update, so the average
    forgets the untrained start within tens of steps instead of ``1/(1 − decay)``.
    """

    decay: float
    warmup: bool = False

    def wrap(self, module: nn.Module):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        if self.warmup:
            decay = self.decay

            def avg(averaged, current, num_averaged):
                d = min(decay, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
                return d * averaged + (1.0 - d) * current
            return AveragedModel(module, avg_fn=avg)
        return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(self.decay))


@dataclass(frozen=True)
class Checkpointing:
    """Save a resumable state to ``path`` every ``every`` epochs (written atomically)."""

    path: Path
    every: int = 50

    def saved(self) -> dict | None:
        """The state an earlier (killed) fit saved, or None."""
        return load_torch(self.path) if Path(self.path).exists() else None

    def due(self, epochs_done: int) -> bool:
        """Whether a state is saved after ``epochs_done`` epochs."""
        return epochs_done % self.every == 0

    def save(self, state: dict) -> None:
        save_torch(state, self.path)


@dataclass(frozen=True)
class FitOptions:
    """Everything :func:`~macrodyn.training.dynamics.fit_dynamics` needs besides the model and data."""

    epochs: int
    batch_size: int = 256
    seed: int = 0
    optimiser: AdamW = field(default_factory=AdamW)
    schedule: Plateau | Cosine = field(default_factory=Plateau)
    selection: Selection = field(default_factory=Selection)
    averaging: EMA | None = None
    checkpointing: Checkpointing | None = None
