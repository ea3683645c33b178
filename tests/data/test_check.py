"""`macrodyn check` finds a truncated chunk, a NaN force and a wrong index planted in a good dataset."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from macrodyn.data.check import check_run
from macrodyn.training import units_in


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    from macrodyn import Run, parse_config, run_all

    cfg = parse_config({"data": {"n_train_trajectories": 6, "n_test_trajectories": 2, "n_steps": 300,
                                 "save_every": 10, "chunk_trajectories": 3},
                        "training": {"budget": 2000, "chunk_configs": 25}})
    out = tmp_path_factory.mktemp("run")
    run_all(Run(cfg, out, progress=False), ("simulate", "label"))
    return out


def _copy(src, dst):
    shutil.copytree(src, dst / "run")
    return dst / "run"


def test_good_dataset_passes(good_run):
    assert check_run(good_run, expected_evaluations=2000) == []
    assert check_run(good_run, expected_evaluations=2100)  # wrong count is reported


def test_truncated_chunk(good_run, tmp_path):
    run = _copy(good_run, tmp_path)
    chunk_files = sorted(p for p in (run / "data.zarr" / "labels" / "f" / "c").rglob("*") if p.is_file())
    data = chunk_files[1].read_bytes()
    chunk_files[1].write_bytes(data[: len(data) // 2])
    problems = check_run(run)
    assert any("labels" in p and "unreadable" in p for p in problems), problems


def test_nan_force_and_wrong_index(good_run, tmp_path):
    run = _copy(good_run, tmp_path)
    g = zarr.open_group(str(run / "data.zarr" / "labels"), mode="r+")
    f = g["f"][:]
    f[7, 3] = np.nan
    g["f"][:] = f
    idx = g["idx"][:]
    idx[30, 0] = 100  # N = 100: out of range
    g["idx"][:] = idx
    where = g["where"][:]
    where[40, 1] = 31  # 300 steps saved every 10: snapshots 0..30
    g["where"][:] = where
    problems = check_run(run)
    assert any("column f: NaN/Inf at row 7" in p for p in problems), problems
    assert any("index out of range" in p for p in problems), problems
    assert any("points outside the train table (6, 31)" in p for p in problems), problems


def test_missing_dataset(tmp_path):
    assert "missing" in check_run(tmp_path)[0]


def test_cli_check_exit_codes(good_run, tmp_path):
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-c", "from macrodyn.cli import entry; entry()", "check", str(good_run)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "dataset OK" in ok.stdout
    run = _copy(good_run, tmp_path)
    g = zarr.open_group(str(run / "data.zarr" / "labels"), mode="r+")
    f = g["f"][:]
    f[0, 0] = np.inf
    g["f"][:] = f
    bad = subprocess.run([sys.executable, "-c", "from macrodyn.cli import entry; entry()", "check", str(run)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "NaN/Inf" in bad.stderr
