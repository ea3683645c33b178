"""Stage 2: fit a macroscopic model with one of the losses, on precomputed features."""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from macrodyn.training.options import FitOptions


def _batches(data: dict[str, torch.Tensor], rows: torch.Tensor, batch_size: int, visit=None, fresh: bool = True):
    for s in range(0, len(rows), batch_size):
        r = rows[s:s + batch_size]
        b = {k: v[r] for k, v in data.items()}
        if visit is not None:
            b = visit(r, b, fresh)
            if not len(b[next(iter(b))]):
                continue
        yield b


def _lowest(values: list[float]) -> int:
    """The epoch of the first lowest of ``values`` (NaN never lowest), -1 if none is below +inf."""
    v = np.array(values, dtype=float)
    v[np.isnan(v)] = np.inf
    return int(np.argmin(v)) if len(v) and v.min() < np.inf else -1


def fit_dynamics(field: nn.Module, loss, data: dict[str, torch.Tensor], options: FitOptions, *,
                 visit=None, desc: str | None = "dynamics") -> dict:
    """Train ``field`` in place with ``options`` (optimiser, schedule, selection, averaging,
    checkpointing: :mod:`macrodyn.training.options`).

    Args:
        field: vector field ``(B, d) -> (B, d)`` (usually a ``StandardizedField``).
        loss: a loss object (``loss(field, batch) -> scalar``; ``loss.needs`` keys).
        data: ``{key: (M, ...)}`` tensors sharing the first axis.
        options: the fit's settings; ``options.seed`` fixes the split and the batch order.
        visit: on-demand labelling (``OnDemandLabeller.visit``): called as
            ``visit(rows, batch, fresh)`` on every batch to add the label tensors
            (``data`` then holds only what needs no forces). Not resumable from a
            checkpoint (the labeller's cache lives in memory).
        desc: progress-bar label (None: no bar).
    Returns:
        history with per-epoch ``train``, ``val``, ``lr``, ``(epoch, score)`` pairs under
        ``score`` when scored, plus ``best_epoch``, ``seconds``.
    """
    o, sel = options, options.selection
    score = sel.score
    data = {k: data[k] for k in loss.needs if k in data or visit is None}
    compact = getattr(loss, "compact", None)
    if visit is None and compact is not None:
        data = compact(data)  # the same loss on fewer numbers (PartialForceLoss.compact)
    m = len(next(iter(data.values())))
    gen = torch.Generator().manual_seed(o.seed)
    perm = torch.randperm(m, generator=gen)
    n_val = int(round(sel.val_fraction * m)) if sel.val_fraction > 0 else 0
    val_rows, train_rows = perm[:n_val], perm[n_val:]
    epochs = o.epochs
    opt = o.optimiser.make(field.parameters())
    sched = o.schedule.make(opt, epochs)
    ema = None if o.averaging is None else o.averaging.wrap(field)
    ck = o.checkpointing
    judged = field if ema is None else ema.module  # the model that is validated and returned
    hist: dict = {"train": [], "val": [], "lr": [], **({"score": []} if score is not None else {})}
    best, best_state, best_epoch = float("inf"), None, -1
    start = 0
    saved = ck and ck.saved()
    if saved:
        field.load_state_dict(saved["field"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        gen.set_state(saved["gen"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        hist, best, best_state, best_epoch, start = (saved["hist"], saved["best"], saved["best_state"],
                                                     saved["best_epoch"], saved["epoch"])
    t0 = time.perf_counter()
    bar = tqdm(range(start, epochs), desc=desc, disable=desc is None, leave=False, initial=start, total=epochs)
    for epoch in bar:
        field.train()
        rows = train_rows[torch.randperm(len(train_rows), generator=gen)]
        tot, n = 0.0, 0
        for batch in _batches(data, rows, o.batch_size, visit):
            value = loss(field, batch)
            opt.zero_grad(set_to_none=True)
            value.backward()
            o.optimiser.clip(field)
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
        o.schedule.step(sched, val_loss)
        hist["train"].append(train_loss)
        hist["val"].append(val_loss)
        hist["lr"].append(opt.param_groups[0]["lr"])
        crit = val_loss  # the selection criterion of this epoch (None: not scored this epoch)
        if score is not None:
            crit = None
            if epoch % sel.score_every == 0 or epoch == epochs - 1:
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
        if sel.stop_patience is not None and epoch - best_epoch >= sel.stop_patience and not (
                sel.stop_waits_for_val and score is not None and epoch - _lowest(hist["val"]) < sel.stop_patience):
            break
        if ck is not None and ck.due(epoch + 1):
            ck.save({"field": field.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "gen": gen.get_state(), "hist": hist, "best": best, "best_state": best_state,
                     "best_epoch": best_epoch, "epoch": epoch + 1, "ema": None if ema is None else ema.state_dict()})
    if best_state is not None:
        field.load_state_dict(best_state)
    field.eval()
    hist.update(best_epoch=best_epoch, best_val=best, epochs_run=len(hist["train"]),
                seconds=time.perf_counter() - t0)
    return hist
