"""Lennard–Jones kernel: analytic pair, −∇E, partial = full, cell lists = all pairs, images."""
import itertools

import numpy as np
import pytest

from macrodyn.errors import InputError
from macrodyn.systems.lj import cells_per_side, lj_energy, lj_forces, lj_pair_energy, lj_pair_force


def perturbed_lattice(n_side, box, rng, noise=0.08):
    """Simple-cubic lattice of n_side³ atoms filling the box, jittered (no overlaps)."""
    g = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return (g + 0.5) * (box / n_side) + noise * rng.standard_normal(g.shape)


def brute_force(pos, box, cutoff=2.5, nimg=2):
    """Independent reference: explicit sum over pairs and images |n_a| ≤ nimg (NumPy)."""
    f = np.zeros_like(pos)
    shifts = np.array(list(itertools.product(range(-nimg, nimg + 1), repeat=3)), float) * box
    for i in range(len(pos)):
        d = (pos[i] - pos)[:, None, :] + shifts[None]  # (n, images, 3)
        r2 = np.sum(d * d, -1)
        r2[i, nimg * (2 * nimg + 1) ** 2 + nimg * (2 * nimg + 1) + nimg] = np.inf  # self, zero shift
        mask = r2 < cutoff**2
        s6 = np.where(mask, 1.0 / np.where(mask, r2, 1.0) ** 3, 0.0)
        g = np.where(mask, 24 * (2 * s6 * s6 - s6) / np.where(mask, r2, 1.0), 0.0)
        f[i] = np.sum(g[..., None] * d, axis=(0, 1))
    return f


def test_pair_minimum_at_two_to_the_sixth():
    rmin = 2 ** (1 / 6)
    assert lj_pair_energy(rmin) == pytest.approx(-1.0, abs=1e-14)
    assert lj_pair_force(rmin) == pytest.approx(0.0, abs=1e-13)
    pos = np.array([[1.0, 1.0, 1.0], [1.0 + rmin, 1.0, 1.0]])
    np.testing.assert_allclose(lj_forces(pos, box=10.0), 0.0, atol=1e-12)
    assert lj_energy(pos, box=10.0) == pytest.approx(-1.0, abs=1e-14)
    # closer: repulsive (atom 0 pushed to −x); farther: attractive
    f = lj_forces(np.array([[1.0, 1, 1], [2.0, 1, 1]]), box=10.0)
    assert f[0, 0] == pytest.approx(-24.0) and f[1, 0] == pytest.approx(24.0)
    assert lj_forces(np.array([[1.0, 1, 1], [2.4, 1, 1]]), box=10.0)[0, 0] > 0
    # beyond the cutoff: nothing (plain truncation)
    np.testing.assert_array_equal(lj_forces(np.array([[1.0, 1, 1], [3.51, 1, 1]]), box=10.0), 0.0)


def test_pair_across_periodic_boundary():
    rmin = 2 ** (1 / 6)
    pos = np.array([[0.1, 5.0, 5.0], [0.1 - 1.0, 5.0, 5.0]])  # second atom outside, distance 1
    f = lj_forces(pos, box=10.0)
    assert f[0, 0] == pytest.approx(24.0) and f[1, 0] == pytest.approx(-24.0)
    wrapped = pos.copy()
    wrapped[1, 0] += 10.0
    np.testing.assert_allclose(lj_forces(wrapped, box=10.0), f, rtol=1e-12)
    assert lj_energy(np.array([[0.0, 0, 0], [10.0 - rmin, 0, 0]]), box=10.0) == pytest.approx(-1.0)


