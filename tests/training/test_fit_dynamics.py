import pytest
import torch

from macrodyn import keys as K
from macrodyn.dynamics import MLPField, StandardizedField
from macrodyn.training import LatentLoss
from macrodyn.training import fit_dynamics as _fit
from macrodyn.training.options import EMA, AdamW, Checkpointing, Cosine, FitOptions, Plateau, Selection


def fit_dynamics(field, loss, data, *, epochs, batch_size, lr, seed=0, progress=False, lr_schedule="plateau",
                 lr_factor=0.5, lr_patience=50, min_lr=5e-6, weight_decay=0.0, amsgrad=True, grad_clip=None,
                 val_fraction=0.1, stop_patience=None, score=None, score_every=1, ema_decay=None, ema_warmup=False,
                 checkpoint=None, checkpoint_every=50, visit=None, stop_waits_for_val=False):
    """The fit's keyword form, mapped onto the option objects (one per concern)."""
    schedule = {"plateau": Plateau(lr_factor, lr_patience, min_lr), "cosine": Cosine(min_lr)}[lr_schedule]
    options = FitOptions(epochs, batch_size, seed, AdamW(lr, weight_decay, amsgrad, grad_clip), schedule,
                         Selection(val_fraction, stop_patience, score, score_every, stop_waits_for_val),
                         None if ema_decay is None else EMA(ema_decay, ema_warmup),
                         None if checkpoint is None else Checkpointing(checkpoint, checkpoint_every))
    return _fit(field, loss, data, options, visit=visit, desc="dynamics" if progress else None)


def _data(n=300):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, 2, generator=g)
    A = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]])
    return {K.Z: z, K.JF: z @ A.T}, A


def _field():
    torch.manual_seed(3)
    return StandardizedField(MLPField(2, (16,)), 2)


def test_recovers_linear_field():
    data, A = _data()
    f = _field()
    hist = fit_dynamics(f, LatentLoss(), data, epochs=150, batch_size=64, lr=1e-2, progress=False)
    assert hist["best_val"] < 1e-3
    z = torch.randn(50, 2) * 0.5
    with torch.no_grad():
        torch.testing.assert_close(f(z), z @ A.T, atol=0.05, rtol=0.05)


class Interrupt(Exception):
    pass


