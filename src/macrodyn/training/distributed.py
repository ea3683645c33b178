"""Data-parallel training of the macroscopic model with ``torchrun`` and DistributedDataParallel.

:func:`data_parallel` turns a loss into one that trains ``field`` data-parallel when a
``torch.distributed`` process group of ``W > 1`` processes is initialised (and returns
the loss unchanged otherwise); :func:`~macrodyn.training.dynamics.fit_dynamics` needs
no other change::

    fit_dynamics(field, data_parallel(make_loss("L_xp", p), field), data, ...)

Every rank draws the same permutation from the shared seed, so every rank holds the same
global batch of ``batch_size`` rows; rank ``r`` evaluates the loss only on its contiguous
shard ``I_r`` (``n_r`` of the ``n`` rows), through the field wrapped in DDP. The losses are
means over rows, so rank ``r``'s loss is scaled by ``W n_r / n``; DDP averages the
gradients over ranks, which gives

    (1/W) Σ_r (W n_r / n) ∇ mean_{I_r} ℓ = ∇ mean_{batch} ℓ,

the gradient of single-process training on the same global batch, also when the batch
does not split evenly (a rank with an empty shard contributes one zero-weighted row).
The returned value is the global-batch loss (one scalar all-reduce), so logged training
losses agree too. Validation (``field.eval()``) is computed in full on every rank with
the same parameters, so the learning-rate schedule and early stopping agree across ranks.

Run the dynamics stage on N processes (after ``macrodyn simulate``, ``label`` and
``train-closure`` on the same folder)::

    torchrun --standalone --nproc_per_node N -m macrodyn.torchrun CONFIG --out DIR

CPU processes use the gloo backend; ``device: cuda`` uses NCCL with one GPU per process
(``LOCAL_RANK``). ``macrodyn evaluate`` and ``report`` then continue as usual.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _DDP(DistributedDataParallel):
    """DDP that forwards attribute look-ups it lacks (``v_std``, ...) to the wrapped field."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def shard(n: int, rank: int, world_size: int) -> tuple[torch.Tensor, float]:
    """Rank ``rank``'s contiguous rows of a global batch of ``n`` rows, and its loss weight ``W n_r / n``.

    Returns:
        ``(rows_r, scale)``; an empty shard is returned as row 0 with ``scale = 0`` so that
        every rank takes part in the gradient reduction.
    """
    mine = torch.tensor_split(torch.arange(n), world_size)[rank]
    if len(mine) == 0:
        return torch.arange(1), 0.0
    return mine, world_size * len(mine) / n


class DataParallelLoss:
    """``loss`` evaluated on this rank's shard of each global batch, through ``field`` in DDP.

    Args:
        loss: a loss object (``loss(field, batch) -> scalar`` mean over rows; ``loss.needs``).
        field: the module being trained, already on its device; its parameters are
            broadcast from rank 0.
    """

    def __init__(self, loss, field: nn.Module):
        self.rank, self.world = world()
        if self.world < 2:
            raise ValueError("DataParallelLoss needs an initialised torch.distributed group of 2 or more processes")
        self.loss, self.field = loss, field
        self.needs = loss.needs
        self.name = getattr(loss, "name", type(loss).__name__)
        dev = next(field.parameters()).device
        self.model = _DDP(field, device_ids=[dev.index] if dev.type == "cuda" else None)

    def compact(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        compact = getattr(self.loss, "compact", None)
        return data if compact is None else compact(data)

    def __call__(self, field: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if field is not self.field or not field.training:  # validation: the whole batch on every rank
            return self.loss(field, batch)
        rows, scale = shard(len(batch[self.needs[0]]), self.rank, self.world)
        value = self.loss(self.model, {k: v[rows.to(v.device)] for k, v in batch.items()}) * scale
        total = value.detach() / self.world
        dist.all_reduce(total)  # the global-batch mean, identical on every rank
        return value + (total - value).detach()  # gradient: this rank's share


def data_parallel(loss, field: nn.Module):
    """:class:`DataParallelLoss` if a process group of 2+ ranks is initialised, else ``loss`` itself."""
    return DataParallelLoss(loss, field) if world()[1] > 1 else loss
