"""Stage 1: train the closure autoencoder on configurations (no forces)."""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.closure.jacobian import condition_number, gram_condition_number
from macrodyn.errors import InputError
from macrodyn.training.options import Checkpointing


def closure_loss(ae: ClosureAutoencoder, x: torch.Tensor, cond_weight: float, closure_only: bool = False,
                 cond_batch: int | None = None, *, prepared: tuple[torch.Tensor, torch.Tensor] | None = None):
    """``(L_AE, reconstruction, mean κ)`` for a batch ``x`` ``(B, N)``.

    The reconstruction error is ``mean((ψ(φ(x)) − x)² / x_std²)``, computed in standardised
    coordinates ``(x − x_mean) / x_std``, where ``x`` is what the encoder reads
    (:meth:`ClosureAutoencoder.inputs`: the coordinates, or descriptors of them). ``prepared``: the
    batch's standardised inputs and given observables, computed once for the whole training set
    (:func:`fit_closure`: at 51 200 atoms the elementwise passes over ``(B, N)`` cost more than the
    layers); ``x`` then needs only its first ``cond_batch`` rows, the ones the penalty's Jacobians
    are taken at (rows are shuffled, and per-sample Jacobians dominate the penalty's cost).
    """
    xs, zs = prepared if prepared is not None else (ae.standardize(ae.inputs(x)), ae.observable(x))
    d = [zs * ae.observable_scale]
    if ae.closure_dim:
        d.append(ae.encoder(xs))
    rec = torch.nn.functional.mse_loss(ae.decoder(torch.cat(d, dim=-1)), xs)
    if cond_weight > 0 and (ae.closure_dim or not closure_only):
        rows = x[:cond_batch]
        kappa = (condition_number(ae.closure_gram(rows, differentiable=True)) if closure_only
                 else gram_condition_number(ae.jacobian(rows)))
        return rec + cond_weight * (kappa - 1).pow(2).mean(), rec, kappa.mean()
    return rec, rec, torch.tensor(float("nan"))


#: rows standardised at once when :func:`fit_closure` prepares the training set
PREPARE_ROWS = 256


def fit_closure(ae: ClosureAutoencoder, x: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                weight_decay: float, cond_weight: float, closure_only: bool = False, cond_batch: int | None = None,
                input_lr_scale: float = 1.0, seed: int = 0, progress: bool = True,
                checkpointing: Checkpointing | None = None) -> dict:
    """Train ``ae`` in place on configurations ``x`` ``(M, N)``; returns the loss history.

    The reconstruction error is measured in standardised coordinates so that all
    coordinates count equally whatever their units. The encoder's input layer learns at
    ``lr · input_lr_scale`` (see ``closure.input_lr_coords``). With ``checkpointing``, the
    model, optimiser, batch order and history are saved every ``every`` epochs and a later
    call with the same arguments goes on from there, to the same weights as an uninterrupted
    fit (at 51 200 atoms the closure trains for half an hour). ``seconds`` in the history
    counts every call; ``earlier_seconds`` the calls before this one.
    """
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    xin = ae.inputs_of(xt, PREPARE_ROWS)
    ae.fit_scaling(xin)
    with torch.no_grad():  # once, not per batch (closure_loss)
        xs = torch.cat([ae.standardize(xin[s:s + PREPARE_ROWS]) for s in range(0, len(xin), PREPARE_ROWS)])
        zs = torch.cat([ae.observable(xt[s:s + PREPARE_ROWS]) for s in range(0, len(xt), PREPARE_ROWS)])
    # closure.dim 0 has no encoder (the given observables are the whole state): one group
    first = ae.encoder[0].weight if ae.encoder is not None else None
    rest = [p for p in ae.parameters() if p is not first]
    groups = ([{"params": [first], "lr": lr * input_lr_scale}] if first is not None else []) + [{"params": rest}]
    opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    hist = {"loss": [], "reconstruction": [], "kappa": []}
    start, earlier = 0, 0.0
    ck = checkpointing
    saved = ck and ck.saved()
    if saved:
        ae.load_state_dict(saved["ae"])
        opt.load_state_dict(saved["opt"])
        gen.set_state(saved["gen"])
        hist, start, earlier = saved["hist"], saved["epoch"], saved["seconds"]
    t0 = time.perf_counter()
    bar = tqdm(range(start, epochs), desc="closure AE", disable=not progress, leave=False, initial=start,
               total=epochs)
    for epoch in bar:
        perm = torch.randperm(len(xt), generator=gen)
        tot = np.zeros(3)
        n = 0
        for s in range(0, len(xt), batch_size):
            rows = perm[s:s + batch_size]
            loss, rec, kap = closure_loss(ae, xt[rows[:cond_batch]], cond_weight, closure_only, cond_batch,
                                          prepared=(xs[rows], zs[rows]))
            if not torch.isfinite(loss):  # fail here, not as NaN rollouts two stages later
                raise InputError(
                    f"closure training diverged in epoch {len(hist['loss']) + 1} (loss {loss.item()}, "
                    f"reconstruction {rec.item():.3g}, κ {kap.item():.3g}): the encoder Jacobian lost rank. Lower "
                    "closure.lr (the step a wide input layer takes grows with the number of coordinates) or "
                    "closure.cond_weight, then rerun the closure stage.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += np.array([loss.item(), rec.item(), kap.item()]) * len(rows)
            n += len(rows)
        for k, v in zip(hist, tot / n):
            hist[k].append(float(v))
        bar.set_postfix(rec=f"{hist['reconstruction'][-1]:.2e}", kappa=f"{hist['kappa'][-1]:.3g}")
        if ck is not None and ck.due(epoch + 1) and epoch + 1 < epochs:  # the last is closure.pt itself
            ck.save({"ae": ae.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "hist": hist,
                     "epoch": epoch + 1, "seconds": earlier + time.perf_counter() - t0})
    hist["seconds"] = earlier + time.perf_counter() - t0
    hist["earlier_seconds"] = earlier
    return hist
