import torch

from macrodyn.closure import ClosureAutoencoder, batch_jacobian, gram_condition_number, pinv_rows
from macrodyn.observables import BlockMeans


def _ae():
    return ClosureAutoencoder(BlockMeans(2), 40, 3, hidden=(16, 16)).double()


def test_jacobian_matches_finite_differences():
    ae = _ae()
    x = torch.rand(3, 40, dtype=torch.float64)
    J = ae.jacobian(x)
    assert J.shape == (3, 5, 40)
    h = 1e-6
    for i in (0, 17, 39):
        e = torch.zeros(40, dtype=torch.float64)
        e[i] = h
        fd = (ae(x + e) - ae(x - e)) / (2 * h)
        torch.testing.assert_close(J[:, :, i], fd, rtol=1e-6, atol=1e-8)


def test_given_observable_rows_are_block_means():
    J = _ae().jacobian(torch.rand(2, 40, dtype=torch.float64))
    expected = torch.zeros(2, 40, dtype=torch.float64)
    expected[0, :20] = 1 / 20
    expected[1, 20:] = 1 / 20
    torch.testing.assert_close(J[0, :2], expected)


def test_pinv_rows_equal_rows_of_pinv():
    J = torch.randn(4, 5, 60, dtype=torch.float64)
    idx = torch.stack([torch.randperm(60)[:7] for _ in range(4)])
    rows = pinv_rows(J, idx)
    full = torch.linalg.pinv(J)
    torch.testing.assert_close(rows, torch.gather(full, 1, idx.unsqueeze(-1).expand(-1, -1, 5)))
    torch.testing.assert_close(pinv_rows(J), full)
    # J J⁺ = I (right inverse)
    torch.testing.assert_close(J @ pinv_rows(J), torch.eye(5, dtype=torch.float64).expand(4, 5, 5))


def test_condition_number_matches_svd():
    J = torch.randn(3, 4, 30, dtype=torch.float64)
    s = torch.linalg.svdvals(J)
    torch.testing.assert_close(gram_condition_number(J), (s[:, 0] / s[:, -1]) ** 2)


def test_batch_jacobian_of_linear_map():
    A = torch.randn(3, 8, dtype=torch.float64)
    J = batch_jacobian(lambda x: x @ A.T, torch.randn(5, 8, dtype=torch.float64))
    torch.testing.assert_close(J, A.expand(5, 3, 8))


def test_decoder_roundtrip_shapes_and_bad_closure_dim():
    import pytest

    ae = _ae()
    assert ae.decode(ae(torch.rand(2, 40, dtype=torch.float64))).shape == (2, 40)
    with pytest.raises(ValueError, match="closure_dim"):
        ClosureAutoencoder(BlockMeans(2), 10, 8)


def _scaled_ae(closure_dim: int) -> ClosureAutoencoder:
    ae = _ae() if closure_dim == 3 else ClosureAutoencoder(BlockMeans(2), 40, 0, hidden=(16, 16)).double()
    ae.fit_scaling(torch.rand(50, 40, dtype=torch.float64) * 3 + 1, per_coordinate=True)  # x_std ≠ 1 matters
    return ae


