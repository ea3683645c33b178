"""Every user mistake at the command line is one line on stderr and exit 2 (Ctrl-C: 130),
and ``--out`` never receives a run where it would clobber something.

Most cases call :func:`macrodyn.cli.entry` in-process (the console script's function, fast);
a few run the real console entry in a subprocess (``python -m macrodyn``)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from macrodyn import cli
from macrodyn.errors import InputError
from tests.test_cli import TINY

def _entry(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``macrodyn ARGS`` in-process."""
    cli._state["traceback"] = False
    with pytest.raises(SystemExit) as e:
        cli.entry([str(a) for a in args])
        raise SystemExit(0)  # entry returns on success
    out, err = capsys.readouterr()
    return e.value.code or 0, out, err


def _one_line_error(rc: int, out: str, err: str, code: int = 2) -> str:
    assert rc == code, (rc, out, err)
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), err
    assert "Traceback" not in err
    return lines[0]


def _console(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "macrodyn", *map(str, args)], capture_output=True, text=True, **kw)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------ usage errors
@pytest.mark.parametrize("args, expected", [
    (["runn"], "No such command 'runn'"),
    (["run", "--outt", "x"], "No such option: --outt"),
    (["simulate", "--quiet=3"], "--quiet"),
    (["check"], "Missing argument 'OUT'"),
    (["study", "force-budget"], "Missing argument"),
    (["study", "force-budget", "c.yaml", "--size", "many"], "Invalid value for '--size'"),
    (["study", "nope"], "No such command 'nope'"),
    ([], "usage: macrodyn COMMAND"),
    (["study"], "usage: macrodyn study COMMAND"),
    (["--traceback"], "usage: macrodyn COMMAND"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_usage_errors_are_one_line(capsys, args, expected):
    line = _one_line_error(*_entry(capsys, *args))
    assert expected in line
    assert "--help" in line  # the fix: where to look


def test_console_entry_bare_and_typo():
    """The real console entry (``python -m macrodyn``): bare, a typo, --help, --version."""
    r = _console()
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r
    assert "macrodyn --help" in r.stderr
    r = _console("runn")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and "runn" in r.stderr, r
    r = _console("--help")
    assert r.returncode == 0 and "simulate" in r.stdout and "train-closure" in r.stdout and r.stderr == "", r
    r = _console("--version")
    from importlib.metadata import version

    assert r.returncode == 0 and r.stdout.strip() == f"macrodyn {version('macrodyn')}", r


def test_help_and_usage_errors_do_not_load_torch():
    code = ("import sys\nfrom macrodyn.cli import entry\ntry:\n    entry(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted({'torch', 'numba', 'zarr'} & set(sys.modules))\nprint(heavy, file=sys.stderr)\n")
    for args in (["--help"], ["runn"], ["run", "--outt", "x"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert r.stderr.splitlines()[-1] == "[]", r.stderr


def test_help_and_version_in_process(capsys):
    rc, out, err = _entry(capsys, "--help")
    assert rc == 0 and "run" in out and err == ""
    rc, out, err = _entry(capsys, "run", "--help")
    assert rc == 0 and "--out" in out and "runs/<config file stem>" in out
    rc, out, err = _entry(capsys, "--version")
    assert rc == 0 and out.startswith("macrodyn ") and out.count("\n") == 1


# ------------------------------------------------------------------ bad config fields
def _dup(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("name: a\ntraining:\n  epochs: 3\ndata:\n  n_steps: 600\ntraining:\n  budget: 10\n")
    return p


BAD = {
    "seed -1": ({"seed": -1}, "seed"),
    "seed 2**63": ({"seed": 2**63}, "seed"),
    "threads 1e8": ({"threads": 100_000_000}, "CPU core"),
    "n_steps 1e12": ({"data": {"n_steps": 10**12, "save_every": 10}}, "data.n_steps"),
    "chunk_trajectories 1e9": ({"data": {"chunk_trajectories": 10**9}}, "data.chunk_trajectories"),
    "chunk_configs 1e9": ({"training": {"chunk_configs": 10**9}}, "training.chunk_configs"),
    "epochs true": ({"training": {"epochs": True}}, "training.epochs"),
    "members 1e6": ({"training": {"members": 10**6}}, "training.members"),
    "lr true": ({"training": {"lr": True}}, "training.lr"),
    "hidden [32, true]": ({"model": {"hidden": [32, True]}}, "model.hidden"),
    "unknown field": ({"training": {"budgett": 10}}, "training.budgett: unknown field"),
    "budget > pool": ({**TINY, "training": {"budget": 10**7}}, "training pool"),
    "budget < 2 configs": ({**TINY, "training": {"budget": 1}}, "raise training.budget"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_fields_are_one_line(capsys, tmp_path, case):
    data, expected = BAD[case]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = tmp_path / "o"
    line = _one_line_error(*_entry(capsys, "run", cfg, "--out", out, "-q"))
    assert expected in line, line
    assert not out.exists()  # refused before anything was written


def test_duplicate_key_and_empty_file(capsys, tmp_path):
    line = _one_line_error(*_entry(capsys, "run", _dup(tmp_path), "--out", tmp_path / "o"))
    assert "duplicate key 'training'" in line and "line 6" in line and "dup.yaml" in line and "line 2" in line
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    line = _one_line_error(*_entry(capsys, "simulate", empty, "--out", tmp_path / "o"))
    assert "is empty" in line and "omit the argument" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible")
def test_device_cuda_without_gpu(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "device": "cuda"}))
    line = _one_line_error(*_entry(capsys, "run", cfg, "--out", tmp_path / "o"))
    assert "device: cuda" in line and "set device: cpu" in line
    assert not (tmp_path / "o").exists()


def test_bad_config_through_console_entry(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: -1\n")
    r = _console("run", cfg, "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and "seed" in r.stderr, r


# ------------------------------------------------------------------ --out protection
@pytest.fixture
def tiny_cfg(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    return cfg


def test_empty_out_refused(capsys, tmp_path, tiny_cfg, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    for cmd in ("run", "simulate", "label", "train-closure", "train-dynamics", "evaluate", "report"):
        line = _one_line_error(*_entry(capsys, cmd, tiny_cfg, "--out", ""))
        assert "--out is empty" in line
    line = _one_line_error(*_entry(capsys, "check", ""))
    assert "is empty" in line
    assert _tree(tmp_path) == before


def test_user_folder_refused_and_untouched(capsys, tmp_path, tiny_cfg):
    user = tmp_path / "paper"
    (user / "figures").mkdir(parents=True)
    (user / "report.md").write_text("# my notes\n")
    (user / "figures" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    before = _tree(user)
    for cmd in ("run", "simulate", "label", "evaluate", "report"):
        line = _one_line_error(*_entry(capsys, cmd, tiny_cfg, "--out", user))
        assert "not a macrodyn run" in line
    _one_line_error(*_entry(capsys, "check", user))
    assert _tree(user) == before


def test_out_file_under_file_and_unwritable(capsys, tmp_path, tiny_cfg):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    assert "is a file" in _one_line_error(*_entry(capsys, "run", tiny_cfg, "--out", f))
    assert "which is a file" in _one_line_error(*_entry(capsys, "run", tiny_cfg, "--out", f / "sub" / "run"))
    line = _one_line_error(*_entry(capsys, "run", tiny_cfg, "--out", "/proc/macrodyn_nope/run"))
    assert "/proc" in line and "--out" in line
    assert "File name too long" in _one_line_error(*_entry(capsys, "run", tiny_cfg, "--out", tmp_path / ("a" * 300)))
    assert f.read_text() == "keep me"


def test_later_stage_needs_a_run(capsys, tmp_path, tiny_cfg):
    line = _one_line_error(*_entry(capsys, "train-closure", tiny_cfg, "--out", tmp_path / "new"))
    assert "does not exist" in line and "macrodyn run" in line
    assert not (tmp_path / "new").exists()


def test_out_defaults_to_config_stem(capsys, tmp_path, tiny_cfg, monkeypatch):
    seen = []

    def stop(out, **kw):
        seen.append(Path(out))
        raise InputError("stop here")

    import macrodyn.data.outdir

    monkeypatch.setattr(macrodyn.data.outdir, "check_out_dir", stop)
    monkeypatch.chdir(tmp_path)
    _one_line_error(*_entry(capsys, "simulate", tiny_cfg))
    _one_line_error(*_entry(capsys, "evaluate"))  # the embedded default config
    assert seen == [Path("runs/tiny"), Path("runs/predator_prey")]


def test_existing_run_and_empty_folder_accepted(tmp_path):
    from macrodyn.data.outdir import check_out_dir, is_run_folder

    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", creating=True)
    (tmp_path / "empty" / ".lock").write_text("")  # a stale lock file does not make it non-empty
    check_out_dir(tmp_path / "empty", creating=True)
    check_out_dir(tmp_path / "new" / "run", creating=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({k: {} for k in ("name", "seed", "system", "data", "closure",
                                                                     "model", "training", "evaluation", "device")}))
    (run / "report.md").write_text("x")
    assert is_run_folder(run)
    check_out_dir(run, creating=True)
    check_out_dir(run, creating=False)
    # a hand-written config.yaml is not a run's
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("name: mine\ntraining:\n  budget: 10\n")
    assert not is_run_folder(mine)
    with pytest.raises(InputError, match="not a macrodyn run"):
        check_out_dir(mine, creating=True)
    (mine / "data.zarr").mkdir()
    assert is_run_folder(mine)


# ------------------------------------------------------------------ Ctrl-C
def test_keyboard_interrupt_in_command(capsys, tmp_path, tiny_cfg, monkeypatch):
    def interrupted(cfg, *a, **kw):
        raise KeyboardInterrupt

    import macrodyn.config
    import macrodyn.preflight

    monkeypatch.setattr(macrodyn.config, "check_before_work", interrupted)
    monkeypatch.setattr(macrodyn.preflight, "preflight", interrupted)
    line = _one_line_error(*_entry(capsys, "run", tiny_cfg, "--out", tmp_path / "o"), code=130)
    assert line == "interrupted; rerun the same command to resume."


def test_sigint_subprocess(tmp_path, tiny_cfg):
    """SIGINT to a running ``macrodyn run`` (stalled inside the command): one line, exit 130."""
    flag = tmp_path / "started"
    # SIGINT handled and unblocked as under a terminal: a disposition or mask the test process
    # inherited (from its runner or a library thread) must not leak into the command
    code = ("import sys, time, pathlib, signal\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
            "import macrodyn.systems.registry as reg\n"
            "def slow(*a, **kw):\n"
            f"    pathlib.Path({str(flag)!r}).touch()\n"
            "    time.sleep(120)\n"
            "reg.build_system = slow\n"
            "from macrodyn.cli import entry\n"
            "entry(sys.argv[1:])\n")
    p = subprocess.Popen([sys.executable, "-c", code, "run", str(tiny_cfg), "--out", str(tmp_path / "o")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not flag.exists():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() - t0 < 120, "the command never started"
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert err.splitlines() == ["interrupted; rerun the same command to resume."], err


# ------------------------------------------------------------------ Dask scheduler
def test_unreachable_scheduler(capsys, tmp_path, tiny_cfg):
    t0 = time.monotonic()
    line = _one_line_error(*_entry(capsys, "simulate", tiny_cfg, "--out", tmp_path / "o", "-q",
                                   "--scheduler", "tcp://127.0.0.1:9"))  # a closed loopback port
    assert time.monotonic() - t0 < 30
    assert "cannot reach Dask scheduler tcp://127.0.0.1:9 within 10 s" in line and "drop --scheduler" in line
    assert not (tmp_path / "o").exists()


def test_scheduler_timeout_and_bad_address(monkeypatch):
    import socket

    from macrodyn.config import check_scheduler

    with pytest.raises(InputError, match="needs a host and a port"):
        check_scheduler("tcp://localhost")
    check_scheduler("inproc://x")  # not checked
    with socket.create_server(("127.0.0.1", 0)) as server:  # a listening port passes
        check_scheduler(f"tcp://127.0.0.1:{server.getsockname()[1]}")

    def no_answer(address, timeout):
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", no_answer)
    with pytest.raises(InputError, match=r"within 0\.5 s \(no answer\)"):
        check_scheduler("tcp://scheduler.example:8786", timeout=0.5)


# ------------------------------------------------------------------ numba cache
def test_numba_cache_decision(tmp_path):
    from macrodyn.systems import _numba

    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _numba.dir_writable(tmp_path / "cache")
    assert not _numba.dir_writable(blocker / "cache")  # mkdir under a regular file fails, even as root


def test_numba_jit_without_writable_cache(tmp_path):
    """Where numba can write no cache folder, ``cache=True`` fails at import; ``jit`` compiles uncached."""
    mod = tmp_path / "kern.py"
    mod.write_text("from macrodyn.systems._numba import jit, can_cache\n"
                   "import numba\n"
                   "@jit(error_model='numpy')\n"
                   "def twice(x):\n"
                   "    return 2 * x\n"
                   "try:\n"
                   "    numba.njit(cache=True)(lambda x: x)\n"
                   "    plain = 'ok'\n"
                   "except RuntimeError as e:\n"
                   "    plain = 'fails'\n"
                   "print(can_cache(__file__), plain, twice(21))\n")
    (tmp_path / "__pycache__").write_text("")  # the in-tree cache folder cannot be created
    (tmp_path / "blocker").write_text("")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "blocker" / "cache"), "HOME": str(tmp_path / "blocker")}
    env.pop("NUMBA_CACHE_DIR", None)
    r = subprocess.run([sys.executable, str(mod)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "fails", "42"]
