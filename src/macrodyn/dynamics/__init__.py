"""Macroscopic models ``dz/dt = g(z)``: plain ``nn.Module`` vector fields."""
from macrodyn.dynamics.gfinn import GFINN
from macrodyn.dynamics.mlp import MLPField
from macrodyn.dynamics.onsager import OnsagerNet
from macrodyn.dynamics.standardized import StandardizedField

__all__ = ["GFINN", "MLPField", "OnsagerNet", "StandardizedField"]
