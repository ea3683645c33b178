import math

import numpy as np
import pytest
import torch

from macrodyn.errors import InputError
from macrodyn.observables import GinzburgLandau
from macrodyn.systems import SYSTEMS, AllenCahn, build_system

from .battery import SystemBattery


class TestAllenCahn(SystemBattery):
    def make_system(self):
        return AllenCahn(n=16)


def reference_rhs(x: np.ndarray, n: int, eps: float) -> np.ndarray:
    """Independent reference: explicit ghost cells (np.pad, mode="edge") and the 5-point stencil."""
    h = 1.0 / n
    u = x.reshape(-1, n, n)
    g = np.pad(u, ((0, 0), (1, 1), (1, 1)), mode="edge")
    lap = (g[:, 2:, 1:-1] + g[:, :-2, 1:-1] + g[:, 1:-1, 2:] + g[:, 1:-1, :-2] - 4 * u) / h ** 2
    return ((u - u ** 3) / eps ** 2 + lap).reshape(x.shape)


def test_defaults_follow_grid():
    for n in (20, 50, 200):
        s = AllenCahn(n=n)
        h = 1.0 / n
        # the equilibrium profile tanh(x/(√2ε)) goes from −0.9 to 0.9 over 10 cells
        assert 2 * math.sqrt(2) * s.eps * math.atanh(0.9) == pytest.approx(10 * h, rel=1e-14)
        assert s.dt == pytest.approx(0.1 * h ** 2, rel=1e-14)
        assert s.n_coords == n * n and s.n_units == n * n


def test_forces_match_padded_reference(rng):
    s = AllenCahn(n=20, eps=0.07)
    x = rng.standard_normal((4, 400))
    np.testing.assert_allclose(s.forces(x), reference_rhs(x, 20, 0.07), rtol=1e-12, atol=1e-9)


def test_cosine_modes_are_exact_eigenvectors():
    """cos(π k (i + ½) h) satisfies the mirror condition, so it is an eigenvector of Δ_h with
    eigenvalue −(4/h²) sin²(π k h / 2) per axis: an analytic truth for the whole stencil."""
    n, eps = 24, 0.1
    s = AllenCahn(n=n, eps=eps)
    h, t = 1.0 / n, (np.arange(n) + 0.5) / n
    for k1, k2 in [(0, 1), (1, 0), (3, 5), (n - 1, 2)]:
        u = 0.3 * np.cos(np.pi * k1 * t)[:, None] * np.cos(np.pi * k2 * t)[None, :]
        lam = -4 / h ** 2 * (np.sin(np.pi * k1 * h / 2) ** 2 + np.sin(np.pi * k2 * h / 2) ** 2)
        expected = (u - u ** 3) / eps ** 2 + lam * u
        x = u.reshape(1, -1)
        np.testing.assert_allclose(s.forces(x)[0], expected.ravel(), rtol=1e-10, atol=1e-8)
        idx = np.arange(n * n)[None]
        np.testing.assert_allclose(s.partial_forces(x, idx)[0], expected.ravel(), rtol=1e-10, atol=1e-8)


def test_partial_equals_full_at_boundaries_and_corners(rng):
    n, B = 24, 5
    s = AllenCahn(n=n)
    x = rng.standard_normal((B, n * n))
    full = s.forces(x)
    corners = [0, n - 1, n * (n - 1), n * n - 1]
    edges = [3, n * 5, n * 7 + n - 1, n * (n - 1) + 9]
    idx = np.stack([np.concatenate([corners, edges, rng.integers(0, n * n, 40)])[rng.permutation(48)]
                    for _ in range(B)])
    part = s.partial_forces(x, idx)
    assert part.shape == (B, 48)
    np.testing.assert_allclose(part, np.take_along_axis(full, idx, 1), rtol=1e-12, atol=1e-9)
    # every grid point, including repeated indices and a non-contiguous x
    idx_all = np.tile(np.arange(n * n), (B, 2))
    xs = np.asfortranarray(x)
    np.testing.assert_allclose(s.partial_forces(xs, idx_all), np.tile(full, 2), rtol=1e-12, atol=1e-9)


def test_constant_fields():
    """The Laplacian annihilates constants; u ≡ ±1 and u ≡ 0 are fixed points of everything."""
    s = AllenCahn(n=16, eps=0.05)
    for c in (-1.7, -0.3, 0.4, 2.0):
        x = np.full((1, 256), c)
        np.testing.assert_allclose(s.forces(x), (c - c ** 3) / s.eps ** 2, rtol=1e-13)
    x = np.stack([np.full(256, v) for v in (-1.0, 0.0, 1.0)])
    assert np.all(s.forces(x) == 0.0)
    assert np.all(s.partial_forces(x, np.tile(np.arange(256), (3, 1))) == 0.0)


