import numpy as np
import pytest
from scipy.integrate import solve_ivp

from macrodyn.systems import PredatorPrey
from macrodyn.systems.predator_prey import mirror_laplacian

from .battery import SystemBattery


class TestPredatorPrey(SystemBattery):
    def make_system(self):
        return PredatorPrey()


def test_rhs_matches_finite_difference_of_fine_trajectory(rng):
    """f(x) equals the time derivative of an independently (scipy, tight tol) integrated solution."""
    s = PredatorPrey()
    x0 = s.sample_initial(1, rng)[0]
    sol = solve_ivp(lambda t, y: s._forces(y[None])[0], (0, 1.0), x0, method="DOP853",
                    rtol=1e-12, atol=1e-12, dense_output=True)
    t, h = 0.5, 1e-4
    fd = (sol.sol(t + h) - sol.sol(t - h)) / (2 * h)
    np.testing.assert_allclose(s.forces(sol.sol(t)[None])[0], fd, rtol=1e-6, atol=1e-7)


def test_rk4_trajectory_matches_reference(rng):
    s = PredatorPrey()
    x0 = s.sample_initial(2, rng)
    traj = s.trajectories(x0, 300, save_every=100, progress=False)
    assert traj.shape == (2, 4, 100)
    sol = solve_ivp(lambda t, y: s._forces(y[None])[0], (0, 3.0), x0[0], method="DOP853", rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj[0, -1], sol.y[:, -1], atol=1e-8)
    assert s.counter.simulation == 4 * 300 * 2 * 100


def test_laplacian_mirror_boundaries():
    w = np.array([[1.0, 2.0, 4.0, 8.0]])
    np.testing.assert_allclose(mirror_laplacian(w), [[1.0, 1.0, 2.0, -4.0]])
    assert np.allclose(mirror_laplacian(np.full((1, 7), 3.0)), 0.0)


def test_reaction_fixed_point():
    """(u, v) = (b, 1 − b) uniform is a fixed point of the reaction–diffusion system."""
    s = PredatorPrey()
    x = np.concatenate([np.full(50, s.b), np.full(50, 1 - s.b)])[None]
    np.testing.assert_allclose(s.forces(x), 0.0, atol=1e-14)


def test_initial_data_family(rng):
    s = PredatorPrey()
    x = s.sample_initial(500, rng)
    u, v = x[:, :50], x[:, 50:]
    np.testing.assert_allclose(u + v, 1.0)
    assert 0.4 - 0.2 <= u.min() and u.max() <= 0.6 + 0.2


def test_simulation_blowup_names_step():
    from macrodyn.errors import InputError

    s = PredatorPrey(dt=50.0)
    x0 = np.concatenate([np.full(50, 5.0), np.full(50, 5.0)])[None]
    with pytest.raises(InputError, match="blew up at step"):
        s.trajectories(x0, 100, progress=False)
