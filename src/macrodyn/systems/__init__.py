"""Microscopic systems: full and partial forces, trajectories, engine adapters."""
from macrodyn.systems.base import ForceCounter, MicroSystem
from macrodyn.systems.predator_prey import PredatorPrey

__all__ = ["ForceCounter", "MicroSystem", "PredatorPrey"]
