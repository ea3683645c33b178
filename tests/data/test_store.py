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
