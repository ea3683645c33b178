"""Label noise of the loss estimators, measured on configurations with every force known.

What limits a loss at a given force budget is how noisy the rate it fits is. L_z's label
``J f`` is exact. L_x,p with ``k`` units labelled fits, on each configuration, the rate
``v̂ = argmin_v ‖J⁺_I v − f_I‖²`` (the per-configuration least-squares problem inside its
loss; :mod:`macrodyn.training.losses`); with a control variate ``c`` it fits ``f_I − c_I``
and adds ``J c`` exactly (:mod:`macrodyn.training.control`). Drawing many subsets ``I`` of
configurations whose full forces are known gives that rate's error ``v̂ − J f`` exactly, so
the noise of every estimator (any ``k``, any control) comes out of one set of full labels.

:func:`rate_noise` returns it per component of ``z``; :func:`relative_noise` divides by the
spread of the exact rate over the configurations (what the model has to resolve), so one
number compares estimators across components and systems.
"""
from __future__ import annotations

import numpy as np
import torch

from macrodyn.closure.jacobian import batch_jacobian, pinv_rows
from macrodyn.training.features import sample_units


@torch.no_grad()
def exact_rates(ae, x: np.ndarray, forces: np.ndarray, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``(J, J f)``: encoder Jacobians ``(M, d, N)`` and exact rates ``(M, d)`` in float64 of
    configurations ``x`` ``(M, N)`` with all forces ``forces`` ``(M, N)`` (coordinate order)."""
    ae64 = ae.double()
    try:
        J = torch.cat([batch_jacobian(ae64, torch.as_tensor(x[s:s + batch], dtype=torch.float64))
                       for s in range(0, len(x), batch)])
    finally:
        ae.float()
    return J, (J @ torch.as_tensor(forces, dtype=torch.float64).unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def rate_noise(J: torch.Tensor, forces: np.ndarray, coords, n_units: int, k: int, draws: int,
               rng: np.random.Generator, control: np.ndarray | None = None) -> np.ndarray:
    """Mean squared error per component ``(d,)`` of the rate L_x,p's loss fits with ``k`` of
    ``n_units`` units labelled, over ``draws`` uniform subsets per configuration.

    Args:
        J: ``(M, d, N)`` encoder Jacobians; forces: ``(M, N)`` all forces.
        coords: maps unit indices ``(B, k)`` to coordinate indices (``MicroSystem.unit_coords``).
        control: ``(M, N)`` predicted forces ``c`` (None: no control variate).
    """
    f = torch.as_tensor(forces, dtype=torch.float64)
    c = None if control is None else torch.as_tensor(control, dtype=torch.float64)
    exact = (J @ f.unsqueeze(-1)).squeeze(-1)
    base = torch.zeros_like(exact) if c is None else (J @ c.unsqueeze(-1)).squeeze(-1)
    resid = f if c is None else f - c
    P = pinv_rows(J)  # (M, N, d): every row once, each draw gathers its subset's
    err = torch.zeros(J.shape[1], dtype=torch.float64)
    for _ in range(draws):
        sub = torch.as_tensor(coords(sample_units(len(J), n_units, k, rng)))
        PI = torch.gather(P, 1, sub.unsqueeze(-1).expand(-1, -1, P.shape[-1]))
        fI = torch.gather(resid, 1, sub)
        fit = torch.linalg.lstsq(PI, fI.unsqueeze(-1)).solution.squeeze(-1)  # argmin_v ||J⁺_I v − f_I||²
        err += (base + fit - exact).pow(2).sum(0)
    return (err / (draws * len(J))).numpy()


def relative_noise(mse: np.ndarray, exact: torch.Tensor) -> float:
    """Mean over components of ``mse / var(exact rate)``: the estimator's noise variance in units
    of the spread the model must resolve (0: exact labels; 1: noise as large as the signal)."""
    var = exact.var(0).numpy()
    keep = var > 0
    return float(np.mean(mse[keep] / var[keep])) if keep.any() else 0.0
