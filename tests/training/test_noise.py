"""Label noise of the estimators: exact where it must be, and equal to a brute-force enumeration."""
import itertools

import numpy as np
import pytest
import torch

from macrodyn.training.noise import rate_noise, relative_noise


def _setup(seed=0, m=3, d=2, n=7):
    g = np.random.default_rng(seed)
    return torch.as_tensor(g.normal(size=(m, d, n))), g.normal(size=(m, n))


def _coords(units):
    return units  # one coordinate per unit


def test_all_units_labelled_is_exact():
    J, f = _setup()
    assert np.abs(rate_noise(J, f, _coords, 7, 7, 3, np.random.default_rng(1))).max() < 1e-20


def test_perfect_control_is_exact_for_any_subset():
    J, f = _setup()
    for k in (2, 3, 5):
        mse = rate_noise(J, f, _coords, 7, k, 5, np.random.default_rng(k), control=f.copy())
        assert mse.max() < 1e-20


def test_noise_equals_the_enumerated_mean_over_subsets():
    """Over many uniform draws the mean squared error tends to the exact mean over every subset,
    computed here with numpy's pseudo-inverse and least squares (an independent reference)."""
    J, f = _setup(seed=3, m=2, d=2, n=6)
    k, ref = 3, np.zeros(2)
    subsets = list(itertools.combinations(range(6), k))
    for b in range(2):
        Jb = J[b].numpy()
        P = np.linalg.pinv(Jb)  # (N, d)
        for sub in subsets:
            v = np.linalg.lstsq(P[list(sub)], f[b, list(sub)], rcond=None)[0]
            ref += (v - Jb @ f[b]) ** 2
    ref /= 2 * len(subsets)
    mse = rate_noise(J, f, _coords, 6, k, 4000, np.random.default_rng(0))
    np.testing.assert_allclose(mse, ref, rtol=0.08)


def test_a_control_lowers_the_noise_with_how_well_it_predicts():
    J, f = _setup(seed=5, m=4, n=10)
    g = np.random.default_rng(9)
    plain = rate_noise(J, f, _coords, 10, 3, 300, np.random.default_rng(1)).sum()
    good = rate_noise(J, f, _coords, 10, 3, 300, np.random.default_rng(1),
                      control=f + 0.1 * g.normal(size=f.shape)).sum()
    assert good < 0.05 * plain


def test_relative_noise_divides_by_the_spread_per_component():
    exact = torch.tensor([[0.0, 0.0], [2.0, 20.0]])  # variances 2 and 200
    assert relative_noise(np.array([1.0, 100.0]), exact) == pytest.approx(0.5)
    assert relative_noise(np.array([1.0]), torch.zeros(3, 1)) == 0.0  # no spread: nothing to resolve
