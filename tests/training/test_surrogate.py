"""The multi-fidelity control variate (training.control: surrogate): c = β s with s a cheap system's
forces on every coordinate; exact unbiasedness over every subset, no noise from a perfect surrogate,
β's least squares, the config's errors, and the pipeline and MacroModel reporting its cost."""
from itertools import combinations

import numpy as np
import pytest
import torch

from macrodyn import MacroModel, Run, keys as K, parse_config, run_all
from macrodyn.closure import ClosureAutoencoder
from macrodyn.config import check_before_work
from macrodyn.data import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.model.parts import control_of
from macrodyn.observables import BlockMeans
from macrodyn.systems import LennardJones, PredatorPrey
from macrodyn.training import compute_features, label
from macrodyn.training.control import Surrogate, SurrogateControl, slot_scale
from tests.training.unbiased import assert_loss_is_lx_up_to_a_constant


def _small(rng, n=4):
    """Predator–prey on 2n = 8 coordinates, one perturbed configuration, a closure with d = 4."""
    s = PredatorPrey(n=n)
    x = s.sample_initial(1, rng) + 0.05 * rng.standard_normal((1, 2 * n))
    ae = ClosureAutoencoder(BlockMeans(2), 2 * n, 2, hidden=(8,))
    return s, x, ae


def _over_subsets(s, x, ae, k, control):
    """Features of x for every k-subset (with the control's prediction) and the exact ones (every force)."""
    n = s.n_coords
    subsets = np.array(list(combinations(range(n), k)))
    xs = np.repeat(x, len(subsets), axis=0)
    feats = compute_features(ae, xs, subsets, label(s, xs, subsets), dtype=torch.float64,
                             control=None if control is None else control(np.arange(len(xs)), xs))
    full = np.arange(n)[None]
    return feats, compute_features(ae, x, full, label(s, x, full), dtype=torch.float64)


@pytest.mark.parametrize("k", [2, 3])
def test_surrogate_control_is_exactly_unbiased_for_a_fixed_scale(rng, k):
    """Over every k-subset of 8 coordinates, with a wrong surrogate (other a, b) and an arbitrary β: the
    mean estimate of J f is J f, and the loss is L_x / N up to a constant (gradients unbiased)."""
    s, x, ae = _small(rng)
    ctl = SurrogateControl(PredatorPrey(n=4, a=2.2, b=0.3), np.array([0.7]))
    feats, exact = _over_subsets(s, x, ae, k, ctl)
    torch.testing.assert_close(feats[K.JF_ESTIMATE].mean(0), exact[K.JF][0])
    assert_loss_is_lx_up_to_a_constant(feats, exact)
    # it is a control: the stored forces differ from the plain labels
    plain, _ = _over_subsets(s, x, ae, k, None)
    assert not torch.allclose(feats[K.FORCES], plain[K.FORCES])


def test_perfect_surrogate_leaves_no_noise(rng):
    """s = f: the builder finds β = 1, the stored forces are exactly J⁺_I J f (no residual from the
    subset), the estimate is J f on every subset, and with k ≥ d every subset's least-squares
    velocity is J f."""
    s, x, ae = _small(rng)
    subsets = np.array(list(combinations(range(8), 5)))
    xs = np.repeat(x, len(subsets), axis=0)
    lab = {K.INDEX: subsets, K.FORCES: label(s, xs, subsets)}
    ctl = Surrogate(PredatorPrey(n=4), s).build(None, lambda: iter([(xs, lab, np.arange(len(xs)))]), 8, 1)
    np.testing.assert_allclose(ctl.beta, [1.0], rtol=1e-12)
    feats, exact = _over_subsets(s, x, ae, 5, ctl)
    jf = exact[K.JF][0]
    torch.testing.assert_close(feats[K.JF_ESTIMATE], jf.expand_as(feats[K.JF_ESTIMATE]))
    assert feats[K.JF_ESTIMATE].std(0).max() < 1e-10
    P = feats[K.PINV_ROWS]
    torch.testing.assert_close(feats[K.FORCES], P @ jf)
    v = torch.linalg.lstsq(P, feats[K.FORCES].unsqueeze(-1)).solution.squeeze(-1)
    torch.testing.assert_close(v, jf.expand_as(v))
    assert v.std(0).max() < 1e-8
    # the plain labels, by contrast, are noisy over subsets
    plain, _ = _over_subsets(s, x, ae, 5, None)
    assert plain[K.JF_ESTIMATE].std(0).max() > 1e-3


