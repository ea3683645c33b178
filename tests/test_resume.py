"""A run killed with SIGKILL (during simulation, the closure's training, then the dynamics') and rerun ends
with the same metrics.json as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

CFG = {
    "name": "resume",
    "data": {"n_train_trajectories": 12, "n_test_trajectories": 4, "n_steps": 1000, "save_every": 10,
             "chunk_trajectories": 2},
    "closure": {"epochs": 100, "checkpoint_every": 1},
    "training": {"epochs": 60, "budget": 3000, "chunk_configs": 50, "checkpoint_every": 5, "select": "rollout",
                 "select_every": 2},
    "evaluation": {"n_plot": 1},
}
CMD = [sys.executable, "-c", "from macrodyn.cli import entry; entry()", "run"]


def _metrics(out):
    m = json.loads((out / "metrics.json").read_text())
    m.pop("stage_seconds"), m.pop("stage_peak_rss_gb")
    return m


def _kill_when(cfg, out, path_glob, timeout=120):
    proc = subprocess.Popen([*CMD, str(cfg), "--out", str(out), "-q"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if list(out.glob(path_glob)):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    return False


@pytest.mark.slow
def test_sigkill_during_simulation_and_training_then_resume(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    ref = tmp_path / "ref"
    assert subprocess.run([*CMD, str(cfg), "--out", str(ref), "-q"], capture_output=True).returncode == 0

    out = tmp_path / "killed"
    # killed once some (not all) training-trajectory chunks are done
    assert _kill_when(cfg, out, "data.zarr/train/_done/c/1")
    assert not (out / "metrics.json").exists()
    # killed while the closure trains, after one of its checkpoints (99 epochs remain at the first)
    assert _kill_when(cfg, out, "closure.partial.pt")
    assert not (out / "closure.pt").exists()
    # killed again during the dynamics training, after a checkpoint
    assert _kill_when(cfg, out, "dynamics/member_0.partial.pt")
    assert not (out / "dynamics" / "member_0.pt").exists()
    r = subprocess.run([*CMD, str(cfg), "--out", str(out), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _metrics(out) == _metrics(ref)
    assert torch.load(out / "closure.pt", weights_only=False)["history"]["earlier_seconds"] > 0  # resumed, not redone
