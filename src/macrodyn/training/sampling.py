"""Which units get labelled: uniform or importance-weighted subsets, fixed or on demand.

A *sampler* draws ``k`` distinct units per configuration and returns importance
weights ``w`` such that ``(1/k) Σ_{i∈I} w_i r_i²`` is an unbiased estimate of
``(1/n) Σ_i r_i²`` for any residuals ``r`` (docs/method.md; ``n`` units):

* :class:`UniformUnits` — the paper: ``I`` uniform without replacement, ``w = 1``.
* :class:`ImportanceUnits` — unit ``i`` is included with probability ``π_i`` (``Σπ = k``,
  ``π_i ≤ 1``) proportional to a cheap score mixed with uniform,
  ``q = (1−γ) s/Σs + γ/n``, ``π = min(1, c·q)``. Exactly ``k`` distinct units are drawn
  by systematic sampling over a random order (Madow 1949): lay the ``π_i`` end to end
  on ``[0, k)``, draw ``u ~ U[0, 1)`` and take the units covering ``u, u+1, …, u+k−1``.
  Unit ``i`` is covered with probability exactly ``π_i``, so the Horvitz–Thompson
  weight ``w_i = k / (n π_i)`` makes the estimate unbiased:
  ``E (1/k) Σ_{i∈I} w_i r_i² = (1/k) Σ_i π_i · k r_i²/(n π_i) = (1/n) Σ_i r_i²``.
  No unit is drawn twice, so every force evaluation is a distinct one.

The score used by the pipeline is the norm of the rows of ``J⁺`` belonging to each
unit (:func:`pinv_row_scores`): it needs the closure, never forces. With MD units
(atoms, several coordinates) every coordinate of a unit carries the unit's weight.

On-demand labelling (:class:`OnDemandLabeller`) asks the system for a fresh subset
each time a configuration is visited during training, until a fixed budget of force
evaluations is spent, and then reuses what it cached.
"""
from __future__ import annotations

import numpy as np
import torch

from macrodyn import keys as K
from macrodyn.closure.jacobian import batch_jacobian, pinv_rows
from macrodyn.systems.base import MicroSystem
from macrodyn.training.features import label, sample_units


def inclusion_probabilities(score: np.ndarray, k: int, gamma: float) -> np.ndarray:
    """``π (B, n)``: ``Σ_i π_i = k``, ``0 < π_i ≤ 1``, ``π ∝ (1−γ) s/Σs + γ/n`` below the cap.

    Args:
        score: ``(B, n)`` non-negative unit scores.
        k: units per configuration (``1 ≤ k ≤ n``).
        gamma: uniform mixing in ``(0, 1]``; keeps ``π_i ≥ γ k / n`` away from 0.
    """
    s = np.asarray(score, dtype=np.float64)
    n = s.shape[1]
    tot = s.sum(1, keepdims=True)
    q = (1 - gamma) * np.divide(s, tot, out=np.full_like(s, 1.0 / n), where=tot > 0) + gamma / n
    pi = k * q
    for _ in range(n):  # cap at 1 and rescale the rest until Σπ = k (at most n rounds)
        over = pi >= 1.0
        if not (pi > 1.0 + 1e-12).any():
            break
        free = k - over.sum(1, keepdims=True)
        rest = np.where(over, 0.0, q)
        pi = np.where(over, 1.0, rest * free / rest.sum(1, keepdims=True))
    return np.minimum(pi, 1.0)


