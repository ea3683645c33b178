"""GFINN: the GENERIC degeneracy conditions hold exactly, for any parameters."""
import pytest
import torch

from macrodyn.dynamics import GFINN, StandardizedField


def _grads(net, z):
    z = z.clone().requires_grad_(True)
    grad_e, = torch.autograd.grad(net.energy(z).sum(), z)
    grad_s, = torch.autograd.grad(net.entropy(z).sum(), z)
    return grad_e, grad_s


@pytest.mark.parametrize("dim,rank", [(2, None), (5, 3), (32, 32)])
def test_energy_conserved_entropy_non_decreasing(dim, rank):
    """⟨∇E, g⟩ = 0 and ⟨∇S, g⟩ = |Bᵀ P_E ∇S|² ≥ 0 at random z (float64, random init)."""
    torch.manual_seed(0)
    net = GFINN(dim, (32, 32), rank=rank).double()
    z = 2 * torch.randn(512, dim, dtype=torch.float64)
    grad_e, grad_s = _grads(net, z)
    with torch.no_grad():
        g = net(z)
    dedt = (grad_e * g).sum(-1)
    dsdt = (grad_s * g).sum(-1)
    scale = grad_e.norm(dim=-1) * g.norm(dim=-1)
    assert (dedt.abs() <= 1e-10 * scale + 1e-14).all()
    assert (dsdt >= -1e-12).all()
    assert (dsdt > 0).float().mean() > 0.9  # not trivially zero: dissipation is present


def test_reversible_and_irreversible_parts_separately():
    """L∇S = 0 and M∇E = 0: check by feeding ∇S to L and ∇E to M via the matrices."""
    torch.manual_seed(1)
    d = 6
    net = GFINN(d, (16,)).double()
    z = torch.randn(64, d, dtype=torch.float64)
    grad_e, grad_s = _grads(net, z)
    out = net.matrices(z).detach()
    U = out[:, : d * d].view(-1, d, d)
    B = out[:, d * d:].view(-1, d, d)
    eye = torch.eye(d, dtype=torch.float64)
    P_S = eye - grad_s.unsqueeze(-1) * grad_s.unsqueeze(-2) / (grad_s * grad_s).sum(-1)[:, None, None]
    P_E = eye - grad_e.unsqueeze(-1) * grad_e.unsqueeze(-2) / (grad_e * grad_e).sum(-1)[:, None, None]
    L = P_S @ (U - U.transpose(1, 2)) @ P_S
    M = P_E @ B @ B.transpose(1, 2) @ P_E
    torch.testing.assert_close(L, -L.transpose(1, 2))
    torch.testing.assert_close(M, M.transpose(1, 2))
    assert (torch.linalg.eigvalsh(M) >= -1e-10).all()
    torch.testing.assert_close((L @ grad_s.unsqueeze(-1)).squeeze(-1), torch.zeros_like(grad_s), atol=1e-12, rtol=0)
    torch.testing.assert_close((M @ grad_e.unsqueeze(-1)).squeeze(-1), torch.zeros_like(grad_e), atol=1e-12, rtol=0)
    # and the forward pass is exactly L∇E + M∇S
    expect = (L @ grad_e.unsqueeze(-1) + M @ grad_s.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        torch.testing.assert_close(net(z), expect)


def test_shapes_and_no_grad():
    net = GFINN(5, (8, 8), rank=2)
    with torch.no_grad():
        assert net(torch.randn(7, 5)).shape == (7, 5)
    assert net.energy(torch.randn(3, 5)).shape == (3,)
    assert net.entropy(torch.randn(3, 5)).shape == (3,)
    assert StandardizedField(net, 5)(torch.randn(4, 5)).shape == (4, 5)


def test_trains_through_double_backward():
    torch.manual_seed(2)
    net = GFINN(3, (16, 16))
    z = torch.randn(64, 3)
    target = torch.randn(64, 3)
    net(z).pow(2).sum().backward()
    # every parameter but the output biases of E and S (constants drop out of ∇E, ∇S) gets a gradient
    constant = {id(net.E[-1].bias), id(net.S[-1].bias)}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if id(p) not in constant)
    # E and S only enter through their gradients: their weights must receive gradient
    assert net.E[0].weight.grad.abs().sum() > 0 and net.S[0].weight.grad.abs().sum() > 0
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = (net(z) - target).pow(2).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_rejects_bad_rank():
    with pytest.raises(ValueError):
        GFINN(3, (4,), rank=0)
