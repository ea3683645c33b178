"""Force-budget study: budgets per point, stopping at the tolerance, resuming, errors."""
import json

import pytest
import yaml

from macrodyn.cli import entry
from macrodyn.errors import InputError
from macrodyn.study import ForceBudgetStudy, labelling_ratio, load_study, point_config, run_study

RUN = {"name": "tiny", "threads": 1,
       "system": {"name": "predator_prey", "params": {"n": 8}},
       "data": {"n_train_trajectories": 10, "n_test_trajectories": 3, "n_steps": 600, "save_every": 10,
                "chunk_trajectories": 3},
       "closure": {"epochs": 2},
       "training": {"epochs": 3, "chunk_configs": 250},
       "evaluation": {"n_plot": 1}}
STUDY = {"run": RUN, "size_param": "n", "sizes": [8, 12], "units_per_config": 4, "configs": [500, 250]}


def test_point_budgets_follow_the_size():
    study = ForceBudgetStudy.model_validate(STUDY)
    assert study.configs == [250, 500]  # tried in increasing order
    z = point_config(study, 12, "L_z", 500)  # predator–prey: N = 2n coordinates
    assert (z.training.loss, z.training.p, z.training.budget) == ("L_z", 1.0, 500 * 24)
    xp = point_config(study, 12, "L_xp", 250)
    assert xp.training.budget == 250 * 4 and xp.training.p == pytest.approx(4 / 24)
    assert point_config(study, 8).system.params["n"] == 8


def test_a_point_seed_redraws_the_configurations_at_the_same_budget(tmp_path):
    from macrodyn.run import Run
    from macrodyn.run.pool import pick_configs

    study = ForceBudgetStudy.model_validate(STUDY)
    base = point_config(study, 12, "L_xp", 250)
    picks = {}
    for seed in (None, 2, 2, 3):
        cfg = point_config(study, 12, "L_xp", 250, seed=seed)
        assert cfg.training.budget == base.training.budget and cfg.system == base.system
        assert cfg.seed == (base.seed if seed is None else seed)
        run = Run(cfg, tmp_path / f"s{seed}_{len(picks)}", progress=False)
        assert run.n_configs == 250
        picks.setdefault(seed, []).append(pick_configs(run))
    assert (picks[2][0] == picks[2][1]).all()  # a seed is reproducible
    assert len({p[0].tobytes() for p in picks.values()}) == 3  # and each seed draws its own configurations


def test_point_configs_compare_equal_when_reread():
    """A resumed point reparses its stored config.yaml: that must equal the study's point config."""
    from macrodyn.config import parse_config

    lj = {"run": {"system": {"name": "lennard_jones", "params": {"box": 10.0, "t0_range": [0.5, 1.5],
                                                                 "engine": "verlet"}}},
          "sizes": [800, 2700], "configs": [250]}
    study = ForceBudgetStudy.model_validate(lj)
    for loss in (None, "L_z", "L_xp"):
        cfg = point_config(study, 2700, loss, 250)
        again = parse_config(yaml.safe_load(yaml.safe_dump(cfg.model_dump())))
        assert again.model_dump() == cfg.model_dump()
        assert cfg.system.params["n_atoms"] == 2700 and cfg.system.params["box"] is None


def test_control_applies_to_l_xp_points_only_and_shared_runs_match():
    """With training.control set, L_x,p points use it; L_z points and the shared run do not, so the shared
    run's config equals the control-free study's (the two studies can share trajectories and closure)."""
    lj = {"run": {"system": {"name": "lennard_jones", "params": {"box": 10.0, "engine": "verlet"}}},
          "sizes": [800], "configs": [250]}
    plain = ForceBudgetStudy.model_validate(lj)
    lj["run"]["training"] = {"control": "snapshots", "control_window": 5}
    ctl = ForceBudgetStudy.model_validate(lj)
    assert point_config(ctl, 800, "L_xp", 250).training.control == "snapshots"
    assert point_config(ctl, 800, "L_z", 250).training.control == "none"
    assert point_config(ctl, 800).model_dump() == point_config(plain, 800).model_dump()


