"""LennardJones microscopic system: layout, partial forces, counting, initial data, NVE."""
import numpy as np
import pytest
import torch

from macrodyn.errors import InputError
from macrodyn.observables import Temperature
from macrodyn.systems import SYSTEMS, LennardJones, build_system, lj_energy, lj_forces
from macrodyn.systems.md import gaussian_velocities, join_state, split_state, velocity_verlet

from .battery import SystemBattery


def small(**kw):
    kw = {"n_atoms": 500, "engine": "verlet", "relax_steps": 100} | kw  # box 7.94: 3 cells per side
    return LennardJones(**kw)


class TestLennardJones(SystemBattery):
    batch = 2

    def make_system(self):
        return small()


def test_registered_and_params():
    assert SYSTEMS["lennard_jones"] is LennardJones
    s = build_system("lennard_jones", {"n_atoms": 108, "engine": "verlet"})
    assert (s.n_atoms, s.n_coords, s.coords_per_unit, s.n_units) == (108, 648, 6, 108)
    assert s.box == pytest.approx((108 / 0.8) ** (1 / 3))
    d = build_system("lennard_jones")
    assert (d.n_atoms, d.dt, d.cutoff, d.engine) == (800, 0.001, 2.5, "lammps")
    assert d.box == pytest.approx(10.0)
    assert build_system("lennard_jones", {"box": 15.0}).n_atoms == 2700
    with pytest.raises(Exception, match="not both"):
        build_system("lennard_jones", {"box": 15.0, "n_atoms": 2700})
    with pytest.raises(InputError, match=r"system\.params\.temperature: unknown parameter"):
        build_system("lennard_jones", {"temperature": 1.0})
    with pytest.raises(Exception, match="engine"):
        build_system("lennard_jones", {"engine": "gromacs"})
    with pytest.raises(InputError, match="not both"):
        LennardJones(n_atoms=10, box=3.0)


def test_state_layout_and_forces(rng):
    s = small()
    x = s.sample_initial(1, rng)
    pos, vel = split_state(x[0])
    np.testing.assert_array_equal(x[0, 6:9], pos[1])
    np.testing.assert_array_equal(x[0, 9:12], vel[1])
    np.testing.assert_array_equal(join_state(pos, vel), x[0])
    f = s.forces(x)[0]
    np.testing.assert_array_equal(f.reshape(-1, 6)[:, :3], vel)                 # dr/dt = v
    np.testing.assert_allclose(f.reshape(-1, 6)[:, 3:], lj_forces(pos, s.box), rtol=1e-12)  # dv/dt = F/m


def test_partial_forces_any_coordinates_and_atom_counting(rng):
    s = small()
    x = s.sample_initial(2, rng)
    full = s.forces(x)
    s.counter.reset()
    atoms = np.stack([rng.choice(s.n_atoms, 50, replace=False) for _ in range(2)])
    idx = s.unit_coords(atoms)
    assert idx.shape == (2, 300)
    out = s.partial_forces(x, idx)
    np.testing.assert_allclose(out, np.take_along_axis(full, idx, 1), rtol=1e-12, atol=1e-12)
    assert s.counter.labels == 2 * 50  # k / 6 atoms per row
    # shuffled coordinates, and velocity-only coordinates
    perm = rng.permutation(idx.shape[1])
    np.testing.assert_allclose(s.partial_forces(x, idx[:, perm]), np.take_along_axis(full, idx[:, perm], 1),
                               rtol=1e-12, atol=1e-12)
    vel_only = np.array([[0, 1, 2], [6, 7, 8]])  # dr/dt = v: no force call
    np.testing.assert_array_equal(s.partial_forces(x, vel_only), np.take_along_axis(full, vel_only, 1))


def test_partial_forces_of_float32_configurations_in_blocks(rng, monkeypatch):
    """Stored float32 configurations are upcast a few rows at a time: the forces are those of
    the upcast configuration (bit for bit its partial forces; the full ones to rounding)."""
    import macrodyn.systems.base as base

    s = small()
    x32 = (s.sample_initial(5, rng)).astype(np.float32)
    atoms = np.stack([rng.choice(s.n_atoms, 20, replace=False) for _ in range(5)])
    idx = s.unit_coords(atoms)
    full = np.take_along_axis(s.forces(x32.astype(np.float64)), idx, 1)
    whole = s.partial_forces(x32.astype(np.float64), idx)
    monkeypatch.setattr(base, "PARTIAL_BLOCK_BYTES", 2 * 8 * s.n_coords)  # 2 rows per block: 3 blocks
    out = s.partial_forces(x32, idx)
    np.testing.assert_array_equal(out, whole)
    np.testing.assert_allclose(out, full, rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="shape"):
        s.partial_forces(x32[:, :-1], idx)


