"""The partial loss is an unbiased estimate of L_x / N; L_x relates to L_z as docs/method.md says."""
import numpy as np
import pytest
import torch

from macrodyn import keys as K
from macrodyn.closure import ClosureAutoencoder
from macrodyn.dynamics import OnsagerNet, StandardizedField
from macrodyn.observables import BlockMeans
from macrodyn.systems import PredatorPrey
from macrodyn.training import LatentLoss, PartialForceLoss, compute_features, label, make_loss, sample_units


@pytest.fixture
def setup(rng):
    s = PredatorPrey(n=10)
    x = s.sample_initial(6, rng) + 0.05 * rng.standard_normal((6, 20))
    ae = ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(8,))
    field = StandardizedField(OnsagerNet(4, (8,), (8, 8)), 4).double()
    return s, x, ae, field


def _feats(s, x, ae, k, rng):
    idx = sample_units(len(x), s.n_units, k, rng)
    f = label(s, x, idx)
    return {key: v.double() for key, v in compute_features(ae, x, idx, f).items()}


def test_partial_loss_mean_over_subsets_is_full_loss_over_N(setup, rng):
    s, x, ae, field = setup
    with torch.no_grad():
        full = PartialForceLoss(1.0)(field, _feats(s, x, ae, 20, rng)).item()  # = L_x / N
        draws = [PartialForceLoss(0.15)(field, _feats(s, x, ae, 3, rng)).item() for _ in range(3000)]
    assert abs(np.mean(draws) - full) < 4 * np.std(draws) / np.sqrt(len(draws))
    assert abs(np.mean(draws) - full) / full < 0.03


