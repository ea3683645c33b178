"""Studies made of many runs.

- :mod:`macrodyn.study.grid`: the generic runner, a grid of run configs on shared data
  (:func:`run_grid` / :func:`iter_grid`; :func:`run_point` trains or reads back one point);
- :mod:`macrodyn.study.force_budget`: the force-budget study (``macrodyn study force-budget``);
- :mod:`macrodyn.study.reference`: the paper's reference numbers (``reference.yaml``).
"""
from macrodyn.study.force_budget import (LOSS_COLORS, POINT_TRAINING, REFERENCE, ForceBudgetStudy, draw_points,
                                         labelling_ratio, load_study, plot_evaluations,
                                         plot_labelling_seconds, plot_study, point_config, run_study, search,
                                         size_key, summarise, train_point)
from macrodyn.study.grid import (GridPoint, PointResult, iter_grid, prepare_shared, run_grid, run_point,
                                 shared_folder)
from macrodyn.study.reference import reference

_search = search  # the name tests/test_study.py imports

__all__ = ["ForceBudgetStudy", "GridPoint", "LOSS_COLORS", "POINT_TRAINING", "PointResult", "REFERENCE",
           "draw_points", "iter_grid", "labelling_ratio", "load_study", "plot_evaluations",
           "plot_labelling_seconds", "plot_study", "point_config",
           "prepare_shared", "reference", "run_grid", "run_point", "run_study", "search", "shared_folder",
           "size_key", "summarise", "train_point"]