def test_partial_forces_only_evaluate_chosen_atoms(rng, monkeypatch):
    """The kernel is asked for the chosen atoms only, never for all."""
    import macrodyn.systems.md as md

    s = small()
    x = s.sample_initial(1, rng)
    calls = []

    def spy(positions, box, atoms=None, cutoff=2.5):
        calls.append(None if atoms is None else np.asarray(atoms).copy())
        return lj_forces(positions, box, atoms, cutoff)

    monkeypatch.setattr(md, "lj_forces", spy)
    s.partial_forces(x, s.unit_coords(np.array([[7, 3, 7 + 1]])))
    assert len(calls) == 1 and sorted(calls[0].tolist()) == [3, 7, 8]


def test_initial_data_family(rng):
    s = small(t0_range=(0.5, 1.5), relax_steps=200)  # the default minimisation
    x = s.sample_initial(3, rng)
    pos, vel = split_state(x)
    assert pos.min() >= 0 and pos.max() < s.box
    np.testing.assert_allclose(vel.sum(axis=1), 0.0, atol=1e-10)  # zero total momentum
    t = Temperature(s.n_atoms)(torch.from_numpy(x)).numpy()[:, 0]
    assert np.all((t >= 0.5) & (t <= 1.5)) and len(np.unique(t)) == 3
    for p in pos:  # the minimisation removed the overlaps of random placement
        d = p[:, None] - p[None]
        d -= s.box * np.round(d / s.box)
        r = np.sqrt((d**2).sum(-1)) + np.eye(len(p)) * 10
        assert r.min() > 0.75
    assert gaussian_velocities(10, 2.0, rng).shape == (10, 3)


def test_placement_seed_shares_the_start(rng):
    fresh = small(relax_steps=20)
    a, b = split_state(fresh.sample_initial(2, rng))[0]
    assert np.abs(a - b).max() > 1.0  # independent placements by default
    shared = small(relax_steps=20, placement_seed=7)
    x1 = shared.sample_initial(2, np.random.default_rng(1))
    x2 = small(relax_steps=20, placement_seed=7).sample_initial(1, np.random.default_rng(2))
    (p1, p2), (v1, v2) = split_state(x1)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(p1, split_state(x2)[0][0])  # same seed, same start, any rng
    assert np.abs(v1 - v2).max() > 0.1  # only the velocities differ


def test_velocity_seed_shares_the_pattern_scaled_to_t0():
    s = small(relax_steps=0, velocity_seed=3)
    _, (v1, v2) = split_state(s.sample_initial(2, np.random.default_rng(1)))
    t1, t2 = (np.sum(v * v) / (3 * (len(v) - 1)) for v in (v1, v2))
    assert abs(t1 - t2) > 1e-3  # T0 still drawn per run ...
    np.testing.assert_allclose(v1 / np.sqrt(t1), v2 / np.sqrt(t2), rtol=1e-12)  # ... same pattern
    np.testing.assert_allclose(v1.sum(0), 0.0, atol=1e-12)


def test_velocity_verlet_conserves_energy(rng):
    """NVE: the shifted energy (the one whose gradient the truncated forces are) is conserved to O(dt²)."""
    s = LennardJones(n_atoms=256, engine="verlet", relax_steps=100)
    x0 = s.sample_initial(1, rng)
    pos0, vel0 = split_state(x0[0])

    def energy(r, v):
        return lj_energy(r, s.box, shift=True) + 0.5 * np.sum(v * v)

    drift = {}
    for dt in (0.002, 0.001):
        r, v = velocity_verlet(lambda p: lj_forces(p, s.box), pos0, vel0, 1.0, dt, round(0.4 / dt), round(0.04 / dt))
        e = np.array([energy(a, b) for a, b in zip(r, v)])
        drift[dt] = np.abs(e - e[0]).max() / s.n_atoms
        # total momentum stays zero
        np.testing.assert_allclose(v[-1].sum(0), 0.0, atol=1e-9)
    assert drift[0.001] < 1e-4
    assert drift[0.002] / drift[0.001] > 2.5  # second order in dt


def test_trajectories_unwrapped_and_counted(rng):
    s = small()
    x0 = s.sample_initial(2, rng)
    s.counter.reset()
    traj = s.trajectories(x0, 200, save_every=50, progress=False)
    assert traj.shape == (2, 5, s.n_coords)
    np.testing.assert_array_equal(traj[:, 0], x0)
    pos = split_state(traj)[0]
    assert np.abs(np.diff(pos, axis=1)).max() < 1.0  # no jumps by a box length
    assert s.counter.simulation == 200 * 2 * s.n_atoms and s.counter.labels == 0
    with pytest.raises(InputError, match="multiple"):
        s.trajectories(x0, 10, save_every=3, progress=False)


def test_default_observable_is_temperature():
    obs = small().observable()
    assert isinstance(obs, Temperature) and obs.dim == 1 and obs.n_atoms == 500
