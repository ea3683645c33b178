"""Stage 1 (closure autoencoder) fit: it learns, and a diverging fit stops with a clear error."""
import numpy as np
import pytest
import torch

from macrodyn.closure import ClosureAutoencoder
from macrodyn.errors import InputError
from macrodyn.observables import BlockMeans
from macrodyn.training import closure_loss, fit_closure


def _data(rng):
    # 2 block means plus 2 hidden directions: a 4-D manifold in R^20
    t = rng.standard_normal((256, 4))
    return np.tanh(t @ rng.standard_normal((4, 20))) + 0.01 * rng.standard_normal((256, 20))


def test_fit_closure_reduces_reconstruction_error(rng):
    torch.manual_seed(0)
    ae = ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(16,))
    h = fit_closure(ae, _data(rng), epochs=30, batch_size=32, lr=3e-3, weight_decay=0.0, cond_weight=1e-3,
                    cond_batch=8, seed=0, progress=False)
    assert h["reconstruction"][-1] < 0.3 * h["reconstruction"][0]
    assert np.isfinite(h["kappa"]).all()


def test_fit_closure_divergence_is_a_clear_error(rng):
    torch.manual_seed(0)
    ae = ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(16,))
    with pytest.raises(InputError, match="closure training diverged in epoch 1.*closure.lr"):
        fit_closure(ae, _data(rng), epochs=2, batch_size=32, lr=1e9, weight_decay=0.0, cond_weight=1.0,
                    cond_batch=8, seed=0, progress=False)


def test_input_layer_learns_at_the_scaled_rate(rng):
    """One Adam step moves every input-layer weight by ~lr·scale and the other weights by ~lr
    (Adam's first step is lr·sign(g)); scale 1 is the plain optimiser."""
    x = _data(rng)
    for scale in (1.0, 0.1):
        torch.manual_seed(0)
        ae = ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(16,))
        before = {k: v.clone() for k, v in ae.state_dict().items()}
        fit_closure(ae, x, epochs=1, batch_size=len(x), lr=1e-3, weight_decay=0.0, cond_weight=0.0,
                    input_lr_scale=scale, seed=0, progress=False)
        step = {k: (v - before[k]).abs().max().item() for k, v in ae.state_dict().items() if "weight" in k}
        assert step["encoder.0.weight"] == pytest.approx(1e-3 * scale, rel=1e-3)
        assert step["encoder.2.weight"] == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("closure_only", [True, False])
def test_prepared_batches_give_the_loss_of_the_raw_batch(rng, closure_only):
    """fit_closure's precomputed standardised coordinates and observables change nothing."""
    torch.manual_seed(0)
    ae = ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(16,)).double()
    x = torch.as_tensor(_data(rng)[:32])
    ae.fit_scaling(x)
    raw = closure_loss(ae, x, 1e-3, closure_only, 8)
    prepared = closure_loss(ae, x[:8], 1e-3, closure_only, 8,
                            prepared=((x - ae.x_mean) / ae.x_std, ae.observable(x)))
    for a, b in zip(raw, prepared):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # the reconstruction term is the documented one: mean((ψ(φ(x)) − x)² / x_std²)
    torch.testing.assert_close(raw[1], ((ae.decode(ae(x)) - x) / ae.x_std).pow(2).mean(), rtol=1e-12, atol=1e-14)


def test_fit_closure_killed_after_a_checkpoint_resumes_to_the_uninterrupted_weights(rng, tmp_path, monkeypatch):
    """Killed in epoch 4 (checkpoints every 2 epochs), the fit goes on from epoch 2 and ends with the
    weights and history of a fit never stopped: the optimiser and batch order are restored too."""
    import macrodyn.training.closure as tc
    from macrodyn.training.options import Checkpointing

    x = _data(rng)
    kw = dict(epochs=6, batch_size=64, lr=3e-3, weight_decay=1e-4, cond_weight=1e-3, cond_batch=8,
              input_lr_scale=0.5, seed=3, progress=False)

    def fresh():
        torch.manual_seed(0)
        return ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(16,))

    ref = fresh()
    h_ref = fit_closure(ref, x, **kw)

    ck = Checkpointing(tmp_path / "closure.partial.pt", every=2)
    calls, loss = [0], tc.closure_loss

    def dies_in_epoch_4(*a, **k):  # 4 batches per epoch
        calls[0] += 1
        if calls[0] > 13:
            raise KeyboardInterrupt
        return loss(*a, **k)

    monkeypatch.setattr(tc, "closure_loss", dies_in_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        fit_closure(fresh(), x, checkpointing=ck, **kw)
    monkeypatch.setattr(tc, "closure_loss", loss)
    assert torch.load(ck.path, weights_only=False)["epoch"] == 2

    resumed = fresh()
    h = fit_closure(resumed, x, checkpointing=ck, **kw)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
    for k in ("loss", "reconstruction", "kappa"):
        assert h[k] == h_ref[k]
    assert h["earlier_seconds"] > 0 and h["seconds"] > h["earlier_seconds"]
