"""ASE adapter: carve-out partial forces equal the full periodic forces (EMT, LennardJones)."""
import itertools

import numpy as np
import pytest
import torch

pytest.importorskip("ase")
from ase import Atoms, units  # noqa: E402
from ase.build import bulk, molecule  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.calculators.lj import LennardJones as ASELJ  # noqa: E402

from macrodyn.errors import InputError  # noqa: E402
from macrodyn.observables import Temperature  # noqa: E402
from macrodyn.systems import ASESystem  # noqa: E402
from macrodyn.systems.ase_adapter import carve_out  # noqa: E402
from macrodyn.systems.md import join_state, split_state  # noqa: E402

from .battery import SystemBattery  # noqa: E402


def emt_range(atoms):
    """EMT's force range: twice its neighbour-list cutoff (many-body: neighbours of neighbours)."""
    calc = EMT()
    calc.initialize(atoms)
    return 2 * calc.rc_list


def state(system, positions, rng):
    return join_state(positions, rng.standard_normal(positions.shape))[None]


def check_partial(system, x, atoms):
    full = system.forces(x)
    idx = system.unit_coords(atoms[None])
    part = system.partial_forces(x, idx)
    np.testing.assert_allclose(part, np.take_along_axis(full, idx, 1), rtol=1e-10, atol=1e-12)
    return full, part


@pytest.mark.parametrize("reps", [(3, 3, 3), (6, 6, 6)])  # range > box / 2 (many images), range < box / 2
def test_emt_partial_equals_full(rng, reps):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * reps
    atoms.rattle(0.08, seed=3)
    s = ASESystem(EMT(), atoms, interaction_range=emt_range(atoms))
    pos = atoms.positions + rng.integers(-1, 2, size=(len(atoms), 3)) @ atoms.cell.array  # any image
    x = state(s, pos, rng)
    full, _ = check_partial(s, x, rng.choice(len(atoms), 3, replace=False))
    # the full forces are ASE's own periodic EMT forces (divided by the mass)
    ref = atoms.copy()
    ref.calc = EMT()
    np.testing.assert_allclose(split_state(full[0])[1], ref.get_forces() / atoms.get_masses()[:, None],
                               rtol=1e-10, atol=1e-12)


