"""Microscopic systems: full and partial forces, trajectories, engine adapters."""
from macrodyn.systems.base import ForceCounter, MicroSystem
from macrodyn.systems.predator_prey import PredatorPrey
from macrodyn.systems.registry import SYSTEMS, build_system, register

__all__ = ["ForceCounter", "MicroSystem", "PredatorPrey", "SYSTEMS", "build_system", "register"]
