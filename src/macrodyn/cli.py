"""Command-line interface (thin: every command calls library code)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from macrodyn.config import default_config_path, load_config, parse_config
from macrodyn.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learn macroscopic dynamics from partial microscopic force evaluations.")

_state = {"traceback": False}

CONFIG = typer.Argument(None, help="YAML config (default: the embedded predator–prey experiment).")
OUT = typer.Option(Path("runs/predator_prey"), "--out", "-o", help="Run folder (created; reused to resume).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
SCHEDULER = typer.Option(None, "--scheduler", help="Dask scheduler for simulate/label chunks: 'local' (a local "
                         "cluster of parallel.workers processes) or tcp://host:port; overrides parallel.scheduler.")


@app.callback()
def main(traceback: bool = typer.Option(False, "--traceback", help="Show full tracebacks on errors.")):
    _state["traceback"] = traceback


def _run_stages(config: Optional[Path], out: Path, quiet: bool, stages: tuple[str, ...],
                scheduler: Optional[str] = None) -> dict:
    from macrodyn.pipeline import Run, run_all

    cfg = load_config(config or default_config_path())
    if scheduler is not None:
        cfg = parse_config({**cfg.model_dump(), "parallel": {**cfg.parallel.model_dump(), "scheduler": scheduler}},
                           "--scheduler")
    return run_all(Run(cfg, out, progress=not quiet), stages)


def _summary(metrics: dict, out: Path, seconds: float) -> None:
    if not metrics:
        return
    typer.echo(
        f"\nmacrodyn: {metrics['system']} | loss {metrics['loss']} p={metrics['p']:.4g} | model {metrics['model']}\n"
        f"  labelled configs     {metrics['n_configs']} × {metrics['units_per_config']} units\n"
        f"  force evaluations    {metrics['force_evaluations']:,}\n"
        f"  rollout rel. error   {metrics['rollout_rel_error']:.3e} ± {metrics['rollout_rel_error_std']:.2e}"
        f"  ({metrics['n_test_trajectories']} test trajectories, {metrics['n_members']} member(s))\n"
        f"  stage seconds        {json.dumps(metrics['stage_seconds'])}\n"
        f"  wall time            {seconds:.1f} s\n"
        f"  report               {out / 'report.md'}\n")


@app.command()
def run(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET,
        scheduler: Optional[str] = SCHEDULER):
    """Run the whole pipeline: simulate → label → closure → dynamics → evaluate → report (resumes)."""
    t0 = time.perf_counter()
    _summary(_run_stages(config, out, quiet, ("simulate", "label", "closure", "dynamics", "evaluate", "report"),
                         scheduler), out, time.perf_counter() - t0)


@app.command()
def simulate(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET,
             scheduler: Optional[str] = SCHEDULER):
    """Generate training and test trajectories into OUT/data.zarr."""
    _run_stages(config, out, quiet, ("simulate",), scheduler)


@app.command()
def label(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET,
          scheduler: Optional[str] = SCHEDULER):
    """Compute (partial) force labels within the configured budget."""
    _run_stages(config, out, quiet, ("label",), scheduler)


@app.command("train-closure")
def train_closure(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET):
    """Train the closure autoencoder (needs simulate)."""
    _run_stages(config, out, quiet, ("closure",))


@app.command("train-dynamics")
def train_dynamics(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET):
    """Train the macroscopic model(s) (needs label and train-closure)."""
    _run_stages(config, out, quiet, ("dynamics",))


@app.command()
def evaluate(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET):
    """Roll out on the test trajectories and write metrics.json."""
    t0 = time.perf_counter()
    _summary(_run_stages(config, out, quiet, ("evaluate",)), out, time.perf_counter() - t0)


@app.command()
def report(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET):
    """Write report.md and figures for a trained run."""
    _run_stages(config, out, quiet, ("report",))


@app.command()
def check(out: Path = typer.Argument(..., help="Run folder to verify.")):
    """Verify a run's dataset (chunks, shapes, NaN/Inf, index ranges, force count); exit 1 on problems."""
    from macrodyn.data.check import check_run
    from macrodyn.io import load_json

    metrics = load_json(out / "metrics.json") if (out / "metrics.json").exists() else {}
    cpu = 1
    if (out / "config.yaml").exists():
        import yaml

        from macrodyn.systems.registry import build_system

        cfg = yaml.safe_load((out / "config.yaml").read_text())
        cpu = build_system(cfg["system"]["name"], cfg["system"]["params"]).coords_per_unit
    problems = check_run(out, coords_per_unit=cpu, expected_evaluations=metrics.get("force_evaluations"))
    if problems:
        typer.echo(f"{out}: {len(problems)} problem(s):", err=True)
        for p in problems:
            typer.echo(f"  - {p}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{out}: dataset OK")


