"""macrodyn: learn macroscopic dynamics from partial microscopic force evaluations."""
from macrodyn.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]