def systematic_sample(pi: np.ndarray, order: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Units covering ``u, u+1, …, u+k−1`` when the ``π`` are laid out in ``order``.

    Args:
        pi: ``(B, n)`` inclusion probabilities, rows summing to an integer ``k``.
        order: ``(B, n)`` a permutation of the units per row.
        u: ``(B,)`` offsets in ``[0, 1)``.
    Returns:
        ``(B, k)`` int64 distinct unit indices, sorted.
    """
    b, n = pi.shape
    k = int(round(pi[0].sum()))
    cum = np.cumsum(np.take_along_axis(pi, order, 1), axis=1)
    cum[:, -1] = k  # no round-off gap at the end
    rows = np.arange(b)[:, None]
    # one searchsorted over all rows: row r lives in [r·k, (r+1)·k)
    flat = (cum + k * rows).ravel()
    pts = (u[:, None] + np.arange(k)[None, :] + k * rows).ravel()
    pos = np.searchsorted(flat, pts, side="right").reshape(b, k) - n * rows
    return np.sort(np.take_along_axis(order, np.minimum(pos, n - 1), 1), axis=1).astype(np.int64)


class UniformUnits:
    """``k`` distinct units uniformly (the paper); weights 1."""

    name = "uniform"
    needs_score = False  # no closure needed to draw
    weighted = False     # weights are all 1: not stored

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"k must be ≥ 1; got {k}")
        self.k = k

    def __call__(self, n_units: int, rng: np.random.Generator, *, n_rows: int | None = None,
                 score: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(units (B, k) int64, w (B, k) float64)``."""
        b = n_rows if score is None else len(score)
        return sample_units(b, n_units, self.k, rng), np.ones((b, self.k))


class ImportanceUnits:
    """``k`` distinct units with probability ``π ∝`` score (mixed with uniform), weights ``k/(nπ)``."""

    name = "importance"
    needs_score = True
    weighted = True

    def __init__(self, k: int, gamma: float = 0.3):
        if k < 1:
            raise ValueError(f"k must be ≥ 1; got {k}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1]; got {gamma}")
        self.k, self.gamma = k, gamma

    def __call__(self, n_units: int, rng: np.random.Generator, *, n_rows: int | None = None,
                 score: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(units (B, k) int64, w (B, k) float64)`` for ``score (B, n_units)``."""
        if score is None or score.shape[1] != n_units:
            raise ValueError(f"importance sampling needs a score of shape (B, {n_units})")
        pi = inclusion_probabilities(score, self.k, self.gamma)
        order = np.argsort(rng.random(pi.shape), axis=1)
        units = systematic_sample(pi, order, rng.random(len(pi)))
        w = self.k / (n_units * np.take_along_axis(pi, units, 1))
        return units, w


class FixedLabels:
    """Label once before training (the paper): the budget buys ``budget / k`` configurations."""

    on_demand = False
    visits = 1


class OnDemandLabels:
    """A fresh subset each time a configuration is visited in training, until the budget is spent;
    the pool is ``budget / (k · visits)`` configurations."""

    on_demand = True

    def __init__(self, visits: int = 2):
        self.visits = visits


def make_labelling(kind: str, visits: int = 2):
    """``"fixed" | "on_demand"`` → labelling object."""
    kinds = {"fixed": FixedLabels, "on_demand": lambda: OnDemandLabels(visits)}
    if kind not in kinds:
        raise ValueError(f"unknown labelling {kind!r}; choose fixed or on_demand")
    return kinds[kind]()


def make_sampler(kind: str, k: int, gamma: float = 0.3):
    """``"uniform" | "importance"`` → sampler object."""
    if kind == "uniform":
        return UniformUnits(k)
    if kind == "importance":
        return ImportanceUnits(k, gamma)
    raise ValueError(f"unknown sampling {kind!r}; choose uniform or importance")


@torch.no_grad()
def pinv_row_scores(ae, x: np.ndarray, coords_per_unit: int = 1, *, batch: int = 512) -> np.ndarray:
    """``(B, n_units)``: norm of the rows of ``J⁺`` of each unit's coordinates (no forces).

    A unit whose ``J⁺`` rows are large gets large residuals ``[J⁺g]_i − f_i`` when ``g``
    is wrong, so it carries more of the loss and its gradient.
    """
    ae64 = ae.double()
    out = []
    for s in range(0, len(x), batch):
        J = batch_jacobian(ae64, torch.as_tensor(x[s:s + batch], dtype=torch.float64))
        rows = pinv_rows(J).pow(2).sum(-1)  # (b, N)
        out.append(rows.reshape(len(rows), -1, coords_per_unit).sum(-1).sqrt().numpy())
    ae.float()
    return np.concatenate(out)


def expand_unit_weights(w: np.ndarray, coords_per_unit: int) -> np.ndarray:
    """Unit weights ``(B, k)`` → coordinate weights ``(B, k·c)`` in ``unit_coords`` order."""
    return np.repeat(w, coords_per_unit, axis=1)


class OnDemandLabeller:
    """Fresh partial labels each time a configuration is visited, within a force budget.

    Holds, for a pool of configurations, everything that needs no forces (``z`` and
    all rows of ``J⁺``). :meth:`visit` returns, for a batch of pool rows, the tensors
    ``PINV_ROWS, FORCES, WEIGHTS`` of a *fresh* subset (``sampler``) while budget is
    left, counting every evaluation through ``system.counter``; once the budget is
    spent (or when ``fresh=False`` and a label is cached) it returns a cached label of
    the row, chosen at random. Rows that never got a label before the budget ran out
    are skipped (the batch shrinks). ``spent`` never exceeds ``budget``: a batch that
    would overshoot is labelled only up to the budget.

    Args:
        system: the microscopic system (its ``counter.labels`` grows by what is spent).
        x: ``(M, N)`` pool configurations.
        pinv_all: ``(M, N, d)`` all rows of ``J⁺`` per configuration.
        sampler: a :class:`UniformUnits` or :class:`ImportanceUnits`.
        budget: force evaluations (units) allowed in total.
        score: ``(M, n_units)`` when the sampler needs one.
    """

    def __init__(self, system: MicroSystem, x: np.ndarray, pinv_all: torch.Tensor, sampler, budget: int, *,
                 score: np.ndarray | None = None, seed: int = 0):
        self.system, self.x, self.pinv_all, self.sampler = system, x, pinv_all, sampler
        self.budget, self.score = int(budget), score
        self.rng = np.random.default_rng(seed)
        self.spent = 0
        self.cache: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(len(x))]

    @property
    def exhausted(self) -> bool:
        return self.budget - self.spent < self.sampler.k

    def _fresh(self, rows: np.ndarray) -> None:
        s = self.system
        units, w = self.sampler(s.n_units, self.rng, n_rows=len(rows),
                                score=None if self.score is None else self.score[rows])
        idx = s.unit_coords(units)
        before = s.counter.labels
        f = label(s, self.x[rows], idx)
        self.spent += s.counter.labels - before
        wc = expand_unit_weights(w, s.coords_per_unit)
        for j, r in enumerate(rows):
            self.cache[r].append((idx[j], f[j], wc[j]))

    def label(self, rows: np.ndarray) -> np.ndarray:
        """Label ``rows`` once each (fresh subsets) as far as the budget allows; returns those labelled."""
        rows = np.asarray(rows, dtype=np.int64)
        n_afford = max(0, (self.budget - self.spent) // self.sampler.k)
        done = rows[:n_afford]
        if len(done):
            self._fresh(done)
        return done

    def visit(self, rows: torch.Tensor, batch: dict[str, torch.Tensor], fresh: bool = True) -> dict[str, torch.Tensor]:
        """Fill ``batch`` with labels of ``rows``: fresh while the budget lasts, else a cached one.

        ``fresh=False`` (validation) labels only rows that have no label yet.
        """
        r = rows.cpu().numpy()
        todo = r if fresh else np.array([i for i in r if not self.cache[i]], dtype=np.int64)
        new = set(self.label(todo).tolist())
        keep = np.array([bool(self.cache[i]) for i in r], dtype=bool)
        r = r[keep]
        picks = [self.cache[i][-1] if i in new else self.cache[i][self.rng.integers(len(self.cache[i]))] for i in r]
        dev = batch[K.Z].device
        out = {k: v[torch.as_tensor(keep, device=v.device)] for k, v in batch.items()}
        if not len(r):
            return out
        idx = torch.as_tensor(np.stack([p[0] for p in picks]), device=self.pinv_all.device)
        P = self.pinv_all[torch.as_tensor(r, device=self.pinv_all.device)]
        dtype = self.pinv_all.dtype
        out[K.PINV_ROWS] = torch.gather(P, 1, idx.unsqueeze(-1).expand(-1, -1, P.shape[-1])).to(dev)
        out[K.FORCES] = torch.as_tensor(np.stack([p[1] for p in picks]), dtype=dtype, device=dev)
        out[K.WEIGHTS] = torch.as_tensor(np.stack([p[2] for p in picks]), dtype=dtype, device=dev)
        return out
