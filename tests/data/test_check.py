"""`macrodyn check` finds every kind of damage planted in a good dataset, one line each, never
raising; `repair_run` hands the bad chunks back to the stages, which recompute the same bytes."""
import shutil

import numpy as np
import pytest
import zarr

from macrodyn.data import ChunkedTable
from macrodyn.data.check import check_run, find_problems, repair_run


CFG = {"data": {"n_train_trajectories": 6, "n_test_trajectories": 2, "n_steps": 300, "save_every": 10,
                "chunk_trajectories": 3},
       "training": {"budget": 2000, "chunk_configs": 25}}


def _simulate_and_label(out):
    from macrodyn import Run, parse_config, run_all

    run_all(Run.create(parse_config(CFG), out, progress=False), ("simulate", "label"))


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    _simulate_and_label(out)
    return out


def _copy(src, dst):
    shutil.copytree(src, dst / "run")
    return dst / "run"


def _flip_bit(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_good_dataset_passes(good_run):
    assert check_run(good_run, expected_evaluations=2000) == []
    assert check_run(good_run, expected_evaluations=2100) == [
        "table 'labels': 2000 force evaluations stored, metrics.json says 2100"]


def test_deleted_table(good_run, tmp_path):
    run = _copy(good_run, tmp_path)
    shutil.rmtree(run / "data.zarr" / "labels")
    assert check_run(run) == ["table 'labels': missing; run `macrodyn label` to create it"]
    assert check_run(run, expected_tables=("train", "test")) == []  # after `simulate` alone


def test_deleted_chunk_file_flipped_bit_and_garbage_flag_are_found_and_repaired(good_run, tmp_path):
    """Three kinds of damage in three tables: each found, each chunk invalidated by the repair,
    and the stages' rerun restores the very same data."""
    run = _copy(good_run, tmp_path)
    store = run / "data.zarr"
    (store / "train" / "traj" / "c" / "0" / "0" / "0").unlink()  # train chunk 0 (3 trajectories)
    _flip_bit(store / "labels" / "f" / "c" / "2" / "0")
    (store / "test" / "_done" / "c" / "0").write_bytes(b"not a flag")
    problems = find_problems(run)
    got = sorted(((p.table, p.chunk, p.column, p.what.split(" (")[0].split(",")[0]) for p in problems), key=str)
    assert got == [("labels", 2, "f", "checksum mismatch"),
                   ("test", 0, None, "done flag unreadable"),
                   ("test", None, None, "1 of 1 chunks not written"),
                   ("train", 0, "traj", "chunk file missing")], problems

    assert repair_run(run) == {"labels": [2], "test": [0], "train": [0]}
    assert ChunkedTable.open(run / "data.zarr", "train").missing_chunks() == [0]
    assert ChunkedTable.open(run / "data.zarr", "labels").missing_chunks() == [2]
    redo = [("labels", 4, 2, "label"), ("test", 1, 0, "simulate"), ("train", 2, 0, "simulate")]
    assert check_run(run) == [f"table {t!r}: 1 of {n} chunks not written ([{c}]); rerun `macrodyn {stage}` to "
                              "complete them" for t, n, c, stage in redo]
    assert repair_run(run) == {}

    _simulate_and_label(run)
    assert check_run(run, expected_evaluations=2000) == []
    for name in ("train", "test", "labels"):
        a = ChunkedTable.open(good_run / "data.zarr", name).read()
        b = ChunkedTable.open(run / "data.zarr", name).read()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_truncated_chunk(good_run, tmp_path):
    run = _copy(good_run, tmp_path)
    path = run / "data.zarr" / "labels" / "f" / "c" / "1" / "0"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    assert check_run(run) == ["table 'labels', chunk 1, column 'f': checksum mismatch, the chunk file is damaged"]


def test_nan_force_wrong_and_repeated_index(good_run, tmp_path):
    run = _copy(good_run, tmp_path)
    g = zarr.open_group(str(run / "data.zarr" / "labels"), mode="r+")  # behind the store: valid checksums
    f = g["f"][:]
    f[7, 3] = np.nan
    g["f"][:] = f
    idx = g["idx"][:]
    idx[30, 0] = 100  # N = 100: out of range
    idx[60, 1] = idx[60, 0]
    g["idx"][:] = idx
    where = g["where"][:]
    where[40, 1] = 31  # 300 steps saved every 10: snapshots 0..30
    g["where"][:] = where
    problems = check_run(run)
    assert problems == [
        "table 'labels', chunk 0, column 'f': NaN/Inf at row 7",
        "table 'labels', chunk 1, column 'idx': index out of range [0, 100) at row 30 (min 0, max 100)",
        "table 'labels', chunk 1, column 'where': label at row 40 points outside the train table (6, 31)",
        "table 'labels', chunk 2, column 'idx': repeated index within a configuration at row 60"], problems
    assert repair_run(run) == {"labels": [0, 1, 2]}


@pytest.mark.parametrize("damage", ["table zarr.json", "column zarr.json", "store zarr.json", "attrs",
                                    "flag zarr.json", "empty folder"])
def test_broken_metadata_is_a_problem_not_a_crash(good_run, tmp_path, damage):
    run = _copy(good_run, tmp_path)
    store = run / "data.zarr"
    target = {"table zarr.json": store / "labels" / "zarr.json", "store zarr.json": store / "zarr.json",
              "column zarr.json": store / "labels" / "f" / "zarr.json",
              "flag zarr.json": store / "test" / "_done" / "zarr.json"}
    if damage == "attrs":  # a table whose attrs were never written
        (store / "labels" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    elif damage == "empty folder":
        (store / "stray").mkdir()
    else:
        target[damage].write_text("{not json")
    problems = check_run(run)
    assert len(problems) == 1 and "\n" not in problems[0], problems
    want = {"table zarr.json": "table 'labels': metadata unreadable or incomplete",
            "attrs": "table 'labels': metadata unreadable or incomplete (KeyError",
            "column zarr.json": "table 'labels', column 'f': metadata unreadable",
            "store zarr.json": f"{store}: store metadata unreadable",
            "flag zarr.json": "table 'test', column '_done': metadata unreadable",
            "empty folder": "table 'stray': metadata unreadable or incomplete"}[damage]
    assert problems[0].startswith(want), problems


def test_missing_dataset(tmp_path):
    assert check_run(tmp_path) == [f"{tmp_path / 'data.zarr'}: missing (run `macrodyn simulate` first)"]


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
