"""Damaged data is never used silently (end to end): a rerun of `macrodyn run` recomputes what
it can to the same metrics, or stops with one line; `macrodyn check` flags each damage."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from macrodyn import keys as K
from tests.test_cli import TINY, _cli


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """One finished tiny run, copied for every damage."""
    base = tmp_path_factory.mktemp("integrity")
    (base / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    r = _cli("run", str(base / "tiny.yaml"), "--out", str(base / "run"), "-q")
    assert r.returncode == 0, r.stderr
    return base


def _copy(clean: Path, tmp_path: Path) -> Path:
    shutil.copytree(clean / "run", tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _chunk_files(run: Path, table: str, column: str) -> list[Path]:
    return sorted(p for p in (run / "data.zarr" / table / column / "c").rglob("*") if p.is_file())


def _delete_train_file(run):
    _chunk_files(run, "train", K.TRAJ)[-1].unlink()


def _flip_test_bit(run):
    f = _chunk_files(run, "test", K.TRAJ)[0]
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x10
    f.write_bytes(bytes(b))


def _labels_array(run, column):
    return zarr.open_array(str(run / "data.zarr" / "labels" / column), mode="r+")


def _nan_forces(run):
    a = _labels_array(run, K.FORCES)
    v = a[:]
    v[5, 2] = np.nan
    a[:] = v


def _nan_test_states(run):
    a = zarr.open_array(str(run / "data.zarr" / "test" / K.TRAJ), mode="r+")
    v = a[:]
    v[1, 3, 0] = np.inf
    a[:] = v


def _index_out_of_range(run):
    a = _labels_array(run, K.INDEX)
    v = a[:]
    v[0, 0] = 10_000
    a[:] = v


def _repeated_index(run):
    a = _labels_array(run, K.INDEX)
    v = a[:]
    v[7, 1] = v[7, 0]
    a[:] = v


def _delete_labels_table(run):
    shutil.rmtree(run / "data.zarr" / "labels")


DAMAGE = {"deleted chunk file": _delete_train_file, "flipped bit": _flip_test_bit, "NaN forces": _nan_forces,
          "NaN test states": _nan_test_states, "index out of range": _index_out_of_range,
          "repeated index": _repeated_index, "deleted table": _delete_labels_table}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_flagged_then_recomputed(clean, tmp_path, damage):
    run = _copy(clean, tmp_path)
    before = _metrics(run)
    DAMAGE[damage](run)
    chk = _cli("check", str(run))
    assert chk.returncode == 1, chk.stdout + chk.stderr
    assert "Traceback" not in chk.stderr
    r = _cli("run", str(clean / "tiny.yaml"), "--out", str(run), "-q")
    assert r.returncode == 0, r.stderr
    after = _metrics(run)
    assert after["rollout_rel_error"] == pytest.approx(before["rollout_rel_error"], rel=1e-9)
    assert after["force_evaluations"] == before["force_evaluations"]
    json.loads((run / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert _cli("check", str(run)).returncode == 0


@pytest.mark.parametrize("command", ["run", "check"])
def test_broken_config_yaml_is_one_line(clean, tmp_path, command):
    run = _copy(clean, tmp_path)
    (run / "config.yaml").write_text("seed: [unclosed\n")
    args = [command, str(clean / "tiny.yaml"), "--out", str(run)] if command == "run" else [command, str(run)]
    r = _cli(*args)
    assert r.returncode in (1, 2) and len(r.stderr.strip().splitlines()) >= 1
    assert "Traceback" not in r.stderr and "config.yaml" in r.stderr


def test_evaluate_without_a_model_names_train_dynamics(clean, tmp_path):
    run = _copy(clean, tmp_path)
    shutil.rmtree(run / "dynamics")
    r = _cli("evaluate", str(clean / "tiny.yaml"), "--out", str(run))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "train-dynamics" in r.stderr


def test_changed_system_code_is_refused(tmp_path, monkeypatch):
    """Same config, other forces: the folder's data are not reused (fingerprint), before any work."""
    from macrodyn import Run, parse_config
    from macrodyn.errors import InputError
    from macrodyn.systems import PredatorPrey

    cfg = parse_config(TINY)
    Run.create(cfg, tmp_path / "run", progress=False)
    Run.create(cfg, tmp_path / "run", progress=False)  # unchanged: reopened
    orig = PredatorPrey._forces
    monkeypatch.setattr(PredatorPrey, "_forces", lambda self, x: 1.001 * orig(self, x))
    with pytest.raises(InputError) as e:
        Run.create(cfg, tmp_path / "run", progress=False)
    assert "\n" not in str(e.value) and "--out" in str(e.value)


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
    """A half-written atomic file and the checkpoint of a member (or closure) that finished are removed
    on the next create; the checkpoint of an unfinished one is kept (it resumes from it)."""
    from macrodyn import Run, parse_config

    cfg = parse_config(TINY)
    out = tmp_path / "run"
    Run.create(cfg, out, progress=False)
    (out / "dynamics").mkdir()
    stale = [out / ".metrics.json.x1y2.partial", out / "dynamics" / ".member_0.pt.abcd.partial",
             out / "dynamics" / "member_0.partial.pt"]
    keep = [out / "dynamics" / "member_0.pt", out / "dynamics" / "member_1.partial.pt", out / "closure.partial.pt"]
    for p in stale + keep:
        p.write_bytes(b"x")
    removed = Run.create(cfg, out, progress=False)
    assert removed is not None
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    # the closure's checkpoint goes once closure.pt exists
    (out / "closure.pt").write_bytes(b"x")
    Run.create(cfg, out, progress=False)
    assert not (out / "closure.partial.pt").exists()


@pytest.mark.parametrize("table_no", [1, 3])  # the test table (after train), the labels table
def test_sigkill_at_table_creation_then_rerun_gives_the_same_metrics(clean, tmp_path, table_no):
    """The process dies (os._exit, as SIGKILL would) in the middle of creating a table, after its
    arrays and before its metadata; the rerun resumes to the untouched run's metrics."""
    import subprocess
    import sys

    code = ("import os, sys\n"
            "import macrodyn.data.store as store\n"
            "build, calls = store._build, []\n"
            "def dying(group, *a, **kw):\n"
            "    calls.append(1)\n"
            f"    if len(calls) == {table_no}:\n"
            "        for col in a[2]:  # some arrays written, the table's metadata not yet\n"
            "            group.create_array(col, shape=(1,), dtype='f8')\n"
            "        os._exit(137)\n"
            "    return build(group, *a, **kw)\n"
            "store._build = dying\n"
            "from macrodyn.cli import entry\n"
            "entry(sys.argv[1:])\n")
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", code, "run", str(clean / "tiny.yaml"), "--out", str(out), "-q"],
                            capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    r = _cli("run", str(clean / "tiny.yaml"), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert _metrics(out)["rollout_rel_error"] == pytest.approx(_metrics(clean / "run")["rollout_rel_error"], rel=1e-9)
