"""macrodyn: learn macroscopic dynamics from partial microscopic force evaluations.

Entry points: systems in :mod:`macrodyn.systems`, observables in :mod:`macrodyn.observables`,
the estimator :class:`MacroModel` (arrays in memory), and the pipeline (``Run`` +
``run_all``) driven by a validated :class:`RunConfig`. Names are imported on first use, so
``import macrodyn.dynamics`` (or ``macrodyn.keys``) loads only what it needs.
"""
from importlib import import_module

__version__ = "0.1.0"
_LAZY = {"InputError": "macrodyn.errors", "RunConfig": "macrodyn.config", "load_config": "macrodyn.config",
         "parse_config": "macrodyn.config", "Run": "macrodyn.run", "STAGES": "macrodyn.run",
         "run_all": "macrodyn.pipeline", "MacroModel": "macrodyn.model"}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'macrodyn' has no attribute {name!r}")
