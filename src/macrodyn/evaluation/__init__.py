"""Rollouts, the relative-error metric and figures (pure: no run folder)."""
from macrodyn.evaluation.rollout import relative_error, rollout, rollout_errors

__all__ = ["relative_error", "rollout", "rollout_errors"]
