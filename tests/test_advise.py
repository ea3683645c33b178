"""``macrodyn advise``: the pilot's cost, the prediction law, the recommendation and its config."""
import json
import math

import numpy as np
import pytest
import yaml

from macrodyn import Run
from macrodyn import keys as K
from macrodyn.cli import entry
from macrodyn.config import load_config, parse_config
from macrodyn.data.store import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.run.pool import snapshot_pool
from macrodyn.study.advise import (EXACT, Advice, Candidate, advise, candidates, configs_to_tol,
                                   exact_pilot_points, finer_exact, pilot_points, recommended_config)
from tests.test_allen_cahn_pipeline import TINY as AC

RUN = {"name": "tiny", "threads": 1,
       "system": {"name": "predator_prey", "params": {"n": 8}},
       "data": {"n_train_trajectories": 10, "n_test_trajectories": 3, "n_steps": 600, "save_every": 10,
                "chunk_trajectories": 3},
       "closure": {"epochs": 2},
       "training": {"loss": "L_xp", "p": 0.25, "budget": 20_000, "epochs": 3, "chunk_configs": 250},
       "evaluation": {"n_plot": 1}}


def test_prediction_law_matches_its_closed_forms():
    exact = {"a": 2.0, "b": 1.0}  # exact labels only: e = a / n
    assert configs_to_tol(exact, 0.0, 0.0, 1e-3) == pytest.approx(2000, rel=1e-6)
    noise_only = {"a": 0.0, "b": 1.0}  # e² = A r² / n
    assert configs_to_tol(noise_only, 3.0, 0.5, 1e-2) == pytest.approx(3.0 * 0.5 / 1e-4, rel=1e-6)
    both = configs_to_tol(exact, 3.0, 0.5, 1e-2)
    assert both > max(200, 15_000)  # both terms: more than either alone
    assert math.isclose((2 / both) ** 2 + 1.5 / both, 1e-4, rel_tol=1e-6)
    assert configs_to_tol({"a": 1.0, "b": 0.0}, 0.0, 0.0, 1e-3) is None  # never reached


def test_pilot_spends_at_most_its_share_and_refuses_a_tiny_one():
    cfg = parse_config(RUN)
    points = pilot_points(cfg, 20_000, 0.05, 0.25, 1, 40)
    spent = sum(p.cfg.training.budget for p in points)
    assert spent <= 0.05 * 20_000 and [p.cfg.training.loss for p in points] == ["L_z", "L_xp"]
    z, xp = (p.cfg.training.budget for p in points)
    assert abs(z - xp) < 16  # equal evaluations, up to one fully labelled configuration (2n = 16)
    with pytest.raises(InputError, match="--budget or --pilot-fraction"):
        pilot_points(cfg, 2_000, 0.05, 0.25, 1, 40)


def test_candidates_span_p_and_the_surrogate_when_configured():
    cfg = parse_config(RUN)
    names = [c[0] for c in candidates(cfg, 0.25, 8)]
    assert names[0] == "L_z" and "L_xp p=0.25" in names and not any("surrogate" in n for n in names)
    d = json.loads(json.dumps(RUN))
    d["training"]["surrogate"] = {"name": "predator_prey", "params": {"n": 8}}
    names = [c[0] for c in candidates(parse_config(d), 0.25, 8)]
    assert "L_xp p=0.25 + surrogate" in names


def test_recommended_config_takes_the_cheapest_prediction():
    cfg = parse_config(RUN)
    cands = [Candidate("L_z", {"loss": "L_z", "p": 1.0, "control": "none"}, 8, 0.0, 100, 800),
             Candidate("L_xp p=0.25", {"loss": "L_xp", "p": 0.25, "control": "none"}, 2, 0.3, 300, 600),
             Candidate("L_xp p=0.0625", {"loss": "L_xp", "p": 0.0625, "control": "none"}, 1, 3.0, None, None)]
    advice = Advice(1e-3, 20_000, [], 1000, 0, {"a": 1, "b": 1}, 1.0, cands)
    assert advice.recommended.name == "L_xp p=0.25"
    tie = Advice(1e-3, 20_000, [], 1000, 0, {"a": 1, "b": 1}, 1.0,
                 [Candidate("L_z", {}, 8, 0.0, 70, 560), cands[1]])
    assert tie.recommended.name == "L_z"  # within 10 % of the cheapest: the exact labels
    rec = recommended_config(cfg, advice)
    assert (rec.training.loss, rec.training.p, rec.training.budget) == ("L_xp", 0.25, 600)
    big = Advice(1e-3, 20_000, [], 1000, 0, {"a": 1, "b": 1}, 1.0,
                 [Candidate("L_xp p=0.25", cands[1].training, 2, 0.3, 1500, 3000, beyond_pool=True)])
    grown = recommended_config(cfg, big)  # 10 runs × 61 snapshots hold 610 configurations
    assert grown.data.n_train_trajectories == math.ceil(1500 / 61) and grown.training.budget == 3000
    none = Advice(1e-3, 20_000, [], 1000, 0, {"a": 1, "b": 1}, 1.0, cands[2:])
    with pytest.raises(InputError, match="no candidate"):
        recommended_config(cfg, none)


