"""Subsets, labels and the per-configuration features the losses consume.

The encoder is frozen after stage 1, so ``z = φ(x)``, the pseudo-inverse rows
``J_Iᵀ(JJᵀ)⁻¹`` and (for ``L_z``) ``J f`` are computed once per configuration; the
dynamics training then only multiplies small matrices.
"""
from __future__ import annotations

import numpy as np
import torch

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.systems.base import MicroSystem


def sample_units(n_rows: int, n_units: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct units per row, uniformly, sorted: ``(n_rows, k)`` int64."""
    if k == n_units:
        return np.broadcast_to(np.arange(n_units), (n_rows, n_units)).copy()
    keys = rng.random((n_rows, n_units))
    cut = (k + 6 * np.sqrt(k) + 10) / n_units  # ~k + 6 sqrt(k) keys of a row fall below it
    if cut > 0.05:  # the candidates would be a large share of the row: one partition of every row
        return np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1).astype(np.int64)
    # The k smallest keys of each row, found among those below the cutoff: the same subsets at
    # O(k) sorting work per row instead of O(N) (a full partition dominated labelling at 51 200 atoms).
    out = np.empty((n_rows, k), dtype=np.int64)
    for r in range(n_rows):
        cand = np.flatnonzero(keys[r] < cut)
        if len(cand) < k:  # rare: too few below the cutoff
            cand = np.arange(n_units)
        out[r] = np.sort(cand[np.argpartition(keys[r, cand], k - 1)[:k]])
    return out


def label(system: MicroSystem, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Forces at ``idx`` ``(B, k)``; a full evaluation when every coordinate is chosen. Always in
    float64, whatever the stored precision of ``x`` (``data.dtype``): the system upcasts it."""
    if idx.shape[1] == system.n_coords:
        return np.take_along_axis(system.forces(x), idx, axis=1)
    return system.partial_forces(x, idx)


#: bytes of float64 observable Jacobian rows ``(batch, d*, N)`` held at once by :func:`compute_features`
JACOBIAN_BYTES = 512 * 2**20


@torch.no_grad()
def compute_features(ae: ClosureAutoencoder, x: np.ndarray, idx: np.ndarray, f: np.ndarray, *,
                     w: np.ndarray | None = None, control: np.ndarray | None = None, rows: bool = True,
                     batch: int = 512, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Features of labelled configurations.

    Args:
        ae: trained closure (its Jacobian is evaluated in float64 for the solve).
        x: ``(M, N)`` configurations; idx, f: ``(M, k)`` indices and forces there.
        w: ``(M, k)`` importance weights (``k/(N π_i)``, see :mod:`macrodyn.training.sampling`);
            None for uniform subsets (all 1).
        control: ``(M, N)`` predicted forces ``c`` (:mod:`macrodyn.training.control`): the stored
            forces become ``f_I − c_I + J⁺_I (J c)`` and the estimate ``J c + (N/k) J_I (f_I − c_I)``.
        rows: compute the ``J⁺`` rows (the ``L_x``/``L_x,p`` features). ``False`` needs every
            coordinate labelled and returns only ``Z, JF, JF_ESTIMATE`` (``L_z``): ``J f`` is then
            one forward-mode product per configuration instead of ``d`` reverse passes, and
            nothing of size ``N`` is kept (``(M, N, d)`` rows are 10 GB at 6 400 atoms).
        batch: configurations per step, capped so the Jacobians stay within ``JACOBIAN_BYTES``.
    Returns:
        ``{Z: (M, d), PINV_ROWS: (M, k, d), FORCES: (M, k), WEIGHTS: (M, k),
        JF_ESTIMATE: (M, d)}``, plus ``JF: (M, d)`` when every coordinate is labelled.
    """
    ae64 = ae.double()
    n = x.shape[1]
    full = idx.shape[1] == n
    if not rows:
        if not full or w is not None or control is not None:
            raise ValueError("compute_features(rows=False) needs every coordinate labelled, unweighted (L_z)")
        out = {K.Z: [], K.JF: []}
        for s in range(0, len(x), batch):
            xb = torch.as_tensor(x[s:s + batch], dtype=torch.float64)
            fb = torch.take_along_dim(torch.as_tensor(f[s:s + batch], dtype=torch.float64),
                                      torch.as_tensor(np.argsort(idx[s:s + batch], axis=1)), 1)
            z, jf = ae64.jvp(xb, fb)
            out[K.Z].append(z)
            out[K.JF].append(jf)
        ae.float()
        res = {k: torch.cat(v).to(dtype) for k, v in out.items()}
        res[K.JF_ESTIMATE] = res[K.JF]
        return res
    # only the given observables' rows of J are held, (batch, d*, N) (ClosureAutoencoder.jacobian_products)
    batch = max(1, min(batch, JACOBIAN_BYTES // (8 * max(1, ae.observable.dim) * n)))
    out = {K.Z: [], K.PINV_ROWS: [], K.JF_ESTIMATE: [], K.FORCES: []}
    if full:
        out[K.JF] = []
    for s in range(0, len(x), batch):
        xb = torch.as_tensor(x[s:s + batch], dtype=torch.float64)
        ib = torch.as_tensor(idx[s:s + batch])
        fb = torch.as_tensor(f[s:s + batch], dtype=torch.float64)
        cb = None if control is None else torch.as_tensor(control[s:s + batch], dtype=torch.float64)
        z, gram, JI, jc = ae64.encode_and_products(xb, ib, cb)
        P = torch.linalg.solve(gram, JI).transpose(1, 2)  # rows I of J⁺ (closure/jacobian.py: pinv_rows)
        if control is not None:  # fit the residual f − c; J c is exact (training/control.py)
            fb = fb - torch.gather(cb, 1, ib)
            out[K.FORCES].append(fb + (P @ jc.unsqueeze(-1)).squeeze(-1))
        else:
            jc = 0.0
            out[K.FORCES].append(fb)
        if w is not None:  # Horvitz–Thompson: f_i / π_i = f_i · w_i N/k
            fb = fb * torch.as_tensor(w[s:s + batch], dtype=torch.float64)
        out[K.Z].append(z)
        out[K.PINV_ROWS].append(P)
        # Σ_{i∈I} J_{:,i} f_i scaled by N/k is an unbiased estimate of J f
        out[K.JF_ESTIMATE].append(jc + (JI @ fb.unsqueeze(-1)).squeeze(-1) * (n / ib.shape[1]))
        if full:
            out[K.JF].append(jc + (JI @ fb.unsqueeze(-1)).squeeze(-1))
    ae.float()
    res = {k: torch.cat(v).to(dtype) for k, v in out.items()}
    res[K.WEIGHTS] = torch.ones_like(res[K.FORCES]) if w is None else torch.as_tensor(w, dtype=dtype)
    return res
