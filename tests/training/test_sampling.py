"""Importance-weighted subsets are unbiased; on-demand labelling spends exactly its budget."""
import numpy as np
import pytest
import torch

from macrodyn import keys as K
from macrodyn.closure import ClosureAutoencoder
from macrodyn.config import RunConfig
from macrodyn.dynamics import OnsagerNet, StandardizedField
from macrodyn.observables import BlockMeans
from macrodyn.systems import PredatorPrey
from macrodyn.training import PartialForceLoss, compute_features, label
from macrodyn.training.sampling import (ImportanceUnits, OnDemandLabeller, UniformUnits, inclusion_probabilities,
                                        make_sampler, pinv_row_scores, systematic_sample)


@pytest.fixture
def setup(rng):
    s = PredatorPrey(n=10)
    x = s.sample_initial(4, rng) + 0.05 * rng.standard_normal((4, 20))
    ae = ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(8,))
    field = StandardizedField(OnsagerNet(4, (8,), (8, 8)), 4).double()
    return s, x, ae, field


def _outcomes(pi: np.ndarray, order: np.ndarray):
    """Every outcome of systematic sampling (one row) with its exact probability.

    The selected set is constant between consecutive fractional parts of the cumulative
    sums, so evaluating one ``u`` per interval enumerates the whole distribution.
    """
    cuts = np.unique(np.concatenate([[0.0, 1.0], np.cumsum(pi[order]) % 1.0]))
    mids, lengths = (cuts[:-1] + cuts[1:]) / 2, np.diff(cuts)
    keep = lengths > 1e-14
    sets = systematic_sample(np.repeat(pi[None], keep.sum(), 0), np.repeat(order[None], keep.sum(), 0), mids[keep])
    return sets, lengths[keep]


def test_inclusion_probabilities_sum_to_k_capped_and_bounded_below(rng):
    score = rng.exponential(size=(50, 30))
    score[:, 0] = 1e6  # one dominant unit: capped at 1, the rest rescaled
    score[1] = 0.0     # all-zero score: uniform
    pi = inclusion_probabilities(score, 6, 0.3)
    np.testing.assert_allclose(pi.sum(1), 6, rtol=1e-12)
    assert (pi <= 1).all() and (pi >= 0.3 * 6 / 30 - 1e-12).all()
    np.testing.assert_allclose(np.delete(pi, 1, 0)[:, 0], 1.0)
    np.testing.assert_allclose(pi[1], 0.2)


def test_systematic_sampling_has_exactly_the_inclusion_probabilities(rng):
    pi = inclusion_probabilities(rng.exponential(size=(1, 12)) ** 3, 4, 0.2)[0]
    sets, prob = _outcomes(pi, rng.permutation(12))
    assert prob.sum() == pytest.approx(1.0)
    assert all(len(set(s)) == 4 for s in sets)  # k distinct units, never a repeat
    incl = np.zeros(12)
    for s, p in zip(sets, prob):
        incl[s] += p
    np.testing.assert_allclose(incl, pi, atol=1e-12)


def test_importance_loss_exact_expectation_is_full_loss_over_N(setup, rng):
    """Enumerating every outcome: E (1/k) Σ_I w_i r_i² = L_x / N and E Jf_est = J f, exactly."""
    s, x, ae, field = setup
    x1 = x[:1]
    full = {k: v.double() for k, v in compute_features(ae, x1, np.arange(20)[None], s.forces(x1),
                                                         dtype=torch.float64).items()}
    score = pinv_row_scores(ae, x1)
    pi = inclusion_probabilities(score, 3, 0.3)
    assert pi.max() / pi.min() > 1.5  # genuinely non-uniform
    for order in (np.arange(20), rng.permutation(20)):
        sets, prob = _outcomes(pi[0], order)
        w = 3 / (20 * pi[0][sets])
        xs = np.repeat(x1, len(sets), 0)
        feats = compute_features(ae, xs, sets, label(s, xs, sets), w=w, dtype=torch.float64)
        with torch.no_grad():
            v = field(feats[K.Z])
            r = (feats[K.PINV_ROWS] @ v.unsqueeze(-1)).squeeze(-1) - feats[K.FORCES]
            per_outcome = (feats[K.WEIGHTS] * r * r).mean(1)
            expected = (torch.as_tensor(prob) * per_outcome).sum()
            torch.testing.assert_close(expected, PartialForceLoss(1.0)(field, full))
        torch.testing.assert_close((torch.as_tensor(prob)[:, None] * feats[K.JF_ESTIMATE]).sum(0), full[K.JF][0])