def test_advise_end_to_end_measures_noise_and_writes_a_config(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(RUN))
    out, rec = tmp_path / "adv", tmp_path / "rec.yaml"
    entry(["advise", str(path), "--tol", "0.5", "--steps", "20", "-o", str(out), "-q", "--write", str(rec)])
    text = capsys.readouterr().out
    advice = json.loads((out / "advice.json").read_text())
    assert advice["pilot_evaluations"] <= 0.05 * 20_000 and "recommended" in text
    noise = {c["name"]: c["noise"] for c in advice["candidates"]}
    assert noise["L_z"] == 0.0 and noise["L_xp p=0.25"] > 0
    assert noise["L_xp p=0.5"] < noise["L_xp p=0.25"]  # more units labelled, less noise
    cfg = load_config(rec)
    best = min((c for c in advice["candidates"] if c["evaluations"]), key=lambda c: c["evaluations"])
    assert cfg.training.budget == max(best["evaluations"], 2 * best["units"])
    again = advise(parse_config(RUN), out, 0.5, steps=20, progress=False)  # read back, not retrained
    assert [r["error"] for r in again.pilot] == [r["error"] for r in advice["pilot"]]


def test_advise_refuses_a_pilot_above_five_percent(tmp_path):
    with pytest.raises(InputError, match="pilot-fraction"):
        advise(parse_config(RUN), tmp_path / "a", 1e-3, fraction=0.2, progress=False)


def test_finer_exact_halves_p_while_the_labels_stay_exact():
    cfg = parse_config(RUN)
    cands = candidates(cfg, 0.5, 64)  # plain L_x,p at 8 to 64 units
    asked = []

    def measure(c):  # exact while J⁺_I keeps full column rank: at least 3 units here
        asked.append(c[2])
        return 0.0 if c[2] >= 3 else 0.2

    noise = {c[0]: 0.0 for c in cands}
    finer = finer_exact(cands, noise, 64, measure)
    assert [c[2] for c, _ in finer] == [4] and asked == [4, 2]  # 8 -> 4 exact, 2 not: stop
    assert finer[0][0][1] == {"loss": "L_xp", "p": 0.0625, "control": "none"}
    noisy = {**noise, "L_xp p=0.125": 1e-3}  # the smallest candidate is not exact: nothing below it is tried
    assert finer_exact(cands, noisy, 64, measure) == [] and asked == [4, 2]


def test_exact_pilots_label_once_and_fit_twice_and_on_disjoint_parts():
    cfg = parse_config(RUN)  # 20 000 evaluations, 5 %: 500 for the exact pilots, 250 configurations at 2 units
    owner, again, *parts = exact_pilot_points(cfg, 20_000, 0.05, 0.25, 1, None, 8, pool=10_000)
    assert [p.tags["configs"] for p in (owner, again, *parts)] == [250, 250, 62, 62, 62, 62]
    assert owner.tags["labels_of"] is None and {p.tags["labels_of"] for p in (again, *parts)} == {owner.name}
    assert again.cfg.seed != owner.cfg.seed and list(again.tags["rows"]) == list(range(250))
    rows = [set(p.tags["rows"]) for p in parts]
    assert all(len(r) == 62 for r in rows) and len(set().union(*rows)) == 248  # disjoint rows of the owner's
    t = cfg.training
    for p in (owner, *parts):  # as the run the advice sizes: its epochs and epoch-counted patiences
        assert (p.cfg.training.epochs, p.cfg.training.lr_patience) == (t.epochs, t.lr_patience)
    fixed = exact_pilot_points(cfg, 20_000, 0.05, 0.25, 1, 400, 8, pool=10_000)
    for p in fixed:  # given steps: about 400 optimiser steps each
        per_epoch = math.ceil(round(0.9 * p.tags["configs"]) / p.cfg.training.batch_size)  # 10 % validation
        assert 400 <= p.cfg.training.epochs * per_epoch < 400 + per_epoch
    with pytest.raises(InputError, match="too few"):
        exact_pilot_points(cfg, 20_000, 0.05, 0.25, 1, None, 8, pool=20)


