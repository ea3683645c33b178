"""Simulation and labelling as Dask tasks give the same dataset as one process, also when a
worker is killed mid-job."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from macrodyn.config import parse_config
from macrodyn.data import ChunkedTable
from macrodyn.run.dask import TEST_DELAY_ENV, run_task
from macrodyn.run import Run
from macrodyn.run.label import label_stage
from macrodyn.run.simulate import simulate, simulate_chunk

pytest.importorskip("dask.distributed")

CFG = {
    "data": {"n_train_trajectories": 8, "n_test_trajectories": 4, "n_steps": 100, "save_every": 10,
             "chunk_trajectories": 1},
    "system": {"params": {"n": 10}},
    "training": {"budget": 240, "chunk_configs": 5},  # 60 labelled configs of 4 coordinates, 12 chunks
}
TABLES = ("train", "test", "labels")


def _generate(out, scheduler=None):
    cfg = parse_config({**CFG, "parallel": {"scheduler": scheduler}})
    run = Run.create(cfg, out, progress=False)
    simulate(run)
    label_stage(run)
    return run


def _assert_same_dataset(a, b):
    for name in TABLES:
        ta, tb = ChunkedTable.open(a / "data.zarr", name), ChunkedTable.open(b / "data.zarr", name)
        assert ta.is_complete() and tb.is_complete()
        da, db = ta.read(), tb.read()
        assert sorted(da) == sorted(db)
        for col in da:
            assert np.array_equal(da[col], db[col]), f"{name}/{col} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    _generate(out)
    return out


@pytest.fixture
def cluster(request, monkeypatch):
    from dask.distributed import Client, LocalCluster

    if getattr(request, "param", None):
        monkeypatch.setenv(TEST_DELAY_ENV, str(request.param))  # inherited by the worker processes
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as c, \
            Client(c) as client:
        yield client


def test_two_workers_match_one_process(reference, cluster, tmp_path):
    _generate(tmp_path, cluster.scheduler.address)
    assert (tmp_path / "config.yaml").read_text() == (reference / "config.yaml").read_text()
    _assert_same_dataset(reference, tmp_path)


@pytest.mark.parametrize("cluster", [0.2], indirect=True)  # seconds per task, so that the kill lands mid-job
def test_worker_killed_mid_job_loses_nothing(reference, cluster, tmp_path):
    pids = cluster.run(os.getpid)
    victim = sorted(pids)[0]
    errors = []

    def job():
        try:
            _generate(tmp_path, cluster.scheduler.address)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    th = threading.Thread(target=job)
    th.start()
    done = tmp_path / "data.zarr" / "train" / "_done" / "c"
    t0 = time.time()
    while not (done.exists() and len(list(done.iterdir())) >= 2) and time.time() - t0 < 60:
        time.sleep(0.02)
    n_done_at_kill = len(list(done.iterdir()))
    os.kill(pids[victim], signal.SIGKILL)
    th.join(timeout=120)
    assert not th.is_alive() and not errors, errors
    assert n_done_at_kill < CFG["data"]["n_train_trajectories"]  # the kill came mid-job
    _assert_same_dataset(reference, tmp_path)


def test_task_on_a_done_chunk_writes_nothing(reference, tmp_path):
    import json
    import shutil

    shutil.copytree(reference, tmp_path / "r")
    chunk = tmp_path / "r" / "data.zarr" / "train" / "traj" / "c" / "3" / "0" / "0"
    assert chunk.exists()
    before = chunk.stat().st_mtime_ns
    cfg = json.dumps(parse_config(CFG).model_dump())
    run_task(simulate_chunk, cfg, str(tmp_path / "r"), ("train", 3))  # what a retried task does
    assert chunk.stat().st_mtime_ns == before


def test_session_shares_one_client_across_tables(reference, cluster, tmp_path, monkeypatch):
    from macrodyn.run import dask as distributed

    calls = []
    real = distributed.connect

    def counting(*key):
        calls.append(key)
        return real(*key)

    monkeypatch.setattr(distributed, "connect", counting)
    run = Run.create(parse_config({**CFG, "parallel": {"scheduler": cluster.scheduler.address}}), tmp_path, progress=False)
    with distributed.session(run):
        simulate(run)
        label_stage(run)
    assert len(calls) == 1  # without the session: one per table (train, test, labels)
    assert not distributed._OPEN
    _assert_same_dataset(reference, tmp_path)


def test_members_as_tasks_match_in_process(cluster, tmp_path):
    """With a scheduler, the ensemble members are trained as Dask tasks (one per member) and
    come out as in one process on as many threads; the driver records the stage wall time."""
    import torch
    from dask.distributed import get_task_stream

    from macrodyn.pipeline import run_all
    from macrodyn.run.closure import closure_stage
    from macrodyn.run.dynamics import dynamics_stage

    states = {}
    for name, sched in (("serial", None), ("tasks", cluster.scheduler.address)):
        cfg = parse_config({**CFG, "threads": 1, "parallel": {"scheduler": sched},
                            "training": {**CFG["training"], "epochs": 4, "members": 3, "checkpoint_every": 2}})
        run = Run.create(cfg, tmp_path / name, progress=False)
        run_all(run, ("simulate", "label", "closure"))
        with get_task_stream(cluster) as ts:
            fields = dynamics_stage(run, closure_stage(run))
        assert len(ts.data) == (3 if sched else 0)
        assert run.timings["dynamics"] > 0
        states[name] = [f.state_dict() for f in fields]
        # a second call finds every member file and trains nothing
        with get_task_stream(cluster) as ts:
            again = dynamics_stage(run, closure_stage(run))
        assert not ts.data
        for a, b in zip(fields, again):
            for u, v in zip(a.state_dict().values(), b.state_dict().values()):
                torch.testing.assert_close(u, v, rtol=0, atol=0)
    for sa, sb in zip(states["serial"], states["tasks"]):
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-6, atol=1e-7)
    # the members differ from each other (seeded per member), so the comparison is not vacuous
    assert any(not torch.equal(a, b) for a, b in zip(states["tasks"][0].values(), states["tasks"][1].values()))


def test_local_cluster_workers_keep_adaptive_malloc():
    """Dask's default MALLOC_TRIM_THRESHOLD_=65536 makes glibc mmap every large tensor (a
    training step ran 1.8x slower); the local cluster's workers get the adaptive rule's values."""
    from macrodyn.run.dask import MALLOC_ENV, connect

    def start_env():  # the environment the process was started with, which is what glibc reads
        with open("/proc/self/environ", "rb") as f:
            pairs = (item.decode().split("=", 1) for item in f.read().split(b"\0") if b"=" in item)
            return {k: v for k, v in pairs if k in MALLOC_ENV}

    if not os.path.exists("/proc/self/environ"):
        pytest.skip("needs Linux /proc")
    with connect("local", 1) as client:
        env = next(iter(client.run(start_env).values()))
    assert env == MALLOC_ENV
