import numpy as np
import pytest
import torch

from macrodyn.closure.jacobian import batch_jacobian
from macrodyn.errors import InputError
from macrodyn.observables import GinzburgLandau
from macrodyn.systems import AllenCahn


def naive_energy(u: np.ndarray, eps: float) -> float:
    """E from its definition with explicit loops over cells and interior faces."""
    n = u.shape[0]
    h = 1.0 / n
    E = 0.0
    for i in range(n):
        for j in range(n):
            E += h ** 2 * (u[i, j] ** 2 - 1) ** 2 / (4 * eps ** 2)
            if i + 1 < n:
                E += h ** 2 * 0.5 * ((u[i + 1, j] - u[i, j]) / h) ** 2
            if j + 1 < n:
                E += h ** 2 * 0.5 * ((u[i, j + 1] - u[i, j]) / h) ** 2
    return E


def test_matches_definition(rng):
    n, eps = 6, 0.2
    x = rng.standard_normal((3, n * n))
    E = GinzburgLandau(n, eps)(torch.from_numpy(x)).squeeze(-1).numpy()
    np.testing.assert_allclose(E, [naive_energy(xi.reshape(n, n), eps) for xi in x], rtol=1e-13)


def test_pure_phases_and_zero_field():
    n, eps = 10, 0.05
    obs = GinzburgLandau(n, eps)
    x = torch.stack([torch.ones(n * n), -torch.ones(n * n), torch.zeros(n * n)]).double()
    E = obs(x)
    assert E.shape == (3, 1)
    # ±1 are the minimisers (E = 0); u ≡ 0 costs the bulk barrier 1/(4ε²) on the unit square
    torch.testing.assert_close(E.squeeze(-1), torch.tensor([0.0, 0.0, 1 / (4 * eps ** 2)], dtype=torch.float64))


def test_gradient_matches_finite_differences(rng):
    n, eps = 16, 0.08
    obs = GinzburgLandau(n, eps)
    x = torch.from_numpy(rng.standard_normal((1, n * n))).requires_grad_(True)
    (grad,) = torch.autograd.grad(obs(x).sum(), x)
    d = 1e-6
    for c in rng.choice(n * n, 12, replace=False).tolist() + [0, n - 1, n * n - 1]:
        xp, xm = x.detach().clone(), x.detach().clone()
        xp[0, c] += d
        xm[0, c] -= d
        fd = (obs(xp) - obs(xm)).item() / (2 * d)
        assert grad[0, c].item() == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_gradient_is_minus_h2_times_the_allen_cahn_rhs(rng):
    """Forward differences over interior faces make E the exact Lyapunov function of the
    discrete dynamics: ∇E = −h² f, hence dE/dt = ⟨∇E, f⟩ = −h² Σ f²."""
    s = AllenCahn(n=20)
    x = s.sample_initial(3, rng) + 0.05 * rng.standard_normal((3, 400))
    xt = torch.from_numpy(x).requires_grad_(True)
    (grad,) = torch.autograd.grad(s.observable()(xt).sum(), xt)
    f = s.forces(x)
    np.testing.assert_allclose(grad.numpy(), -s.h ** 2 * f, rtol=1e-10, atol=1e-12 * np.abs(f).max())
    dEdt = (grad.numpy() * f).sum(axis=1)
    np.testing.assert_allclose(dEdt, -s.h ** 2 * (f ** 2).sum(axis=1), rtol=1e-12)


def test_jacobian_through_closure_code_and_leading_dims(rng):
    n = 8
    obs = GinzburgLandau(n, 0.1)
    x = torch.from_numpy(rng.standard_normal((4, n * n)))
    J = batch_jacobian(obs, x)
    assert J.shape == (4, 1, n * n)
    xt = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(obs(xt).sum(), xt)
    torch.testing.assert_close(J[:, 0], grad)
    assert obs(x.reshape(2, 2, n * n)).shape == (2, 2, 1)
    assert obs(x.float()).dtype == torch.float32


def test_bad_arguments():
    with pytest.raises(InputError, match="coordinates"):
        GinzburgLandau(8, 0.1)(torch.zeros(2, 63))
    with pytest.raises(InputError, match="eps"):
        GinzburgLandau(8, 0.0)
    with pytest.raises(InputError, match="n must be"):
        GinzburgLandau(1, 0.1)
