"""Temperature observable: value, Jacobian vs finite differences, masses and units."""
import numpy as np
import pytest
import torch

from macrodyn.closure.jacobian import batch_jacobian
from macrodyn.observables import Observable, Temperature


def test_value_matches_formula(rng):
    n = 7
    x = torch.from_numpy(rng.standard_normal((3, 6 * n)))
    v = x.reshape(3, n, 6)[..., 3:]
    expected = (v**2).sum(dim=(1, 2)) / (3 * (n - 1))
    obs = Temperature(n)
    assert isinstance(obs, Observable) and obs.dim == 1 and obs.names == ("temperature",)
    out = obs(x)
    assert out.shape == (3, 1)
    torch.testing.assert_close(out[:, 0], expected)
    # positions do not enter
    y = x.clone()
    y.reshape(3, n, 6)[..., :3] += 5.0
    torch.testing.assert_close(obs(y), out)


def test_jacobian_matches_finite_differences(rng):
    n = 5
    obs = Temperature(n)
    x = torch.from_numpy(rng.standard_normal((2, 6 * n)))
    jac = batch_jacobian(obs, x)  # (B, 1, N)
    assert jac.shape == (2, 1, 6 * n)
    h = 1e-6
    fd = torch.empty_like(jac)
    for i in range(6 * n):
        e = torch.zeros(6 * n, dtype=x.dtype)
        e[i] = h
        fd[:, 0, i] = (obs(x + e) - obs(x - e))[:, 0] / (2 * h)
    torch.testing.assert_close(jac, fd, rtol=1e-6, atol=1e-8)
    # analytic: 2 v / (3 (n − 1)) on velocities, 0 on positions
    analytic = torch.zeros_like(x).reshape(2, n, 6)
    analytic[..., 3:] = 2 * x.reshape(2, n, 6)[..., 3:] / (3 * (n - 1))
    torch.testing.assert_close(jac[:, 0], analytic.reshape(2, -1))


def test_masses_and_boltzmann_constant():
    from ase import units

    n = 4
    x = torch.zeros(1, 6 * n, dtype=torch.float64)
    x[0, 3] = 2.0  # atom 0, v_x = 2
    t = Temperature(n, masses=[3.0, 1.0, 1.0, 1.0], k_B=units.kB)(x)
    assert float(t) == pytest.approx(3.0 * 4.0 / (9 * units.kB))
    with pytest.raises(ValueError, match="masses"):
        Temperature(n, masses=[1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        Temperature(1)


def test_float32_input():
    x = torch.ones(2, 12, dtype=torch.float32)
    out = Temperature(2)(x)
    assert out.dtype == torch.float32
    assert np.allclose(out.numpy(), 6 / 3)
