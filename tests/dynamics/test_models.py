import torch

from macrodyn.dynamics import MLPField, OnsagerNet, StandardizedField


def test_onsager_dissipates_potential_without_forcing():
    """dV/dt = ∇V·g = −∇Vᵀ(M + αI)∇V ≤ 0 (W is antisymmetric, M is PSD)."""
    net = OnsagerNet(4, (16,), (8, 8), alpha=0.01, beta=0.1)
    z = torch.randn(256, 4, requires_grad=True)
    grad_v, = torch.autograd.grad(net.potential(z).sum(), z)
    with torch.no_grad():
        dvdt = (grad_v * net(z)).sum(-1)
    assert (dvdt <= 1e-6).all()
    assert (net.potential(z) >= 0).all()


def test_onsager_matches_explicit_matrices():
    """forward's matrix-vector form equals −(L Lᵀ + U − Uᵀ)∇V − α∇V built as dense matrices,
    and L, U are filled from the MLP output in order (L row by row, then U)."""
    torch.manual_seed(0)
    d = 5
    net = OnsagerNet(d, (16,), (8, 8), alpha=0.03).double()
    z = torch.randn(32, d, dtype=torch.float64, requires_grad=True)
    grad_v, = torch.autograd.grad(net.potential(z).sum(), z)
    L, U = net.operators(z)
    out = net.matrices(z)
    n_low = d * (d + 1) // 2
    low, up = torch.tril_indices(d, d), torch.triu_indices(d, d, 1)
    torch.testing.assert_close(L[:, low[0], low[1]], out[:, :n_low])
    torch.testing.assert_close(U[:, up[0], up[1]], out[:, n_low:])
    assert (L.triu(1) == 0).all() and (U.tril() == 0).all()
    M_W = L @ L.transpose(1, 2) + U - U.transpose(1, 2)
    want = -(M_W @ grad_v.unsqueeze(-1)).squeeze(-1) - 0.03 * grad_v
    torch.testing.assert_close(net(z.detach()), want.detach())


def test_onsager_trains_through_double_backward():
    net = OnsagerNet(3, (8,), (8, 8), forcing=True)
    z = torch.randn(16, 3)
    net(z).pow(2).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_models_shapes_under_no_grad():
    for net in (OnsagerNet(5), MLPField(5)):
        with torch.no_grad():
            assert net(torch.randn(7, 5)).shape == (7, 5)


def test_standardized_field_units():
    class Identity(torch.nn.Module):
        def forward(self, z):
            return z

    f = StandardizedField(Identity(), 2)
    f.set_stats([1.0, 2.0], [2.0, 4.0], [10.0, 0.0], [3.0, 1.0])
    torch.testing.assert_close(f(torch.tensor([[3.0, 6.0]])), torch.tensor([[13.0, 1.0]]))


def test_requ_activation_values_and_slope():
    """relu(x)² − relu(x − ½)²: 0 below 0, x² on [0, ½], x − ¼ beyond (slope 1)."""
    from macrodyn.nn import ReQU

    x = torch.tensor([-1.0, 0.0, 0.25, 0.5, 1.0, 3.0], requires_grad=True)
    y = ReQU()(x)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, 0.0, 0.0625, 0.25, 0.75, 2.75]))
    g, = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0, 1.0]))
