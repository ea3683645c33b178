"""Losses L_z, L_x, L_x,p; trainers for the closure and the macroscopic model."""
from macrodyn.training.closure import closure_loss, fit_closure
from macrodyn.training.dynamics import fit_dynamics
from macrodyn.data.validate import units_in
from macrodyn.training.features import compute_features, label, sample_units
from macrodyn.training.losses import LatentLoss, PartialForceLoss, make_loss

__all__ = ["LatentLoss", "PartialForceLoss", "closure_loss", "compute_features", "fit_closure",
           "fit_dynamics", "label", "make_loss", "sample_units", "units_in"]
