"""Microscopic systems: full and partial forces, trajectories, engine adapters."""
from macrodyn.systems.allen_cahn import AllenCahn, CoarseAllenCahn
from macrodyn.systems.ase_adapter import ASESystem
from macrodyn.systems.base import ForceCounter, MicroSystem
from macrodyn.systems.lj import lj_energy, lj_forces
from macrodyn.systems.md import LennardJones
from macrodyn.systems.predator_prey import PredatorPrey
from macrodyn.systems.registry import SYSTEMS, build_system, register

__all__ = ["AllenCahn", "CoarseAllenCahn", "ForceCounter", "MicroSystem", "PredatorPrey", "SYSTEMS", "build_system",
           "register", "ASESystem", "LennardJones", "lj_energy", "lj_forces"]