def test_exact_pilot_curve_is_a_least_squares_power_law_with_a_clipped_exponent():
    from macrodyn.study.advise import B_RANGE, fitted_curve

    law = [{"configs": n, "error": 0.5 * n ** -1.2} for n in (25, 100, 400)]
    c = fitted_curve(law)
    assert c["b"] == pytest.approx(1.2) and c["a"] == pytest.approx(0.5)
    # four fits at 100 spread by factors about the law (geometric mean on it), two at 400 on it
    on = 0.5 * 100 ** -1.2
    c = fitted_curve([{"configs": 100, "error": on * f} for f in (4, 0.25, 1.5, 1 / 1.5)] + [law[2], law[2]])
    assert c["b"] == pytest.approx(1.2) and c["a"] == pytest.approx(0.5)
    # three sizes, one fitted thrice: each fit is one point of the least squares
    x, y = np.log([10, 100, 1000]), np.log([1.0, 0.2, 0.01])
    w3 = fitted_curve([{"configs": 10, "error": 1.0}] * 3 + [{"configs": 100, "error": 0.2},
                                                          {"configs": 1000, "error": 0.01}])
    assert -w3["b_fitted"] == pytest.approx(np.polyfit(np.r_[x[0], x[0], x], np.r_[y[0], y[0], y], 1)[0])
    flat = fitted_curve([{"configs": 10, "error": 0.1}, {"configs": 100, "error": 0.2}])  # rising: clipped
    assert flat["b"] == B_RANGE[0] and flat["b_fitted"] == pytest.approx(-math.log10(2))
    # at the clipped slope, the intercept of least squares: the line through the centre of the fits
    assert math.log(flat["a"]) == pytest.approx(math.log(0.1 * 0.2) / 2 + B_RANGE[0] * math.log(10 * 100) / 2)
    lost = fitted_curve(law + [{"configs": 400, "error": None}, {"configs": 25, "error": math.inf}])
    assert lost["diverged"] == 2 and lost["b"] == pytest.approx(1.2)  # diverged fits are left out
    with pytest.raises(InputError, match="diverged"):
        fitted_curve([{"configs": 10, "error": 0.1}, {"configs": 100, "error": None}])


@pytest.mark.slow
def test_exact_labels_spend_the_rest_of_the_pilot_on_the_cheapest_xp_fits(tmp_path):
    # Allen–Cahn's free energy: f = -∇E/h² lies in the span of the encoder's gradients, so every
    # L_x,p label is exact and the advice rests on the learning curve alone
    d = json.loads(json.dumps(AC))
    d["data"]["n_train_trajectories"] = 12
    cfg = parse_config(d)
    budget = 81_920  # the L_z pilot: 0.025 · budget / 256 = 8 configurations
    advice = advise(cfg, tmp_path / "adv", 1e-3, budget=budget, steps=20, progress=False)
    z, owner, again, *parts = advice.pilot
    assert [r["loss"] for r in advice.pilot] == ["L_z"] + ["L_xp"] * 6 and z["configs"] == 8
    plain = [c for c in advice.candidates if c.name != "L_z"]
    assert all(c.noise < EXACT for c in plain)
    cheapest = min(plain, key=lambda c: c.units)
    assert {r["p"] for r in advice.pilot[1:]} == {cheapest.training["p"]} and cheapest.units == 4
    pool = len(snapshot_pool(Run.open(tmp_path / "adv" / "shared")))
    total = min(int(0.025 * budget) // 4, pool)  # half the pilot at 4 units per configuration, within the pool
    assert owner["configs"] == again["configs"] == total and [r["configs"] for r in parts] == [total // 4] * 4
    # only the owner labelled: the others hold rows of its labels, and the pilot pays for them once
    own = ChunkedTable.open(tmp_path / "adv" / owner["name"] / "data.zarr", "labels").read()
    seen = []
    for r in (again, *parts):
        assert r["labels_of"] == owner["name"]
        lab = ChunkedTable.open(tmp_path / "adv" / r["name"] / "data.zarr", "labels").read()
        rows = [int(i) for i in np.flatnonzero((own[K.WHERE][:, None] == lab[K.WHERE][None]).all(-1).any(1))]
        assert len(rows) == r["configs"]
        np.testing.assert_array_equal(own[K.FORCES][rows], lab[K.FORCES])
        seen += rows if r is not again else []
    assert len(seen) == len(set(seen))  # the parts are disjoint
    assert advice.pilot_evaluations == z["evaluations"] + owner["evaluations"] <= 0.05 * budget
    # e(n) = a n^-b by least squares through the six fits, solved for e_tol in closed form
    fits = [r for r in advice.pilot[1:] if r["error"] is not None and math.isfinite(r["error"])]
    x, y = np.log([r["configs"] for r in fits]), np.log([r["error"] for r in fits])
    b = min(max(-np.polyfit(x, y, 1)[0], 0.7), 1.9)
    a = math.exp(np.mean(y + b * x))
    e_tol = 0.5 * min(r["error"] for r in fits)
    advice = advise(cfg, tmp_path / "adv", e_tol, budget=budget, steps=20, progress=False)  # pilot read back
    for c in advice.candidates:
        assert c.configs == pytest.approx(math.ceil((a / e_tol) ** (1 / b)), rel=1e-6, abs=1)
        assert c.evaluations == c.configs * c.units
    assert advice.recommended.name == cheapest.name and "exact" in advice.notes[0]