@pytest.mark.parametrize("n_side,box", [(5, 5.4), (8, 8.6)])  # all-pairs path, cell path (3 cells)
def test_forces_are_minus_energy_gradient(rng, n_side, box):
    pos = perturbed_lattice(n_side, box, rng)
    f = lj_forces(pos, box)
    h = 1e-6
    for a, d in zip(rng.choice(len(pos), 6, replace=False), rng.integers(0, 3, 6)):
        p, m = pos.copy(), pos.copy()
        p[a, d] += h
        m[a, d] -= h
        fd = -(lj_energy(p, box) - lj_energy(m, box)) / (2 * h)
        assert f[a, d] == pytest.approx(fd, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("n,box", [(6 ** 3, 6.5), (10 ** 3, 10.77), (12 ** 3, 12.93)])
def test_partial_equals_full_on_chosen_atoms(rng, n, box):
    pos = perturbed_lattice(round(n ** (1 / 3)), box, rng)
    full = lj_forces(pos, box)
    atoms = rng.choice(len(pos), 37, replace=True)  # repeats and any order are allowed
    np.testing.assert_allclose(lj_forces(pos, box, atoms), full[atoms], rtol=1e-12, atol=1e-10)
    assert lj_forces(pos, box, np.array([], dtype=int)).shape == (0, 3)


@pytest.mark.parametrize("n_side,box,cutoff", [(8, 8.0, 2.5), (9, 10.3, 2.5), (10, 11.0, 3.0), (12, 13.0, 2.5)])
def test_cell_lists_equal_all_pairs(rng, n_side, box, cutoff):
    assert cells_per_side(box, cutoff) >= 3
    pos = perturbed_lattice(n_side, box, rng, noise=0.15)
    ref = lj_forces(pos, box, cutoff=cutoff, method="allpairs")
    np.testing.assert_allclose(lj_forces(pos, box, cutoff=cutoff, method="cells"), ref, rtol=1e-10, atol=1e-9)
    atoms = rng.choice(len(pos), 20, replace=False)
    np.testing.assert_allclose(lj_forces(pos, box, atoms, cutoff=cutoff, method="cells"), ref[atoms],
                               rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(ref.sum(axis=0), 0.0, atol=1e-13 * np.abs(ref).sum())  # Newton's third law


def test_all_pairs_matches_independent_brute_force(rng):
    pos = perturbed_lattice(4, 4.0, rng)  # box < 2 cutoff: an atom feels several images of a neighbour
    np.testing.assert_allclose(lj_forces(pos, 4.0), brute_force(pos, 4.0), rtol=1e-10, atol=1e-10)
    pos = perturbed_lattice(8, 8.6, rng)  # cell path against the same reference
    np.testing.assert_allclose(lj_forces(pos, 8.6), brute_force(pos, 8.6, nimg=1), rtol=1e-10, atol=1e-9)


def test_single_atom_feels_its_own_images():
    """In a box smaller than the cutoff an atom interacts with its periodic copies (zero net force by symmetry)."""
    pos = np.array([[0.3, 0.2, 0.1]])
    assert lj_energy(pos, 1.2) == pytest.approx(0.5 * sum(
        lj_pair_energy(1.2 * np.linalg.norm(n)) for n in itertools.product(range(-3, 4), repeat=3)
        if 0 < 1.2 * np.linalg.norm(n) < 2.5))
    np.testing.assert_allclose(lj_forces(pos, 1.2), 0.0, atol=1e-9)


@pytest.mark.parametrize("n_side,box", [(5, 5.4), (10, 10.77)])
def test_positions_outside_box_give_same_forces(rng, n_side, box):
    pos = perturbed_lattice(n_side, box, rng)
    ref = lj_forces(pos, box)
    moved = pos + box * rng.integers(-3, 4, size=pos.shape)
    np.testing.assert_allclose(lj_forces(moved, box), ref, rtol=1e-9, atol=1e-9)
    atoms = rng.choice(len(pos), 10, replace=False)
    np.testing.assert_allclose(lj_forces(moved, box, atoms), ref[atoms], rtol=1e-9, atol=1e-9)
    assert lj_energy(moved, box) == pytest.approx(lj_energy(pos, box), rel=1e-10)


def test_upper_box_face_and_exact_multiples(rng):
    box = 9.0
    pos = perturbed_lattice(9, box, rng)
    pos[0] = [box, 0.0, -box]  # exactly on faces
    pos[1] = [np.nextafter(box, 0), 2 * box, 3.0]
    np.testing.assert_allclose(lj_forces(pos, box), lj_forces(pos, box, method="allpairs"), rtol=1e-10, atol=1e-9)


def test_errors_name_the_problem(rng):
    pos = perturbed_lattice(8, 8.6, rng)
    with pytest.raises(InputError, match=r"shape \(n_atoms, 3\)"):
        lj_forces(pos[:, :2], 8.6)
    with pytest.raises(InputError, match="out of range"):
        lj_forces(pos, 8.6, atoms=np.array([len(pos)]))
    with pytest.raises(InputError, match="integer"):
        lj_forces(pos, 8.6, atoms=np.array([0.5]))
    with pytest.raises(InputError, match="box"):
        lj_forces(pos, -1.0)
    with pytest.raises(InputError, match="3·cutoff"):
        lj_forces(pos, 7.0, method="cells")
    bad = pos.copy()
    bad[3, 1] = np.nan
    for method in ("auto", "allpairs"):
        with pytest.raises(InputError, match="NaN"):
            lj_forces(bad, 8.6, method=method)
