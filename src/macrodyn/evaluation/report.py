"""``report.md`` with figures for a finished run."""
from __future__ import annotations

import numpy as np

from macrodyn import keys as K
from macrodyn.data.store import ChunkedTable
from macrodyn.evaluation.plots import plot_error_over_time, plot_observables, plot_training_curves
from macrodyn.evaluation.rollout import rollout
from macrodyn.io import load_torch


def write_report(run, ae, fields, metrics: dict) -> None:
    """Figures (true vs predicted, error over time, training curves) and ``report.md``."""
    figs = run.out / "figures"
    figs.mkdir(exist_ok=True)
    e = run.cfg.evaluation
    test = ChunkedTable.open(run.store, "test")
    n_plot = min(max(e.n_plot, 1), test.n_rows)
    traj = test.read([K.TRAJ], rows=slice(0, n_plot))[K.TRAJ]
    from macrodyn.pipeline import encoded_truth  # noqa: PLC0415  (the pipeline imports this module lazily)

    z0, true, mask, times = encoded_truth(run, ae, traj)
    obs = ae.observable
    pred = rollout(fields[0], z0, times.to(z0.device), method=e.method, step_size=e.step_size)[..., : obs.dim].cpu()
    names = list(getattr(obs, "names", ())) or [f"z*{i}" for i in range(obs.dim)]
    plot_observables(times.numpy(), true.numpy(), pred.numpy(), names, figs / "observables.png")
    err = ((pred - true).norm(dim=-1) / true.norm(dim=-1)).numpy()
    err[~mask.numpy()] = np.nan  # times the metric leaves out (data.min_observable)
    plot_error_over_time(times.numpy(), err, figs / "error_over_time.png")
    hists = [load_torch(run.out / "dynamics" / f"member_{m}.pt")["history"] for m in range(len(fields))]
    plot_training_curves(hists, load_torch(run.out / "closure.pt")["history"], figs / "training.png")
    extra = getattr(run.system, "report_figures", None)
    extra_md = extra(figs, traj) if extra else ""
    m = metrics
    lines = [
        f"# {run.cfg.name}: {m['system']}",
        "",
        "| quantity | value |", "|---|---|",
        f"| loss | {m['loss']} (p = {m['p']:.4g}) |",
        f"| model | {m['model']} ({m['n_members']} member(s)) |",
        f"| labelled configurations | {m['n_configs']} × {m['units_per_config']} units |",
        f"| force evaluations (labels) | {m['force_evaluations']:,} |",
        f"| rollout relative error | {m['rollout_rel_error']:.3e} ± {m['rollout_rel_error_std']:.2e} |",
        f"| test trajectories | {m['n_test_trajectories']} |",
        f"| seed | {m['seed']} |",
        "",
        "Stage wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in m["stage_seconds"].items()),
        "",
        "## Given observables, truth (solid) vs model (dashed)", "", "![observables](figures/observables.png)", "",
        "## Error over time (test trajectories drawn above)", "", "![error](figures/error_over_time.png)", "",
        "## Training curves", "", "![training](figures/training.png)", "",
        extra_md,
    ]
    (run.out / "report.md").write_text("\n".join(lines) + "\n")
    np.save(figs / "observables_pred.npy", pred.numpy())