def test_importance_sampler_draws_are_unbiased_monte_carlo(rng):
    """The sampler itself (random order, random offset): mean over draws within 4 standard errors."""
    n, k, m = 40, 5, 40_000
    score = np.tile(rng.exponential(size=n) ** 2, (m, 1))
    r2 = rng.exponential(size=n) * (1 + 5 * (score[0] / score[0].max()))  # correlated with the score
    units, w = ImportanceUnits(k, gamma=0.2)(n, rng, score=score)
    assert np.isfinite(w).all() and (w > 0).all()
    assert all(len(set(u)) == k for u in units[:200])
    est = (w * r2[units]).mean(1)
    assert abs(est.mean() - r2.mean()) < 4 * est.std() / np.sqrt(m)


def test_weights_positive_and_finite_for_extreme_scores(rng):
    score = np.concatenate([np.zeros((1, 50)), np.full((1, 50), 1e-300), rng.exponential(size=(3, 50)) ** 20])
    score[2, 7] = 1e300
    units, w = ImportanceUnits(10, gamma=0.05)(50, rng, score=score)
    assert np.isfinite(w).all() and (w > 0).all() and w.max() <= 1 / 0.05 + 1e-9


def test_uniform_sampler_weights_one_and_factory(rng):
    units, w = UniformUnits(3)(10, rng, n_rows=7)
    assert units.shape == (7, 3) and (w == 1).all()
    assert isinstance(make_sampler("importance", 3), ImportanceUnits)
    with pytest.raises(ValueError):
        make_sampler("stratified", 3)
    with pytest.raises(ValueError):
        ImportanceUnits(3)(10, rng, n_rows=2)  # no score


@pytest.mark.parametrize("budget", [600, 610])
@pytest.mark.parametrize("sampler", [UniformUnits(4), ImportanceUnits(4)])
def test_on_demand_budget_is_exact_and_never_exceeded(setup, rng, budget, sampler):
    s, x, ae, _ = setup
    xs = s.sample_initial(30, rng)
    P = torch.randn(30, 20, 4)
    lab = OnDemandLabeller(s, xs, P, sampler, budget, score=rng.exponential(size=(30, 20)) + 0.1
                           if sampler.needs_score else None)
    batch = {K.Z: torch.zeros(30, 4)}
    seen = []
    for epoch in range(10):
        for rows in torch.randperm(30).split(7):
            out = lab.visit(rows, {K.Z: batch[K.Z][rows]})
            assert s.counter.labels == lab.spent <= budget
            seen.append(len(out[K.Z]))
            assert out[K.FORCES].shape == (len(out[K.Z]), 4) and torch.isfinite(out[K.WEIGHTS]).all()
    assert s.counter.labels == lab.spent == budget - budget % 4
    assert sum(len(c) for c in lab.cache) == budget // 4  # every evaluation cached, reused afterwards
    assert seen[-1] > 0


def _tiny_cfg(**training):
    return RunConfig(**{
        "data": {"n_train_trajectories": 8, "n_test_trajectories": 2, "n_steps": 300, "save_every": 10,
                 "chunk_trajectories": 4},
        "closure": {"epochs": 1, "max_configs": 1000},
        "training": {"epochs": 3, "budget": 3000, "chunk_configs": 50, **training},
    })


@pytest.mark.parametrize("sampling,labelling", [("uniform", "fixed"), ("importance", "fixed"),
                                                ("uniform", "on_demand"), ("importance", "on_demand")])
def test_pipeline_end_to_end_each_strategy(tmp_path, sampling, labelling):
    from macrodyn import Run
    from macrodyn.pipeline import run_all

    cfg = _tiny_cfg(sampling=sampling, labelling=labelling, members=2)
    run = Run.create(cfg, tmp_path / "run", progress=False)
    m = run_all(run, ("simulate", "label", "closure", "dynamics", "evaluate"))
    assert m["force_evaluations"] == run.system.counter.labels == 3000
    assert np.isfinite(m["rollout_rel_error"])


def test_defaults_are_the_paper():
    t = RunConfig().training
    assert (t.sampling, t.labelling) == ("uniform", "fixed")
