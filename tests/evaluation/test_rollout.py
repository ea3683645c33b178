import math

import pytest
import torch

from macrodyn.evaluation import relative_error, rollout


class Linear(torch.nn.Module):
    def __init__(self, A):
        super().__init__()
        self.A = A

    def forward(self, z):
        return z @ self.A.T


def test_rk4_convergence_order_four():
    A = torch.tensor([[0.0, 1.0], [-1.0, -0.1]], dtype=torch.float64)
    z0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)
    exact = torch.linalg.matrix_exp(2.0 * A) @ z0[0]
    errs = [(rollout(Linear(A), z0, t, step_size=h)[-1, 0] - exact).norm().item() for h in (0.2, 0.1, 0.05)]
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(3.7 < o < 4.3 for o in orders), orders


def test_rollout_shape_and_unknown_method():
    g = Linear(-torch.eye(3))
    out = rollout(g, torch.ones(4, 3), torch.linspace(0, 1, 11))
    assert out.shape == (11, 4, 3)
    torch.testing.assert_close(out[-1], torch.full((4, 3), math.exp(-1)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown method"):
        rollout(g, torch.ones(1, 3), torch.linspace(0, 1, 3), method="leapfrog")


def test_relative_error_definition():
    true = torch.ones(5, 2, 2)
    pred = true.clone()
    pred[:, 1] *= 1.1
    torch.testing.assert_close(relative_error(pred, true), torch.tensor([0.0, 0.1]))
