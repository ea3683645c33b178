"""Losses for the macroscopic model (docs/method.md) as small callable objects.

A batch is a dict of tensors (see :mod:`macrodyn.keys`); each loss lists the keys it
``needs`` and returns a scalar.
"""
from __future__ import annotations

import torch
from torch import nn

from macrodyn import keys as K


class LatentLoss:
    """``L_z = E ||g(φ(x)) − J f||²`` in standardised units (needs all forces)."""

    name = "L_z"
    needs = (K.Z, K.JF)
    velocity = K.JF            # the target whose statistics standardise the field
    needs_rows = False         # features: J f by a forward product, no J⁺ rows
    partial = False            # every force of a configuration is needed

    @staticmethod
    def units(n_units: int) -> int:
        """Units labelled per configuration: all of them."""
        return n_units

    def __call__(self, field: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        v = field(batch[K.Z])
        return (((v - batch[K.JF]) / field.v_std) ** 2).mean()


class PartialForceLoss:
    """``L_x,p = E_x E_I (1/|I|) Σ_{i∈I} w_i ([J⁺ g(φ(x))]_i − f_i(x))²``.

    With every coordinate chosen (``p = 1``) this is ``L_x / N``. The weights ``w``
    are 1 for uniform subsets; importance sampling stores ``1/(N q_i)`` so that the
    estimate stays unbiased.

    The loss is a quadratic in ``v = g(z)`` per configuration, so :meth:`compact` can
    replace the ``k`` rows of ``J⁺`` by ``min(k, d)`` rows once, before training: with
    ``W^½ P = Q R`` (thin QR), ``‖W^½(P v − f)‖² = ‖R v − Qᵀ W^½ f‖² + (‖W^½ f‖² − ‖Qᵀ W^½ f‖²)``
    exactly (Q has orthonormal columns). Same loss, same gradients, ``k/d`` times less
    work and memory per step (10× for Allen–Cahn 64², k = 164, d = 16); written as a
    sum of squares it has no cancellation, unlike expanding ``vᵀ PᵀWP v − 2 ...``.
    """

    needs = (K.Z, K.PINV_ROWS, K.FORCES, K.WEIGHTS)
    velocity = K.JF_ESTIMATE   # unbiased estimate (N/k) J_I f_I
    needs_rows = True
    partial = True

    def units(self, n_units: int) -> int:
        """Units labelled per configuration: ``round(p · n)``, at least 1."""
        return max(1, int(round(self.p * n_units)))

    def __init__(self, p: float = 1.0):
        if not 0 < p <= 1:
            raise ValueError(f"p must be in (0, 1]; got {p}")
        self.p = p
        self.name = "L_x" if p == 1 else "L_xp"

    def __call__(self, field: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        v = field(batch[K.Z])
        if K.QR_R in batch:
            r = (batch[K.QR_R] * v.unsqueeze(1)).sum(-1) - batch[K.QR_T]  # backward cheaper than bmm
            return ((r * r).sum(-1) + batch[K.QR_REST]).mean() / batch[K.QR_K][0]
        r = (batch[K.PINV_ROWS] @ v.unsqueeze(-1)).squeeze(-1) - batch[K.FORCES]
        return (batch[K.WEIGHTS] * r * r).mean()

    @staticmethod
    @torch.no_grad()
    def compact(data: dict[str, torch.Tensor], chunk: int = 4096) -> dict[str, torch.Tensor]:
        """``data`` with ``PINV_ROWS, FORCES, WEIGHTS`` replaced by their QR form (see the
        class docstring); unchanged when ``k <= d`` (nothing to gain). Computed in float64."""
        P, f, w = data[K.PINV_ROWS], data[K.FORCES], data[K.WEIGHTS]
        k, d = P.shape[1], P.shape[2]
        if k <= d:
            return data
        R, t, rest = [], [], []
        for s in range(0, len(P), chunk):
            sw = w[s:s + chunk].double().sqrt()
            q, r = torch.linalg.qr(P[s:s + chunk].double() * sw.unsqueeze(-1))
            wf = sw * f[s:s + chunk].double()
            tt = (q.transpose(1, 2) @ wf.unsqueeze(-1)).squeeze(-1)
            R.append(r)
            t.append(tt)
            rest.append(((wf * wf).sum(-1) - (tt * tt).sum(-1)).clamp_min(0))
        out = {key: v for key, v in data.items() if key not in (K.PINV_ROWS, K.FORCES, K.WEIGHTS)}
        out.update({K.QR_R: torch.cat(R).to(P.dtype), K.QR_T: torch.cat(t).to(P.dtype),
                    K.QR_REST: torch.cat(rest).to(P.dtype), K.QR_K: torch.full((len(P),), float(k), dtype=P.dtype)})
        return out


def make_loss(name: str, p: float = 1.0):
    """``"L_z" | "L_x" | "L_xp"`` → loss object."""
    if name == "L_z":
        return LatentLoss()
    if name == "L_x":
        return PartialForceLoss(1.0)
    if name == "L_xp":
        return PartialForceLoss(p)
    raise ValueError(f"unknown loss {name!r}; choose L_z, L_x or L_xp")
