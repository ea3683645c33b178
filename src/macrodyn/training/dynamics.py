"""Stage 2: fit a macroscopic model with one of the losses, on precomputed features."""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from macrodyn.io import load_torch, save_torch


def _batches(data: dict[str, torch.Tensor], rows: torch.Tensor, batch_size: int, visit=None, fresh: bool = True):
    for s in range(0, len(rows), batch_size):
        r = rows[s:s + batch_size]
        b = {k: v[r] for k, v in data.items()}
        if visit is not None:
            b = visit(r, b, fresh)
            if not len(b[next(iter(b))]):
                continue
        yield b


def _warmup_ema(decay: float):
    """``avg_fn`` for ``AveragedModel``: EMA whose decay ramps up as ``(1 + n) / (10 + n)``."""
    def avg(averaged, current, num_averaged):
        d = min(decay, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
        return d * averaged + (1.0 - d) * current
    return avg


def fit_dynamics(field: nn.Module, loss, data: dict[str, torch.Tensor], *, epochs: int, batch_size: int,
                 lr: float, weight_decay: float = 0.0, amsgrad: bool = True, lr_factor: float = 0.5,
                 lr_patience: int = 50, min_lr: float = 5e-6, lr_schedule: str = "plateau",
                 val_fraction: float = 0.1, stop_patience: int | None = None,
                 seed: int = 0, progress: bool = True, desc: str = "dynamics",
                 checkpoint: str | Path | None = None, checkpoint_every: int = 50, visit=None,
                 grad_clip: float | None = None, ema_decay: float | None = None, ema_warmup: bool = False,
                 score: Callable[[nn.Module], float] | None = None, score_every: int = 1) -> dict:
    """Train ``field`` in place (AdamW, amsgrad by default; ReduceLROnPlateau on the validation loss, or cosine).

    Args:
        field: vector field ``(B, d) -> (B, d)`` (usually a ``StandardizedField``).
        loss: a loss object (``loss(field, batch) -> scalar``; ``loss.needs`` keys).
        data: ``{key: (M, ...)}`` tensors sharing the first axis.
        lr_schedule: ``"plateau"`` (``lr_factor``/``lr_patience`` on the validation loss) or
            ``"cosine"``: ``lr → min_lr`` over ``epochs``. A noisy loss (L_x,p on LJ) keeps
            improving slowly at a fixed rate, so the plateau rule may never fire in a short
            schedule; annealing then ends the fit at a low rate, where the noise averages out.
        val_fraction: held-out configurations for the scheduler and early stopping
            (0 uses the training loss).
        stop_patience: stop after this many epochs without a new best validation
            loss (None: run all epochs). The best state is restored.
        grad_clip: clip the gradient norm to this value (None: no clipping). Rare
            configurations with a nearly singular ``J Jᵀ`` (e.g. Allen–Cahn fields close
            to uniform, where ∇E → 0) give huge ``J⁺`` rows and loss spikes otherwise.
        ema_decay: validate, keep and return an exponential moving average of the
            parameters, updated after every step with this decay (None: the iterate
            itself). Averaging smooths the spikes of a noisy fit at no extra gradients.
        ema_warmup: use decay ``min(ema_decay, (1 + n) / (10 + n))`` at the ``n``-th
            update, so the average forgets the untrained start within tens of steps
            instead of ``1 / (1 − ema_decay)`` (which is ~25 epochs for LJ-800 at 0.999).
        score: model selection by another criterion than the validation loss:
            ``score(model) -> float`` (lower is better; non-finite counts as worst), called
            every ``score_every`` epochs and at the last one. It then decides the best
            state and early stopping (``stop_patience`` still counts epochs); the LR
            schedule keeps following the validation loss. The pipeline passes the rollout
            error on trajectories of the training pool (``training.select: rollout``).
        visit: on-demand labelling (``OnDemandLabeller.visit``): called as
            ``visit(rows, batch, fresh)`` on every batch to add the label tensors
            (``data`` then holds only what needs no forces). Not resumable from a
            checkpoint (the labeller's cache lives in memory).
    Returns:
        history with per-epoch ``train``, ``val``, ``lr``, ``(epoch, score)`` pairs under
        ``score`` when scored, plus ``best_epoch``, ``seconds``.
    """
    data = {k: data[k] for k in loss.needs if k in data or visit is None}
    compact = getattr(loss, "compact", None)
    if visit is None and compact is not None:
        data = compact(data)  # the same loss on fewer numbers (PartialForceLoss.compact)
    m = len(next(iter(data.values())))
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(m, generator=gen)
    n_val = int(round(val_fraction * m)) if val_fraction > 0 else 0
    val_rows, train_rows = perm[:n_val], perm[n_val:]
    opt = torch.optim.AdamW(field.parameters(), lr=lr, weight_decay=weight_decay, amsgrad=amsgrad, fused=True)
    if lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs - 1), eta_min=min_lr)
    elif lr_schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=lr_factor, patience=lr_patience, min_lr=min_lr)
    else:
        raise ValueError(f"lr_schedule must be 'plateau' or 'cosine'; got {lr_schedule!r}")
    ema = None
    if ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        averaging = ({"avg_fn": _warmup_ema(ema_decay)} if ema_warmup
                     else {"multi_avg_fn": get_ema_multi_avg_fn(ema_decay)})
        ema = AveragedModel(field, **averaging)
    judged = field if ema is None else ema.module  # the model that is validated and returned
    hist: dict = {"train": [], "val": [], "lr": [], **({"score": []} if score is not None else {})}
    best, best_state, best_epoch = float("inf"), None, -1
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        ck = load_torch(checkpoint)
        field.load_state_dict(ck["field"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        hist, best, best_state, best_epoch, start = ck["hist"], ck["best"], ck["best_state"], ck["best_epoch"], ck["epoch"]
    t0 = time.perf_counter()
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress, leave=False, initial=start, total=epochs)
    for epoch in bar:
        field.train()
        rows = train_rows[torch.randperm(len(train_rows), generator=gen)]
        tot, n = 0.0, 0
        for batch in _batches(data, rows, batch_size, visit):
            value = loss(field, batch)
            opt.zero_grad(set_to_none=True)
            value.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(field.parameters(), grad_clip)
            opt.step()
            if ema is not None:
                ema.update_parameters(field)
            tot += value.item() * len(batch[loss.needs[0]])
            n += len(batch[loss.needs[0]])
        train_loss = tot / n
        if n_val:
            judged.eval()
            val_loss = float(np.mean([loss(judged, b).item() for b in _batches(data, val_rows, 4096, visit, False)]))
        else:
            val_loss = train_loss
        if lr_schedule == "plateau":
            sched.step(val_loss)
        else:
            sched.step()
        hist["train"].append(train_loss)
        hist["val"].append(val_loss)
        hist["lr"].append(opt.param_groups[0]["lr"])
        crit = val_loss  # the selection criterion of this epoch (None: not scored this epoch)
        if score is not None:
            crit = None
            if epoch % score_every == 0 or epoch == epochs - 1:
                judged.eval()
                crit = float(score(judged))
        if crit is not None:
            crit = crit if np.isfinite(crit) else float("inf")  # non-finite: never better than a finite one
            if score is not None:
                hist["score"].append((epoch, crit))
            if crit < best or best_state is None:
                best, best_epoch = crit, epoch
                best_state = copy.deepcopy(judged.state_dict())
        bar.set_postfix(train=f"{train_loss:.3e}", val=f"{val_loss:.3e}",
                        **({"score": f"{hist['score'][-1][1]:.3e}"} if score is not None and hist["score"] else {}))
        if stop_patience is not None and epoch - best_epoch >= stop_patience:
            break
        if checkpoint is not None and (epoch + 1) % checkpoint_every == 0:
            save_torch({"field": field.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "gen": gen.get_state(), "hist": hist, "best": best, "best_state": best_state,
                        "best_epoch": best_epoch, "epoch": epoch + 1,
                        "ema": None if ema is None else ema.state_dict()}, checkpoint)
    if best_state is not None:
        field.load_state_dict(best_state)
    field.eval()
    hist.update(best_epoch=best_epoch, best_val=best, epochs_run=len(hist["train"]),
                seconds=time.perf_counter() - t0)
    return hist
