"""Property-based tests (issue 8, acceptance 2): malformed configs, files and arrays thrown at
the loaders, the CLI, the systems, the observables and the dataset store end in a clear
:class:`InputError` that names the problem -- never a traceback, never a corrupted dataset."""
import contextlib
import os
import copy
import io
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from macrodyn.config import load_config, parse_config
from macrodyn.data import ChunkedTable
from macrodyn.data.check import check_run
from macrodyn.errors import InputError
from macrodyn.observables import BlockMeans, GinzburgLandau, Temperature
from macrodyn.systems import AllenCahn, PredatorPrey
from tests.test_cli import TINY

# seed, derandomize and the example database come from the profile (tests/conftest.py)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def examples(n: int) -> int:
    """A test's example count: as written in CI and by default, 20x in the local fuzz run
    (HYPOTHESIS_PROFILE=fuzz), whose random seed is fresh each time."""
    return n * (20 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 1)

# ----------------------------------------------------------------------------- configs
NAN, INF = float("nan"), float("inf")


def _not_a_number(s: str) -> bool:
    try:
        float(s)
        return False
    except ValueError:
        return True


junk = st.one_of(st.text(max_size=8).filter(_not_a_number),  # "5" would legitimately coerce to 5
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
not_finite = st.sampled_from([NAN, INF, -INF])
nonpositive_int = st.one_of(st.integers(max_value=0), st.floats(0.1, 1e6).filter(lambda v: v != int(v)))
negative = st.floats(max_value=0, exclude_max=True, allow_nan=False, allow_infinity=False)

# dotted field -> values outside its domain (ill-typed, non-finite or impossible); None is a
# bad value only for the fields that are not optional
_POS_INT = ["data.n_train_trajectories", "data.n_test_trajectories", "data.n_steps", "data.save_every",
            "data.chunk_trajectories", "closure.epochs", "closure.batch_size", "training.budget", "training.epochs",
            "training.batch_size", "training.members", "training.chunk_configs", "training.checkpoint_every"]
_POS_FLOAT = ["closure.lr", "training.lr", "closure.observable_scale", "system.params.dt"]
_NONNEG_FLOAT = ["closure.weight_decay", "closure.cond_weight", "model.alpha", "model.beta", "training.min_lr",
                 "system.params.D"]
BAD_VALUES = {
    **{f: st.one_of(nonpositive_int, junk, not_finite, st.none()) for f in _POS_INT},
    **{f: st.one_of(negative, st.just(0.0), junk, not_finite, st.none()) for f in _POS_FLOAT},
    **{f: st.one_of(negative, junk, not_finite, st.none()) for f in _NONNEG_FLOAT},
    "threads": st.one_of(nonpositive_int, junk),
    "evaluation.step_size": st.one_of(negative, junk, not_finite),
    "data.min_observable": st.one_of(junk, not_finite),
    "system.params.a": st.one_of(junk, not_finite, st.none()),
    "system.params.n": st.one_of(st.integers(max_value=2), junk, not_finite),
    "training.p": st.one_of(negative, st.floats(min_value=1, exclude_min=True), st.just(0.0), junk, not_finite),
    "training.val_fraction": st.one_of(negative, st.floats(min_value=1), junk, not_finite),
    "closure.hidden": st.one_of(st.lists(st.integers(max_value=0), min_size=1, max_size=3), junk.filter(
        lambda v: not isinstance(v, list))),
    "model.hidden": st.lists(st.one_of(st.integers(max_value=0), junk), min_size=1, max_size=3),
    "model.kind": st.text(max_size=8).filter(lambda s: s not in ("onsager", "mlp", "gfinn")),
    "training.loss": st.text(max_size=8).filter(lambda s: s not in ("L_z", "L_x", "L_xp")),
    "device": st.one_of(junk, st.none()).filter(lambda v: v not in ("cpu", "cuda")),
    "system.name": st.text(max_size=12).filter(lambda s: s not in ("predator_prey", "allen_cahn", "lennard_jones")),
}
DEFAULTS = parse_config({}).model_dump()
SECTIONS = {"": set(DEFAULTS), "system.params": set(DEFAULTS["system"]["params"]),
            **{s: set(DEFAULTS[s]) for s in ("data", "closure", "model", "training", "evaluation", "system", "parallel")}}
ident = st.text("abcdefghijklmnopqrstuvwxyz_0123456789-", min_size=1, max_size=10)


def _set(cfg: dict, dotted: str | list, value) -> None:
    *parents, leaf = dotted.split(".") if isinstance(dotted, str) else dotted
    for p in parents:
        cfg = cfg.setdefault(p, {})
    cfg[leaf] = value


@st.composite
def bad_fields(draw):
    """TINY with 1-3 fields set to bad values; returns (config, the mutated dotted fields)."""
    fields = draw(st.lists(st.sampled_from(sorted(BAD_VALUES)), min_size=1, max_size=3, unique=True))
    if "system.name" in fields:  # an unknown system has no params to check
        fields = [f for f in fields if not f.startswith("system.params")]
    cfg = copy.deepcopy(TINY)
    for f in fields:
        _set(cfg, f, draw(BAD_VALUES[f]))
    return cfg, fields


@st.composite
def unknown_keys(draw):
    """TINY with an unknown (string or integer) key at a random nesting level."""
    section = draw(st.sampled_from(sorted(SECTIONS)))
    key = draw(st.one_of(ident, st.integers(-5, 5)))  # YAML keys need not be strings
    assume(key not in SECTIONS[section])
    path = [*section.split("."), key] if section else [key]
    cfg = copy.deepcopy(TINY)
    _set(cfg, path, draw(st.integers()))
    return cfg, [".".join(map(str, path))]


def _assert_names(msg: str, fields: list[str], source: str) -> None:
    prefix = f"invalid config {source}: "
    assert "\n" not in msg and msg.startswith(prefix), msg
    lines = [None, *msg[len(prefix):].split(" | ")]  # one line, the fields joined by " | "

    def blames(line, f):  # "training.p: ..." or, for a list item, "closure.hidden.0: ..."
        return line.startswith((f"{f}:", f"{f}."))

    for f in fields:  # each offending field is named on its own line
        assert any(blames(line, f) for line in lines[1:]), (f, msg)
    for line in lines[1:]:  # and nothing else is blamed
        assert any(blames(line, f) for f in fields), (fields, msg)


@settings(max_examples=examples(150), **SETTINGS)
@given(st.one_of(bad_fields(), unknown_keys()))
def test_bad_config_is_refused_naming_the_field(case):
    cfg, fields = case
    with pytest.raises(InputError) as e:
        parse_config(cfg, "tiny.yaml")
    _assert_names(str(e.value), fields, "tiny.yaml")


@settings(max_examples=examples(30), **SETTINGS)
@given(st.sampled_from(["n_steps", "loss"]), st.integers(1, 9), st.floats(0.01, 0.99))
def test_inconsistent_fields_are_refused(which, r, p):
    cfg = copy.deepcopy(TINY)
    if which == "n_steps":  # not a multiple of save_every
        cfg["data"]["n_steps"] = 60 * cfg["data"]["save_every"] + r
        section = "data"
    else:  # L_z and L_x use every coordinate
        cfg["training"].update(loss=["L_z", "L_x"][r % 2], p=p)
        section = "training"
    with pytest.raises(InputError, match=f"{section}: .*{which}"):
        parse_config(cfg)


@settings(max_examples=examples(20), **SETTINGS)
@given(st.integers(98, 10**5))  # beyond 10**5 the field itself is out of bounds
def test_closure_dim_not_below_n_is_refused_before_writing(dim):
    from macrodyn import Run

    cfg = parse_config({**TINY, "closure": {"dim": dim}})  # predator-prey: N = 100, 2 given observables
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(InputError, match=f"closure.dim = {dim} .* must be < 98"):
            Run.create(cfg, Path(tmp) / "run")
        assert not (Path(tmp) / "run").exists()


yaml_scalars = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
non_mappings = st.recursive(yaml_scalars, lambda s: st.lists(s, max_size=3), max_leaves=5).filter(
    lambda v: v is not None and v != "")  # an empty document is the default config


@settings(max_examples=examples(60), **SETTINGS)
@given(st.one_of(st.binary(max_size=64).map(lambda b: ("bytes", b)), non_mappings.map(lambda v: ("yaml", v))))
def test_config_file_that_is_not_a_mapping_is_refused_naming_the_file(content):
    kind, value = content
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(value if kind == "bytes" else yaml.safe_dump(value).encode())
        try:
            load_config(path)
        except InputError as e:
            assert str(path) in str(e)
        else:  # only an empty document or a mapping may load (random bytes can be either)
            assert kind == "bytes"
            parsed = yaml.safe_load(value)
            assert parsed is None or isinstance(parsed, dict), parsed


# -------------------------------------------------------------------------------- CLI
def _entry(*args: str) -> tuple[int, str]:
    from macrodyn.cli import entry

    err = io.StringIO()
    with mock.patch.object(sys, "argv", ["macrodyn", *args]), contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e:
        entry()
    return e.value.code, err.getvalue()


bad_files = st.one_of(
    st.one_of(bad_fields(), unknown_keys()).map(lambda c: yaml.safe_dump(c[0]).encode()),
    st.integers(98, 1000).map(lambda d: yaml.safe_dump({**TINY, "closure": {"dim": d}}).encode()),
    non_mappings.map(lambda v: yaml.safe_dump(v).encode()),
    st.binary(max_size=32).map(lambda b: b + b"\xff"),  # never UTF-8
    st.text(max_size=20).map(lambda s: f"training: {{budget: [{s}".encode()),  # unclosed flow mapping
)


@settings(max_examples=examples(40), **SETTINGS)
@given(bad_files, st.sampled_from(["run", "simulate", "label", "train-closure", "train-dynamics", "evaluate",
                                   "report"]))
def test_cli_bad_config_exits_2_with_a_message_and_writes_nothing(content, command):
    with tempfile.TemporaryDirectory() as tmp:
        cfg, out = Path(tmp) / "c.yaml", Path(tmp) / "out"
        cfg.write_bytes(content)
        code, err = _entry(command, str(cfg), "--out", str(out), "-q")
        assert code == 2, err
        assert err.startswith("error: ") and "Traceback" not in err, err
        assert str(cfg) in err or "closure.dim" in err, err
        assert not out.exists()  # no run folder, hence no data store


# ----------------------------------------------------------------------------- arrays
system = st.sampled_from([PredatorPrey(n=8), AllenCahn(n=8)])  # N = 16 and 64


@st.composite
def wrong_shapes(draw, n):
    """Any shape but (B, n): other ndims, or a 2-D array of the wrong width."""
    return draw(st.one_of(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5).filter(
        lambda s: not (len(s) == 2 and s[1] == n)),
        st.tuples(st.integers(0, 4), st.integers(0, 2 * n).filter(lambda w: w != n))))


