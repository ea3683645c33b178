"""A run uses the config's ``threads`` whoever starts it (the CLI, a study's grid, the Python API)."""
import torch

import macrodyn.pipeline as P
from macrodyn.config import parse_config
from macrodyn.run import Run
from tests.test_cli import TINY


def test_run_all_uses_the_configs_threads_and_restores_them(tmp_path, monkeypatch):
    seen = []
    real = P.simulate
    monkeypatch.setattr(P, "simulate", lambda run: (seen.append(torch.get_num_threads()), real(run)))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run = Run.create(parse_config({**TINY, "threads": 1}, "test"), tmp_path / "run", progress=False)
        assert P.run_all(run, ("simulate",)) == {}
        assert seen == [1] and torch.get_num_threads() == 2
        seen.clear()
        run = Run.create(parse_config(dict(TINY), "test"), tmp_path / "run2", progress=False)  # threads unset
        P.run_all(run, ("simulate",))
        assert seen == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
