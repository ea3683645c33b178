"""macrodyn: learn macroscopic dynamics from partial microscopic force evaluations.

Public entry points: systems in :mod:`macrodyn.systems`, observables in
:mod:`macrodyn.observables`, and the pipeline below (``Run`` + ``run_all``) driven by a
validated :class:`RunConfig`.
"""
from macrodyn.config import RunConfig, load_config, parse_config
from macrodyn.errors import InputError
from macrodyn.pipeline import STAGES, Run, run_all

__version__ = "0.1.0"
__all__ = ["InputError", "Run", "RunConfig", "STAGES", "load_config", "parse_config", "run_all", "__version__"]