def test_ring_initial_data():
    s = AllenCahn(n=64, eps=0.01)
    x = s.sample_initial(6, np.random.default_rng(0))
    assert x.shape == (6, 64 * 64)
    assert np.all(x >= -1) and np.all(x <= 1)  # strictly inside in exact arithmetic; tanh rounds to ±1
    u = x.reshape(6, 64, 64)
    # radially symmetric about the centre: invariant under the grid's reflections
    np.testing.assert_allclose(u, u.transpose(0, 2, 1), atol=1e-12)
    np.testing.assert_allclose(u, u[:, ::-1, :], atol=1e-12)
    r = np.hypot(*np.meshgrid(s.grid - 0.5, s.grid - 0.5, indexing="ij"))
    # r2 ≤ 0.15 < 0.2 ≤ r ≤ 0.25 < 0.30 ≤ r1: always inside the ring, 5ε from both interfaces
    assert np.all(u[:, (r > 0.2) & (r < 0.25)] > 0.99)
    assert np.all(u[:, r < 0.05] < -0.99) and np.all(u[:, r > 0.45] < -0.99)
    # the radii really vary between samples
    assert np.ptp((x > 0).sum(axis=1)) > 0


def test_ring_free_energy_equals_surface_tension_times_perimeter():
    """A resolved tanh interface costs σ = 2√2 / (3ε) per length (∫ u'² across the profile),
    so a ring has E ≈ σ 2π (r1 + r2), up to O((ε/r)²) and grid corrections."""
    s = AllenCahn(n=128)
    E = s.observable()(torch.from_numpy(s.ring([0.35, 0.31], [0.12, 0.14]))).squeeze(-1).numpy()
    sigma = 2 * math.sqrt(2) / (3 * s.eps)
    np.testing.assert_allclose(E, sigma * 2 * np.pi * np.array([0.47, 0.45]), rtol=1e-2)


def test_free_energy_decreases_along_rk4(rng):
    s = AllenCahn(n=24)
    x0 = s.sample_initial(2, rng)
    traj = s.trajectories(x0, 400, save_every=20, progress=False)
    assert traj.shape == (2, 21, 576)
    E = s.observable()(torch.from_numpy(traj.reshape(-1, 576))).reshape(2, 21).numpy()
    assert np.all(np.diff(E, axis=1) < 0)


def test_free_energy_rate_along_trajectory_is_dissipation(rng):
    """dE/dt from central differences in time of a finely stepped RK4 trajectory equals −h² Σ f²
    (the step is small against the fastest grid mode, dt · 8/h² = 0.008, so the difference
    quotient is accurate to ~1e-5)."""
    s = AllenCahn(n=24, dt=0.001 / 24 ** 2)
    x0 = s.sample_initial(2, rng)
    traj = s.trajectories(x0, 40, save_every=1, progress=False)
    E = s.observable()(torch.from_numpy(traj.reshape(-1, 576))).reshape(2, 41).numpy()
    dEdt = (E[:, 2:] - E[:, :-2]) / (2 * s.dt)
    f = s.forces(traj[:, 1:-1].reshape(-1, 576)).reshape(2, 39, 576)
    np.testing.assert_allclose(dEdt, -s.h ** 2 * (f ** 2).sum(-1), rtol=2e-5)


def test_trajectories_in_chunks_equal_one_batch(rng):
    """Batch rows are independent, so big grids can be simulated a few trajectories at a time."""
    s = AllenCahn(n=16)
    x0 = s.sample_initial(3, rng)
    whole = s.trajectories(x0, 20, save_every=10, progress=False)
    parts = np.concatenate([s.trajectories(x0[i:i + 2], 20, save_every=10, progress=False) for i in (0, 2)])
    np.testing.assert_array_equal(whole, parts)


def test_observable_is_ginzburg_landau_on_the_grid():
    s = AllenCahn(n=16, eps=0.05)
    obs = s.observable()
    assert isinstance(obs, GinzburgLandau) and obs.dim == 1
    assert obs.n == 16 and obs.eps == 0.05


def test_registry_and_params():
    assert SYSTEMS["allen_cahn"] is AllenCahn
    s = build_system("allen_cahn", {"n": 20, "eps": 0.05})
    assert isinstance(s, AllenCahn) and s.n == 20 and s.eps == 0.05 and s.dt == pytest.approx(0.1 / 400)
    with pytest.raises(Exception, match="extra|not permitted"):
        AllenCahn.Params(n=20, h=0.1)


def test_bad_arguments_name_the_fix():
    with pytest.raises(InputError, match="stability"):
        AllenCahn(n=16, dt=1e-2)
    with pytest.raises(InputError, match="eps"):
        AllenCahn(n=16, eps=-1.0)
    with pytest.raises(InputError, match="n must be"):
        AllenCahn(n=2)
    with pytest.raises(InputError, match="same length"):
        AllenCahn(n=16).ring([0.3, 0.35], [0.1])