@settings(max_examples=examples(80), **SETTINGS)
@given(system, st.data())
def test_forces_refuse_wrong_shapes_and_dtypes(sys_, data):
    n = sys_.n_coords
    if data.draw(st.booleans()):
        x = np.zeros(data.draw(wrong_shapes(n)))
    else:  # right shape, not real numbers
        x = np.full((2, n), data.draw(st.sampled_from(["0.5", 0.5 + 0j, None])))
    with pytest.raises(InputError, match="configurations"):
        sys_.forces(x)
    with pytest.raises(InputError, match="configurations"):
        sys_.partial_forces(x, np.zeros((x.shape[0] if x.ndim else 1, 1), dtype=np.int64))


def _state(sys_, b):
    return np.random.default_rng(b).uniform(0.2, 0.8, (b, sys_.n_coords))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@settings(max_examples=examples(80), **SETTINGS)
@given(system, st.integers(1, 4), st.data())
def test_nonfinite_configuration_is_named_or_never_read(sys_, b, data):
    x = _state(sys_, b)
    row, col = data.draw(st.integers(0, b - 1)), data.draw(st.integers(0, sys_.n_coords - 1))
    x[row, col] = data.draw(not_finite)
    with pytest.raises(InputError, match=rf"configurations contains NaN/Inf \(first at index \({row}, {col}\)\)"):
        sys_.forces(x)
    k = data.draw(st.integers(1, 6))
    idx = np.stack([np.random.default_rng(i).choice(sys_.n_coords, k, replace=False) for i in range(b)])
    if data.draw(st.booleans()):
        idx[row, 0] = col  # the stencil reads its own coordinate
    try:
        f = sys_.partial_forces(x, idx)
    except InputError as e:
        assert "partial forces contains NaN/Inf" in str(e)  # read by the point itself or a neighbour
    else:  # the bad value was not read: the result equals that of a finite configuration
        assert col not in idx[row]
        clean = x.copy()
        clean[row, col] = 0.5
        np.testing.assert_array_equal(f, sys_.partial_forces(clean, idx))


