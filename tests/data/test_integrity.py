"""Nothing wrong is read silently: a missing chunk file, a flipped bit or a NaN planted behind
the store's back makes reads refuse the chunk in one line and `verify` name it; `invalidate`
hands it back to the writing stage; a killed creation leaves nothing that blocks the next."""
import subprocess
import sys

import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec

from macrodyn.data import ChunkedTable, Problem
from macrodyn.data.store import DONE
from macrodyn.errors import InputError

# 6 rows in chunks of 2: chunk 1 holds rows 2 and 3
COLS = {"x": ((3,), "float64"), "idx": ((2,), "int64"), "traj": ((4, 5), "float64", "snapshots")}


def _data(rng):
    return {"x": rng.standard_normal((6, 3)), "idx": rng.integers(0, 9, (6, 2)),
            "traj": rng.standard_normal((6, 4, 5))}


@pytest.fixture
def table(tmp_path, rng):
    data = _data(rng)
    t = ChunkedTable.create(tmp_path / "data.zarr", "lab", 6, 2, COLS)
    for c in range(t.n_chunks):
        t.write_chunk(c, **{k: v[t.chunk_slice(c)] for k, v in data.items()})
    return t, data


def _file(t, column, coords):
    arr = t.group[column]
    return t.group.store.root / t.group.path / column / arr.metadata.encode_chunk_key(coords)


# a chunk file of chunk 1 for each column: the plain columns' only one, the 2nd row's 3rd snapshot
CHUNK1 = {"x": (1, 0), "idx": (1, 0), "traj": (3, 2, 0)}


def _reads_of_chunk_1(t, column):
    """Every way of reading chunk 1 (each must refuse it)."""
    reads = [lambda: t.read_chunk(1), lambda: t.read(), lambda: list(t.iter_chunks()),
             lambda: t.read(rows=np.array([3]))]
    return reads + ([lambda: t.gather("traj", np.array([[0, 0], [3, 2]]))] if column == "traj" else [])


def _assert_one_line(err: InputError, column: str, what: str, run_dir) -> None:
    msg = str(err)
    assert "\n" not in msg, msg
    assert msg.startswith(f"table 'lab', chunk 1, column '{column}': {what}"), msg
    assert f"`macrodyn check {run_dir} --repair`" in msg, msg


def test_every_chunk_file_is_written_with_a_checksum(tmp_path):
    """crc32c is each column's last codec; chunks equal to the fill value are written too."""
    t = ChunkedTable.create(tmp_path / "data.zarr", "lab", 2, 2, COLS)
    t.write_chunk(0, x=np.zeros((2, 3)), idx=np.zeros((2, 2), int), traj=np.zeros((2, 4, 5)))
    for col in (*COLS, DONE):
        assert isinstance(t.group[col].metadata.codecs[-1], Crc32cCodec), col
    assert _file(t, "x", (0, 0)).is_file() and _file(t, "idx", (0, 0)).is_file()
    assert all(_file(t, "traj", (i, s, 0)).is_file() for i in range(2) for s in range(4))
    assert t.verify() == []


@pytest.fixture(params=["direct", "zarr"])
def reader(request, monkeypatch):
    """Local chunk files read directly (the fast path) or through zarr (any other store)."""
    if request.param == "zarr":
        from macrodyn.data import store

        monkeypatch.setattr(store, "_raw_chunk_folder", lambda arr: None)
    return request.param


@pytest.mark.parametrize("column", sorted(CHUNK1))
def test_deleted_chunk_file_is_refused_reported_and_invalidated(table, column, tmp_path, reader):
    t, data = table
    _file(t, column, CHUNK1[column]).unlink()
    problems = t.verify()
    assert len(problems) == 1 and (problems[0].table, problems[0].chunk, problems[0].column) == ("lab", 1, column)
    assert problems[0].what.startswith("chunk file missing"), problems
    for read in _reads_of_chunk_1(t, column):
        with pytest.raises(InputError) as e:
            read()
        _assert_one_line(e.value, column, "chunk file missing", tmp_path)
    np.testing.assert_array_equal(t.read_chunk(0)["x"], data["x"][:2])  # the others are untouched
    t.invalidate([1])
    assert t.missing_chunks() == [1] and t.verify() == []
    with pytest.raises(InputError, match="not written"):
        t.read_chunk(1)
    t.write_chunk(1, **{k: v[2:4] for k, v in data.items()})  # what the stage does next
    for k, v in t.read().items():
        np.testing.assert_array_equal(v, data[k])


@pytest.mark.parametrize("column", sorted(CHUNK1))
def test_flipped_bit_is_a_checksum_failure_not_wrong_numbers(table, column, tmp_path, reader):
    t, _ = table
    path = _file(t, column, CHUNK1[column])
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    path.write_bytes(bytes(raw))
    problems = t.verify()
    assert [(p.chunk, p.column) for p in problems] == [(1, column)], problems
    assert problems[0].what.startswith("checksum mismatch"), problems
    with pytest.raises(InputError) as e:
        t.read_chunk(1)
    _assert_one_line(e.value, column, "checksum mismatch", tmp_path)
    with pytest.raises(InputError, match="checksum mismatch"):
        t.read()


@pytest.mark.parametrize("column", ["x", "traj"])
def test_nan_planted_behind_the_store_is_reported(table, column):
    """A NaN written through zarr (valid checksum) is still never read as data."""
    t, data = table
    bad = data[column].copy()
    bad[3, 1] = np.nan
    t.group[column][:] = bad
    problems = t.verify()
    assert [(p.chunk, p.column) for p in problems] == [(1, column)], problems
    assert problems[0].what.startswith("NaN/Inf at row 3"), problems
    with pytest.raises(InputError, match=rf"^table 'lab', chunk 1, column '{column}': NaN/Inf at row 3"):
        t.read_chunk(1)
    if column == "traj":
        with pytest.raises(InputError, match="NaN/Inf at row 3"):
            t.gather("traj", np.array([[3, 1]]))
        np.testing.assert_array_equal(t.gather("traj", np.array([[3, 0]])), data["traj"][[3], 0])


