"""Stage report: ``report.md`` with figures, from a trained and evaluated run."""
from __future__ import annotations

import time

import numpy as np

from macrodyn import keys as K
from macrodyn.closure.autoencoder import ClosureAutoencoder
from macrodyn.data.store import ChunkedTable
from macrodyn.dynamics import StandardizedField
from macrodyn.evaluation.plots import (plot_error_histogram, plot_error_over_time, plot_observables,
                                       plot_training_curves)
from macrodyn.evaluation.rollout import rollout
from macrodyn.io import load_torch, save_text
from macrodyn.model import steps as S
from macrodyn.run.dynamics import member_histories
from macrodyn.run.folder import Run


def shown_trajectories(errs: np.ndarray, n_first: int) -> tuple[list[int], list[str]]:
    """Test trajectories drawn: the first ``n_first``, then the worst and the median (by the
    members' mean error; a failed rollout counts as worst)."""
    per = errs.mean(axis=0)
    per = np.where(np.isfinite(per), per, np.inf)
    order = np.argsort(per, kind="stable")
    rows = {int(i): f"test {i}" for i in range(min(n_first, len(per)))}
    for i, what in ((int(order[-1]), "worst"), (int(order[len(order) // 2]), "median")):
        rows[i] = f"{rows[i]} ({what})" if i in rows else f"test {i} ({what})"
    return list(rows), list(rows.values())


def report_stage(run: Run, ae: ClosureAutoencoder, fields: list[StandardizedField], metrics: dict) -> None:
    """Figures (true vs predicted for the first, worst and median test trajectories, error over
    time, error histogram, training curves) and ``report.md``."""
    t0 = time.perf_counter()
    figs = run.out / "figures"
    figs.mkdir(exist_ok=True)
    e = run.cfg.evaluation
    errs = np.load(run.out / "test_errors.npy")
    rows, labels = shown_trajectories(errs, max(e.n_plot, 1))
    traj = ChunkedTable.open(run.store, "test").read([K.TRAJ], rows=np.array(rows))[K.TRAJ]
    z0, true, mask, times = S.encoded_truth(run.cfg, run.system, ae, traj)
    obs = ae.observable
    pred = rollout(fields[0], z0, times.to(z0.device), method=e.method, step_size=e.step_size)[..., : obs.dim].cpu()
    names = list(getattr(obs, "names", ())) or [f"z*{i}" for i in range(obs.dim)]
    plot_observables(times.numpy(), true.numpy(), pred.numpy(), names, figs / "observables.png", labels)
    err = ((pred - true).norm(dim=-1) / true.norm(dim=-1)).numpy()
    err[~mask.numpy()] = np.nan  # times the metric leaves out (data.min_observable)
    plot_error_over_time(times.numpy(), err, figs / "error_over_time.png")
    plot_error_histogram(errs.mean(axis=0), figs / "error_histogram.png")
    plot_training_curves(member_histories(run, len(fields)), load_torch(run.closure_path)["history"],
                         figs / "training.png")
    extra = getattr(run.system, "report_figures", None)
    extra_md = extra(figs, traj) if extra else ""
    save_text(report_markdown(run, metrics, labels) + "\n" + extra_md + "\n", run.out / "report.md")
    np.save(figs / "observables_pred.npy", pred.numpy())
    run.timed("report", time.perf_counter() - t0)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3e}"


def report_markdown(run: Run, m: dict, labels: list[str]) -> str:
    err = _fmt(m["rollout_rel_error"])
    if m["n_members"] > 1 and m.get("rollout_rel_error_std") is not None:  # a spread needs several members
        err += f" ± {m['rollout_rel_error_std']:.2e} (std over {m['n_members']} members)"
    lines = [
        f"# {run.cfg.name}: {m['system']}",
        "",
        "| quantity | value |", "|---|---|",
        f"| loss | {m['loss']} (p = {m['p']:.4g}) |",
        f"| model | {m['model']} ({m['n_members']} member(s)) |",
        f"| labelled configurations | {m['n_configs']} × {m['units_per_config']} units |",
        f"| force evaluations (labels) | {m['force_evaluations']:,} |",
        f"| force evaluations (simulation) | {m['simulation_force_evaluations']:,} |",
        *([f"| force evaluations (surrogate control) | {m['surrogate_force_evaluations']:,} in "
           f"{m['surrogate_seconds'] or 0.0:.1f} s |"] if m.get("surrogate_force_evaluations") else []),
        f"| rollout relative error, mean | {err} |",
        f"| rollout relative error, median trajectory | {_fmt(m['rollout_rel_error_median_trajectory'])} |",
        f"| rollout relative error, worst trajectory | {_fmt(m['rollout_rel_error_max_trajectory'])} "
        f"(test {m['worst_trajectory']}) |",
        f"| failed rollouts (non-finite) | {m['n_failed_trajectories']} of {m['n_test_trajectories']} |",
        f"| test trajectories | {m['n_test_trajectories']} |",
        f"| seed | {m['seed']} |",
        "",
        "Stage wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in m["stage_seconds"].items()),
        "",
        f"## Given observables, truth (solid) vs model (dashed): {', '.join(labels)}", "",
        "![observables](figures/observables.png)", "",
        "## Error over time (the trajectories drawn above)", "", "![error](figures/error_over_time.png)", "",
        "## Error per test trajectory", "", "![histogram](figures/error_histogram.png)", "",
        "## Training curves", "", "![training](figures/training.png)", "",
    ]
    return "\n".join(lines)
