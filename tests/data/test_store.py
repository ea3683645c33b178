import numpy as np
import pytest

from macrodyn.data import ChunkedTable
from macrodyn.errors import InputError

COLS = {"x": ((3,), "float64"), "idx": ((2,), "int64")}


def test_roundtrip_and_missing_chunks(tmp_path, rng):
    t = ChunkedTable.create(tmp_path / "s.zarr", "lab", 10, 4, COLS)
    assert t.missing_chunks() == [0, 1, 2] and t.n_chunks == 3
    data = {c: {"x": rng.random((len(range(10)[t.chunk_slice(c)]), 3)),
                "idx": rng.integers(0, 9, (len(range(10)[t.chunk_slice(c)]), 2))} for c in range(3)}
    t.write_chunk(2, **data[2])
    with pytest.raises(InputError, match="incomplete"):
        t.read()
    for c in (0, 1):
        t.write_chunk(c, **data[c])
    back = ChunkedTable.open(tmp_path / "s.zarr", "lab").read()
    np.testing.assert_array_equal(back["x"], np.concatenate([data[c]["x"] for c in range(3)]))
    streamed = list(t.iter_chunks(["idx"], order=[2, 0, 1]))
    np.testing.assert_array_equal(streamed[0]["idx"], data[2]["idx"])


def test_refuses_nan_and_bad_shapes(tmp_path):
    t = ChunkedTable.create(tmp_path / "s.zarr", "lab", 4, 4, COLS)
    x = np.ones((4, 3))
    x[2, 1] = np.inf
    with pytest.raises(InputError, match="NaN/Inf"):
        t.write_chunk(0, x=x, idx=np.zeros((4, 2), int))
    with pytest.raises(InputError, match="shape"):
        t.write_chunk(0, x=np.ones((3, 3)), idx=np.zeros((4, 2), int))
    with pytest.raises(InputError, match="columns"):
        t.write_chunk(0, x=np.ones((4, 3)))
    assert t.missing_chunks() == [0]  # nothing half-written was marked done


def test_reopen_with_other_settings_is_refused(tmp_path):
    ChunkedTable.create(tmp_path / "s.zarr", "lab", 4, 2, COLS, {"seed": 1})
    ChunkedTable.create(tmp_path / "s.zarr", "lab", 4, 2, COLS, {"seed": 1})  # same: reopens
    with pytest.raises(InputError, match="different settings"):
        ChunkedTable.create(tmp_path / "s.zarr", "lab", 4, 2, COLS, {"seed": 2})


