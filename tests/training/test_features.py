"""compute_features against the formed Jacobian (closure.batch_jacobian and pinv_rows)."""
import numpy as np
import torch

from macrodyn import keys as K
from macrodyn.closure import ClosureAutoencoder, batch_jacobian, pinv_rows
from macrodyn.observables import BlockMeans
from macrodyn.training import compute_features


def test_features_match_the_formed_jacobian():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ae = ClosureAutoencoder(BlockMeans(2), 30, 2, hidden=(8, 8))
    x = rng.normal(size=(9, 30)) + 2
    ae.fit_scaling(torch.as_tensor(x, dtype=torch.float32), per_coordinate=True)
    idx = np.sort(np.stack([rng.choice(30, 6, replace=False) for _ in range(9)]), axis=1)
    f, w, c = rng.normal(size=(9, 6)), rng.uniform(0.5, 2, size=(9, 6)), rng.normal(size=(9, 30))
    for control in (None, c):
        feats = compute_features(ae, x, idx, f, w=w, control=control, batch=4, dtype=torch.float64)
        ae64 = ae.double()
        J = batch_jacobian(ae64, torch.as_tensor(x))
        it = torch.as_tensor(idx)
        JI = torch.gather(J, 2, it.unsqueeze(1).expand(-1, J.shape[1], -1))
        resid = torch.as_tensor(f) - (0 if control is None else torch.gather(torch.as_tensor(c), 1, it))
        jc = 0 if control is None else (J @ torch.as_tensor(c).unsqueeze(-1)).squeeze(-1)
        est = jc + (JI @ (resid * torch.as_tensor(w)).unsqueeze(-1)).squeeze(-1) * (30 / 6)
        z = ae64(torch.as_tensor(x)).detach()
        ae.float()
        torch.testing.assert_close(feats[K.PINV_ROWS], pinv_rows(J, it), rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(feats[K.JF_ESTIMATE], est, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(feats[K.Z], z)