@settings(max_examples=examples(80), **SETTINGS)
@given(system, st.integers(1, 3), st.sampled_from(["float", "bool", "1d", "3d", "rows", "low", "high"]), st.data())
def test_partial_forces_refuse_bad_indices(sys_, b, kind, data):
    n, x = sys_.n_coords, _state(sys_, b)
    idx = np.zeros((b, 3), dtype=np.int64)
    if kind == "float":
        idx = idx.astype(data.draw(st.sampled_from([np.float32, np.float64])))
    elif kind == "bool":
        idx = idx.astype(bool)
    elif kind == "1d":
        idx = idx[0]
    elif kind == "3d":
        idx = idx[..., None]
    elif kind == "rows":
        idx = np.zeros((data.draw(st.integers(0, 6).filter(lambda r: r != b)), 3), dtype=np.int64)
    else:
        pos = data.draw(st.integers(0, b - 1)), data.draw(st.integers(0, 2))
        idx[pos] = data.draw(st.integers(-10**6, -1) if kind == "low" else st.integers(n, 10**6))
    with pytest.raises(InputError, match="idx"):
        sys_.partial_forces(x, idx)


OBSERVABLES = {"means": (BlockMeans(2), lambda w: w > 0 and w % 2 == 0),
               "free_energy": (GinzburgLandau(8, 0.1), lambda w: w == 64),
               "temperature": (Temperature(3), lambda w: w == 18)}