study_app = typer.Typer(no_args_is_help=True, help="Studies made of many runs (resumable).")
app.add_typer(study_app, name="study")


@study_app.command("force-budget")
def force_budget(config: Path = typer.Argument(..., help="Study YAML (e.g. configs/lj_scaling.yaml)."),
                 out: Path = typer.Option(Path("runs/force_budget"), "--out", "-o", help="Study folder."),
                 sizes: Optional[list[int]] = typer.Option(None, "--size", help="Only these sizes (repeatable)."),
                 label_only: bool = typer.Option(False, "--label-only", help="Simulate and label every point, "
                                                 "time the labelling, train nothing."),
                 losses: Optional[list[str]] = typer.Option(None, "--loss", help="Only these losses (repeatable; "
                                                            "two processes, one per loss, may share --out)."),
                 label_configs: Optional[list[int]] = typer.Option(None, "--label-configs", help="With --label-only: "
                                                                   "only these training-set sizes (repeatable)."),
                 quiet: bool = QUIET):
    """Force evaluations to reach the rollout tolerance vs system size, L_z vs L_x,p (Figure 4)."""
    from macrodyn.study import labelling_ratio, load_study, run_study

    study = load_study(config)
    unknown = sorted(set(sizes or []) - set(study.sizes))
    if unknown:
        raise InputError(f"--size {unknown} not in the study's sizes {study.sizes}.")
    bad = sorted(set(losses or []) - set(study.losses))
    if bad:
        raise InputError(f"--loss {bad} not in the study's losses {study.losses}.")
    result = run_study(study, out, sizes, progress=not quiet, label_only=label_only, losses=losses,
                       label_configs=label_configs)
    typer.echo(f"\n{'atoms':>7} {'loss':>5} {'evals to tol':>13} {'configs':>8} {'error':>9} {'label s':>8}")
    for r in result["records"]:
        ev = f"{r['evaluations_to_tol']:.3g}" if r["evaluations_to_tol"] else f"> {r['largest_tried_configs']} cfg"
        err = f"{r['error_at_tol']:.2e}" if r["error_at_tol"] else (f"{r['best_error']:.2e}*" if r["best_error"]
                                                                     else "-")
        lab = f"{r['labelling_seconds']:.2f}" if r["labelling_seconds"] else "-"
        typer.echo(f"{r['n_atoms']:>7} {r['loss']:>5} {ev:>13} {r['configs_to_tol'] or '-':>8} {err:>9} {lab:>8}")
    for n in dict.fromkeys(p["n_atoms"] for p in result["points"]):
        ratio, forces = labelling_ratio(result["points"], n), labelling_ratio(result["points"], n, "labelling_force_seconds")
        if ratio:
            typer.echo(f"size {n}: labelling time L_z / L_x,p on the same training sets {ratio:.1f}x "
                       f"(force calls alone {forces:.1f}x)")
    typer.echo(f"(* best error, tolerance not reached)  {out / 'study.json'}, {out / 'figures'}")


def entry() -> None:
    """Console entry point: user errors print one line (``--traceback`` for the full one)."""
    try:
        rc = app(standalone_mode=False)  # returns the code of typer.Exit in this mode
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except InputError as e:
        if _state["traceback"]:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted; rerun the same command to resume.", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