@pytest.mark.parametrize("weighted", [False, True])
def test_compact_form_same_loss_and_gradient(setup, rng, weighted):
    """PartialForceLoss.compact (QR of W^½ P) gives the loss and parameter gradients of the k-row form."""
    s, x, ae, field = setup
    k = 7  # > d = 4, so compact() applies
    feats = _feats(s, x, ae, k, rng)
    if weighted:
        feats[K.WEIGHTS] = torch.as_tensor(rng.uniform(0.2, 3.0, feats[K.WEIGHTS].shape))
    loss = PartialForceLoss(k / 20)
    data = {key: feats[key] for key in loss.needs}
    comp = loss.compact(data)
    assert comp[K.QR_R].shape == (len(x), 4, 4) and K.PINV_ROWS not in comp
    grads = []
    for d_ in (data, comp):
        field.zero_grad()
        value = loss(field, d_)
        value.backward()
        grads.append((value.detach(), [p.grad.clone() for p in field.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b)
    few = {key: v[:, :3] if v.dim() > 1 else v for key, v in data.items() if key != K.Z}
    few[K.Z] = data[K.Z]
    assert loss.compact(few) is few  # k <= d: nothing to gain, unchanged


def test_Lx_decomposition_into_Lz_term_and_constant(setup, rng):
    """||J⁺g − f||² = ||J⁺(g − Jf)||² + ||(I − J⁺J)f||²."""
    s, x, ae, field = setup
    feats = _feats(s, x, ae, 20, rng)
    with torch.no_grad():
        g = field(feats[K.Z])
        P = feats[K.PINV_ROWS]  # all rows: J⁺ (idx sorted = identity order)
        f = feats[K.FORCES]
        lhs = ((P @ g.unsqueeze(-1)).squeeze(-1) - f).pow(2).sum(-1)
        rhs1 = (P @ (g - feats[K.JF]).unsqueeze(-1)).squeeze(-1).pow(2).sum(-1)
        proj = f - (P @ feats[K.JF].unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(lhs, rhs1 + proj.pow(2).sum(-1))


def test_estimators_exactly_unbiased_over_all_subsets(setup):
    """Averaged over every 2-subset of 20 coordinates, the estimators equal their targets exactly."""
    from itertools import combinations

    s, x, ae, field = setup
    subsets = np.array(list(combinations(range(20), 2)))  # 190 subsets
    xs = np.repeat(x[:1], len(subsets), axis=0)
    f = label(s, xs, subsets)
    feats = {k: v.double() for k, v in compute_features(ae, xs, subsets, f, dtype=torch.float64).items()}
    exact = {k: v.double() for k, v in compute_features(ae, x[:1], np.arange(20)[None], label(s, x[:1], np.arange(20)[None]),
                                                         dtype=torch.float64).items()}
    torch.testing.assert_close(feats[K.JF_ESTIMATE].mean(0), exact[K.JF][0])
    with torch.no_grad():
        v = field(feats[K.Z])
        r = (feats[K.PINV_ROWS] @ v.unsqueeze(-1)).squeeze(-1) - feats[K.FORCES]
        torch.testing.assert_close(r.pow(2).mean(), PartialForceLoss(1.0)(field, exact))


def test_latent_loss_zero_for_exact_field(setup, rng):
    s, x, ae, _ = setup
    feats = _feats(s, x, ae, 20, rng)

    class Exact(torch.nn.Module):
        v_std = torch.ones(4, dtype=torch.float64)

        def forward(self, z):
            return feats[K.JF]

    assert LatentLoss()(Exact(), feats).item() == 0.0


def test_make_loss_names_and_errors():
    assert make_loss("L_z").name == "L_z"
    assert make_loss("L_x").name == "L_x"
    assert make_loss("L_xp", 0.2).name == "L_xp"
    with pytest.raises(ValueError):
        make_loss("L_q")
    with pytest.raises(ValueError, match="p must be"):
        PartialForceLoss(0.0)


def test_sample_units_distinct_and_uniform(rng):
    u = sample_units(20000, 10, 3, rng)
    assert all(len(set(r)) == 3 for r in u[:100])
    counts = np.bincount(u.ravel(), minlength=10) / u.size
    np.testing.assert_allclose(counts, 0.1, atol=0.005)


@pytest.mark.parametrize("n,k", [(51200, 50), (800, 50), (60, 50), (100, 99), (10, 1)])
def test_sample_units_are_the_k_smallest_keys(n, k):
    """The cutoff search returns the subsets of a full argpartition of the same keys (the
    definition), including rows where too few keys pass the cutoff (k near n)."""
    got = sample_units(200, n, k, np.random.default_rng(3))
    keys = np.random.default_rng(3).random((200, n))
    np.testing.assert_array_equal(got, np.sort(np.argsort(keys, axis=1)[:, :k], axis=1))


def test_latent_features_by_jvp_match_jacobian_and_finite_differences(setup, rng):
    """rows=False (L_z: one forward-mode J·f, no J⁺ rows) gives the same z and J f as the
    full-Jacobian path, with the labels in any coordinate order, and J f matches a central
    difference of the encoder along f."""
    s, x, ae, _ = setup
    idx = np.stack([rng.permutation(20) for _ in range(len(x))])  # every coordinate, shuffled
    f = label(s, x, idx)
    ref = compute_features(ae, x, np.sort(idx, 1), np.take_along_axis(f, np.argsort(idx, 1), 1), dtype=torch.float64)
    lz = compute_features(ae, x, idx, f, rows=False, dtype=torch.float64, batch=4)
    assert set(lz) == {K.Z, K.JF, K.JF_ESTIMATE}
    torch.testing.assert_close(lz[K.Z], ref[K.Z])
    torch.testing.assert_close(lz[K.JF], ref[K.JF])
    full_f = s.forces(x)
    h = 1e-5
    with torch.no_grad():
        ae64 = ae.double()
        fd = (ae64(torch.as_tensor(x + h * full_f)) - ae64(torch.as_tensor(x - h * full_f))) / (2 * h)
    torch.testing.assert_close(lz[K.JF], fd, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="every coordinate"):
        compute_features(ae, x, idx[:, :5], f[:, :5], rows=False)
