"""The coarse-grid Allen–Cahn surrogate (``allen_cahn_coarse``, ``coarsen = c``): the same
equation on a grid ``c`` times coarser, checked against an independently built coarse system and
as a control variate."""
import numpy as np
import pytest

from macrodyn.errors import InputError
from macrodyn.systems import AllenCahn, CoarseAllenCahn, build_system
from macrodyn.training.control import Surrogate

from .battery import SystemBattery


class TestCoarseAllenCahn(SystemBattery):
    def make_system(self):
        return CoarseAllenCahn(n=16, coarsen=2)


def restrict(x: np.ndarray, n: int, c: int) -> np.ndarray:
    """Block means by an explicit loop over blocks (an independent restriction)."""
    u = x.reshape(-1, n, n)
    m = n // c
    out = np.empty((u.shape[0], m, m))
    for i in range(m):
        for j in range(m):
            out[:, i, j] = u[:, i * c:(i + 1) * c, j * c:(j + 1) * c].mean(axis=(1, 2))
    return out.reshape(u.shape[0], m * m)


@pytest.mark.parametrize("c", [2, 3])
def test_forces_are_the_coarse_systems_copied_to_each_block(rng, c):
    n, eps = 12, 0.09
    fine = CoarseAllenCahn(n=n, eps=eps, coarsen=c)
    coarse = AllenCahn(n=n // c, eps=eps)  # built apart: spacing c h, same ε
    x = rng.standard_normal((3, n * n))
    fc = coarse.forces(restrict(x, n, c)).reshape(3, n // c, n // c)
    want = np.kron(fc, np.ones((c, c))).reshape(3, n * n)
    np.testing.assert_allclose(fine.forces(x), want, rtol=1e-12, atol=1e-9)
    idx = np.tile(np.arange(n * n), (3, 1))  # every cell, boundaries and corners included
    np.testing.assert_allclose(fine.partial_forces(x, idx), want, rtol=1e-12, atol=1e-9)


def test_the_fine_systems_parameters_are_unchanged():
    """Adding the surrogate must not change what identifies an Allen–Cahn run's data."""
    assert set(AllenCahn.Params.model_fields) == {"n", "eps", "dt"}
    assert set(CoarseAllenCahn.Params.model_fields) == {"n", "eps", "dt", "coarsen"}


def test_approximates_the_fine_forces_on_rings(rng):
    """On the rings the data start from, relaxed a little, the 2× coarser forces explain most of
    the fine forces' variance: the least-squares scale β is near 1 and the residual small."""
    fine, coarse = AllenCahn(n=64), CoarseAllenCahn(n=64, coarsen=2)
    x = fine.sample_initial(4, rng)
    for _ in range(200):  # let the profiles relax onto the grid (the ring start is smooth already)
        x = x + fine.dt * fine.forces(x)
    f, s = fine.forces(x), coarse.forces(x)
    beta = float((f * s).sum() / (s * s).sum())
    resid = ((f - beta * s) ** 2).sum() / (f ** 2).sum()
    assert 0.8 < beta < 1.05 and resid < 0.15, (beta, resid)  # measured: β ≈ 0.93, 7 % left


def test_builds_as_a_surrogate_of_the_fine_system():
    fine = build_system("allen_cahn", {"n": 16})
    Surrogate(build_system("allen_cahn_coarse", {"n": 16, "coarsen": 2}), fine)  # same coordinates: accepted


@pytest.mark.parametrize("c", [1, 5, 2.5])
def test_bad_coarsening_names_the_fix(c):
    with pytest.raises(InputError, match="coarsen must be an integer >= 2 dividing n"):
        CoarseAllenCahn(n=16, coarsen=c)


def test_config_names_it_and_merges_the_grid():
    """``training.surrogate: {name: allen_cahn_coarse, params: {coarsen: 2}}`` builds the coarse
    system on the run's own grid (n, eps from system.params)."""
    from macrodyn.config import build_surrogate, parse_config

    cfg = parse_config({"system": {"name": "allen_cahn", "params": {"n": 16, "eps": 0.08}},
                        "closure": {"dim": 3},
                        "training": {"control": "surrogate",
                                     "surrogate": {"name": "allen_cahn_coarse", "params": {"coarsen": 2}}}}, "test")
    s = build_surrogate(cfg)
    assert isinstance(s, CoarseAllenCahn) and (s.n, s.eps, s.coarsen) == (16, 0.08, 2)