def test_missing_store_and_table(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ChunkedTable.open(tmp_path / "nope.zarr", "lab")
    ChunkedTable.create(tmp_path / "s.zarr", "lab", 4, 2, COLS)
    with pytest.raises(InputError, match="no complete table"):
        ChunkedTable.open(tmp_path / "s.zarr", "other")


def test_reopen_with_tuple_attrs(tmp_path):
    """Settings holding tuples (stored as JSON lists) reopen as the same table."""
    ChunkedTable.create(tmp_path / "s.zarr", "lab", 4, 2, COLS, {"t0_range": (0.5, 1.5)})
    ChunkedTable.create(tmp_path / "s.zarr", "lab", 4, 2, COLS, {"t0_range": (0.5, 1.5)})


@pytest.mark.parametrize("layout", [(), ("snapshots",)])
def test_gather_single_snapshots(tmp_path, rng, layout):
    """gather returns column[i, t] for (i, t) pairs, in the order asked, with either layout;
    the snapshot layout stores one chunk file per snapshot."""
    traj = rng.standard_normal((7, 5, 6))
    t = ChunkedTable.create(tmp_path / "s.zarr", "train", 7, 3, {"traj": ((5, 6), "float64", *layout)})
    for c in range(t.n_chunks):
        t.write_chunk(c, traj=traj[t.chunk_slice(c)])
    where = np.array([[6, 4], [0, 0], [3, 2], [6, 4], [1, 3]])
    np.testing.assert_array_equal(t.gather("traj", where), traj[where[:, 0], where[:, 1]])
    np.testing.assert_array_equal(t.read()["traj"], traj)
    chunks = t.group["traj"].chunks
    assert chunks == ((1, 1, 6) if layout else (3, 5, 6))
    with pytest.raises(InputError, match="out of range"):
        t.gather("traj", np.array([[7, 0]]))


def test_gather_refuses_incomplete_chunk_and_bad_layout(tmp_path, rng):
    t = ChunkedTable.create(tmp_path / "s.zarr", "train", 4, 2, {"traj": ((3, 2), "float64", "snapshots")})
    t.write_chunk(0, traj=rng.standard_normal((2, 3, 2)))
    t.gather("traj", np.array([[1, 2]]))
    with pytest.raises(InputError, match="incomplete"):
        t.gather("traj", np.array([[2, 0]]))
    with pytest.raises(InputError, match="snapshots"):
        ChunkedTable.create(tmp_path / "s.zarr", "bad", 4, 2, {"x": ((3,), "float64", "snapshots")})


def test_gather_direct_read_matches_zarr(tmp_path, rng, monkeypatch):
    """The direct chunk-file read of a local snapshots column returns what zarr's own read
    does, including a snapshot equal to the fill value (written like any other, so a missing
    file always means damage), and a truncated chunk file is refused in one line."""
    from macrodyn.data import store

    traj = rng.standard_normal((4, 3, 5))
    traj[2, 1] = 0.0  # all fill value: zarr would skip it by default
    t = ChunkedTable.create(tmp_path / "s.zarr", "train", 4, 2, {"traj": ((3, 5), "float64", "snapshots")})
    for c in range(t.n_chunks):
        t.write_chunk(c, traj=traj[t.chunk_slice(c)])
    arr = t.group["traj"]
    folder = store._raw_chunk_folder(arr)
    assert folder is not None and (folder / arr.metadata.encode_chunk_key((2, 1, 0))).is_file()
    where = np.array([[2, 1], [3, 2], [0, 0], [2, 1]])
    direct = t.gather("traj", where)
    monkeypatch.setattr(store, "_raw_chunk_folder", lambda a: None)  # zarr's async path
    np.testing.assert_array_equal(direct, t.gather("traj", where))
    np.testing.assert_array_equal(direct, traj[where[:, 0], where[:, 1]])
    monkeypatch.undo()
    path = folder / arr.metadata.encode_chunk_key((3, 2, 0))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(InputError, match=r"^table 'train', chunk 1, column 'traj': chunk file truncated") as e:
        t.gather("traj", np.array([[3, 2]]))
    assert "\n" not in str(e.value)


def test_read_selected_rows(tmp_path, rng):
    """read(rows=...) returns exactly the selected rows, across chunks and in the order asked."""
    cols = {"x": ((3,), "float64"), "traj": ((2, 4), "float64", "snapshots")}
    t = ChunkedTable.create(tmp_path / "s.zarr", "lab", 7, 3, cols)
    x, traj = rng.random((7, 3)), rng.random((7, 2, 4))
    for c in range(t.n_chunks):
        t.write_chunk(c, x=x[t.chunk_slice(c)], traj=traj[t.chunk_slice(c)])
    for rows in (np.array([6, 0, 4, 4]), slice(2, 6), np.arange(7) % 2 == 0):
        back = t.read(rows=rows)
        np.testing.assert_array_equal(back["x"], x[rows])
        np.testing.assert_array_equal(back["traj"], traj[rows])
    with pytest.raises(InputError, match="rows"):
        t.read(rows=np.array([7]))


def test_column_names_never_collide_with_the_chunk_argument(tmp_path):
    """write_chunk's chunk index is positional-only: columns may be called 'c' or 'self'."""
    t = ChunkedTable.create(tmp_path / "s.zarr", "lab", 2, 2, {"c": ((1,), "int64"), "self": ((1,), "float64")})
    t.write_chunk(0, c=np.array([[1], [2]]), self=np.array([[0.5], [1.5]]))
    back = t.read()
    np.testing.assert_array_equal(back["c"], [[1], [2]])
    np.testing.assert_array_equal(back["self"], [[0.5], [1.5]])


def test_gather_direct_read_only_for_plain_bytes(tmp_path, rng):
    """A compressed snapshots column (not written by ChunkedTable, but a valid zarr array) is
    read through zarr, not as raw bytes."""
    from macrodyn.data import store

    t = ChunkedTable.create(tmp_path / "s.zarr", "train", 2, 2, {"traj": ((3, 4), "float64", "snapshots")})
    g = t.group
    del g["traj"]
    g.create_array("traj", shape=(2, 3, 4), chunks=(1, 1, 4), dtype="float64")  # default compressor
    assert store._raw_chunk_folder(g["traj"]) is None
    traj = rng.standard_normal((2, 3, 4))
    t.write_chunk(0, traj=traj)
    np.testing.assert_array_equal(t.gather("traj", np.array([[1, 2], [0, 1]])), traj[[1, 0], [2, 1]])
