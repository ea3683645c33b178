"""The CLI end to end on a tiny predator–prey config, and its error handling."""
import json
import subprocess
import sys

import pytest
import yaml

from macrodyn.data import ChunkedTable
from macrodyn.training import units_in

TINY = {
    "name": "tiny",
    "data": {"n_train_trajectories": 8, "n_test_trajectories": 4, "n_steps": 600, "save_every": 10,
             "chunk_trajectories": 4},
    "closure": {"epochs": 2},
    "training": {"epochs": 5, "budget": 4000, "chunk_configs": 64},
    "evaluation": {"n_plot": 2},
}


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-c", "from macrodyn.cli import entry; entry()", *args],
                          capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_run_end_to_end(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    r = _cli("run", str(cfg), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert "force evaluations" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    for key in ("system", "loss", "p", "n_configs", "force_evaluations", "rollout_rel_error",
                "rollout_rel_error_std", "n_test_trajectories", "seed", "stage_seconds"):
        assert key in m
    assert m["n_configs"] == 4000 // 20 and m["force_evaluations"] == 4000
    assert set(m["stage_seconds"]) >= {"simulate", "label", "closure", "features", "dynamics", "evaluate"}
    assert set(m["stage_peak_rss_gb"]) == set(m["stage_seconds"])
    assert all(0.05 < gb < 20 for gb in m["stage_peak_rss_gb"].values())
    labels = ChunkedTable.open(out / "data.zarr", "labels").read()
    assert labels["f"].shape == (200, 20)  # only the computed forces are stored
    assert units_in(labels["idx"], 1) == m["force_evaluations"]
    for fig in ("observables.png", "error_over_time.png", "training.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    # a second run resumes: nothing is recomputed and the metrics are identical
    r2 = _cli("run", str(cfg), "--out", str(out), "-q")
    assert r2.returncode == 0, r2.stderr
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["rollout_rel_error"] == m["rollout_rel_error"]


def test_bad_config_gives_one_line_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("training:\n  budgett: 10\n")
    r = _cli("run", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "training.budgett: unknown field" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_config_file(tmp_path):
    r = _cli("run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_budget_too_large_for_pool(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "training": {"budget": 10**7}}))
    r = _cli("label", str(cfg), "--out", str(tmp_path / "o"), "-q")
    assert r.returncode == 2 and "training pool" in r.stderr
