"""Given macroscopic observables with Jacobians."""
from macrodyn.observables.base import BlockMeans, FunctionObservable, Observable
from macrodyn.observables.free_energy import GinzburgLandau
from macrodyn.observables.temperature import Temperature

__all__ = ["BlockMeans", "FunctionObservable", "GinzburgLandau", "Observable", "Temperature"]