def test_scale_is_the_least_squares_fit_per_slot(rng):
    """β_slot = Σ f s / Σ s² over the labelled coordinates of each slot (6 slots for MD), against a
    loop; velocity slots get β = 1 (the surrogate repeats them); chunking does not change β."""
    lj = LennardJones(n_atoms=12, density=0.8, engine="verlet", relax_steps=50)
    cheap = LennardJones(n_atoms=12, density=0.8, cutoff=1.2, engine="verlet")
    x = lj.trajectories(lj.sample_initial(2, rng), 20, 5, progress=False).reshape(-1, lj.n_coords)
    units = np.sort(np.stack([rng.choice(12, 4, replace=False) for _ in x]), 1)
    idx = lj.unit_coords(units)
    f = label(lj, x, idx)
    chunks = [(x[:4], {K.INDEX: idx[:4], K.FORCES: f[:4]}, np.arange(4)),
              (x[4:], {K.INDEX: idx[4:], K.FORCES: f[4:]}, np.arange(4, len(x)))]
    ctl = Surrogate(cheap, lj).build(None, lambda: iter(chunks), lj.n_coords, 1, 6)
    num, den = np.zeros(6), np.zeros(6)
    for b in range(len(x)):
        full = cheap._forces(x[b:b + 1])[0]
        for j, i in enumerate(idx[b]):
            num[i % 6] += f[b, j] * full[i]
            den[i % 6] += full[i] ** 2
    np.testing.assert_allclose(ctl.beta, num / den, rtol=1e-10)
    np.testing.assert_allclose(ctl.beta[:3], 1.0, rtol=1e-12)
    assert 0.5 < ctl.beta[3:].min() and ctl.beta[3:].max() < 1.5
    # the first pass asked the surrogate only for the labelled units; the prediction is β s on every coordinate
    assert cheap.counter.labels == idx.size // 6
    np.testing.assert_allclose(ctl(np.arange(2), x[:2]), cheap._forces(x[:2]) * np.tile(ctl.beta, 12), rtol=1e-12)
    assert cheap.counter.labels == idx.size // 6 + 2 * 12
    # a slot the surrogate never predicts (all zeros) gets β = 0, not NaN
    num, den = slot_scale(np.array([[0, 1]]), np.array([[1.0, 2.0]]), np.array([[0.0, 4.0]]), 2)
    assert num.tolist() == [0.0, 8.0] and den.tolist() == [0.0, 16.0]


# ------------------------------------------------------------------------------------- config
SURR = {"control": "surrogate", "surrogate": {"params": {"a": 2.7}}}


@pytest.mark.parametrize("training, match", [
    ({"control": "surrogate"}, "needs a surrogate section"),
    ({**SURR, "loss": "L_z", "p": 1}, "needs loss: L_xp"),
    ({**SURR, "labelling": "on_demand"}, "labelling: fixed"),
    ({**SURR, "surrogate": {"params": {"aa": 2.7}}}, r"training\.surrogate\.params\.aa"),
    ({**SURR, "surrogate": {"name": "no_such_system"}}, "unknown system"),
])
def test_config_errors_are_one_line(training, match):
    with pytest.raises(InputError, match=match) as e:
        parse_config({"training": training})
    assert "\n" not in str(e.value)


