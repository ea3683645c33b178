"""Checks every MicroSystem must pass, written once (mixed into per-system tests).

A test class sets ``make_system()`` and ``perturb`` and inherits these tests.
"""
import numpy as np
import pytest

from macrodyn.errors import InputError


class SystemBattery:
    batch = 3

    def make_system(self):
        raise NotImplementedError

    def configs(self, system, rng):
        x = system.sample_initial(self.batch, rng)
        return x + 0.01 * rng.standard_normal(x.shape)

    def test_partial_equals_full(self, rng):
        s = self.make_system()
        x = self.configs(s, rng)
        full = s.forces(x)
        k = max(1, s.n_units // 5)
        units = np.stack([np.sort(rng.choice(s.n_units, k, replace=False)) for _ in range(self.batch)])
        idx = s.unit_coords(units)
        np.testing.assert_allclose(s.partial_forces(x, idx), np.take_along_axis(full, idx, 1), rtol=1e-10, atol=1e-10)

    def test_counter_counts_units(self, rng):
        s = self.make_system()
        x = self.configs(s, rng)
        s.counter.reset()
        s.forces(x)
        assert s.counter.labels == self.batch * s.n_units
        units = np.stack([rng.choice(s.n_units, 2, replace=False) for _ in range(self.batch)])
        s.partial_forces(x, s.unit_coords(units))
        assert s.counter.labels == self.batch * s.n_units + 2 * self.batch

    def test_shape_and_nan_errors(self, rng):
        s = self.make_system()
        x = self.configs(s, rng)
        with pytest.raises(InputError, match="shape"):
            s.forces(x[:, :-1])
        bad = x.copy()
        bad[1, 0] = np.nan
        with pytest.raises(InputError, match="NaN"):
            s.forces(bad)
        with pytest.raises(InputError, match="NaN"):  # the chosen unit reads the NaN
            s.partial_forces(bad, s.unit_coords(np.zeros((self.batch, 1), dtype=np.int64)))
        with pytest.raises(InputError, match="out of range"):
            s.partial_forces(x, np.full((self.batch, 1), s.n_coords))
        with pytest.raises(InputError, match="shape"):
            s.partial_forces(x, np.zeros((self.batch + 1, 1), dtype=int))

    def test_initial_conditions_seeded(self):
        s = self.make_system()
        a = s.sample_initial(2, np.random.default_rng(5))
        b = s.sample_initial(2, np.random.default_rng(5))
        assert a.shape == (2, s.n_coords)
        np.testing.assert_array_equal(a, b)
