"""Command-line interface (thin: every command calls library code)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from macrodyn.config import default_config_path, load_config
from macrodyn.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learn macroscopic dynamics from partial microscopic force evaluations.")

_state = {"traceback": False}

CONFIG = typer.Argument(None, help="YAML config (default: the embedded predator–prey experiment).")
OUT = typer.Option(Path("runs/predator_prey"), "--out", "-o", help="Run folder (created; reused to resume).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")


@app.callback()
def main(traceback: bool = typer.Option(False, "--traceback", help="Show full tracebacks on errors.")):
    _state["traceback"] = traceback


def _run_stages(config: Optional[Path], out: Path, quiet: bool, stages: tuple[str, ...]) -> dict:
    from macrodyn.pipeline import Run, run_all

    cfg = load_config(config or default_config_path())
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
def run(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET):
    """Run the whole pipeline: simulate → label → closure → dynamics → evaluate → report (resumes)."""
    t0 = time.perf_counter()
    _summary(_run_stages(config, out, quiet, ("simulate", "label", "closure", "dynamics", "evaluate", "report")),
             out, time.perf_counter() - t0)


@app.command()
def simulate(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET):
    """Generate training and test trajectories into OUT/data.zarr."""
    _run_stages(config, out, quiet, ("simulate",))


@app.command()
def label(config: Optional[Path] = CONFIG, out: Path = OUT, quiet: bool = QUIET):
    """Compute (partial) force labels within the configured budget."""
    _run_stages(config, out, quiet, ("label",))


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


def entry() -> None:
    """Console entry point: user errors print one line (``--traceback`` for the full one)."""
    try:
        app(standalone_mode=False)
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