def test_surrogate_with_other_coordinates_is_refused_before_work():
    cfg = parse_config({"system": {"params": {"n": 10}},
                        "training": {"budget": 100, "control": "surrogate", "surrogate": {"params": {"n": 12}}}})
    system = PredatorPrey(n=10)
    for check in (lambda: check_before_work(cfg, system), lambda: control_of(cfg, system)):
        with pytest.raises(InputError, match=r"N = 24 .* N = 20 .*training\.surrogate\.params") as e:
            check()
        assert "\n" not in str(e.value)
    # a surrogate of another class: the system's params it also takes are inherited (n), the rest are not
    lj = parse_config({"system": {"name": "lennard_jones", "params": {"n_atoms": 20, "engine": "verlet"}},
                       "training": {"control": "surrogate", "surrogate": {"params": {"cutoff": 1.5}}}})
    built = control_of(lj, LennardJones(n_atoms=20, engine="verlet")).surrogate
    assert (built.n_atoms, built.cutoff) == (20, 1.5)
    other = parse_config({"system": {"params": {"n": 10}}, "training": {
        "control": "surrogate", "surrogate": {"name": "allen_cahn", "params": {"n": 4}}}})
    with pytest.raises(InputError, match="N = 16 .* N = 20"):
        control_of(other, PredatorPrey(n=10))


# --------------------------------------------------------------------------- pipeline, MacroModel
CFG = {"seed": 3,
       "data": {"n_train_trajectories": 6, "n_test_trajectories": 3, "n_steps": 200, "save_every": 10,
                "chunk_trajectories": 3},
       "closure": {"epochs": 2, "max_configs": 80},
       "model": {"hidden": [8], "potential_hidden": [8]},
       "training": {"budget": 1200, "p": 0.2, "epochs": 3, "chunk_configs": 25, **SURR}}


@pytest.fixture(scope="module")
def surrogate_run(tmp_path_factory):
    run = Run.create(parse_config(CFG), tmp_path_factory.mktemp("run") / "run", progress=False)
    return run, run_all(run, ("simulate", "label", "closure", "dynamics", "evaluate", "report"))


def test_pipeline_reports_surrogate_cost_apart_from_the_budget(surrogate_run):
    run, metrics = surrogate_run
    n_configs, n_units = metrics["n_configs"], run.system.n_units
    assert metrics["force_evaluations"] == 1200 == run.cfg.training.budget
    # every unit of each labelled configuration, plus the labelled units once more for β
    assert metrics["surrogate_force_evaluations"] == n_configs * n_units + 1200 == 60 * 100 + 1200
    assert metrics["surrogate_seconds"] > 0
    assert np.isfinite(metrics["rollout_rel_error"])
    assert ChunkedTable.open(run.store, "labels").n_rows == n_configs
    assert f"force evaluations (surrogate control) | {n_configs * n_units + 1200:,} in" in \
        (run.out / "report.md").read_text()


def test_macromodel_fit_matches_the_pipeline(surrogate_run):
    run, metrics = surrogate_run
    train = ChunkedTable.open(run.store, "train").read()[K.TRAJ]
    test = ChunkedTable.open(run.store, "test").read()[K.TRAJ]
    model = MacroModel(PredatorPrey(**run.cfg.system.params), run.cfg).fit(train)
    assert model.force_evaluations_ == metrics["force_evaluations"]
    assert model.surrogate_force_evaluations_ == metrics["surrogate_force_evaluations"]
    np.testing.assert_allclose(model.errors(test), np.load(run.out / "test_errors.npy"), rtol=1e-5, atol=1e-9)
    # a surrogate object given to the estimator is used instead of the config's (and counted on its own counter)
    given = PredatorPrey(n=50, a=2.7)
    again = MacroModel(PredatorPrey(**run.cfg.system.params), run.cfg, surrogate=given).fit(train)
    assert given.counter.labels == again.surrogate_force_evaluations_ == metrics["surrogate_force_evaluations"]
    np.testing.assert_allclose(again.errors(test), model.errors(test), rtol=1e-6, atol=1e-9)
