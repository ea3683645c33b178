"""lj_forces against LAMMPS, and the LAMMPS trajectory engine (runs LAMMPS in-process)."""
import sys

import numpy as np
import pytest

import macrodyn.systems.lammps_engine as engine
from macrodyn.errors import InputError
from macrodyn.systems import LennardJones, lj_forces
from macrodyn.systems.lammps_engine import lammps_available, lammps_forces
from macrodyn.systems.md import split_state, velocity_verlet

needs_lammps = pytest.mark.skipif(
    not lammps_available(), reason='LAMMPS cannot be imported: pip install "lammps[mpi]" mpich')


@needs_lammps
@pytest.mark.parametrize("n_atoms", [800, 6400])
def test_lj_forces_match_lammps(rng, n_atoms):
    box = (n_atoms / 0.8) ** (1 / 3)  # 10 and 20
    k = int(np.ceil(n_atoms ** (1 / 3)))
    g = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)
    g = g[rng.permutation(len(g))[:n_atoms]]  # a lattice with vacancies: irregular neighbourhoods
    pos = (g + 0.5) * (box / k) + 0.1 * rng.standard_normal((n_atoms, 3))
    pos += box * rng.integers(-2, 3, size=pos.shape)  # any periodic image
    ref = lammps_forces(pos, box)
    ours = lj_forces(pos, box)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6 * scale)
    # relative error of every atom's force vector
    err = np.linalg.norm(ours - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-3 * scale)
    assert err.max() < 1e-6
    atoms = rng.choice(n_atoms, 50, replace=False)
    np.testing.assert_allclose(lj_forces(pos, box, atoms), ref[atoms], rtol=1e-6, atol=1e-6 * scale)


@needs_lammps
def test_lammps_engine_matches_own_verlet_and_unwraps(rng):
    s = LennardJones(n_atoms=500, engine="lammps", relax_steps=100)
    x0 = s.sample_initial(2, rng)
    x0[1, 0] += 3 * s.box  # an atom starting in another image
    traj = s.trajectories(x0, 300, save_every=100, progress=False)
    assert traj.shape == (2, 4, s.n_coords)
    np.testing.assert_array_equal(traj[:, 0], x0)
    for b in range(2):
        pos, vel = split_state(x0[b])
        r, v = velocity_verlet(lambda p: lj_forces(p, s.box), pos, vel, 1.0, s.dt, 300, 100)
        lr, lv = split_state(traj[b])
        np.testing.assert_allclose(lr, r, atol=1e-8)  # unwrapped: continuous with x0
        np.testing.assert_allclose(lv, v, atol=1e-8)
    pos = split_state(traj)[0]
    assert np.abs(np.diff(pos, axis=1)).max() < 1.0
    crossed = np.floor(pos[:, -1] / s.box) != np.floor(pos[:, 0] / s.box)
    assert crossed.any()  # some atoms left the box: LAMMPS's image flags were used
    assert s.counter.simulation == 300 * 2 * s.n_atoms


def test_missing_lammps_says_how_to_install(monkeypatch):
    monkeypatch.setattr(engine, "_lammps_module", None)
    monkeypatch.setitem(sys.modules, "lammps", None)  # import lammps -> ImportError
    with pytest.raises(InputError, match=r'pip install "lammps\[mpi\]" mpich.*verlet'):
        engine.import_lammps()
    assert not lammps_available()
    s = LennardJones(n_atoms=108, engine="lammps")
    x0 = np.zeros((1, s.n_coords))
    with pytest.raises(InputError, match="verlet"):
        s.trajectories(x0, 10, progress=False)
