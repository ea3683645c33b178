"""Chunked on-disk tables (zarr v3): several columns sharing axis 0.

A table is a zarr group whose arrays share the row axis and the chunking along it.
A chunk is written as one unit: each column's chunk file is written atomically by
zarr (temp file, then link), and the row of the ``_done`` flag array is written
last, so a chunk is either complete (flag set) or treated as absent and redone.
This is also what lets independent workers (Dask) fill different chunks. A table is
created atomically too: built in a temporary folder, then renamed into the store.

Nothing wrong is read silently. Every chunk file ends in a crc32c checksum, and every
chunk is written, even one equal to the fill value, so a chunk flagged done is *bad* if
its file is missing, its checksum fails or it holds NaN/Inf. Reading a bad chunk raises
:class:`InputError` naming the table, chunk and fix; :meth:`ChunkedTable.verify` lists
bad chunks, :meth:`ChunkedTable.invalidate` unflags them so the writing stage redoes
them. Tables written before checksums existed are still read (without them).

A column declared with layout ``"snapshots"`` (trajectories, per-row shape ``(T, N)``)
is stored one ``(1, 1, N)`` zarr chunk per snapshot, uncompressed: labelling reads
single snapshots (:meth:`ChunkedTable.gather`), which then costs one small file read
instead of decompressing a whole chunk of trajectories (MD doubles compress by ~4 %).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec
from zarr.core.sync import sync  # zarr's own event loop (also safe inside Dask worker threads)
from zarr.storage import LocalStore

from macrodyn.data.validate import check_finite, first_nonfinite
from macrodyn.errors import InputError

DONE = "_done"
_META_KEYS = ("n_rows", "chunk_rows", "columns", "shapes", "user")
# zarr's default compressor, then the checksum of the compressed bytes (what is on disk)
_COMPRESSED = (ZstdCodec(level=0, checksum=False), Crc32cCodec())
_WRITE = {"write_empty_chunks": True}  # runtime only (not stored): set on every array we write


@dataclass(frozen=True)
class Problem:
    """Something wrong in a table: ``chunk`` and ``column`` are None when it is not one chunk's
    (or one column's). A problem naming a chunk is repaired by invalidating that chunk."""

    table: str | None
    what: str
    chunk: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = ([f"table {self.table!r}"] if self.table is not None else []) + \
            ([f"chunk {self.chunk}"] if self.chunk is not None else []) + \
            ([f"column {self.column!r}"] if self.column is not None else [])
        return f"{', '.join(where)}: {self.what}" if where else self.what


class _Bad(Exception):
    """A bad chunk found while reading (``row``: a table row inside it)."""

    def __init__(self, what: str, row: int | None = None):
        super().__init__(what)
        self.what, self.row = what, row


class ChunkedTable:
    """Rows of named columns stored in chunks of ``chunk_rows`` rows.

    Args:
        group: an open zarr group holding the table (see :meth:`create`, :meth:`open`).
        name: the table's name in messages (default: the group's name).
    """

    def __init__(self, group: zarr.Group, name: str | None = None):
        self.group = group
        self.name: str = name or group.basename or group.path
        self.n_rows: int = int(group.attrs["n_rows"])
        self.chunk_rows: int = int(group.attrs["chunk_rows"])
        self.columns: list[str] = list(group.attrs["columns"])
        self._arrays: dict[str, zarr.Array] = {}

    # -------------------------------------------------------------- creation
    @classmethod
    def create(cls, root: str | Path, name: str, n_rows: int, chunk_rows: int,
               columns: dict[str, tuple], attrs: dict | None = None) -> "ChunkedTable":
        """Create (or, if an identical layout exists, reopen) a table, atomically (module
        docstring); a table left half-made by a creation killed before that is rebuilt.

        Args:
            root: path of the zarr store (a directory).
            name: table name (a group inside the store).
            n_rows, chunk_rows: number of rows and rows per chunk.
            columns: ``{column: (per-row shape, dtype)}`` or ``(shape, dtype, "snapshots")``
                for a ``(T, N)`` trajectory column read snapshot by snapshot (module docstring).
            attrs: metadata; a table reopened with different ``attrs`` is an error, so a
                changed config never silently mixes with old data.
        """
        if n_rows <= 0 or chunk_rows <= 0:
            raise InputError(f"table {name!r}: n_rows and chunk_rows must be positive; got {n_rows}, {chunk_rows}.")
        for col, spec in columns.items():
            if len(spec) == 3 and (spec[2] != "snapshots" or len(spec[0]) != 2):
                raise InputError(f"table {name!r}, column {col!r}: layout {spec[2]!r} needs a (T, N) per-row shape "
                                 "and the name 'snapshots'.")
        meta = {"n_rows": n_rows, "chunk_rows": chunk_rows, "columns": list(columns),
                "shapes": {k: list(v[0]) for k, v in columns.items()}, "user": attrs or {}}
        meta = json.loads(json.dumps(meta))  # as stored (tuples become lists), so a reopen compares equal
        try:
            store = zarr.open_group(str(root), mode="a")
        except Exception as e:
            raise InputError(f"cannot open dataset {root} ({_one_line(e)}); delete it and rerun.") from e
        local = isinstance(store.store, LocalStore)
        for _ in range(2):  # a second round only when another process created it meanwhile
            if (group := _complete_group(store, root, name)) is not None:
                old = {k: group.attrs.get(k) for k in meta}
                if old != meta:
                    raise InputError(f"{root}/{name} already holds a table with different settings "
                                     f"({_diff(old, meta)}); use a new --out directory or delete it.")
                return cls(group, name)
            if not local:  # no rename: build in place, attrs last (an incomplete group is rebuilt)
                _build(store.create_group(name, overwrite=True), n_rows, chunk_rows, columns, meta)
                return cls(store[name], name)
            # Built aside and renamed in: a kill mid-way leaves no half-made table in the store
            # (only the temporary folder), and of two processes creating it, one rename wins.
            target = Path(store.store.root) / store.path / name
            tmp = target.parent.parent / f".{target.parent.name}.{name}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                _build(zarr.open_group(str(tmp), mode="w"), n_rows, chunk_rows, columns, meta)
                os.rename(tmp, target)
            except OSError:
                if not target.exists():
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return cls(store[name], name)

    @classmethod
    def open(cls, root: str | Path, name: str) -> "ChunkedTable":
        """Open an existing table; a clear error if it is missing or incomplete."""
        if not Path(root).exists():
            raise InputError(f"dataset {root} does not exist; run the stage that creates it first.")
        try:
            store = zarr.open_group(str(root), mode="r+")
            group = store[name]
            return cls(group, name)
        except KeyError as e:
            raise InputError(f"dataset {root} has no complete table {name!r}; rerun the stage that creates it.") from e
        except Exception as e:  # corrupt metadata
            raise InputError(f"cannot read table {name!r} in {root} ({_one_line(e)}); the file may be corrupt: "
                             "delete the table and rerun the stage that creates it.") from e

    @property
    def user_attrs(self) -> dict:
        return dict(self.group.attrs["user"])

    def _array(self, name: str) -> zarr.Array:
        """Column (or flag) array, opened once, set to write every chunk (module docstring)."""
        if name not in self._arrays:
            try:
                self._arrays[name] = self.group[name].with_config(_WRITE)
            except Exception as e:
                raise InputError(f"table {self.name!r}, column {name!r}: metadata unreadable ({_one_line(e)}); "
                                 "delete the table and rerun the stage that writes it.") from None
        return self._arrays[name]

    # ---------------------------------------------------------------- chunks
    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_rows)

    def chunk_slice(self, c: int) -> slice:
        return slice(c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n_rows))

    def done(self) -> np.ndarray:
        """``(n_chunks,)`` bool: which chunks are complete (an unreadable flag counts as not done,
        so the chunk is redone; :meth:`verify` reports it)."""
        return self._flags()[0]

    def missing_chunks(self) -> list[int]:
        return [int(c) for c in np.flatnonzero(~self.done())]

    def is_complete(self) -> bool:
        return bool(self.done().all())

    def invalidate(self, chunks: Iterable[int]) -> None:
        """Clear the done flag of ``chunks`` (e.g. bad ones, see :meth:`verify`): reads refuse
        them and the stage that writes the table recomputes them (its chunks are deterministic)."""
        flags = self._array(DONE)
        for c in chunks:
            self._check_index(c)
            flags[int(c)] = False  # a whole chunk of the flag array: written without reading the old one

    def write_chunk(self, c: int, /, **cols: np.ndarray) -> None:
        """Write every column of chunk ``c``, then mark it done.

        Everything is checked before the first byte is written; a done chunk being
        rewritten is unmarked first, so an interrupted rewrite is redone, never read.
        ``c`` is positional-only, so any column name (``c`` too) can be passed.
        """
        self._check_index(c)
        sl = self.chunk_slice(c)
        if set(cols) != set(self.columns):
            raise InputError(f"chunk {c}: columns {sorted(cols)} do not match table columns {sorted(self.columns)}.")
        cols = {name: np.asarray(a) for name, a in cols.items()}
        for name, a in cols.items():
            want = (sl.stop - sl.start, *self.group.attrs["shapes"][name])
            if tuple(a.shape) != want:
                raise InputError(f"chunk {c}, column {name!r}: shape {tuple(a.shape)}, expected {want}.")
            dtype = self._array(name).dtype
            if not np.can_cast(a.dtype, dtype, "same_kind"):
                raise InputError(f"chunk {c}, column {name!r}: dtype {a.dtype} cannot be stored as {dtype}.")
            if np.issubdtype(a.dtype, np.floating):
                check_finite(f"column {name!r} of chunk {c}", a)
        flags = self._array(DONE)
        if self._flags([c])[0][0]:
            flags[c] = False
        for name, a in cols.items():
            self._array(name)[sl] = a
        flags[c] = True

    # ----------------------------------------------------------------- reads
    def read_chunk(self, c: int, columns: list[str] | None = None) -> dict[str, np.ndarray]:
        """Columns of done chunk ``c``, verified (see :meth:`verify`)."""
        self._check_index(c)
        if not self._flags([c])[0][0]:
            raise InputError(f"table {self.name!r}, chunk {c} is not written (incomplete); "
                             "rerun the stage that writes it.")
        out = {}
        for k in (columns or self.columns):
            try:
                out[k] = self._read_block(int(c), k)
            except _Bad as e:
                raise self._error(int(c), k, e.what) from None
        return out

    def iter_chunks(self, columns: list[str] | None = None, order: np.ndarray | None = None
                    ) -> Iterator[dict[str, np.ndarray]]:
        """Stream complete chunks (in ``order`` if given); never loads the whole table."""
        if not self.is_complete():
            raise InputError(f"table {self.name!r} is incomplete ({len(self.missing_chunks())} chunks "
                             "missing); rerun the stage that writes it.")
        for c in (range(self.n_chunks) if order is None else order):
            yield self.read_chunk(int(c), columns)

    def gather(self, column: str, where: np.ndarray) -> np.ndarray:
        """``column[where[j, 0], where[j, 1]]`` for each row ``j`` of ``where`` ``(M, 2)``: single
        snapshots of a trajectory column. A ``"snapshots"`` column in a local store is read chunk
        file by chunk file (see :func:`_raw_chunk_folder`), in any other store through zarr with
        64 reads in flight; a plain column decodes whole chunks, so it is read chunk by chunk.
        Every snapshot is verified (checksum, NaN/Inf) as it is read."""
        where = np.asarray(where, dtype=np.int64).reshape(-1, 2)
        arr = self._array(column)
        if len(where) and ((where < 0).any() or (where >= np.asarray(arr.shape[:2])).any()):
            raise InputError(f"table {self.name!r}: snapshot index out of range {arr.shape[:2]}.")
        chunks = np.unique(where[:, 0] // self.chunk_rows)
        if not self._flags(chunks)[0].all():
            raise InputError(f"table {self.name!r} is incomplete; rerun the stage that writes it.")
        out = np.empty((len(where), arr.shape[-1]), dtype=arr.dtype)
        if arr.chunks[:2] != (1, 1):
            for c in chunks:
                sel = np.flatnonzero(where[:, 0] // self.chunk_rows == c)
                block = self.read_chunk(int(c), [column])[column]
                out[sel] = block[where[sel, 0] - c * self.chunk_rows, where[sel, 1]]
            return out
        try:
            self._read_snapshots(arr, where, out)
        except _Bad as e:
            raise self._error(e.row // self.chunk_rows, column, e.what) from None
        return out

    def read(self, columns: list[str] | None = None, rows: np.ndarray | slice | None = None) -> dict[str, np.ndarray]:
        """Read whole columns (or selected ``rows``) into memory, verified; for tables that fit."""
        if not self.is_complete():
            raise InputError(f"table {self.name!r} is incomplete; rerun the stage that writes it.")
        try:
            idx = np.arange(self.n_rows)[slice(None) if rows is None else rows]
        except IndexError as e:
            raise InputError(f"table {self.name!r}: rows {e}.") from None
        idx = idx.reshape(-1)
        in_chunk = idx // self.chunk_rows
        order = np.argsort(in_chunk, kind="stable")
        chunks, starts = np.unique(in_chunk[order], return_index=True)
        parts = np.split(order, starts[1:])
        out = {}
        for k in (columns or self.columns):
            arr = self._array(k)
            out[k] = np.empty((len(idx), *arr.shape[1:]), dtype=arr.dtype)
            for c, pos in zip(chunks, parts):
                try:
                    block = self._read_block(int(c), k)
                except _Bad as e:
                    raise self._error(int(c), k, e.what) from None
                out[k][pos] = block[idx[pos] - c * self.chunk_rows]
        return out

    # ----------------------------------------------------------- verification
    def verify(self, columns: list[str] | None = None) -> list[Problem]:
        """Every bad chunk flagged done (chunk file missing, checksum or size wrong, NaN/Inf,
        unreadable) and every unreadable done flag; reads all of the table's done chunks."""
        return [p for _, _, probs in self.scan(columns) for p in probs]

    def scan(self, columns: list[str] | None = None
             ) -> Iterator[tuple[int | None, dict[str, np.ndarray], list[Problem]]]:
        """:meth:`verify` chunk by chunk: ``(chunk, its good columns, its problems)`` for each done
        chunk, after ``(None, {}, problems)`` for the flags and column metadata."""
        head, cols = [], []
        for k in (DONE, *(columns or self.columns)):
            try:
                self._arrays[k] = self.group[k].with_config(_WRITE)
                cols.append(k)
            except Exception as e:
                head.append(Problem(self.name, f"metadata unreadable ({_one_line(e)}); delete the table "
                                    "and rerun the stage that writes it", column=k))
        if DONE not in cols:  # which chunks are done is unknown: nothing more to check
            yield None, {}, head
            return
        flags, unreadable = self._flags()
        head += [Problem(self.name, f"done flag unreadable ({what}); the chunk counts as not written", c)
                 for c, what in unreadable.items()]
        cols.remove(DONE)
        yield None, {}, head
        for c in np.flatnonzero(flags):
            good, probs = {}, []
            for k in cols:
                try:
                    good[k] = self._read_block(int(c), k)
                except _Bad as e:
                    probs.append(Problem(self.name, e.what, int(c), k))
                except Exception as e:  # never stop a scan on what it inspects
                    probs.append(Problem(self.name, f"unreadable ({_one_line(e)})", int(c), k))
            yield int(c), good, probs

    # -------------------------------------------------------------- internals
    def _check_index(self, c) -> None:
        if not (isinstance(c, (int, np.integer)) and 0 <= c < self.n_chunks):
            raise InputError(f"chunk index {c!r} out of range [0, {self.n_chunks}) for table {self.name!r}.")

    def _error(self, c: int, column: str, what: str) -> InputError:
        return InputError(f"table {self.name!r}, chunk {c}, column {column!r}: {what}; run "
                          f"`macrodyn check {self._run_dir()} --repair` and rerun the stage that writes it.")

    def _run_dir(self) -> str:
        """The run folder ``macrodyn check`` takes (the store's parent), else the store itself."""
        store = self.group.store_path.store
        if not isinstance(store, LocalStore):
            return "RUN"
        store_dir = (Path(store.root) / self.group.path).parent
        return str(store_dir.parent if store_dir.name == "data.zarr" else store_dir)

    def _flags(self, chunks: Iterable[int] | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """Done flags of ``chunks`` (all by default), and ``{chunk: why}`` for unreadable ones
        (counted as not done)."""
        arr = self._array(DONE)
        ids = range(self.n_chunks) if chunks is None else [int(c) for c in chunks]
        flags, bad = np.zeros(len(ids), dtype=bool), {}
        folder = _raw_chunk_folder(arr)
        if folder is not None:  # ~20 us a flag, zarr's path ~0.5 ms
            crc, byte = _has_crc(arr), np.zeros(1, dtype=bool)
            for j, c in enumerate(ids):
                try:
                    _read_raw_chunk(folder, arr.metadata.encode_chunk_key((c,)), byte, crc, missing_ok=True)
                    flags[j] = byte[0]
                except _Bad as e:
                    bad[c] = e.what
            return flags, bad
        try:
            flags[:] = np.asarray(arr[:])[list(ids)]
            return flags, bad
        except Exception:  # find the unreadable ones
            pass
        for j, c in enumerate(ids):
            try:
                flags[j] = bool(arr[c])
            except Exception as e:
                bad[c] = _one_line(e)
        return flags, bad

    def _read_block(self, c: int, column: str) -> np.ndarray:
        """Rows of chunk ``c`` of ``column``, verified; raises :class:`_Bad`."""
        arr, sl = self._array(column), self.chunk_slice(c)
        if arr.chunks[:2] == (1, 1) and arr.ndim == 3:  # snapshots: one file per (row, snapshot)
            out = np.empty((sl.stop - sl.start, *arr.shape[1:]), dtype=arr.dtype)
            where = np.stack(np.meshgrid(np.arange(sl.start, sl.stop), np.arange(arr.shape[1]), indexing="ij"), -1)
            self._read_snapshots(arr, where.reshape(-1, 2), out.reshape(-1, arr.shape[-1]))
            return out
        if _has_crc(arr):  # every chunk is written: a missing file is damage, not the fill value
            missing = _missing_keys(arr, [arr.metadata.encode_chunk_key(k) for k in _chunk_coords(arr, sl)])
            if missing:
                raise _Bad(f"chunk file missing ({column}/{missing[0]})")
        try:
            block = np.asarray(arr[sl])
        except Exception as e:
            raise _Bad(_decode_failure(e)) from None
        if np.issubdtype(block.dtype, np.floating) and (bad := first_nonfinite(block)) is not None:
            raise _Bad(f"NaN/Inf at row {sl.start + bad[0]}")
        return block

    def _read_snapshots(self, arr: zarr.Array, where: np.ndarray, out: np.ndarray) -> None:
        """``out[j] = arr[where[j, 0], where[j, 1]]`` for a snapshots column, verified; raises
        :class:`_Bad` naming the row."""
        crc, key = _has_crc(arr), arr.metadata.encode_chunk_key
        floating = np.issubdtype(out.dtype, np.floating)
        folder = _raw_chunk_folder(arr)
        if folder is None:
            self._read_snapshots_zarr(arr, where, out, crc)
        for j, (i, t) in enumerate(where):
            if folder is not None:
                try:
                    _read_raw_chunk(folder, key((int(i), int(t), 0)), out[j], crc, arr.fill_value)
                except _Bad as e:
                    raise _Bad(e.what, int(i)) from None
            if floating and not np.isfinite(out[j]).all():  # while the snapshot is in cache
                raise _Bad(f"NaN/Inf at row {i} (snapshot {t}, entry {first_nonfinite(out[j])[0]})", int(i))

    @staticmethod
    def _read_snapshots_zarr(arr: zarr.Array, where: np.ndarray, out: np.ndarray, crc: bool) -> None:
        aa = arr.async_array
        store, prefix = aa.store_path.store, aa.store_path.path

        async def read(j: int, i: int, t: int) -> None:
            key = arr.metadata.encode_chunk_key((i, t, 0))
            if crc and not await store.exists(f"{prefix}/{key}" if prefix else key):
                raise _Bad(f"chunk file missing ({arr.basename}/{key})", i)
            try:
                out[j] = await aa.getitem((i, t))
            except Exception as e:
                raise _Bad(_decode_failure(e), i) from None

        async def read_all():
            await asyncio.gather(*(read(j, int(i), int(t)) for j, (i, t) in enumerate(where)))

        with zarr.config.set({"async.concurrency": max(64, zarr.config.get("async.concurrency"))}):
            sync(read_all())  # small reads: more in flight than zarr's default 10 (1.5x faster)


def _build(group: zarr.Group, n_rows: int, chunk_rows: int, columns: dict[str, tuple], meta: dict) -> None:
    """Arrays of a new table in ``group``, then its attrs (a group without them is incomplete)."""
    for col, (shape, dtype, *layout) in columns.items():
        if layout:
            group.create_array(col, shape=(n_rows, *shape), chunks=(1, 1, shape[1]), dtype=dtype,
                               compressors=(Crc32cCodec(),))
        else:
            group.create_array(col, shape=(n_rows, *shape), chunks=(chunk_rows, *shape), dtype=dtype,
                               compressors=_COMPRESSED)
    n_chunks = -(-n_rows // chunk_rows)
    group.create_array(DONE, shape=(n_chunks,), chunks=(1,), dtype="bool", fill_value=False,
                       compressors=(Crc32cCodec(),))
    group.attrs.update(meta)  # written last


def _complete_group(store: zarr.Group, root, name: str) -> zarr.Group | None:
    """The table group ``name`` if it holds a complete table; None if absent. A group without
    complete attrs (left by a creation killed before creation was atomic) counts as absent and
    is deleted."""
    folder = Path(store.store.root) / store.path / name if isinstance(store.store, LocalStore) else None
    try:
        if folder is not None and folder.is_dir() and not (folder / "zarr.json").exists():
            group = None  # a folder zarr does not see as a node: a creation killed at its first file
        elif name not in store:
            return None
        else:
            group = store[name]
            if not isinstance(group, zarr.Group):
                raise InputError(f"{root}/{name} is a zarr array, not a table; delete it or use a new --out "
                                 "directory.")
            if all(k in group.attrs for k in _META_KEYS):
                return group
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read table {name!r} in {root} ({_one_line(e)}); the file may be corrupt: "
                         "delete the table and rerun the stage that creates it.") from e
    if folder is not None:
        shutil.rmtree(folder)
    else:
        sync(store.store.delete_dir(f"{store.path}/{name}" if store.path else name))
    return None


def _has_crc(arr: zarr.Array) -> bool:
    return any(isinstance(c, Crc32cCodec) for c in arr.metadata.codecs)


def _raw_chunk_folder(arr) -> Path | None:
    """Folder of an array's chunk files if each chunk file *is* the chunk's bytes, optionally
    followed by their crc32c (a local store, a ``bytes`` codec in native byte order, no
    compressor); else None.

    Why read them directly: zarr's async path (a thread hop and a codec pipeline per chunk)
    costs ~1.6 ms per 300 KB snapshot on an idle 2-core machine, a plain read ~0.12 ms, and
    labelling 50 atoms of a 6 400-atom snapshot costs less than either."""
    aa = arr.async_array
    codecs = aa.metadata.codecs
    if not (isinstance(aa.store_path.store, LocalStore) and isinstance(codecs[0], BytesCodec)
            and len(codecs) <= 2 and all(isinstance(c, Crc32cCodec) for c in codecs[1:])):
        return None
    if arr.dtype.itemsize > 1 and (codecs[0].endian is None or codecs[0].endian.value != sys.byteorder):
        return None
    return Path(aa.store_path.store.root) / aa.store_path.path


def _read_raw_chunk(folder: Path, key: str, out: np.ndarray, crc: bool, fill_value=None,
                    missing_ok: bool = False) -> None:
    """Read one uncompressed chunk file into the contiguous ``out``, checking its size and, with
    ``crc``, its crc32c trailer (little-endian, as zarr writes it); raises :class:`_Bad`.

    A missing file is damage when the array has checksums (every chunk is written) unless
    ``missing_ok`` (a flag never set); before checksums zarr skipped chunks equal to the fill value."""
    tail = bytearray(5)  # the crc32c and one byte more: a longer file is refused too
    try:
        fd = os.open(folder / key, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            if hasattr(os, "readv"):  # one system call (a regular file is read in full)
                size = os.readv(fd, [memoryview(out).cast("B"), tail])
            else:  # Windows
                with open(fd, "rb", buffering=0, closefd=False) as fh:
                    size = fh.readinto(memoryview(out).cast("B")) + fh.readinto(tail)
        finally:
            os.close(fd)
    except FileNotFoundError:
        if crc and not missing_ok:
            raise _Bad(f"chunk file missing ({folder.name}/{key})") from None
        out[...] = False if missing_ok else fill_value
        return
    except OSError as e:
        raise _Bad(f"chunk file unreadable ({folder.name}/{key}: {_one_line(e)})") from None
    want = out.nbytes + 4 * crc
    if size != want:
        raise _Bad(f"chunk file truncated or overwritten ({folder.name}/{key}: {size} bytes, expected {want})")
    if crc and google_crc32c.value(out) != int.from_bytes(tail[:4], "little"):
        raise _Bad(f"checksum mismatch, the chunk file is damaged ({folder.name}/{key})")


def _chunk_coords(arr: zarr.Array, sl: slice) -> Iterator[tuple[int, ...]]:
    """Grid coordinates of the zarr chunks holding rows ``sl`` of ``arr``."""
    ch = arr.chunks
    return itertools.product(range(sl.start // ch[0], -(-sl.stop // ch[0])),
                             *(range(-(-s // k)) for s, k in zip(arr.shape[1:], ch[1:])))


def _missing_keys(arr: zarr.Array, keys: list[str]) -> list[str]:
    sp = arr.async_array.store_path
    if isinstance(sp.store, LocalStore):
        folder = Path(sp.store.root) / sp.path
        return [k for k in keys if not (folder / k).is_file()]

    async def exists():
        return await asyncio.gather(*(sp.store.exists(f"{sp.path}/{k}" if sp.path else k) for k in keys))

    return [k for k, ok in zip(keys, sync(exists())) if not ok]


def _decode_failure(e: Exception) -> str:
    if "checksum" in str(e).lower():
        return "checksum mismatch, the chunk file is damaged"
    return f"chunk file unreadable ({_one_line(e)})"


def _one_line(e: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters (messages go on one line)."""
    msg = " ".join(f"{type(e).__name__}: {e}".split())
    return msg if len(msg) <= limit else msg[:limit - 3] + "..."


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in new if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys)
