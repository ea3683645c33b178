"""Name -> system class, for configs. Each class carries a pydantic ``Params`` model."""
from __future__ import annotations

from macrodyn.errors import InputError
from macrodyn.systems.allen_cahn import AllenCahn
from macrodyn.systems.base import MicroSystem
from macrodyn.systems.md import LennardJones
from macrodyn.systems.predator_prey import PredatorPrey

SYSTEMS: dict[str, type[MicroSystem]] = {
    "predator_prey": PredatorPrey,
    "lennard_jones": LennardJones,
    "allen_cahn": AllenCahn,
}


def register(cls: type[MicroSystem]) -> type[MicroSystem]:
    """Make a user system available to configs under ``cls.name`` (usable as a decorator)."""
    SYSTEMS[cls.name] = cls
    return cls


def build_system(name: str, params: dict | None = None) -> MicroSystem:
    """Instantiate a registered system from validated parameters."""
    if name not in SYSTEMS:
        raise InputError(f"unknown system {name!r}; known: {sorted(SYSTEMS)}. "
                         "Register your own with macrodyn.systems.register.")
    cls = SYSTEMS[name]
    p = cls.Params(**(params or {})) if hasattr(cls, "Params") else None
    return cls(**p.model_dump()) if p is not None else cls(**(params or {}))
