"""Preflight: each mistake a new user makes with their own system gets ONE line, naming the
fix, before any simulation; a changed system is caught by its fingerprint."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml

import macrodyn.preflight as pf
from macrodyn.config import parse_config
from macrodyn.errors import InputError
from macrodyn.observables import BlockMeans, FunctionObservable, Observable
from macrodyn.preflight import check_observable, preflight
from macrodyn.systems import MicroSystem
from macrodyn.systems.fingerprint import compare_fingerprint, fingerprint
from macrodyn.systems.registry import SYSTEMS, build_system, register, resolve_system

TINY = {"data": {"n_train_trajectories": 4, "n_test_trajectories": 2, "n_steps": 20, "save_every": 5,
                 "chunk_trajectories": 2},
        "closure": {"dim": 1}, "training": {"budget": 40}}


def cfg(**over):
    d = {k: dict(v) for k, v in TINY.items()}
    for section, fields in over.items():
        d.setdefault(section, {}).update(fields)
    return parse_config(d)


class Ring(MicroSystem):
    """A correct small system: ``dx_i/dt = x_{i-1} − x_i`` on a ring of ``n`` coordinates."""

    name = "ring_preflight"

    def __init__(self, n: int = 8, dt: float = 0.01):
        super().__init__()
        self.n_coords, self.dt = n, dt

    def _forces(self, x):
        return np.roll(x, 1, axis=1) - x

    def _partial_forces(self, x, idx):
        rows = np.arange(len(x))[:, None]
        return x[rows, (idx - 1) % self.n_coords] - x[rows, idx]

    def sample_initial(self, n, rng):
        return rng.standard_normal((n, self.n_coords))

    def observable(self):
        return BlockMeans(1)

    def trajectories(self, *a, **k):  # preflight must not simulate
        raise AssertionError("preflight simulated")


def one_line(system, c=None, **kw) -> str:
    with pytest.raises(InputError) as e:
        preflight(c or cfg(), system, **kw)
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def test_a_correct_system_passes_and_reports_sizes(tmp_path):
    s = Ring()
    r = preflight(cfg(), s, out=tmp_path / "new" / "run")
    assert (r.n_coords, r.observable_dim, r.closure_dim, r.n_saved) == (8, 1, 1, 5)
    assert r.trajectory_bytes == 5 * 8 * 8 and r.chunk_bytes == 2 * r.trajectory_bytes
    assert r.disk_bytes == 6 * r.trajectory_bytes + r.label_bytes and r.disk_free > 0
    assert r.disk_path == str(tmp_path) and r.partial_checked > 0 and r.seconds > 0
    assert s.counter.labels == 0 and s.counter.simulation == 0  # preflight's evaluations are not counted
    assert "config OK" in r.summary() and "force evaluations" in r.summary()


# ------------------------------------------------------------------ the observable
class WrongDim(Ring):
    def observable(self):
        return FunctionObservable(lambda x: x.mean(1, keepdim=True), dim=2)


class FlatShape(Ring):
    def observable(self):
        return FunctionObservable(lambda x: x.mean(1), dim=1)


class PlainFunction(Ring):
    def observable(self):
        return lambda x: x.mean(1, keepdim=True)


class NumpyMean(Observable):
    dim = 1

    def forward(self, x):
        return torch.as_tensor(np.mean(x.numpy(), axis=1, keepdims=True))


class NumpyObservable(Ring):
    def observable(self):
        return NumpyMean()


class BatchMixing(Observable):
    dim = 1

    def forward(self, x):
        return (x - x.mean(0)).pow(2).mean(1, keepdim=True)  # normalised over the batch: not row-wise


@pytest.mark.parametrize("system, fix", [
    (WrongDim(), "declares dim=2 but returns 1 columns"),
    (FlatShape(), "return shape (B, 1)"),
    (PlainFunction(), "wrap it in an Observable subclass"),
    (NumpyObservable(), "write the observable with torch operations"),
])
def test_observable_mistakes_get_one_line(system, fix):
    assert fix in one_line(system)


def test_observable_checks_differentiability_and_rows():
    x = np.random.default_rng(0).standard_normal((3, 6))
    detached = FunctionObservable(lambda x: x.detach().mean(1, keepdim=True), dim=1)
    assert "not differentiable" in check_observable(detached, x)[0]
    integer = FunctionObservable(lambda x: (x > 0).sum(1, keepdim=True), dim=1)
    assert "dtype" in check_observable(integer, x)[0]
    assert "mixes the rows" in check_observable(BatchMixing(), x)[0]
    assert check_observable(BlockMeans(2), x) == []


# ------------------------------------------------------------------ forces
class BoundaryBug(Ring):
    def _partial_forces(self, x, idx):  # forgets the wrap-around at coordinate 0
        rows = np.arange(len(x))[:, None]
        return x[rows, np.maximum(idx - 1, 0)] - x[rows, idx]


def test_partial_forces_that_disagree_with_forces():
    msg = one_line(BoundaryBug())
    assert "partial_forces disagrees with forces" in msg and "[0, 0]" in msg
    assert "partial_forces(x, idx)[b, j] must equal forces(x)[b, idx[b, j]]" in msg
    assert "boundary" in msg


class NoNCoords(Ring):
    def __init__(self):
        super().__init__()
        del self.n_coords


class NoDt(Ring):
    def __init__(self):
        super().__init__()
        del self.dt


class NoBaseInit(Ring):
    def __init__(self, n: int = 8):
        self.n_coords, self.dt = n, 0.01  # forgot super().__init__()


@pytest.mark.parametrize("system, fix", [
    (NoNCoords(), "assign self.n_coords = N (the number of coordinates) in NoNCoords.__init__"),
    (NoDt(), "assign self.dt (the integration time step) in NoDt.__init__"),
    (NoBaseInit(), "call super().__init__() in NoBaseInit.__init__"),
])
def test_missing_attributes_get_one_line(system, fix):
    assert fix in one_line(system)


def test_missing_attributes_name_the_fix_outside_preflight_too():
    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) in NoBaseInit.__init__"):
        NoBaseInit().forces(np.zeros((1, 8)))
    with pytest.raises(AttributeError, match="assign self.n_coords"):
        NoNCoords().n_units  # noqa: B018


class GlobalRandom(Ring):
    def sample_initial(self, n, rng):
        return np.random.standard_normal((n, self.n_coords))


def test_sample_initial_must_use_its_rng():
    assert "draw every random number from its rng argument" in one_line(GlobalRandom())


# ------------------------------------------------------------------ config against the system
def test_closure_dim_too_large():
    assert "closure.dim = 7 is too large" in one_line(Ring(), cfg(closure={"dim": 7}))


def test_closure_dim_zero_runs_with_the_observables_alone():
    """dim 0: the given observables are the whole macroscopic state (no encoder); it passes the
    preflight and its closure trains (it used to crash on the missing encoder)."""
    from macrodyn.closure.autoencoder import ClosureAutoencoder
    from macrodyn.training.closure import fit_closure

    preflight(cfg(closure={"dim": 0}), Ring())
    ae = ClosureAutoencoder(BlockMeans(1), 8, 0, (4,))
    hist = fit_closure(ae, np.random.default_rng(0).random((4, 8)), epochs=1, batch_size=4, lr=1e-3,
                       weight_decay=0.0, cond_weight=1e-6, progress=False)
    assert np.isfinite(hist["loss"]).all() and ae.dim == 1


def test_budget_the_pool_cannot_supply():
    msg = one_line(Ring(), cfg(training={"budget": 10_000}))
    assert "training pool has 20 snapshots" in msg and "data.n_train_trajectories" in msg


def test_memory_and_disk_that_cannot_hold_the_run(monkeypatch, tmp_path):
    monkeypatch.setattr(pf, "memory_available", lambda: 1000)  # a chunk takes 640 B, the closure stage 1.92 KB
    msg = one_line(Ring())
    assert msg == ("the closure stage holds 20 snapshots (1.92 KB) in memory but 1 KB is available; set "
                   "closure.max_configs to 5 or less.")
    monkeypatch.setattr(pf, "memory_available", lambda: 500)
    with pytest.raises(InputError) as e:
        preflight(cfg(), Ring())
    assert "one chunk of trajectories needs 640 B in memory (2 × 320 B)" in str(e.value).splitlines()[0]
    monkeypatch.setattr(pf, "memory_available", lambda: None)
    monkeypatch.setattr(pf.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    msg = one_line(Ring(), out=tmp_path / "run")
    assert "10 B free" in msg and "--out on a larger disk" in msg


def test_several_failures_one_line_each():
    class Both(BoundaryBug):
        def observable(self):
            return FunctionObservable(lambda x: x.mean(1), dim=1)

    with pytest.raises(InputError) as e:
        preflight(cfg(), Both())
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and "partial_forces" in lines[0] and "(B, 1)" in lines[1]


# ------------------------------------------------------------------ registry
def test_duplicate_registration_is_refused():
    class Other(Ring):
        name = "predator_prey"

    original = SYSTEMS["predator_prey"]
    with pytest.raises(InputError, match="already taken by macrodyn.systems.predator_prey:PredatorPrey"):
        register(Other)
    assert SYSTEMS["predator_prey"] is original
    try:
        assert register(Other, replace=True) is Other and resolve_system("predator_prey") is Other
    finally:
        register(original, replace=True)
    # the same class path again (a module run twice, a notebook cell re-run) replaces silently
    first = register(type("Again", (Ring,), {"name": "again_preflight", "__qualname__": "Again"}))
    second = register(type("Again", (Ring,), {"name": "again_preflight", "__qualname__": "Again"}))
    assert SYSTEMS.pop("again_preflight") is second is not first


def test_unknown_name_lists_known_names_and_the_import_path_form():
    with pytest.raises(InputError) as e:
        build_system("ring")
    assert "predator_prey" in str(e.value) and "package.module:ClassName" in str(e.value)


def test_params_derived_from_the_signature():
    class Sig(Ring):
        def __init__(self, n: int, dt: float = 0.01, label="a"):
            super().__init__(n, dt)

    from macrodyn.systems.registry import validate_params

    assert validate_params(Sig, {"n": 4}) == {"n": 4, "dt": 0.01, "label": "a"}
    for params, where in (({"n": 4, "dtt": 1}, "system.params.dtt: unknown parameter"),
                          ({"n": "four"}, "system.params.n: Input should be a valid integer"),
                          ({}, "system.params.n: Field required"),
                          ({"n": 4, "label": 3}, "system.params.label: Input should be a valid string")):
        with pytest.raises(InputError, match=where.replace("(", r"\(")):
            validate_params(Sig, params)


# ------------------------------------------------------------------ fingerprint
class Changed(Ring):
    def _forces(self, x):
        f = super()._forces(x)
        f[:, 3] *= 1.01  # one coordinate's force changed by 1 %
        return f


class OtherStart(Ring):
    def sample_initial(self, n, rng):
        return 2 * super().sample_initial(n, rng)


def test_fingerprint_catches_changed_code_but_not_float_noise(monkeypatch):
    old = fingerprint(Ring(), "ring", {"n": 8})
    s = Ring()
    assert compare_fingerprint(old, fingerprint(s, "ring", {"n": 8})) is None
    assert s.counter.labels == 0
    assert compare_fingerprint(None, old) is None  # data made before fingerprints
    msg = compare_fingerprint(old, fingerprint(Changed(), "ring", {"n": 8}))
    assert msg == ("the system's code changed since this folder's data were made (forces differ on fixed states "
                   f"(class {__name__}:Ring → {__name__}:Changed)); use a new --out or delete data.zarr.")
    assert "sample_initial" in compare_fingerprint(old, fingerprint(OtherStart(), "ring", {"n": 8}))
    assert "N = 8" in compare_fingerprint(old, fingerprint(Ring(10), "ring", {"n": 10}))

    class Noisy(Ring):  # the same code on another CPU: last-bit differences
        def _forces(self, x):
            return super()._forces(x) * (1 + 1e-14 * np.random.default_rng(1).standard_normal(x.shape))

    new = fingerprint(Noisy(), "ring", {"n": 8})
    assert compare_fingerprint(old, new) is None
    assert yaml.safe_load(yaml.safe_dump(old)) == old  # JSON/YAML-able (stored in table attrs)


# ------------------------------------------------------------------ the command
def test_validate_command(tmp_path):
    (tmp_path / "my_system.py").write_text(textwrap.dedent('''
        import numpy as np
        from macrodyn.observables import FunctionObservable
        from macrodyn.systems import MicroSystem

        class Decay(MicroSystem):
            def __init__(self, n: int = 6, rate: float = 1.0):
                super().__init__()
                self.n_coords, self.dt, self.rate = n, 0.01, rate
            def _forces(self, x):
                return -self.rate * x
            def _partial_forces(self, x, idx):
                return -self.rate * np.take_along_axis(x, idx, 1)
            def sample_initial(self, n, rng):
                return rng.random((n, self.n_coords))
            def observable(self):
                return FunctionObservable(lambda x: x.sum(1), dim=1)
        '''))
    config = {**TINY, "system": {"name": "my_system:Decay", "params": {"n": 8}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    entry = [sys.executable, "-c", "from macrodyn.cli import entry; entry()"]
    # the module sits in the current folder, which a console script does not put on sys.path: found anyway
    r = subprocess.run([*entry, "validate", "c.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "return shape (B, 1)" in r.stderr
    (tmp_path / "my_system.py").write_text((tmp_path / "my_system.py").read_text().replace("x.sum(1)",
                                                                                           "x.sum(1, keepdim=True)"))
    r = subprocess.run([*entry, "validate", "c.yaml", "--out", "runs/a"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stdout and "my_system:Decay" in r.stdout
    assert not (tmp_path / "runs").exists()  # validate writes nothing
