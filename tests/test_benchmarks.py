"""The benchmark scripts run (smoke mode), write their results in the committed schema and remake
their figures from the JSON alone; the grid runner they share trains once and reads back; the
paper's reference numbers live in one data file."""
import ast
import importlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "common")
#: what --analyse-only draws, per script (the others print a table)
FIGURES = {"predator_prey_budget": ["predator_prey_budget.png"], "sampling_strategies": ["sampling_strategies.png"],
           "estimators": ["estimators.png"], "force_budget_draws": ["force_budget_draws.png"],
           "force_budget_study": ["force_budget_evaluations.png", "force_budget_labelling_seconds.png"],
           "force_budget_full": ["force_budget_full_evaluations.png", "force_budget_full_stages.png"]}
#: the committed results file whose record schema a script's smoke records must have
COMMITTED = {s: RESULTS / f"{s}.json" for s in SCRIPTS} | {"force_budget_full": RESULTS / "force_budget_study_full.json"}
#: the results file a script writes, where it is not named after the script
WRITES = {"force_budget_full": "force_budget_study_full.json"}


def _results_state() -> dict:
    return {p.name: p.stat().st_mtime_ns for p in RESULTS.iterdir()}


@pytest.fixture(scope="module")
def results_untouched():
    before = _results_state()
    yield
    assert _results_state() == before, "a smoke run wrote to benchmarks/results"


def test_every_script_is_tested():
    assert len(SCRIPTS) == 20 and all(COMMITTED[s].exists() for s in SCRIPTS), SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke(script, tmp_path, results_untouched, monkeypatch):
    if script == "dask_scaling":
        pytest.importorskip("dask.distributed")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--smoke", "--out", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / WRITES.get(script, f"{script}.json")).read_text())
    assert {"records", "machine", "commit", "date"} <= set(doc)
    assert "cpu_capability" in doc["machine"] and doc["records"]
    committed = json.loads(COMMITTED[script].read_text())["records"]
    schema = set.intersection(*(set(rec) for rec in committed))  # the fields every measured record has
    for rec in doc["records"]:
        assert schema <= set(rec), f"{script}: smoke record lacks {sorted(schema - set(rec))}"

    # the analysis reads the JSON alone: figures remade without measuring (in this process, fast)
    for name in FIGURES.get(script, []):
        (out / name).unlink(missing_ok=True)
    if (out / "work").exists():  # no run folder is read
        (out / "work").rename(tmp_path / "work_moved")
    monkeypatch.syspath_prepend(str(BENCH))
    importlib.import_module(script).main(["--analyse-only", "--out", str(out)])
    for name in FIGURES.get(script, []):
        assert (out / name).stat().st_size > 1000, name


def test_smoke_refuses_the_committed_results(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "allen_cahn_partial.py"), "--smoke", "--out", str(RESULTS)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "never writes to benchmarks/results" in r.stderr


