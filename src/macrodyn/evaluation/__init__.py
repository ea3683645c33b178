"""Rollouts, the relative-error metric, figures and the run report."""
from macrodyn.evaluation.rollout import relative_error, rollout, rollout_errors

__all__ = ["relative_error", "rollout", "rollout_errors"]