def test_emt_too_small_range_is_wrong(rng):
    """Sanity check that the test above is sensitive: one cutoff is not enough for EMT."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (6, 6, 6)
    atoms.rattle(0.08, seed=3)
    s = ASESystem(EMT(), atoms, interaction_range=0.5 * emt_range(atoms))
    x = state(s, atoms.positions, rng)
    idx = s.unit_coords(np.array([[5]]))
    assert np.abs(s.partial_forces(x, idx) - np.take_along_axis(s.forces(x), idx, 1)).max() > 1e-6


def test_lennard_jones_partial_equals_full(rng):
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (4, 4, 4)
    atoms.rattle(0.1, seed=4)
    calc = ASELJ(sigma=3.4, epsilon=0.0104, rc=8.5)
    s = ASESystem(calc, atoms, interaction_range=8.5)
    x = state(s, atoms.positions, rng)
    check_partial(s, x, rng.choice(len(atoms), 10, replace=False))


def test_triclinic_and_non_periodic(rng):
    prim = bulk("Cu", "fcc", a=3.61) * (5, 5, 5)  # primitive (triclinic) cell
    prim.rattle(0.05, seed=5)
    s = ASESystem(EMT(), prim, interaction_range=emt_range(prim))
    check_partial(s, state(s, prim.positions, rng), rng.choice(len(prim), 2, replace=False))
    slab = bulk("Cu", "fcc", a=3.61, cubic=True) * (5, 5, 3)
    slab.pbc = (True, True, False)
    slab.rattle(0.05, seed=6)
    s = ASESystem(EMT(), slab, interaction_range=emt_range(slab))
    check_partial(s, state(s, slab.positions, rng), rng.choice(len(slab), 2, replace=False))
    mol = molecule("CH3CH2OH")
    s = ASESystem(EMT(), mol, interaction_range=8.0)
    check_partial(s, state(s, mol.positions, rng), np.array([0, 4]))


def test_carve_out_finds_exactly_the_images_in_range(rng):
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 3.5, 0.0], [0.5, 0.3, 3.8]])
    pos = rng.uniform(0, 1, (6, 3)) @ cell + rng.integers(-2, 3, (6, 3)) @ cell
    centres, radius = np.array([4, 1]), 5.0
    js, shifts = carve_out(pos, cell, (True, True, True), centres, radius)
    np.testing.assert_array_equal(js[:2], centres)
    np.testing.assert_array_equal(shifts[:2], 0)
    got = {(int(j), *map(int, s)) for j, s in zip(js, shifts)}
    assert len(got) == len(js)  # no duplicates
    expected = set()
    for j, s in itertools.product(range(6), itertools.product(range(-6, 7), repeat=3)):
        p = pos[j] + np.array(s) @ cell
        if min(np.linalg.norm(p - pos[c]) for c in centres) < radius:
            expected.add((j, *s))
    assert got == expected


def test_sampling_trajectories_and_observable(rng):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    s = ASESystem(EMT(), atoms, interaction_range=emt_range(atoms), temperature_K=300.0, rattle=0.02)
    x0 = s.sample_initial(2, rng)
    assert x0.shape == (2, 6 * 32) and s.coords_per_unit == 6 and s.dt == pytest.approx(units.fs)
    pos, vel = split_state(x0)
    np.testing.assert_allclose((vel * atoms.get_masses()[:, None]).sum(axis=1), 0.0, atol=1e-12)
    obs = s.observable()
    assert isinstance(obs, Temperature)
    t = obs(torch.from_numpy(x0)).numpy()
    assert np.all((t > 100) & (t < 600))  # kelvin, a 32-atom sample of 300 K
    traj = s.trajectories(x0[:1], 20, save_every=10, progress=False)
    assert traj.shape == (1, 3, 6 * 32)
    # energy conserved by velocity Verlet at 1 fs
    energies = []
    for k in range(3):
        p, v = split_state(traj[0, k])
        a = atoms.copy()
        a.positions = p
        a.calc = EMT()
        energies.append(a.get_potential_energy() + 0.5 * np.sum(atoms.get_masses()[:, None] * v * v))
    assert np.ptp(energies) < 1e-3 * len(atoms)


def test_bad_arguments():
    atoms = bulk("Cu", cubic=True)
    with pytest.raises(InputError, match="interaction_range"):
        ASESystem(EMT(), atoms, interaction_range=0.0)
    with pytest.raises(InputError, match="cell"):
        ASESystem(EMT(), Atoms("Cu2", positions=[[0, 0, 0], [2, 0, 0]], pbc=True), interaction_range=5.0)


class TestASESystem(SystemBattery):
    batch = 2

    def make_system(self):
        atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (3, 3, 3)
        return ASESystem(ASELJ(sigma=3.4, epsilon=0.0104, rc=7.0), atoms, interaction_range=7.0, rattle=0.05)


def test_missing_ase_names_the_install(monkeypatch):
    """Without ASE importable, building the adapter says what to install (no bare ImportError)."""
    import builtins

    from macrodyn.errors import InputError
    from macrodyn.systems.ase_adapter import ASESystem

    real = builtins.__import__

    def no_ase(name, *a, **kw):
        if name == "ase" or name.startswith("ase."):
            raise ImportError("No module named 'ase'")
        return real(name, *a, **kw)

    atoms = bulk("Cu", cubic=True)
    monkeypatch.setattr(builtins, "__import__", no_ase)
    with pytest.raises(InputError, match="pip install"):
        ASESystem(EMT(), atoms, interaction_range=10.0)
