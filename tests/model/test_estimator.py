"""MacroModel (arrays in memory) against the run pipeline (chunked tables on disk): one path,
so the same config and seed give the same model and the same error."""
import numpy as np
import pytest
import torch

from macrodyn import MacroModel, Run, keys as K, parse_config, run_all
from macrodyn.data import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.systems import PredatorPrey

CFG = {"seed": 3,
       "data": {"n_train_trajectories": 6, "n_test_trajectories": 4, "n_steps": 200, "save_every": 10,
                "chunk_trajectories": 3},
       "closure": {"epochs": 2, "max_configs": 80},
       "model": {"hidden": [8], "potential_hidden": [8]},
       "training": {"budget": 1200, "p": 0.2, "epochs": 4, "chunk_configs": 50, "select": "rollout",
                    "select_trajectories": 3, "select_every": 2, "members": 2}}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    run = Run.create(parse_config(CFG), tmp_path_factory.mktemp("run") / "run", progress=False)
    metrics = run_all(run, ("simulate", "label", "closure", "dynamics", "evaluate"))
    train = ChunkedTable.open(run.store, "train").read()[K.TRAJ]
    test = ChunkedTable.open(run.store, "test").read()[K.TRAJ]
    return run, metrics, train, test


def test_fit_score_match_the_pipeline(pipeline_run, tmp_path):
    run, metrics, train, test = pipeline_run
    model = MacroModel(PredatorPrey(**run.cfg.system.params), run.cfg).fit(train)
    assert model is not None and len(model.fields_) == 2
    assert model.force_evaluations_ == metrics["force_evaluations"] == 1200
    assert metrics["surrogate_force_evaluations"] == model.surrogate_force_evaluations_ == 0  # no surrogate control
    assert metrics["surrogate_seconds"] is None and model.surrogate_seconds_ is None
    errs = model.errors(test)
    np.testing.assert_allclose(errs, np.load(run.out / "test_errors.npy"), rtol=1e-5, atol=1e-9)
    assert model.score(test) == pytest.approx(metrics["rollout_rel_error"], rel=1e-5)
    # save / load: the same predictions
    model.save(tmp_path / "m.pt")
    back = MacroModel.load(tmp_path / "m.pt")
    times = np.arange(test.shape[1]) * run.system.dt * run.cfg.data.save_every
    p1, p2 = model.predict(test[:, 0], times), back.predict(test[:, 0], times)
    assert p1.shape == (test.shape[1], len(test), 2)
    np.testing.assert_array_equal(p1, p2)
    assert back.score(test) == pytest.approx(model.score(test), rel=1e-12)
    # latent states give the same rollout as configurations
    z0 = back.encode(test[:, 0])
    np.testing.assert_allclose(back.predict(z0=z0, times=times), p1, rtol=1e-6)


def test_clear_errors(pipeline_run):
    run, _, train, test = pipeline_run
    model = MacroModel(PredatorPrey(**run.cfg.system.params), run.cfg)
    with pytest.raises(InputError, match="not fitted"):
        model.score(test)
    with pytest.raises(InputError, match=r"shape \(n, T, 100\)"):
        model.fit(train[:, :, :10])
    bad = train.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        model.fit(bad)
