"""Rollouts of a macroscopic model and the relative-error metric (docs/method.md)."""
from __future__ import annotations

import torch
from torchdiffeq import odeint

_METHODS = ("rk4", "euler", "midpoint", "explicit_adams", "dopri5")


def rollout(g: torch.nn.Module, z0: torch.Tensor, t: torch.Tensor, *, method: str = "rk4",
            step_size: float | None = None) -> torch.Tensor:
    """Integrate ``dz/dt = g(z)`` from ``z0`` and return the states at times ``t``.

    Args:
        g: vector field ``(B, d) -> (B, d)``.
        z0: ``(B, d)`` initial states.
        t: ``(T,)`` increasing times, ``t[0]`` the time of ``z0``.
        method: a torchdiffeq method; fixed-step ones use ``step_size``
            (default: the spacing of ``t``).
    Returns:
        ``(T, B, d)``.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {_METHODS}")
    options = {}
    if method != "dopri5":
        options["step_size"] = float(step_size if step_size is not None else (t[1] - t[0]))
    with torch.no_grad():
        return odeint(lambda _t, z: g(z), z0, t, method=method, options=options)


def relative_error(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-trajectory ``Σ_t ||ẑ_t − z_t||₂ / Σ_t ||z_t||₂``.

    Args:
        pred, true: ``(T, B, d*)`` on the given observables.
        mask: optional ``(T, B)`` bool; only those times count (e.g. Allen–Cahn
            snapshots with free energy above a threshold).
    Returns:
        ``(B,)``.
    """
    num, den = (pred - true).norm(dim=-1), true.norm(dim=-1)
    if mask is not None:
        num, den = num * mask, den * mask
    return num.sum(0) / den.sum(0)


def rollout_errors(g: torch.nn.Module, z0: torch.Tensor, true: torch.Tensor, t: torch.Tensor,
                   mask: torch.Tensor | None = None, *, method: str = "rk4",
                   step_size: float | None = None) -> torch.Tensor:
    """Roll ``g`` out from ``z0`` and score the first ``d* = true.shape[-1]`` coordinates
    against ``true`` ``(T, B, d*)`` with :func:`relative_error`; returns ``(B,)`` on the CPU."""
    pred = rollout(g, z0, t.to(z0.device), method=method, step_size=step_size).cpu()
    return relative_error(pred[..., :true.shape[-1]], true, mask)
