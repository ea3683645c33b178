"""Given macroscopic observables with Jacobians."""
from macrodyn.observables.base import BlockMeans, FunctionObservable, Observable

__all__ = ["BlockMeans", "FunctionObservable", "Observable"]