def test_interrupted_training_resumes_identically(tmp_path):
    data, _ = _data()
    ref = _field()
    h_ref = fit_dynamics(ref, LatentLoss(), data, epochs=30, batch_size=64, lr=1e-2, progress=False, seed=5)

    calls = {"n": 0}

    class Crashing(LatentLoss):
        def __call__(self, field, batch):
            calls["n"] += 1
            if calls["n"] == 5 * 20 + 3:  # mid-epoch, after a checkpoint
                raise Interrupt
            return super().__call__(field, batch)

    ck = tmp_path / "ck.pt"
    f = _field()
    with pytest.raises(Interrupt):
        fit_dynamics(f, Crashing(), data, epochs=30, batch_size=64, lr=1e-2, progress=False, seed=5,
                     checkpoint=ck, checkpoint_every=4)
    assert ck.exists()
    f2 = _field()
    h = fit_dynamics(f2, LatentLoss(), data, epochs=30, batch_size=64, lr=1e-2, progress=False, seed=5,
                     checkpoint=ck, checkpoint_every=4)
    assert h["val"] == h_ref["val"]
    for a, b in zip(ref.state_dict().values(), f2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_grad_clip_bounds_the_update():
    """AdamW is scale-free except for eps: a gradient clipped to 1e-12 moves nothing."""
    data, _ = _data()
    start = [p.detach().clone() for p in _field().parameters()]

    def moved(**kw):
        f = _field()
        fit_dynamics(f, LatentLoss(), data, epochs=1, batch_size=64, lr=1e-2, progress=False, val_fraction=0, **kw)
        return max(float((p.detach() - q).abs().max()) for p, q in zip(f.parameters(), start))

    assert moved() > 1e-3
    assert moved(grad_clip=1e-12) < 1e-5


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_is_validated_and_returned(warmup):
    """With ema_decay, the model validated each epoch is the moving average of the iterates
    (first update copies, then d·ema + (1 − d)·θ with d = decay, or with warm-up
    d = min(decay, (1 + n)/(10 + n)) at the n-th update), and the best one is returned."""
    data, _ = _data(100)
    decay = 0.7 if not warmup else 0.3
    iterates, averages = [], []

    class Recording(LatentLoss):
        def __call__(self, field, batch):
            snap = [p.detach().clone() for p in field.parameters()]
            (iterates if field.training else averages).append(snap)
            return super().__call__(field, batch)

    f = _field()
    hist = fit_dynamics(f, Recording(), data, epochs=8, batch_size=1000, lr=1e-2, progress=False,
                        val_fraction=0.2, ema_decay=decay, ema_warmup=warmup)
    # one step per epoch: train call e sees θ_e (before step e+1), val call e sees the average after it
    ema = None
    for e in range(len(averages) - 1):
        theta = iterates[e + 1]
        d = min(decay, (1 + e) / (10 + e)) if warmup else decay  # e earlier updates so far
        ema = theta if ema is None else [d * a + (1 - d) * t for a, t in zip(ema, theta)]
        for a, b in zip(ema, averages[e]):
            torch.testing.assert_close(a, b)
    assert any(float((a - t).abs().max()) > 1e-4 for a, t in zip(averages[-1], iterates[-1]))  # it is not θ
    for a, b in zip(f.parameters(), averages[hist["best_epoch"]]):
        torch.testing.assert_close(a.detach(), b)


def _scored_fit(values, score_every=1, epochs=None, **kw):
    """Fit with a score that returns ``values`` in turn and records the scored parameters."""
    data, _ = _data(100)
    seen, calls = [], iter(values)

    def score(field):
        assert not field.training
        seen.append([p.detach().clone() for p in field.parameters()])
        return next(calls)

    f = _field()
    hist = fit_dynamics(f, LatentLoss(), data, epochs=epochs or len(values), batch_size=32, lr=1e-2,
                        progress=False, score=score, score_every=score_every, **kw)
    return f, hist, seen


def test_score_decides_the_returned_state():
    """The state kept is the one with the lowest score (not the lowest validation loss),
    a non-finite score is never preferred, and scoring happens every score_every epochs."""
    values = [5.0, 3.0, float("nan"), 1.0, 2.0, float("inf"), 4.0]
    f, hist, seen = _scored_fit(values)
    assert hist["best_epoch"] == 3 and hist["best_val"] == 1.0
    assert [e for e, _ in hist["score"]] == list(range(len(values)))
    for a, b in zip(f.parameters(), seen[3]):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
    # scored at epochs 0, 3, 6, ... and the last one
    _, hist, _ = _scored_fit([4.0, 2.0, 3.0, 1.0], score_every=3, epochs=9)
    assert [e for e, _ in hist["score"]] == [0, 3, 6, 8]


def test_score_drives_early_stopping():
    """stop_patience counts epochs since the best score, so a score that only gets worse
    after epoch 1 stops the fit at epoch 1 + patience, whatever the validation loss does."""
    _, hist, _ = _scored_fit([2.0, 1.0] + [3.0] * 20, stop_patience=4)
    assert hist["best_epoch"] == 1 and hist["epochs_run"] == 6


class ScriptedValidation(LatentLoss):
    """The latent loss in training; in validation (the model in eval mode) the next of ``values``."""

    def __init__(self, values):
        super().__init__()
        self.values = iter(values)

    def __call__(self, field, batch):
        return super().__call__(field, batch) if field.training else torch.tensor(next(self.values))


def test_stop_waits_for_the_validation_loss_when_asked(tmp_path):
    """With stop_waits_for_val the fit stops only when the score *and* the validation loss have
    both gone stop_patience epochs without a new low; the state kept is still the best score's.
    The validation loss falls until epoch 9, then stays flat; the score's best is epoch 1."""
    val = [10.0 - e for e in range(10)] + [1.0] * 30
    data, _ = _data(100)
    runs = {}
    for waits in (False, True):
        scores = iter([2.0, 1.0] + [3.0] * 38)
        f = _field()
        runs[waits] = fit_dynamics(f, ScriptedValidation(val), data, epochs=40, batch_size=32, lr=1e-2,
                                   score=lambda m: next(scores), stop_patience=4, stop_waits_for_val=waits)
    assert runs[False]["epochs_run"] == 6  # epoch 1 + 4: the score alone decides
    assert runs[True]["epochs_run"] == 14  # epoch 9 (the loss's last low) + 4
    assert runs[True]["best_epoch"] == runs[False]["best_epoch"] == 1
    # resumed from a checkpoint at epoch 8 (the loss's low so far: epoch 7), then flat above that
    # low: it stops at epoch 7 + 4, so the checkpoint's history carried the low (without it: epoch 8 + 4)
    ck = tmp_path / "ck.pt"
    scores = iter([2.0, 1.0] + [3.0] * 38)
    partial = fit_dynamics(_field(), ScriptedValidation(val), data, epochs=8, batch_size=32, lr=1e-2,
                           score=lambda m: next(scores), stop_patience=4, stop_waits_for_val=True,
                           checkpoint=ck, checkpoint_every=8)
    assert partial["epochs_run"] == 8 and ck.exists()
    resumed = fit_dynamics(_field(), ScriptedValidation([5.0] * 40), data, epochs=40, batch_size=32, lr=1e-2,
                           score=lambda m: next(scores), stop_patience=4, stop_waits_for_val=True,
                           checkpoint=ck, checkpoint_every=8)
    assert resumed["epochs_run"] == 12 and resumed["best_epoch"] == 1


def test_cosine_schedule_anneals_to_min_lr_and_resumes(tmp_path):
    """lr_schedule: cosine sets min_lr + (lr − min_lr)(1 + cos(π e/(E − 1)))/2 for epoch e,
    whatever the validation loss does, so the last epoch runs at min_lr; a resumed fit
    continues on the same curve."""
    import math

    data, _ = _data()
    lr, lo, E = 1e-2, 1e-4, 9
    kw = dict(epochs=E, batch_size=64, lr=lr, min_lr=lo, progress=False)
    hist = fit_dynamics(_field(), LatentLoss(), data, lr_schedule="cosine", lr_patience=0, **kw)
    # hist["lr"][e] is the rate after epoch e, i.e. the one epoch e + 1 runs at
    want = [lo + (lr - lo) * (1 + math.cos(math.pi * (e + 1) / (E - 1))) / 2 for e in range(E - 1)]
    torch.testing.assert_close(torch.tensor(hist["lr"][:-1]), torch.tensor(want), rtol=1e-9, atol=0)
    assert hist["lr"][-2] == pytest.approx(lo)
    assert fit_dynamics(_field(), LatentLoss(), data, **kw)["lr"] == [lr] * E  # plateau: loss kept improving
    ck = tmp_path / "ck.pt"
    fit_dynamics(_field(), LatentLoss(), data, lr_schedule="cosine", checkpoint=ck, checkpoint_every=4, **kw)
    resumed = fit_dynamics(_field(), LatentLoss(), data, lr_schedule="cosine", checkpoint=ck, checkpoint_every=4, **kw)
    assert resumed["lr"] == hist["lr"]  # epochs 0-7 from the checkpoint, epoch 8 run again


def test_config_reaches_the_fit_options():
    """training.stop_waits_for_val (default off) reaches the fit's Selection with the patience."""
    from macrodyn.config import TrainingConfig
    from macrodyn.model.parts import fit_options

    assert not fit_options(TrainingConfig(), 0).selection.stop_waits_for_val
    sel = fit_options(TrainingConfig(select="rollout", stop_patience=7, stop_waits_for_val=True), 0).selection
    assert sel.stop_waits_for_val and sel.stop_patience == 7