@pytest.mark.slow
def test_study_stops_at_tolerance_and_resumes(tmp_path, monkeypatch):
    study = ForceBudgetStudy.model_validate({**STUDY, "e_tol": 1.0e9})  # every first point is within tolerance
    res = run_study(study, tmp_path, progress=False)
    assert [(p["n_atoms"], p["loss"], p["n_configs"]) for p in res["points"]] == [
        (8, "L_z", 250), (8, "L_xp", 250), (12, "L_z", 250), (12, "L_xp", 250)]
    rec = {(r["n_atoms"], r["loss"]): r for r in res["records"]}
    assert rec[8, "L_z"]["evaluations_to_tol"] == 250 * 16 and rec[12, "L_z"]["evaluations_to_tol"] == 250 * 24
    assert rec[12, "L_xp"]["evaluations_to_tol"] == 250 * 4 and rec[12, "L_xp"]["configs_to_tol"] == 250
    for p in res["points"]:
        assert p["labelling_seconds"] > 0 and 0 < p["labelling_force_seconds"] <= p["labelling_seconds"]
    assert labelling_ratio(res["points"], 12) > 0
    for s in res["sizes"]:  # where each size's time, memory and disk went
        assert 0 < s["trajectory_bytes"] < s["disk_bytes"]
        assert {"simulate", "closure", "label_max", "features_max", "dynamics_max"} <= set(s["stage_seconds"])
        assert set(s["stage_peak_rss_gb"]) >= {"simulate", "closure", "label", "features", "dynamics"}
        assert all(0.05 < gb < 20 for gb in s["stage_peak_rss_gb"].values())
    assert json.loads((tmp_path / "study.json").read_text())["records"] == res["records"]
    assert (tmp_path / "figures" / "force_budget.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "labelling_seconds.png").stat().st_size > 1000

    # finished points whose labels were deleted to free the disk are read back on a full disk
    import shutil as sh

    import macrodyn.study.force_budget as fb

    for labels in tmp_path.glob("n*/L_*/data.zarr"):
        sh.rmtree(labels)
    real = sh.disk_usage
    with monkeypatch.context() as m:
        m.setattr(fb.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
        assert run_study(study, tmp_path, progress=False)["records"] == res["records"]

    # an unreachable tolerance: finished points are reused, the larger training sets are trained
    first = tmp_path / "n8" / "L_z_c250" / "metrics.json"
    stamp = first.stat().st_mtime_ns
    strict = ForceBudgetStudy.model_validate({**STUDY, "e_tol": 1.0e-12})
    res2 = run_study(strict, tmp_path, sizes=[8], progress=False)
    assert first.stat().st_mtime_ns == stamp
    assert [(p["loss"], p["n_configs"]) for p in res2["points"]] == [
        ("L_z", 250), ("L_z", 500), ("L_xp", 250), ("L_xp", 500)]
    assert all(r["evaluations_to_tol"] is None and r["largest_tried_configs"] == 500 for r in res2["records"])


@pytest.mark.slow
def test_draws_average_independent_repeats_of_a_point(tmp_path):
    from macrodyn import keys as K
    from macrodyn.data.store import ChunkedTable

    study = ForceBudgetStudy.model_validate({**STUDY, "sizes": [12], "losses": ["L_xp"], "e_tol": 1.0e9,
                                             "draws": 2})
    res = run_study(study, tmp_path, progress=False)
    (p,) = res["points"]
    folders = [tmp_path / "n12" / "L_xp_c250", tmp_path / "n12" / "L_xp_c250_draw1"]
    ms = [json.loads((f / "metrics.json").read_text()) for f in folders]
    errs = [m["rollout_rel_error"] for m in ms]
    assert p["draw_errors"] == pytest.approx(errs)
    assert p["rollout_rel_error"] == pytest.approx(sum(errs) / 2)
    assert p["rollout_rel_error_std"] == pytest.approx(abs(errs[0] - errs[1]) / 2)
    assert p["force_evaluations"] == ms[0]["force_evaluations"] == ms[1]["force_evaluations"] == 250 * 4
    assert ms[1]["seed"] == ms[0]["seed"] + 1
    where = [ChunkedTable.open(f / "data.zarr", "labels").read([K.WHERE])[K.WHERE] for f in folders]
    assert not (where[0] == where[1]).all()  # each draw labels its own configurations
    stamp = (folders[1] / "metrics.json").stat().st_mtime_ns
    assert run_study(study, tmp_path, progress=False)["points"] == res["points"]  # read back, not retrained
    assert (folders[1] / "metrics.json").stat().st_mtime_ns == stamp


def test_surrogate_points_report_the_cheap_evaluations_beside_the_budget(tmp_path):
    run = {**RUN, "training": {**RUN["training"], "control": "surrogate", "surrogate": {"params": {"a": 2.7}}}}
    study = ForceBudgetStudy.model_validate({**STUDY, "run": run, "sizes": [12], "losses": ["L_xp"],
                                             "e_tol": 1.0e9})
    res = run_study(study, tmp_path, progress=False)
    (p,), (r,) = res["points"], res["records"]
    m = json.loads((tmp_path / "n12" / "L_xp_c250" / "metrics.json").read_text())
    assert p["control"] == r["control"] == "surrogate"
    assert p["force_evaluations"] == r["evaluations_to_tol"] == 250 * 4  # the expensive labels only
    assert p["surrogate_force_evaluations"] == m["surrogate_force_evaluations"] > p["force_evaluations"]
    assert p["surrogate_seconds"] == m["surrogate_seconds"] > 0
    assert (r["surrogate_force_evaluations"], r["surrogate_seconds"]) == (p["surrogate_force_evaluations"],
                                                                          p["surrogate_seconds"])


def test_label_only_times_labels_and_trains_nothing(tmp_path):
    study = ForceBudgetStudy.model_validate({**STUDY, "sizes": [12]})
    res = run_study(study, tmp_path, progress=False, label_only=True)
    assert [(p["loss"], p["n_configs"]) for p in res["points"]] == [
        ("L_z", 250), ("L_z", 500), ("L_xp", 250), ("L_xp", 500)]
    for p in res["points"]:
        assert p["rollout_rel_error"] is None and p["labelling_force_seconds"] > 0
        units = 24 if p["loss"] == "L_z" else 4
        assert p["force_evaluations"] == p["n_configs"] * units
    assert not list(tmp_path.rglob("closure.pt")) and not list(tmp_path.rglob("member_*.pt"))
    assert all(r["evaluations_to_tol"] is None and r["best_error"] is None for r in res["records"])


def test_bad_study_configs(tmp_path, capsys):
    with pytest.raises(InputError, match="configs"):
        load_study(_write(tmp_path, {**STUDY, "configs": [300]}))
    with pytest.raises(InputError, match="size_param"):
        load_study(_write(tmp_path, {**STUDY, "size_param": "n_atoms"}))
    with pytest.raises(InputError, match="run.training.lrr"):
        load_study(_write(tmp_path, {**STUDY, "run": {**RUN, "training": {"lrr": 1}}}))
    import sys

    argv = sys.argv
    sys.argv = ["macrodyn", "study", "force-budget", str(_write(tmp_path, STUDY)), "--size", "99",
                "-o", str(tmp_path / "o")]
    try:
        with pytest.raises(SystemExit) as e:
            entry()
    finally:
        sys.argv = argv
    assert e.value.code == 2 and "--size [99]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _write(tmp_path, data):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_steps_scale_epochs_and_epoch_counted_settings():
    """With ``steps``, every training-set size gets about that many optimiser steps, and the
    patiences and scoring interval keep their share of the fit."""
    run = {**RUN, "training": {"epochs": 100, "batch_size": 50, "val_fraction": 0.1, "lr_patience": 10,
                               "stop_patience": 20, "select_every": 5, "chunk_configs": 250}}
    study = ForceBudgetStudy.model_validate({**STUDY, "run": run, "steps": 900})
    for n_configs in (250, 500, 1000):
        t = point_config(study, 8, "L_xp", n_configs).training
        per_epoch = -(-round(0.9 * n_configs) // 50)
        assert t.epochs == -(-900 // per_epoch) and 900 <= t.epochs * per_epoch < 900 + per_epoch
        scale = t.epochs / 100
        assert (t.lr_patience, t.stop_patience, t.select_every) == (round(10 * scale), round(20 * scale),
                                                                    round(5 * scale))
    plain = ForceBudgetStudy.model_validate(STUDY)
    assert point_config(plain, 8, "L_xp", 1000).training.epochs == point_config(plain, 8, "L_xp", 250).training.epochs


@pytest.mark.parametrize("search", ["ascending", "bisect"])
@pytest.mark.parametrize("threshold", [250, 1000, 2000, 8000, None])
def test_search_finds_the_smallest_training_set_within_tolerance(search, threshold):
    """A monotone error (within tolerance from ``threshold`` configurations on): both searches
    find ``threshold``; bisect trains at most ceil(log2(len + 1)) points."""
    from macrodyn.study import _search, summarise

    configs = [250, 500, 1000, 2000, 4000, 8000]
    study = ForceBudgetStudy.model_validate({**STUDY, "configs": configs, "search": search, "e_tol": 1.0})

    def train(n):
        err = 0.5 if threshold is not None and n >= threshold else 2.0
        return {"n_atoms": 8, "loss": "L_xp", "n_configs": n, "force_evaluations": 4 * n, "rollout_rel_error": err,
                "rollout_rel_error_std": 0.0, "n_members": 1, "labelling_seconds": 1.0,
                "labelling_force_seconds": 0.5, "training_seconds": 1.0}

    points = []
    _search(study, train, points)
    rec = summarise(study, points)["records"]
    assert [r["loss"] for r in rec] == ["L_xp"]  # only the losses that ran
    assert rec[0]["configs_to_tol"] == threshold
    if search == "bisect":
        assert len(points) <= 3 and len({p["n_configs"] for p in points}) == len(points)
    else:
        assert len(points) == (configs.index(threshold) + 1 if threshold else len(configs))


def test_closure_subsample_shrinks_with_the_size_at_equal_steps():
    # predator–prey n = 12: 24 coordinates; the pool is 10 trajectories × 61 snapshots = 610
    study = ForceBudgetStudy.model_validate({**STUDY, "closure_max_values": 300 * 24})
    big, small = point_config(study, 12).closure, point_config(study, 8).closure
    assert (big.max_configs, big.epochs) == (300, -(-2 * 610 // 300))  # same snapshots × epochs, rounded up
    assert (small.max_configs, small.epochs) == (300 * 24 // 16, -(-2 * 610 // 450))
    loose = ForceBudgetStudy.model_validate({**STUDY, "closure_max_values": 610 * 24})
    assert point_config(loose, 12).closure == ForceBudgetStudy.model_validate(STUDY).run.closure  # unchanged


def test_a_study_that_cannot_fit_on_the_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    import shutil as sh

    import macrodyn.study.force_budget as fb

    real = sh.disk_usage
    monkeypatch.setattr(fb.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    with pytest.raises(InputError, match=r"needs about .*B on disk .* free"):
        run_study(ForceBudgetStudy.model_validate(STUDY), tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()
    with pytest.raises(InputError, match=r"point L_z_c500 .* labels .* free"):
        fb.check_point_fits(ForceBudgetStudy.model_validate(STUDY), tmp_path, 12, "L_z", 500)


@pytest.mark.slow
def test_a_study_killed_at_any_stage_resumes_to_the_same_records(tmp_path):
    """SIGKILL while simulating a size, while a point labels and while it trains; each rerun
    resumes, and the records equal an uninterrupted study's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    study = {**STUDY, "e_tol": 1.0e9, "run": {**RUN, "closure": {"epochs": 40},
                                              "training": {**RUN["training"], "epochs": 40, "checkpoint_every": 2}}}
    cfg = _write(tmp_path, study)
    cmd = [sys.executable, "-c", "from macrodyn.cli import entry; entry()", "study", "force-budget", str(cfg), "-q"]

    def run(out, kill_at=None):
        proc = subprocess.Popen([*cmd, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        t0 = time.time()
        while kill_at and time.time() - t0 < 120 and proc.poll() is None:
            if list(out.glob(kill_at)):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return proc.returncode
            time.sleep(0.01)
        assert proc.wait() == 0, proc.stderr.read()
        return 0

    ref = tmp_path / "ref"
    run(ref)
    out = tmp_path / "killed"
    assert run(out, "n8/shared/data.zarr/train/_done/c/1") == -signal.SIGKILL
    assert run(out, "n8/L_z_c250/data.zarr/labels/_done/c/0") == -signal.SIGKILL
    assert run(out, "n8/L_z_c250/dynamics/member_0.partial.pt") == -signal.SIGKILL
    run(out)
    records = [[{k: v for k, v in r.items() if not k.endswith("seconds")}  # wall times differ, nothing else may
                for r in json.loads((f / "study.json").read_text())["records"]] for f in (ref, out)]
    assert records[0] == records[1]


def test_processes_on_one_folder_keep_each_others_sizes_and_losses(tmp_path):
    """Two runs on one study folder (one per size, as parallel processes run it): study.json holds
    both sizes' points and records, in the study's size order, whichever wrote last; a rerun of a
    size replaces that size's points instead of repeating them."""
    study = ForceBudgetStudy.model_validate({**STUDY, "losses": ["L_xp"], "e_tol": 1.0e9})
    twelve = run_study(study, tmp_path, sizes=[12], progress=False)
    eight = run_study(study, tmp_path, sizes=[8], progress=False)  # returns its own size's summary
    assert [r["n_atoms"] for r in eight["records"]] == [8]
    on_disk = json.loads((tmp_path / "study.json").read_text())
    assert on_disk["records"] == eight["records"] + twelve["records"]  # the study's size order
    assert on_disk["points"] == eight["points"] + twelve["points"]
    run_study(study, tmp_path, sizes=[12], progress=False)  # read back, not repeated
    assert json.loads((tmp_path / "study.json").read_text())["points"] == on_disk["points"]
    (tmp_path / "study.json").write_text("{not json")  # damaged: rebuilt from what this run holds
    run_study(study, tmp_path, sizes=[8], progress=False)
    assert [p["n_atoms"] for p in json.loads((tmp_path / "study.json").read_text())["points"]] == [8]
