"""Shared check of the control-variate tests: the partial loss over all subsets equals L_x / N
up to a constant that no field changes (so its gradients are unbiased)."""
import torch

from macrodyn import keys as K
from macrodyn.dynamics import OnsagerNet, StandardizedField
from macrodyn.training import PartialForceLoss


def assert_loss_is_lx_up_to_a_constant(feats: dict, exact: dict) -> None:
    """``feats``: features of one configuration over every subset; ``exact``: its full labels."""
    gaps = []
    for seed in (0, 1):  # two different fields: the same gap
        torch.manual_seed(seed)
        field = StandardizedField(OnsagerNet(4, (8,), (8, 8)), 4).double()
        with torch.no_grad():
            v = field(feats[K.Z])
            r = (feats[K.PINV_ROWS] @ v.unsqueeze(-1)).squeeze(-1) - feats[K.FORCES]
            gaps.append(r.pow(2).mean() - PartialForceLoss(1.0)(field, exact))
    torch.testing.assert_close(gaps[0], gaps[1])
