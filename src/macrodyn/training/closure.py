"""Stage 1: train the closure autoencoder on configurations (no forces)."""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.closure.jacobian import gram_condition_number
from macrodyn.errors import InputError


def closure_loss(ae: ClosureAutoencoder, x: torch.Tensor, cond_weight: float, closure_only: bool = False,
                 cond_batch: int | None = None):
    """``(L_AE, reconstruction, mean κ)`` for a batch ``x`` ``(B, N)``.

    The penalty's expectation is estimated on the first ``cond_batch`` rows only
    (rows are shuffled), since per-sample Jacobians dominate the cost.
    """
    z = ae(x)
    rec = ((ae.decode(z) - x) / ae.x_std).pow(2).mean()
    if cond_weight > 0 and (ae.closure_dim or not closure_only):
        kappa = gram_condition_number(ae.jacobian(x[:cond_batch], closure_only=closure_only))
        return rec + cond_weight * (kappa - 1).pow(2).mean(), rec, kappa.mean()
    return rec, rec, torch.tensor(float("nan"))


def fit_closure(ae: ClosureAutoencoder, x: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                weight_decay: float, cond_weight: float, closure_only: bool = False, cond_batch: int | None = None,
                input_lr_scale: float = 1.0, seed: int = 0, progress: bool = True) -> dict:
    """Train ``ae`` in place on configurations ``x`` ``(M, N)``; returns the loss history.

    The reconstruction error is measured in standardised coordinates so that all
    coordinates count equally whatever their units. The encoder's input layer learns at
    ``lr · input_lr_scale`` (see ``closure.input_lr_coords``).
    """
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    ae.fit_scaling(xt)
    # closure.dim 0 has no encoder (the given observables are the whole state): one group
    first = ae.encoder[0].weight if ae.encoder is not None else None
    rest = [p for p in ae.parameters() if p is not first]
    groups = ([{"params": [first], "lr": lr * input_lr_scale}] if first is not None else []) + [{"params": rest}]
    opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    hist = {"loss": [], "reconstruction": [], "kappa": []}
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), desc="closure AE", disable=not progress, leave=False)
    for _ in bar:
        perm = torch.randperm(len(xt), generator=gen)
        tot = np.zeros(3)
        n = 0
        for s in range(0, len(xt), batch_size):
            xb = xt[perm[s:s + batch_size]]
            loss, rec, kap = closure_loss(ae, xb, cond_weight, closure_only, cond_batch)
            if not torch.isfinite(loss):  # fail here, not as NaN rollouts two stages later
                raise InputError(
                    f"closure training diverged in epoch {len(hist['loss']) + 1} (loss {loss.item()}, "
                    f"reconstruction {rec.item():.3g}, κ {kap.item():.3g}): the encoder Jacobian lost rank. Lower "
                    "closure.lr (the step a wide input layer takes grows with the number of coordinates) or "
                    "closure.cond_weight, then rerun the closure stage.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += np.array([loss.item(), rec.item(), kap.item()]) * len(xb)
            n += len(xb)
        for k, v in zip(hist, tot / n):
            hist[k].append(float(v))
        bar.set_postfix(rec=f"{hist['reconstruction'][-1]:.2e}", kappa=f"{hist['kappa'][-1]:.3g}")
    hist["seconds"] = time.perf_counter() - t0
    return hist
