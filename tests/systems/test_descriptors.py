"""Pair descriptors: exact Jacobian, rates along the flow, invariances (systems/descriptors.py)."""
import numpy as np
import pytest
import torch

from macrodyn.errors import InputError
from macrodyn.systems.descriptors import PairDescriptors
from macrodyn.systems.lj import lj_energy, lj_forces
from macrodyn.systems.md import LennardJones


def _state(n=100, seed=0):
    gen = torch.Generator().manual_seed(seed)
    box = (n / 0.8) ** (1 / 3)
    r = torch.rand(n, 3, dtype=torch.float64, generator=gen) * box
    v = torch.randn(n, 3, dtype=torch.float64, generator=gen)
    return r, v, box


def _x(r, v):
    return torch.cat([r, v], 1).reshape(1, -1)


def _lattice(side=5, seed=0):
    """A jittered simple-cubic crystal at density 0.8: no pair close enough to make r⁻¹² explode."""
    gen = torch.Generator().manual_seed(seed)
    box = (side ** 3 / 0.8) ** (1 / 3)
    grid = torch.stack(torch.meshgrid(*[torch.arange(side, dtype=torch.float64)] * 3, indexing="ij"), -1)
    r = grid.reshape(-1, 3) * box / side + 0.05 * torch.randn(side ** 3, 3, dtype=torch.float64, generator=gen)
    return r, torch.randn(side ** 3, 3, dtype=torch.float64, generator=gen), box


@pytest.mark.parametrize("energy", [False, True])
def test_jacobian_matches_finite_differences(energy):
    r, v, box = _lattice() if energy else _state()
    d = PairDescriptors(len(r), box, 2.4, n_basis=6, energy=energy)
    x = _x(r, v)
    _, J = d.values_and_jacobian(x)
    eps = 1e-6
    for i in np.random.default_rng(1).choice(x.shape[1], 40, replace=False):
        e = torch.zeros_like(x)
        e[0, i] = eps
        fd = (d(x + e) - d(x - e))[0] / (2 * eps)
        torch.testing.assert_close(J[0, :, i], fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("energy", [False, True])
def test_rates_are_time_derivatives_of_the_counts(energy):
    """Along free flight r(t) = r + v t: h_k = dg_k/dt and c_k = d²g_k/dt² (no forces act)."""
    r, v, box = _lattice(seed=2) if energy else _state(seed=2)
    d = PairDescriptors(len(r), box, 2.4, n_basis=6, energy=energy)
    k = d.n_funcs
    eps = 1e-5 if energy else 1e-4  # a pair crosses r_c within ±1e-4 here, where the energy's u'' jumps
    g = [d(_x(r + s * eps * v, v))[0, :k] for s in (-1, 0, 1)]
    vals = d(_x(r, v))[0]
    torch.testing.assert_close(vals[k:2 * k], (g[2] - g[0]) / (2 * eps), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(vals[2 * k:], (g[2] - 2 * g[1] + g[0]) / eps ** 2, rtol=1e-4, atol=1e-5)


def test_energy_descriptors_are_the_potential_energy_and_its_power():
    """g_u = E/n with E the shifted-truncation LJ energy (an O(n²) reference), and h_u = dE/dt / n
    = −Σ F·v / n with the forces of the system's own kernel."""
    r, v, box = _lattice(seed=6)
    n = len(r)
    d = PairDescriptors(n, box, 2.5, n_basis=4, energy=True)
    vals = d(_x(r, v))[0]
    assert d.dim == 15 and d.names[4] == "gu" and d.names[-1] == "cu"
    assert vals[4].item() == pytest.approx(lj_energy(r.numpy(), box, 2.5, shift=True) / n, rel=1e-10)
    power = -(lj_forces(r.numpy(), box, cutoff=2.5) * v.numpy()).sum() / n
    assert vals[9].item() == pytest.approx(power, rel=1e-9)


def test_invariant_under_permutation_translation_and_periodic_images():
    r, v, box = _state(seed=3)
    d = PairDescriptors(len(r), box, 2.4)
    ref = d(_x(r, v))
    p = torch.randperm(len(r), generator=torch.Generator().manual_seed(0))
    shifted = r + torch.tensor([0.3, -1.7, 2.2], dtype=torch.float64)
    images = r + box * torch.randint(-2, 3, r.shape, generator=torch.Generator().manual_seed(1))
    for x in (_x(r[p], v[p]), _x(shifted, v), _x(images, v), _x(r, v + 0.5)):  # + a uniform drift
        torch.testing.assert_close(d(x), ref, rtol=1e-10, atol=1e-12)


def test_counts_match_a_brute_force_pair_sum():
    r, v, box = _state(n=60, seed=4)
    d = PairDescriptors(len(r), box, 1.9, n_basis=5)
    dr = r[None] - r[:, None]
    dr = dr - box * torch.round(dr / box)
    dist = dr.norm(dim=-1)[torch.triu_indices(len(r), len(r), 1).unbind()]
    dist = dist[dist < 1.9]
    b = torch.exp(-((dist[:, None] - torch.as_tensor(d.centres)) / d.width) ** 2) * 0.5 * (
        torch.cos(torch.pi * dist[:, None] / 1.9) + 1)
    torch.testing.assert_close(d(_x(r, v))[0, :5], b.sum(0) / len(r), rtol=1e-10, atol=1e-12)
    assert d.names[:2] == ("g0", "g1") and d.names[-1] == "c4"


def test_autograd_uses_the_exact_jacobian_and_shapes_are_checked():
    r, v, box = _state(seed=5)
    d = PairDescriptors(len(r), box, 2.4)
    x = _x(r, v).requires_grad_(True)
    (g,) = torch.autograd.grad(d(x)[0, 3], x)
    torch.testing.assert_close(g[0], d.jacobian(x.detach())[0, 3])
    with pytest.raises(InputError, match="configurations must be"):
        d(torch.zeros(2, 7, dtype=torch.float64))
    r[1] = r[0]
    with pytest.raises(InputError, match="atoms 0 and 1 coincide"):
        d(_x(r, v))
    with pytest.raises(ValueError, match="cutoff"):
        PairDescriptors(10, box=3.0, cutoff=2.5)


def test_lennard_jones_offers_its_descriptors():
    s = LennardJones(n_atoms=108, density=0.8)
    d = s.descriptors(4)
    assert (d.n_atoms, d.box, d.cutoff, d.dim) == (108, s.box, s.cutoff, 12)
    assert s.descriptors(4, energy=True).dim == 15
