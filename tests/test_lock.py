"""RunLock: one process per run folder; released when its holder exits, however it exits."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from macrodyn.data.lock import RunLock, read_holder
from macrodyn.errors import InputError

TINY = {"name": "tiny", "data": {"n_train_trajectories": 8, "n_test_trajectories": 4, "n_steps": 600,
                                 "save_every": 10, "chunk_trajectories": 4},
        "training": {"epochs": 5, "budget": 4000, "chunk_configs": 64}}


def test_lock_file_names_the_holder_and_goes_away(tmp_path):
    run = tmp_path / "new" / "run"
    with RunLock(run) as lock:
        assert lock.held and run.is_dir()
        holder = json.loads((run / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
    assert not lock.held and not (run / ".lock").exists()


def test_folders_it_created_are_removed_if_left_empty(tmp_path):
    with RunLock(tmp_path / "a" / "b" / "run"):
        pass
    assert list(tmp_path.iterdir()) == []  # a refused run leaves nothing behind
    with RunLock(tmp_path / "a" / "run"):
        (tmp_path / "a" / "run" / "config.yaml").write_text("x")
    assert (tmp_path / "a" / "run" / "config.yaml").exists()
    (tmp_path / "mine").mkdir()
    with RunLock(tmp_path / "mine"):
        pass
    assert (tmp_path / "mine").is_dir()  # not created by the lock: kept


def test_second_holder_refused_with_one_line(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(InputError) as e:  # flock conflicts between two open files, even in one process
            RunLock(tmp_path).acquire()
    msg = str(e.value)
    assert "\n" not in msg
    assert f"run folder {tmp_path} is in use by pid {os.getpid()} on {socket.gethostname()} (started " in msg
    assert msg.endswith("wait for it or use another --out.")
    with RunLock(tmp_path):  # free again
        pass


def test_stale_lock_file_is_free(tmp_path):
    """A .lock left by a holder that died (kill -9, power loss) holds no flock: it is taken over."""
    (tmp_path / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone", "started": "yesterday"}))
    with RunLock(tmp_path):
        assert read_holder(tmp_path / ".lock")["pid"] == os.getpid()
    (tmp_path / ".lock").write_text("garbage, not JSON")
    with RunLock(tmp_path):
        pass


def test_unwritable_location_is_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(InputError, match="cannot create run folder"):
        RunLock(f / "run").acquire()


def _holder(folder, flag, stop):
    """A process that holds RunLock(folder) until ``stop`` appears (at most a minute)."""
    code = ("import pathlib, sys, time\n"
            "from macrodyn.data.lock import RunLock\n"
            f"with RunLock({str(folder)!r}):\n"
            f"    pathlib.Path({str(flag)!r}).touch()\n"
            "    t0 = time.monotonic()\n"
            f"    while not pathlib.Path({str(stop)!r}).exists() and time.monotonic() - t0 < 60:\n"
            "        time.sleep(0.05)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not flag.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() - t0 < 60
        time.sleep(0.05)
    return p


def test_two_processes_on_one_run_folder(tmp_path):
    """While one process holds the folder, `macrodyn run` on it exits 2 with one line naming the
    holder; once the holder is gone (here: killed), the folder is free."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "run"
    holder = _holder(run, tmp_path / "held", tmp_path / "stop")
    try:
        r = subprocess.run([sys.executable, "-m", "macrodyn", "run", str(cfg), "--out", str(run), "-q"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr
        assert r.stdout == "" and len(r.stderr.splitlines()) == 1, r.stderr
        assert f"in use by pid {holder.pid} on {socket.gethostname()}" in r.stderr
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # the refused run wrote nothing, removed nothing
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the OS drops the flock
        holder.wait(timeout=30)
    assert (run / ".lock").exists()  # left behind, stale
    with RunLock(run):
        pass


def test_lock_released_after_clean_exit(tmp_path):
    holder = _holder(tmp_path / "run", tmp_path / "held", tmp_path / "stop")
    with pytest.raises(InputError, match=f"pid {holder.pid}"):
        RunLock(tmp_path / "run").acquire()
    (tmp_path / "stop").touch()
    assert holder.wait(timeout=60) == 0
    assert not (tmp_path / "run" / ".lock").exists()
    with RunLock(tmp_path / "run"):
        pass
