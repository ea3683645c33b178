"""Plug-in systems: an import path in the config, or an installed package's entry point
(examples/oscillators: Kuramoto oscillators), through the library and the command line.

Nothing is installed: the example package's ``src`` goes on the path, next to a
``*.dist-info`` folder declaring its entry point — exactly what ``pip install`` leaves,
so ``importlib.metadata`` finds the plug-in as it would an installed one (on a fresh clone,
with no setup step).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from macrodyn.config import parse_config
from macrodyn.errors import InputError
from macrodyn.preflight import preflight
from macrodyn.systems.registry import available_systems, build_system, resolve_system

EXAMPLE = Path(__file__).parents[1] / "examples" / "oscillators"
SRC = EXAMPLE / "src"
ENTRY = [sys.executable, "-c", "from macrodyn.cli import entry; entry()"]
TINY = {
    "name": "kuramoto_tiny",
    "system": {"name": "macrodyn_oscillators:Kuramoto", "params": {"n": 16, "K": 3.0}},
    "data": {"n_train_trajectories": 6, "n_test_trajectories": 3, "n_steps": 100, "save_every": 10,
             "chunk_trajectories": 3},
    "closure": {"dim": 1, "epochs": 2},
    "training": {"p": 0.25, "budget": 240, "epochs": 3, "chunk_configs": 64},
    "evaluation": {"n_plot": 1},
}


def _site(tmp_path: Path) -> Path:
    """A folder holding the example's distribution metadata, as ``pip install`` would write it."""
    site = tmp_path / "site"
    info = site / "macrodyn_oscillators-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: macrodyn-oscillators\nVersion: 0.1.0\n")
    group = "macrodyn.systems"
    assert f'[project.entry-points."{group}"]' in (EXAMPLE / "pyproject.toml").read_text()
    (info / "entry_points.txt").write_text(f"[{group}]\nkuramoto = macrodyn_oscillators:Kuramoto\n")
    return site


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The example plug-in on sys.path (in-process) and in ``env`` (subprocesses)."""
    site = _site(tmp_path)
    monkeypatch.syspath_prepend(str(SRC))
    monkeypatch.syspath_prepend(str(site))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC), os.environ.get("PYTHONPATH", "")])}
    return env


def _cli(*args, env=None, cwd=None):
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_entry_point_and_import_path_name_the_same_class(plugin):
    from macrodyn_oscillators import Kuramoto

    assert resolve_system("kuramoto") is Kuramoto
    assert resolve_system("macrodyn_oscillators:Kuramoto") is Kuramoto
    row = next(s for s in available_systems() if s.name == "kuramoto")
    assert row.source == "plug-in (macrodyn-oscillators)" and row.class_path == "macrodyn_oscillators:Kuramoto"
    params = {p.name: p for p in row.params}
    assert (params["n"].type, params["n"].default, params["K"].default) == ("int", 64, 2.0)
    assert "coupling strength" in params["K"].description  # from the class docstring's Args


def test_kuramoto_partial_forces_are_partial_and_exact(plugin, monkeypatch):
    s = build_system("kuramoto", {"n": 40, "K": 4.0})
    x = s.sample_initial(3, np.random.default_rng(0))
    f = s.forces(x)
    # the mean field by the pairwise definition
    pair = s.omega + s.K / s.n_coords * np.sin(x[:, None, :] - x[:, :, None]).sum(-1)
    np.testing.assert_allclose(f, pair, rtol=1e-12, atol=1e-12)
    idx = np.array([[0, 7, 39], [3, 4, 5], [39, 1, 20]])
    s.counter.reset()
    with monkeypatch.context() as m:  # a partial evaluation never calls the full one
        m.setattr(type(s), "_forces", lambda self, x: pytest.fail("partial_forces computed all forces"))
        p = s.partial_forces(x, idx)
    np.testing.assert_allclose(p, np.take_along_axis(f, idx, 1), rtol=1e-12, atol=1e-12)
    assert s.counter.labels == idx.size
    # strong coupling synchronises incoherent phases: the order parameter r grows towards 1
    incoherent = np.random.default_rng(1).uniform(-np.pi, np.pi, (3, 40))
    traj = s.trajectories(incoherent, 200, 200, progress=False)
    r = torch.linalg.norm(s.observable()(torch.as_tensor(traj.reshape(-1, 40))), dim=1).reshape(3, 2)
    assert (r[:, 0] < 0.5).all() and (r[:, 1] > 0.8).all()


def test_preflight_passes_on_the_plugin(plugin):
    cfg = parse_config({**TINY, "system": {"name": "kuramoto"}})
    assert cfg.system.params == {"n": 64, "K": 2.0, "spread": 0.5, "omega_seed": 0, "dt": 0.05}
    r = preflight(cfg)
    assert (r.n_coords, r.observable, r.observable_dim) == (64, "OrderParameter", 2)


def test_params_typo_and_type_errors_name_the_field(plugin):
    with pytest.raises(InputError, match=r"system\.params\.KK: unknown field"):
        parse_config({"system": {"name": "kuramoto", "params": {"KK": 1.0}}})
    with pytest.raises(InputError, match=r"system\.params\.n: Input should be a valid integer"):
        parse_config({"system": {"name": "macrodyn_oscillators:Kuramoto", "params": {"n": "many"}}})


def test_unresolvable_import_paths_say_why():
    for name, why in (("no_such_pkg.mod:X", "cannot import module 'no_such_pkg.mod'"),
                      ("macrodyn.systems:NoSuch", "has no 'NoSuch'; its systems: ['ASESystem', 'AllenCahn'"),
                      ("macrodyn.observables:BlockMeans", "not a subclass of macrodyn.systems.MicroSystem")):
        with pytest.raises(InputError, match=name.split(":")[0].replace(".", r"\.")) as e:
            resolve_system(name)
        assert why in str(e.value)


@pytest.mark.slow
def test_cli_run_check_and_systems_with_a_plugin(plugin, tmp_path):
    cfg, out = tmp_path / "k.yaml", tmp_path / "run"
    cfg.write_text(yaml.safe_dump(TINY))
    r = _cli("run", str(cfg), "--out", str(out), "-q", env=plugin)
    assert r.returncode == 0, r.stderr
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["system"]["name"] == "macrodyn_oscillators:Kuramoto"  # stages and check rebuild it from here
    m = json.loads((out / "metrics.json").read_text())
    assert m["force_evaluations"] == 240 and np.isfinite(m["rollout_rel_error"])
    r = _cli("check", str(out), env=plugin)
    assert r.returncode == 0 and "dataset OK" in r.stdout, r.stderr
    r = _cli("evaluate", str(cfg), "--out", str(out), "-q", env=plugin)  # a stage command on the finished run
    assert r.returncode == 0 and "rollout rel. error" in r.stdout, r.stderr
    r = _cli("systems", env=plugin)
    assert r.returncode == 0, r.stderr
    assert "kuramoto  [plug-in (macrodyn-oscillators)] macrodyn_oscillators:Kuramoto" in r.stdout
    assert "    K: float (default 2.0)" in r.stdout and "predator_prey  [built-in]" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "system": {"name": "kuramoto", "params": {"spred": 0.1}}}))
    r = _cli("run", str(bad), "--out", str(tmp_path / "bad"), "-q", env=plugin)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") <= 2 and "system.params.spred: unknown field" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_unknown_system_on_the_command_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"system": {"name": "kuramotoo"}}))
    r = _cli("validate", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown system 'kuramotoo'" in r.stderr and "package.module:ClassName" in r.stderr