@settings(max_examples=examples(80), **SETTINGS)
@given(st.sampled_from(sorted(OBSERVABLES)), hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4),
       st.one_of(st.none(), st.integers(0, 70)))
def test_observables_refuse_wrong_widths(name, batch, width):
    obs, fits = OBSERVABLES[name]
    if width is not None and fits(width):  # the right width with any batch shape works
        assert obs(torch.rand(*batch, width, dtype=torch.float64)).shape == (*batch, obs.dim)
    else:
        x = torch.rand(()) if width is None else torch.rand(*batch, width, dtype=torch.float64)
        with pytest.raises(InputError, match="configurations"):
            obs(x)


# ------------------------------------------------------------------------ dataset store
COLS = {"x": ((3,), "float64"), "idx": ((2,), "int64")}  # 10 rows in chunks of 4: 3 chunks


def _good(c):
    rows = [4, 4, 2][c]
    return {"x": np.full((rows, 3), c + 0.5), "idx": np.full((rows, 2), c, dtype=np.int64)}


@st.composite
def bad_writes(draw):
    """(chunk, columns) for a write_chunk call that must be refused."""
    c = draw(st.integers(0, 2))
    cols = _good(c)
    kind = draw(st.sampled_from(["chunk", "drop", "extra", "shape", "dtype", "nonfinite"]))
    name = draw(st.sampled_from(sorted(cols)))
    if kind == "chunk":
        c = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=3), st.just(1.0), st.just("0")))
    elif kind == "drop":
        del cols[name]
    elif kind == "extra":
        cols[draw(ident.filter(lambda s: s not in cols))] = cols[name]
    elif kind == "shape":
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5).filter(
            lambda s: s != cols[name].shape))
        cols[name] = np.zeros(shape, cols[name].dtype)
    elif kind == "dtype":  # nothing is silently truncated or converted
        bad = {"x": ["U3", complex, object], "idx": [np.float64, np.float32, complex, "U3"]}[name]
        cols[name] = cols[name].astype(draw(st.sampled_from(bad)))
    else:
        a = cols["x"]
        a[draw(st.integers(0, a.shape[0] - 1)), draw(st.integers(0, 2))] = draw(not_finite)
    return c, cols


