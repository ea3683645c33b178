"""A run folder and its stages, one module each: simulate → label → closure → dynamics →
evaluate → report. Each stage reads what the previous one wrote and skips work that is
already complete, so an interrupted run continues where it stopped; :mod:`macrodyn.pipeline`
orders them."""
from macrodyn.run.folder import STAGES, Run

__all__ = ["Run", "STAGES"]
