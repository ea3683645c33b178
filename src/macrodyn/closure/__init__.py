"""Closure autoencoder, condition-number penalty, Jacobians and pseudo-inverse rows."""
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.closure.jacobian import batch_jacobian, gram_condition_number, pinv_rows

__all__ = ["ClosureAutoencoder", "batch_jacobian", "gram_condition_number", "pinv_rows"]