@settings(max_examples=examples(60), **SETTINGS)
@given(st.lists(bad_writes(), min_size=1, max_size=3))
@example([(0, {**_good(0), "c": _good(0)["x"]}), (1, {**_good(1), "self": _good(1)["x"]})])  # names of arguments
def test_bad_chunk_writes_are_refused_and_leave_the_table_intact(writes):
    with tempfile.TemporaryDirectory() as tmp:
        t = ChunkedTable.create(Path(tmp) / "s.zarr", "lab", 10, 4, COLS)
        t.write_chunk(0, **_good(0))
        for c, cols in writes:
            with pytest.raises(InputError, match="chunk"):
                t.write_chunk(c, **cols)
        t = ChunkedTable.open(Path(tmp) / "s.zarr", "lab")
        assert t.missing_chunks() == [1, 2]  # no half-written chunk marked done
        for k, v in t.read_chunk(0).items():
            np.testing.assert_array_equal(v, _good(0)[k])


@settings(max_examples=examples(25), **SETTINGS)
@given(st.sampled_from(["nan", "low", "high", "repeat"]), st.integers(0, 11), st.integers(0, 2),
       st.sampled_from([NAN, INF, -INF]))
def test_check_finds_a_planted_problem(kind, row, col, bad):
    n, rng = 10, np.random.default_rng(0)
    x = rng.random((12, n))
    idx = np.stack([np.sort(rng.choice(n, 3, replace=False)) for _ in range(12)])
    f = rng.random((12, 3))
    with tempfile.TemporaryDirectory() as tmp:
        t = ChunkedTable.create(Path(tmp) / "data.zarr", "labels", 12, 5,
                                {"x": ((n,), "float64"), "idx": ((3,), "int64"), "f": ((3,), "float64")})
        for c in range(t.n_chunks):
            sl = t.chunk_slice(c)
            t.write_chunk(c, x=x[sl], idx=idx[sl], f=f[sl])
        assert check_run(tmp, expected_evaluations=36, expected_tables=("labels",)) == []
        if kind == "nan":  # planted behind the store's back, as a disk error would
            f[row, col] = bad
        else:
            idx[row, col] = {"low": -1, "high": n, "repeat": idx[row, (col + 1) % 3]}[kind]
        t.group["f"][:], t.group["idx"][:] = f, idx
        problems = "\n".join(check_run(tmp, expected_tables=("labels",)))
        want = {"nan": f"column 'f': NaN/Inf at row {row}", "low": "index out of range",
                "high": "index out of range", "repeat": "repeated index"}[kind]
        assert want in problems, problems
