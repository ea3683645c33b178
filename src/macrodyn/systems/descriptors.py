"""Pair descriptors of an MD state: smooth radial counts, their rates and accelerations, per atom.

Why: a closure learned on raw coordinates can only tell runs apart by *which* atom sits where.
When every run starts from its own random placement, that is noise, and such a closure learns
the training runs' placements instead of their state (docs: LJ-800, independent starts). These
descriptors do not change when atoms are relabelled, when the box contents are translated (or
mapped by a symmetry of the cube) or when all atoms share a drift velocity, so two microstates
with the same structure and kinetics give the same numbers.

For radial basis functions ``b_k(r) = exp(−((r − μ_k)/w)²) f_c(r)``, with ``f_c`` a cosine
cutoff that goes smoothly to zero at ``r_c``, and ``n`` atoms:

- ``g_k = (1/n) Σ_{i<j} b_k(r_ij)``, a smoothed pair-distance histogram (structure);
- ``h_k = dg_k/dt = (1/n) Σ_{i<j} b_k'(r_ij) (r̂_ij · v_ij)``, its rate along the flow, which
  carries how fast kinetic energy is turning into potential energy and back;
- ``c_k = (1/n) Σ_{i<j} b_k''(r_ij) q_ij² + b_k'(r_ij) (|v_ij|² − q_ij²) / r_ij`` with
  ``q_ij = r̂_ij · v_ij``: the part of ``d²g_k/dt²`` that the velocities make (the rest is the
  forces'), which tells a closure how the exchange will accelerate.

Values and the exact Jacobian ``∂(g, h, c)/∂x`` come from one numba pass over the pairs within the
cutoff (found with a periodic k-d tree), so a configuration costs O(pairs · K), not a reverse pass
per output. In PyTorch the descriptors are differentiable to first order through that Jacobian.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree

from macrodyn.errors import InputError
from macrodyn.observables.base import Observable
from macrodyn.systems._numba import jit


@jit()
def _radial(k, n_gauss, r, centres, width, cutoff, u_cut):
    """``b_k`` and its first three derivatives at ``r``: a Gaussian times the cosine cutoff for
    ``k < n_gauss``, else the Lennard–Jones pair energy ``4 (r⁻¹² − r⁻⁶)`` shifted to 0 at the cutoff."""
    if k >= n_gauss:
        s6 = r ** -6
        s12 = s6 * s6
        return (4 * (s12 - s6) - u_cut, 4 * (6 * s6 - 12 * s12) / r, 4 * (156 * s12 - 42 * s6) / (r * r),
                4 * (336 * s6 - 2184 * s12) / (r * r * r))
    a = math.pi / cutoff
    sn, cs = math.sin(a * r), math.cos(a * r)
    fc, dfc, ddfc, dddfc = 0.5 * (cs + 1), -0.5 * a * sn, -0.5 * a * a * cs, 0.5 * a * a * a * sn
    t = (r - centres[k]) / width
    e = math.exp(-t * t)
    de = -2 * t / width * e
    dde = (4 * t * t - 2) / (width * width) * e
    ddde = (12 * t - 8 * t * t * t) / (width * width * width) * e
    return (e * fc, de * fc + e * dfc, dde * fc + 2 * de * dfc + e * ddfc,
            ddde * fc + 3 * dde * dfc + 3 * de * ddfc + e * dddfc)


@jit()
def _pair_terms(pos, vel, pairs, box, centres, width, cutoff, n_funcs, u_cut, vals, jac, with_jac):
    """Add one configuration's ``(g, h, c)`` to ``vals`` ``(3K,)`` and its Jacobian to ``jac`` ``(3K, n, 6)``
    (``K = n_funcs`` radial functions: the Gaussians, then the pair energy when ``K`` exceeds them)."""
    n_gauss = len(centres)
    m = 2 * n_funcs
    for p in range(len(pairs)):
        i, j = pairs[p, 0], pairs[p, 1]
        dr = pos[j] - pos[i]
        dr -= box * np.round(dr / box)
        dv = vel[j] - vel[i]
        r = math.sqrt(dr[0] * dr[0] + dr[1] * dr[1] + dr[2] * dr[2])
        if r == 0.0:
            return i, j  # coincident atoms: no direction, no descriptor
        u = dr / r
        q = u[0] * dv[0] + u[1] * dv[1] + u[2] * dv[2]  # dr/dt of the pair
        v2 = dv[0] * dv[0] + dv[1] * dv[1] + dv[2] * dv[2]
        p2 = v2 - q * q  # |v_ij|² − q²: the velocity across the pair, squared
        for k in range(n_funcs):
            b0, b1, b2, b3 = _radial(k, n_gauss, r, centres, width, cutoff, u_cut)
            vals[k] += b0
            vals[n_funcs + k] += b1 * q
            vals[m + k] += b2 * q * q + b1 * p2 / r
            if not with_jac:
                continue
            for c in range(3):
                dq = (dv[c] - u[c] * q) / r  # ∂q/∂r_j
                gr = b1 * u[c]                                   # ∂g_k/∂r_j
                hr = b2 * u[c] * q + b1 * dq                     # ∂h_k/∂r_j
                hv = b1 * u[c]                                   # ∂h_k/∂v_j
                cr = (b3 * u[c] * q * q + 2 * b2 * q * dq + b2 * u[c] * p2 / r
                      - 2 * b1 * q * dq / r - b1 * p2 * u[c] / (r * r))
                cv = 2 * b2 * q * u[c] + 2 * b1 * (dv[c] - q * u[c]) / r
                jac[k, j, c] += gr
                jac[k, i, c] -= gr
                jac[n_funcs + k, j, c] += hr
                jac[n_funcs + k, i, c] -= hr
                jac[n_funcs + k, j, 3 + c] += hv
                jac[n_funcs + k, i, 3 + c] -= hv
                jac[m + k, j, c] += cr
                jac[m + k, i, c] -= cr
                jac[m + k, j, 3 + c] += cv
                jac[m + k, i, 3 + c] -= cv
    return -1, -1


class _Descriptors(torch.autograd.Function):
    """First-order autograd through the precomputed Jacobian."""

    @staticmethod
    def forward(ctx, x, module):
        vals, jac = module.values_and_jacobian(x.detach(), with_jac=ctx.needs_input_grad[0])
        ctx.save_for_backward(jac)
        return vals

    @staticmethod
    def backward(ctx, grad):
        (jac,) = ctx.saved_tensors
        return (grad.unsqueeze(1) @ jac).squeeze(1), None


class PairDescriptors(Observable):
    """``(B, 6 n) -> (B, 3 K)``: ``(g_1..g_K, h_1..h_K, c_1..c_K)`` of atom-major states ``(r_a, v_a)``
    (``K + 1`` per family with ``energy``).

    Args:
        n_atoms: ``n``; box: cubic periodic box length; cutoff: ``r_c`` (at most half the box).
        n_basis: ``K`` centres spread evenly over ``[r_min, r_c)``; width: ``w`` (default: the spacing).
        energy: add the Lennard–Jones pair energy (ε = σ = 1, shifted to 0 at ``r_c``) as one more radial
            function: ``g_u`` is then the potential energy per atom, ``h_u`` its rate and ``c_u`` the
            velocities' part of its second derivative. In an NVE run ``T + (2/3) g_u`` is conserved (to ``1/n``), so
            these three carry the temperature's own exchange with the structure (3 more descriptors).

    Example:
        >>> d = PairDescriptors(2, box=6.0, cutoff=2.5, n_basis=4)
        >>> x = torch.zeros(1, 12, dtype=torch.float64)
        >>> x[0, 6] = 1.0; x[0, 9] = 1.0  # atom 1 at distance 1 from atom 0, moving away
        >>> g, h, c = d(x).split(4, dim=1)
        >>> bool((g > 0).all()), bool((h > 0).any()), d.dim
        (True, True, 12)
    """

    def __init__(self, n_atoms: int, box: float, cutoff: float, n_basis: int = 8, r_min: float = 0.8,
                 width: float | None = None, energy: bool = False):
        super().__init__()
        if not 0 < r_min < cutoff <= box / 2:
            raise ValueError(f"PairDescriptors needs 0 < r_min < cutoff <= box / 2; got {r_min}, {cutoff}, {box}.")
        self.n_atoms, self.box, self.cutoff = int(n_atoms), float(box), float(cutoff)
        self.centres = np.linspace(r_min, cutoff, n_basis, endpoint=False)
        self.width = float(width or (cutoff - r_min) / n_basis)
        self.n_funcs = n_basis + bool(energy)
        self.u_cut = 4 * (cutoff ** -12 - cutoff ** -6)
        self.dim = 3 * self.n_funcs
        labels = [str(k) for k in range(n_basis)] + ["u"] * bool(energy)
        self.names = tuple(f"{f}{k}" for f in "ghc" for k in labels)

    def pairs(self, r: np.ndarray) -> np.ndarray:
        """``(P, 2)`` atom pairs closer than the cutoff (minimum image) in one configuration ``(n, 3)``."""
        tree = cKDTree(np.mod(r, self.box), boxsize=self.box)
        return tree.query_pairs(self.cutoff, output_type="ndarray")

    def values_and_jacobian(self, x: torch.Tensor, with_jac: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, 3K)`` values and ``(B, 3K, 6n)`` Jacobians (None without ``with_jac``), in ``x``'s dtype
        (computed in float64)."""
        if x.ndim != 2 or x.shape[-1] != 6 * self.n_atoms:
            raise InputError(f"PairDescriptors({self.n_atoms} atoms): configurations must be (B, {6 * self.n_atoms}) "
                             f"(3 positions + 3 velocities per atom); got shape {tuple(x.shape)}.")
        s = x.detach().cpu().numpy().astype(np.float64, copy=False).reshape(len(x), self.n_atoms, 6)
        vals = np.zeros((len(x), self.dim))
        jac = np.zeros((len(x), self.dim, self.n_atoms, 6) if with_jac else (len(x), 1, 1, 6))
        for b in range(len(x)):
            pos = np.ascontiguousarray(s[b, :, :3])
            i, j = _pair_terms(pos, np.ascontiguousarray(s[b, :, 3:]), self.pairs(pos), self.box, self.centres,
                               self.width, self.cutoff, self.n_funcs, self.u_cut, vals[b], jac[b], with_jac)
            if i >= 0:
                raise InputError(f"configuration {b}: atoms {i} and {j} coincide (distance 0), so the pair "
                                 "descriptors are undefined there; check the positions (a state blown up or "
                                 "written with the wrong layout).")
        to = dict(dtype=x.dtype, device=x.device)
        jac = torch.as_tensor(jac.reshape(len(x), self.dim, -1) / self.n_atoms).to(**to) if with_jac else None
        return torch.as_tensor(vals / self.n_atoms).to(**to), jac

    def jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``∂(g, h, c)/∂x``: ``(B, 3K, 6n)``."""
        return self.values_and_jacobian(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Descriptors.apply(x, self)
