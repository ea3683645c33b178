"""The method on arrays in memory: :class:`MacroModel`, and the steps the run's stages share with it."""
from macrodyn.model.estimator import MacroModel

__all__ = ["MacroModel"]