def test_scripts_import_only_public_names():
    """No ``from m import _x`` and no ``obj._x`` of a macrodyn object in the benchmarks."""
    bad = []
    for path in BENCH.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                bad += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
                if node.module and any(part.startswith("_") and not part.startswith("__")
                                       for part in node.module.split(".")):
                    bad.append(f"{path.name}:{node.lineno} {node.module}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("args", "self")):
                    bad.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert not bad, bad


# ----------------------------------------------------------------------------- reference numbers
def test_reference_numbers_live_in_one_file():
    from macrodyn.study import REFERENCE, reference

    ref = reference()
    assert set(ref) == {"force_budget", "predator_prey_budget", "allen_cahn_200x200", "lj800"}
    assert REFERENCE == ref["force_budget"]["evaluations_to_tol"] and REFERENCE["L_z"][800] == 1.2e6
    assert ref["lj800"]["mlp"]["L_z"] == {"mean": 2.60e-2, "std": 1.01e-2}
    reference("lj800")["mlp"]["L_z"]["mean"] = 0.0  # a copy: the next reader sees the file's numbers
    assert reference("lj800")["mlp"]["L_z"]["mean"] == 2.60e-2
    # no copy of a distinctive reference number in code (it would drift from the file)
    pattern = re.compile(r"(?<![\d.])(1\.2e6|1\.1e5|8\.8e4|6\.3e4|1\.85e-2|9\.58e-3|6\.93e-3|3\.98e-3|2\.60e-2|"
                         r"1\.34e-3|4\.45e-3|1\.28e-2|2\.84e-3)(?![\d])")
    hits = [f"{p.relative_to(ROOT)}: {m}" for p in [*BENCH.glob("*.py"), *(ROOT / "src").rglob("*.py")]
            for m in pattern.findall(p.read_text())]
    assert not hits, hits


# ------------------------------------------------------------------------------------ the grid
def _tiny(seed: int = 1, **training):
    from macrodyn.config import parse_config

    return parse_config({"name": "grid", "seed": seed, "threads": 1,
                         "system": {"name": "predator_prey", "params": {"n": 8}},
                         "data": {"n_train_trajectories": 10, "n_test_trajectories": 2, "n_steps": 100,
                                  "save_every": 10, "chunk_trajectories": 3},
                         "closure": {"epochs": 1, "hidden": [8]},
                         "model": {"hidden": [8], "potential_hidden": [8]},
                         "training": {"epochs": 1, "budget": 400, "chunk_configs": 50, **training}})


def test_grid_shares_data_per_key_and_reads_finished_points_back(tmp_path):
    from macrodyn.errors import InputError
    from macrodyn.study import GridPoint, run_grid

    shared = {f"seed{s}": _tiny(s) for s in (1, 2)}
    points = [GridPoint(f"{loss}_b{b}", _tiny(s, loss=loss, p=1.0 if loss == "L_z" else 0.25, budget=b),
                        data=f"seed{s}", tags={"loss": loss})
              for s in (1, 2) for loss in ("L_z", "L_xp") for b in (160, 320)]
    res = run_grid(points, shared, tmp_path, progress=False)
    assert [r.point for r in res] == points and all(r.trained for r in res)
    assert sorted(p.name for p in (tmp_path / "seed1").iterdir() if p.is_dir()) == [
        "L_xp_b160", "L_xp_b320", "L_z_b160", "L_z_b320", "shared"]
    for r in res:
        assert r.metrics["force_evaluations"] == r.point.cfg.training.budget
        assert r.shared.out == tmp_path / r.point.data / "shared" and r.seconds > 0
        # every point of a key trained on its key's closure
        assert (r.run.out / "closure.pt").read_bytes() == (r.shared.out / "closure.pt").read_bytes()
    stamp = (tmp_path / "seed2" / "L_z_b320" / "metrics.json").stat().st_mtime_ns
    again = run_grid(points, shared, tmp_path, progress=False)
    assert not any(r.trained for r in again) and [r.metrics for r in again] == [r.metrics for r in res]
    assert (tmp_path / "seed2" / "L_z_b320" / "metrics.json").stat().st_mtime_ns == stamp

    changed = [GridPoint("L_z_b160", _tiny(1, loss="L_z", p=1.0, budget=160, lr=1e-2), data="seed1")]
    with pytest.raises(InputError, match="different config"):
        run_grid(changed, shared, tmp_path, progress=False)
    other_data = _tiny(1, loss="L_z", p=1.0, budget=160).model_copy(update={"name": "x"}, deep=True)
    other_data.data.n_train_trajectories = 9
    with pytest.raises(InputError, match="differ from those of its shared run"):
        run_grid([GridPoint("new", other_data, data="seed1")], shared, tmp_path, progress=False)
    with pytest.raises(InputError, match="no shared run"):
        run_grid([GridPoint("a", _tiny(1), data="seed9")], shared, tmp_path, progress=False)
    with pytest.raises(InputError, match="unique"):
        run_grid([GridPoint("a", _tiny(1), "seed1"), GridPoint("a", _tiny(1), "seed1")], shared, tmp_path,
                 progress=False)


def test_grid_on_an_existing_shared_run_folder(tmp_path):
    from macrodyn.study import GridPoint, prepare_shared, run_grid

    shared = prepare_shared(_tiny(), tmp_path / "base")  # e.g. a finished `macrodyn run` folder
    (res,) = run_grid([GridPoint("L_xp", _tiny(p=0.5))], {"": shared.out}, tmp_path / "cells", progress=False)
    assert res.run.out == tmp_path / "cells" / "L_xp" and res.shared.out == shared.out
    assert not (tmp_path / "cells" / "shared").exists()


def test_estimator_grid_selects_points_and_keeps_other_systems_settings(monkeypatch):
    """benchmarks/estimators.py: ``L_xp@P`` sets p, ``--budgets-of`` gives an estimator its own
    budgets, ``--only`` keeps the named points; a results file from before per-system settings
    keeps LJ-800's under ``settings``."""
    monkeypatch.syspath_prepend(str(BENCH))
    est = importlib.import_module("estimators")
    from macrodyn import load_config

    base = load_config(ROOT / "configs" / "allen_cahn.yaml")
    ap = est.parser("", work="")
    args = ap.parse_args([])
    args.estimators, args.budgets, args.budgets_of = ["L_xp", "L_xp@0.01"], [100], ["L_xp@0.01=41000,82000"]
    args.skip, args.only, args.seed, args.draws, args.members, args.jobs = [], [], 1, 2, None, 1
    args.system = "allen_cahn"
    points = est.make_points(args, base, None)
    got = {(p.tags["estimator"], p.tags["budget"], p.tags["seed"]): p.cfg.training.p for p in points}
    assert got == {("L_xp", 100, 1): 0.04, ("L_xp", 100, 2): 0.04, ("L_xp@0.01", 41000, 1): 0.01,
                   ("L_xp@0.01", 41000, 2): 0.01, ("L_xp@0.01", 82000, 1): 0.01, ("L_xp@0.01", 82000, 2): 0.01}
    args.only = ["L_xp@0.01:8.2e4:2", "L_xp:100:1"]
    assert {(p.tags["estimator"], p.tags["budget"], p.tags["seed"]) for p in est.make_points(args, base, None)} == {
        ("L_xp@0.01", 82000, 2), ("L_xp", 100, 1)}
    for bad in ("L_xp@2", "L_xp@x", "L_q"):
        with pytest.raises(SystemExit):
            est.estimator_p(bad, base)
    old = {"config": "configs/lj800.yaml", "control": {"control": "surrogate"}, "lj800_measured": {"commit": "abc"},
           "machine": {"cpus": 2}, "commit": "def", "date": "d"}
    settings = est.system_settings(old)
    assert settings["lj800"]["config"] == "configs/lj800.yaml"
    assert settings["lj800"]["measured"] == [{"commit": "abc"}, {"machine": {"cpus": 2}, "commit": "def", "date": "d"}]
    assert est.system_settings({"settings": settings}) == settings


def test_lj6400_estimators_come_from_the_committed_force_budget_draws(monkeypatch):
    """estimators.py --import-force-budget: LJ-6400's plain, snapshot and surrogate draws, budgets
    counting the 50 expensive atom forces per configuration and the surrogate's work apart."""
    monkeypatch.syspath_prepend(str(BENCH))
    est = importlib.import_module("estimators")
    recs = est.force_budget_records()
    assert {r["estimator"] for r in recs} == {"L_xp", "L_xp+snapshots", "L_xp+surrogate"}
    for r in recs:
        assert r["system"] == "lj6400" and r["budget"] == 50 * r["n_configs"]
        cheap = r["surrogate_force_evaluations"]
        assert (cheap > 0) if r["estimator"] == "L_xp+surrogate" else cheap == 0
    ratios = est.summary(recs)["lj6400"]["ratio_to_plain"]
    assert set(ratios) == {"L_xp+snapshots", "L_xp+surrogate"}


def test_estimator_independent_starts_drop_the_shared_microstate(monkeypatch):
    """benchmarks/estimators.py ``--system lj800_independent``: the LJ-800 configs without the shared
    placement and velocity pattern (base and surrogate alike), so every run draws its own."""
    monkeypatch.syspath_prepend(str(BENCH))
    est = importlib.import_module("estimators")
    from macrodyn import load_config
    from macrodyn.systems import build_system

    base = load_config(ROOT / "configs" / "lj800.yaml")
    sur = load_config(ROOT / "configs" / "lj800_surrogate.yaml")
    assert base.system.params["placement_seed"] is not None  # the shared-start config has them
    fresh, fresh_sur = (est.variant(c, "lj800_independent") for c in (base, sur))
    for c in (fresh, fresh_sur):
        assert c.system.params.get("placement_seed") is None and c.system.params.get("velocity_seed") is None
        assert build_system(c.system.name, c.system.params).placement_seed is None
    assert est.control_settings(fresh, fresh_sur)["control"] == "surrogate"  # still differ in the control only
    assert est.variant(base, "lj800") is base and est.starts(base) == "shared"
    assert est.starts(fresh) == "independent" and fresh.name != base.name
    invariant, energy = est.variant(base, "lj800_invariant"), est.variant(base, "lj800_energy")
    assert est.starts(invariant) == est.starts(energy) == "independent"
    assert (invariant.closure.input, invariant.closure.descriptor_energy) == ("descriptors", False)
    # the energy grid differs from the invariant one in the energy family alone
    assert energy.model_dump(exclude={"name", "closure"}) == invariant.model_dump(exclude={"name", "closure"})
    assert energy.closure.model_copy(update={"descriptor_energy": False}) == invariant.closure
    assert energy.closure.descriptor_energy and energy.name != invariant.name
    ac = load_config(ROOT / "configs" / "allen_cahn.yaml")
    fixed = est.variant(ac, "allen_cahn_fixed_epochs")  # no early stopping, all else equal
    assert ac.training.stop_patience and fixed.training.stop_patience is None and est.starts(ac) == "shared"
    assert fixed.model_dump(exclude={"name", "training"}) == ac.model_dump(exclude={"name", "training"})


def test_surrogate_noise_varies_one_parameter_and_keeps_other_sizes(monkeypatch):
    """surrogate_noise.py --study: the study's own surrogate with one parameter changed per value,
    and a size's new records replace only that system and size's."""
    monkeypatch.syspath_prepend(str(BENCH))
    sn = importlib.import_module("surrogate_noise")
    from macrodyn.study import load_study, point_config

    cfg = point_config(load_study(ROOT / "configs" / "lj_scaling_surrogate.yaml"), 800, "L_xp", 1)
    variants = sn.varied_surrogates(cfg, "cutoff=1.5,2.0")
    assert list(variants) == ["cutoff 1.5", "cutoff 2.0"]
    assert [v["params"] for v in variants.values()] == [{"cutoff": 1.5}, {"cutoff": 2.0}]
    assert sn.with_surrogate(cfg, variants["cutoff 2.0"]).training.surrogate.params == {"cutoff": 2.0}
    with pytest.raises(SystemExit, match="KEY=V1,V2"):
        sn.varied_surrogates(cfg, "cutoff")
    old = [{"system": "allen_cahn", "n": 4096, "v": 1}, {"system": "lennard_jones", "n": 800, "v": 1},
           {"system": "lennard_jones", "n": 6400, "v": 1}]
    new = [{"system": "lennard_jones", "n": 800, "v": 2}]
    assert sn.merged(old, new) == [old[0], old[2], new[0]]


def test_draws_answer_by_the_mean_over_seeds(monkeypatch):
    """force_budget_draws.py: a size's evaluations to e_tol are those of its smallest redrawn point
    whose mean over seeds is within e_tol (a lucky seed does not count), and the spread is the
    largest such answer over the smallest; a size whose points all miss has none."""
    monkeypatch.syspath_prepend(str(BENCH))
    dr = importlib.import_module("force_budget_draws")

    def rec(n, configs, seed, err):
        return {"n_atoms": n, "loss": "L_xp", "n_configs": configs, "seed": seed, "rollout_rel_error": err,
                "force_evaluations": 50 * configs}

    records = [rec(800, 500, 1, 2.0e-3), rec(800, 500, 2, 4.6e-3),  # one seed within, mean 3.3e-3: above
               rec(800, 1000, 1, 2.0e-3), rec(800, 1000, 2, 2.4e-3),
               rec(51200, 1000, 1, 3.5e-3), rec(51200, 2000, 1, 2.9e-3), rec(51200, 2000, 2, 3.1e-3),
               rec(6400, 500, 1, 4e-3)]
    got = dr.over_draws(records, 3e-3)["L_xp"]
    assert got["sizes"]["800"]["evaluations_to_tol"] == 50_000
    assert got["sizes"]["800"]["below"] == [{"n_configs": 500, "mean": pytest.approx(3.3e-3), "seeds": 2}]
    assert got["sizes"]["51200"]["evaluations_to_tol"] == 100_000 and got["sizes"]["51200"]["seeds"] == 2
    assert got["sizes"]["6400"]["evaluations_to_tol"] is None
    assert got["spread"] == pytest.approx(2.0)
    # where the mean crosses e_tol on the log-log line through 500 (3.3e-3) and 1 000 (2.2e-3)
    slope = math.log(3.3 / 2.2) / math.log(2)
    assert got["sizes"]["800"]["interpolated_evaluations"] == pytest.approx(50 * 500 * 1.1 ** (1 / slope))
    # 51 200: 2 000 configurations average 3.0e-3, e_tol itself, so the line crosses there
    assert got["sizes"]["51200"]["interpolated_evaluations"] == pytest.approx(50 * 2000)
    assert got["spread_interpolated"] is None  # 6 400 has no answer


def test_draws_of_two_sizes_at_once_keep_each_others_records(monkeypatch, tmp_path):
    """force_budget_draws.py: two invocations (two sizes) write one results file; each write keeps
    the records the other added since it started."""
    monkeypatch.syspath_prepend(str(BENCH))
    dr = importlib.import_module("force_budget_draws")

    def rec(n, seed):
        return {"n_atoms": n, "loss": "L_xp", "n_configs": 500, "seed": seed, "rollout_rel_error": 1e-3,
                "force_evaluations": 25_000}

    small, large = {}, {}  # each invocation's records, both started on an empty file
    small[dr.key(rec(800, 1))] = rec(800, 1)
    dr.save(tmp_path, "d", tmp_path, small, 3e-3, "")
    large[dr.key(rec(51200, 1))] = rec(51200, 1)
    dr.save(tmp_path, "d", tmp_path, large, 3e-3, "")
    small[dr.key(rec(800, 2))] = rec(800, 2)
    dr.save(tmp_path, "d", tmp_path, small, 3e-3, "")
    doc = json.loads((tmp_path / "d.json").read_text())
    assert [(r["n_atoms"], r["seed"]) for r in doc["records"]] == [(800, 1), (800, 2), (51200, 1)]
    assert doc["over_draws"]["L_xp"]["spread"] == 1.0