def test_jacobian_products_equal_the_full_jacobian():
    """J Jᵀ, J_I and J c from the factored input layer equal those of the formed Jacobian."""
    gen = torch.Generator().manual_seed(3)
    for closure_dim in (3, 0):
        ae = _scaled_ae(closure_dim)
        x = torch.rand(4, 40, dtype=torch.float64, generator=gen) * 3 + 1
        idx = torch.stack([torch.randperm(40, generator=gen)[:7] for _ in range(4)])
        c = torch.randn(4, 40, dtype=torch.float64, generator=gen)
        gram, cols, jc = ae.jacobian_products(x, idx, c)
        J = batch_jacobian(ae, x)
        torch.testing.assert_close(gram, J @ J.transpose(1, 2), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(cols, torch.gather(J, 2, idx.unsqueeze(1).expand(-1, J.shape[1], -1)),
                                   rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(jc, (J @ c.unsqueeze(-1)).squeeze(-1), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(torch.linalg.solve(gram, cols).transpose(1, 2), pinv_rows(J, idx),
                                   rtol=1e-8, atol=1e-10)
        assert ae.jacobian_products(x, idx)[2] is None
        torch.testing.assert_close(ae.encode_and_products(x, idx, c)[0], ae(x), rtol=0, atol=0)
        if closure_dim:
            Jc = J[:, 2:]  # the closure's rows (the given observables come first)
            torch.testing.assert_close(ae.closure_gram(x), Jc @ Jc.transpose(1, 2), rtol=1e-10, atol=1e-12)


def _descriptor_closure():
    from macrodyn.closure.autoencoder import DescriptorClosure
    from macrodyn.observables import Temperature
    from macrodyn.systems.descriptors import PairDescriptors

    n = 64
    box = (n / 0.8) ** (1 / 3)
    ae = DescriptorClosure(Temperature(n), PairDescriptors(n, box, 1.9, n_basis=4), 6 * n, 3, hidden=(16, 16))
    gen = torch.Generator().manual_seed(7)
    x = torch.cat([torch.rand(5, n, 3, dtype=torch.float64, generator=gen) * box,
                   torch.randn(5, n, 3, dtype=torch.float64, generator=gen)], 2).reshape(5, -1)
    ae.fit_scaling(ae.inputs_of(x))
    return ae.double(), x, gen


def test_descriptor_closure_products_equal_its_full_jacobian():
    """The factored Jacobian (encoder · exact descriptor Jacobian) equals one formed by autograd."""
    ae, x, gen = _descriptor_closure()
    idx = torch.stack([torch.randperm(x.shape[1], generator=gen)[:9] for _ in range(len(x))])
    c = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    J = batch_jacobian(ae, x)  # reverse passes through the descriptors' autograd
    assert J.shape == (5, 4, x.shape[1])
    gram, cols, jc = ae.jacobian_products(x, idx, c)
    torch.testing.assert_close(gram, J @ J.transpose(1, 2), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(cols, torch.gather(J, 2, idx.unsqueeze(1).expand(-1, 4, -1)), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(jc, (J @ c.unsqueeze(-1)).squeeze(-1), rtol=1e-10, atol=1e-12)
    z, jv = ae.jvp(x, c)
    torch.testing.assert_close(z, ae(x))
    for got, want in zip(ae.encode_and_products(x, idx, c), (z, gram, cols, jc)):  # one pass over the descriptors
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(jv, jc, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ae.jacobian(x), J, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ae.closure_gram(x), J[:, 1:] @ J[:, 1:].transpose(1, 2), rtol=1e-10, atol=1e-12)
    h = 1e-6  # and against finite differences of the encoder itself
    e = torch.zeros_like(x)
    e[:, 20] = h
    torch.testing.assert_close(J[:, :, 20], (ae(x + e) - ae(x - e)) / (2 * h), rtol=1e-5, atol=1e-8)


def test_descriptor_closure_trains_with_the_condition_penalty():
    from macrodyn.training.closure import fit_closure

    ae, x, _ = _descriptor_closure()
    ae.float()
    hist = fit_closure(ae, x.float().repeat(8, 1), epochs=3, batch_size=8, lr=1e-3, weight_decay=0.0,
                       cond_weight=1e-3, closure_only=True, cond_batch=4, progress=False)
    assert all(map(torch.isfinite, map(torch.tensor, hist["loss"])))
    assert hist["kappa"][-1] >= 1.0
    assert ae.x_mean.shape == (12,) and ae.decode(ae(x.float())).shape == (5, 12)  # reconstructs descriptors


def test_descriptor_closure_features_of_l_z_and_l_x_agree():
    """With every coordinate labelled, L_z's forward-mode J f and L_x's factored J f are the same."""
    import copy

    import numpy as np

    from macrodyn import keys as K
    from macrodyn.training.features import compute_features

    ae, x, gen = _descriptor_closure()
    f = torch.randn(x.shape, dtype=torch.float64, generator=gen).numpy()
    idx = np.broadcast_to(np.arange(x.shape[1]), x.shape).copy()
    # each on its own copy: compute_features leaves the closure in float32 (its buffers rounded)
    lz = compute_features(copy.deepcopy(ae), x.numpy(), idx, f, rows=False, dtype=torch.float64)
    lx = compute_features(copy.deepcopy(ae), x.numpy(), idx, f, dtype=torch.float64)
    torch.testing.assert_close(lz[K.JF], lx[K.JF], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(lz[K.Z], lx[K.Z])