def test_garbage_done_flag_counts_as_not_written(table, reader):
    t, data = table
    _file(t, DONE, (1,)).write_bytes(b"\x07garbage")
    assert t.missing_chunks() == [1]  # redone by the stage, never read
    problems = t.verify()
    assert [(p.chunk, p.column) for p in problems] == [(1, None)] and "done flag unreadable" in problems[0].what
    with pytest.raises(InputError, match="chunk 1 is not written"):
        t.read_chunk(1)
    t.invalidate([1])  # rewrites the flag without reading it
    assert t.verify() == [] and t.missing_chunks() == [1]
    t.write_chunk(1, **{k: v[2:4] for k, v in data.items()})
    assert t.is_complete()


def test_invalidate_refuses_bad_indices(table):
    t, _ = table
    with pytest.raises(InputError, match="out of range"):
        t.invalidate([3])
    assert t.missing_chunks() == []


def test_problem_reads_as_one_line():
    assert str(Problem("train", "chunk file missing (traj/c/3/0/0)", 3, "traj")) == \
        "table 'train', chunk 3, column 'traj': chunk file missing (traj/c/3/0/0)"
    assert str(Problem("labels", "missing")) == "table 'labels': missing"
    assert str(Problem(None, "data.zarr: missing")) == "data.zarr: missing"


def test_table_written_before_checksums_is_still_read(tmp_path, rng, reader):
    """A table made by the old code (default codecs, no crc32c, chunks equal to the fill
    value never written) opens, reads, gathers and verifies clean."""
    data = _data(rng)
    data["traj"][1, 2] = 0.0  # old zarr wrote no file for it
    data["x"][2:4] = 0.0  # a whole chunk of a plain column equal to the fill value
    g = zarr.open_group(str(tmp_path / "data.zarr"), mode="a").create_group("lab")
    g.create_array("x", shape=(6, 3), chunks=(2, 3), dtype="float64")[:] = data["x"]
    g.create_array("idx", shape=(6, 2), chunks=(2, 2), dtype="int64")[:] = data["idx"]
    g.create_array("traj", shape=(6, 4, 5), chunks=(1, 1, 5), dtype="float64", compressors=None)[:] = data["traj"]
    g.create_array(DONE, shape=(3,), chunks=(1,), dtype="bool", fill_value=False)[:] = True
    g.attrs.update({"n_rows": 6, "chunk_rows": 2, "columns": list(COLS),
                    "shapes": {k: list(v[0]) for k, v in COLS.items()}, "user": {}})
    assert not _file(ChunkedTable(g), "traj", (1, 2, 0)).exists() and not _file(ChunkedTable(g), "x", (1, 0)).exists()

    t = ChunkedTable.open(tmp_path / "data.zarr", "lab")
    assert t.is_complete() and t.verify() == []
    for k, v in t.read().items():
        np.testing.assert_array_equal(v, data[k])
    where = np.array([[1, 2], [5, 3], [0, 0]])
    np.testing.assert_array_equal(t.gather("traj", where), data["traj"][where[:, 0], where[:, 1]])
    t.invalidate([2])
    assert t.missing_chunks() == [2]


def test_table_left_half_made_by_the_old_code_is_recreated(tmp_path, rng):
    """A group killed between its arrays and its attrs (before creation was atomic) used to
    block every rerun ("different settings (n_rows: None -> 6 ...)"); it is now rebuilt."""
    g = zarr.open_group(str(tmp_path / "data.zarr"), mode="a").create_group("lab")
    g.create_array("x", shape=(6, 3), chunks=(2, 3), dtype="float64")
    t = ChunkedTable.create(tmp_path / "data.zarr", "lab", 6, 2, COLS)
    data = _data(rng)
    for c in range(t.n_chunks):
        t.write_chunk(c, **{k: v[t.chunk_slice(c)] for k, v in data.items()})
    for k, v in ChunkedTable.open(tmp_path / "data.zarr", "lab").read().items():
        np.testing.assert_array_equal(v, data[k])


KILLED_CREATE = """
import os, sys
from zarr.core.attributes import Attributes
Attributes.update = lambda self, *a, **k: os._exit(17)  # killed after the arrays, before the attrs
from macrodyn.data.store import ChunkedTable
ChunkedTable.create(sys.argv[1], "lab", 6, 2, {"x": ((3,), "float64"), "idx": ((2,), "int64"),
                                               "traj": ((4, 5), "float64", "snapshots")})
"""


def test_kill_during_creation_leaves_nothing_that_blocks_a_rerun(tmp_path, rng):
    store = tmp_path / "data.zarr"
    killed = subprocess.run([sys.executable, "-c", KILLED_CREATE, str(store)], capture_output=True, text=True)
    assert killed.returncode == 17, killed.stderr
    with pytest.raises(InputError, match="no complete table"):
        ChunkedTable.open(store, "lab")  # the half-made table is not in the store
    t = ChunkedTable.create(store, "lab", 6, 2, COLS)
    assert t.missing_chunks() == [0, 1, 2]
    data = _data(rng)
    for c in t.missing_chunks():
        t.write_chunk(c, **{k: v[t.chunk_slice(c)] for k, v in data.items()})
    t = ChunkedTable.open(store, "lab")
    assert t.is_complete() and t.verify() == []
    for k, v in t.read().items():
        np.testing.assert_array_equal(v, data[k])
