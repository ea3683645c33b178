"""Command-line interface (thin: every command calls library code)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from macrodyn.errors import InputError

# the other macrodyn imports sit in the commands, so that `macrodyn --help` and usage errors
# answer without loading torch, numba and zarr

# no_args_is_help=False: typer's rich help printer writes the whole help to stdout when it builds
# that error; a bare `macrodyn` is "Missing command", which entry() turns into a one-line hint
app = typer.Typer(add_completion=False, no_args_is_help=False,
                  help="Learn macroscopic dynamics from partial microscopic force evaluations.")

_state = {"traceback": False}
PROG = "macrodyn"
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

CONFIG = typer.Argument(None, help="YAML config (default: the embedded predator–prey experiment).")
# a str, not a Path: Path("") is the current folder, and `--out "$UNSET"` must be refused
OUT = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<config file stem>; created; reused to "
                   "resume).", show_default=False)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
SCHEDULER = typer.Option(None, "--scheduler", help="Dask scheduler for simulate/label chunks: 'local' (a local "
                         "cluster of parallel.workers processes) or tcp://host:port; overrides parallel.scheduler.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("macrodyn")
        except PackageNotFoundError:  # run from a source tree that was not installed
            from macrodyn import __version__ as v
        typer.echo(f"{PROG} {v}")
        raise typer.Exit()


@app.callback()
def main(traceback: bool = typer.Option(False, "--traceback", help="Show full tracebacks on errors."),
         version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    _state["traceback"] = traceback


def _out_dir(config: Optional[Path], out: Optional[str], default_stem: str = "predator_prey") -> Path:
    """``--out``, or ``runs/<config file stem>`` (the embedded default: ``runs/predator_prey``)."""
    if out is None:
        return Path("runs") / (config.stem if config is not None else default_stem)
    if not out.strip():
        from macrodyn.data.outdir import check_out_dir

        check_out_dir(out, creating=True)  # raises: empty --out
    return Path(out)


#: the commands whose first stage starts a run (the others need the earlier stages' output)
_CREATING = {"simulate"}


def _run_stages(config: Optional[Path], out: Optional[str], quiet: bool, stages: tuple[str, ...],
                scheduler: Optional[str] = None) -> tuple[dict, Path]:
    """Validate everything that can be checked up front (config, --out, budget vs pool, device),
    then run ``stages`` holding the run folder's lock; returns (metrics, run folder)."""
    from macrodyn.config import check_before_work, default_config_path, load_config, parse_config
    from macrodyn.data.lock import RunLock
    from macrodyn.data.outdir import check_out_dir
    from macrodyn.preflight import preflight
    from macrodyn.systems.registry import build_system

    cfg = load_config(config or default_config_path())
    if scheduler is not None:
        cfg = parse_config({**cfg.model_dump(), "parallel": {**cfg.parallel.model_dump(), "scheduler": scheduler}},
                           "--scheduler")
    system = build_system(cfg.system.name, cfg.system.params)
    path = _out_dir(config, out)
    if "simulate" not in stages:
        check_before_work(cfg, system)
    check_out_dir(path, creating=stages[0] in _CREATING)
    if "simulate" in stages:  # seconds: the system, its forces and observable, sizes vs memory and disk
        preflight(cfg, system, path)
    with RunLock(path):
        from macrodyn.pipeline import Run, run_all

        return run_all(Run.create(cfg, path, system, progress=not quiet), stages), path


def _summary(metrics: dict, out: Path, seconds: float) -> None:
    if not metrics:
        return
    typer.echo(
        f"\nmacrodyn: {metrics['system']} | loss {metrics['loss']} p={metrics['p']:.4g} | model {metrics['model']}\n"
        f"  labelled configs     {metrics['n_configs']} × {metrics['units_per_config']} units\n"
        f"  force evaluations    {metrics['force_evaluations']:,}\n"
        f"  rollout rel. error   {_error_line(metrics)}\n"
        f"  stage seconds        {json.dumps(metrics['stage_seconds'])}\n"
        f"  wall time            {seconds:.1f} s\n"
        f"  report               {out / 'report.md'}\n")


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3e}"


def _error_line(m: dict) -> str:
    """Mean (± std over members, when there are several), median and worst trajectory, failures."""
    spread = f" ± {m['rollout_rel_error_std']:.2e}" if m["n_members"] > 1 and m.get("rollout_rel_error_std") else ""
    failed = f", {m['n_failed_trajectories']} FAILED (non-finite)" if m.get("n_failed_trajectories") else ""
    return (f"{_num(m['rollout_rel_error'])}{spread} mean, {_num(m.get('rollout_rel_error_median_trajectory'))} "
            f"median, {_num(m.get('rollout_rel_error_max_trajectory'))} worst  ({m['n_test_trajectories']} test "
            f"trajectories{failed}, {m['n_members']} member(s))")


@app.command()
def run(config: Optional[Path] = CONFIG, out: Optional[str] = OUT, quiet: bool = QUIET,
        scheduler: Optional[str] = SCHEDULER):
    """Run the whole pipeline: simulate → label → closure → dynamics → evaluate → report (resumes)."""
    t0 = time.perf_counter()
    _summary(*_run_stages(config, out, quiet, ("simulate", "label", "closure", "dynamics", "evaluate", "report"),
                          scheduler), time.perf_counter() - t0)


@app.command()
def simulate(config: Optional[Path] = CONFIG, out: Optional[str] = OUT, quiet: bool = QUIET,
             scheduler: Optional[str] = SCHEDULER):
    """Generate training and test trajectories into OUT/data.zarr."""
    _run_stages(config, out, quiet, ("simulate",), scheduler)


@app.command()
def label(config: Optional[Path] = CONFIG, out: Optional[str] = OUT, quiet: bool = QUIET,
          scheduler: Optional[str] = SCHEDULER):
    """Compute (partial) force labels within the configured budget."""
    _run_stages(config, out, quiet, ("label",), scheduler)


@app.command("train-closure")
def train_closure(config: Optional[Path] = CONFIG, out: Optional[str] = OUT, quiet: bool = QUIET):
    """Train the closure autoencoder (needs simulate)."""
    _run_stages(config, out, quiet, ("closure",))


@app.command("train-dynamics")
def train_dynamics(config: Optional[Path] = CONFIG, out: Optional[str] = OUT, quiet: bool = QUIET):
    """Train the macroscopic model(s) (needs label and train-closure)."""
    _run_stages(config, out, quiet, ("dynamics",))


@app.command()
def evaluate(config: Optional[Path] = CONFIG, out: Optional[str] = OUT, quiet: bool = QUIET):
    """Roll out on the test trajectories and write metrics.json."""
    t0 = time.perf_counter()
    _summary(*_run_stages(config, out, quiet, ("evaluate",)), time.perf_counter() - t0)


@app.command()
def report(config: Optional[Path] = CONFIG, out: Optional[str] = OUT, quiet: bool = QUIET):
    """Write report.md and figures for a trained run."""
    _run_stages(config, out, quiet, ("report",))


@app.command()
def check(out_arg: str = typer.Argument(..., metavar="OUT", help="Run folder to verify."),
          repair: bool = typer.Option(False, "--repair", help="Mark every damaged chunk for recomputation "
                                      "(then rerun `macrodyn run` on the folder).")):
    """Verify a run's dataset (missing tables and chunk files, checksums, NaN/Inf, index ranges,
    force count) and its config; exit 1 on problems."""
    from macrodyn.data.check import check_run, repair_run
    from macrodyn.data.outdir import check_out_dir
    from macrodyn.io import load_json
    from macrodyn.run import Run

    if not out_arg.strip():
        raise InputError("the run folder argument is empty (an unset shell variable?); give it, e.g. "
                         "`macrodyn check runs/predator_prey`.")
    check_out_dir(out_arg, creating=False)
    out = Path(out_arg)
    problems, n_coords, cpu, metrics = [], None, 1, {}
    try:
        system = Run.open(out, progress=False).system
        n_coords, cpu = system.n_coords, system.coords_per_unit
    except InputError as e:
        problems.append(str(e))
    try:
        metrics = load_json(out / "metrics.json") if (out / "metrics.json").exists() else {}
    except InputError as e:
        problems.append(str(e))
    if repair:
        for table, chunks in repair_run(out, n_coords, cpu).items():
            typer.echo(f"{out}: table {table!r}: chunk(s) {chunks} marked for recomputation", err=True)
    problems += check_run(out, n_coords, cpu, expected_evaluations=metrics.get("force_evaluations"))
    if problems:
        typer.echo(f"{out}: {len(problems)} problem(s):", err=True)
        for p in problems:
            typer.echo(f"  - {p}", err=True)
        if repair:
            typer.echo(f"rerun `macrodyn run CONFIG --out {out}` to recompute what was marked.", err=True)
        raise typer.Exit(1)
    typer.echo(f"{out}: dataset OK")


study_app = typer.Typer(no_args_is_help=False, help="Studies made of many runs (resumable).")
app.add_typer(study_app, name="study")


@study_app.command("force-budget")
def force_budget(config: Path = typer.Argument(..., help="Study YAML (e.g. configs/lj_scaling.yaml)."),
                 out: Optional[str] = typer.Option(None, "--out", "-o", show_default=False,
                                                   help="Study folder (default: runs/<config file stem>)."),
                 sizes: Optional[list[int]] = typer.Option(None, "--size", help="Only these sizes (repeatable)."),
                 label_only: bool = typer.Option(False, "--label-only", help="Simulate and label every point, "
                                                 "time the labelling, train nothing."),
                 losses: Optional[list[str]] = typer.Option(None, "--loss", help="Only these losses (repeatable; "
                                                            "two processes, one per loss, may share --out)."),
                 label_configs: Optional[list[int]] = typer.Option(None, "--label-configs", help="With --label-only: "
                                                                   "only these training-set sizes (repeatable)."),
                 quiet: bool = QUIET):
    """Force evaluations to reach the rollout tolerance vs system size, L_z vs L_x,p (Figure 4)."""
    from macrodyn.data.outdir import check_out_dir
    from macrodyn.study import labelling_ratio, load_study, run_study

    study = load_study(config)
    out = _out_dir(config, out)
    check_out_dir(out, creating=True, kind="study")
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
            alone = f" (force calls alone {forces:.1f}x)" if forces else ""
            typer.echo(f"size {n}: labelling time L_z / L_x,p on the same training sets {ratio:.1f}x{alone}")
    typer.echo(f"(* best error, tolerance not reached)  {out / 'study.json'}, {out / 'figures'}")


@app.command("advise")
def advise_cmd(config: Optional[Path] = CONFIG,
               tol: float = typer.Option(..., "--tol", help="Rollout tolerance e_tol to reach (relative error)."),
               budget: Optional[int] = typer.Option(None, "--budget", help="Force evaluations you are prepared to "
                                                    "spend (default: training.budget); the pilot spends a share."),
               fraction: float = typer.Option(0.05, "--pilot-fraction", help="Share of --budget the pilot labels "
                                              "(at most 0.05)."),
               p: Optional[float] = typer.Option(None, "--p", help="L_x,p's labelled fraction for the pilot "
                                                 "(default: training.p); candidates try 1/4x to 4x of it."),
               members: Optional[int] = typer.Option(None, "--members", help="Members per pilot run (default: "
                                                     "training.members, at most 2)."),
               steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps per pilot run (default: "
                                                   "training.epochs over the largest pilot set; with exact labels, "
                                                   "training.epochs over each run's own set)."),
               exponent: float = typer.Option(1.0, "--exponent", help="b in the exact-label error law a n^-b "
                                              "(docs/choosing.md)."),
               out: Optional[str] = OUT,
               write: Optional[Path] = typer.Option(None, "--write", help="Write the recommended config (YAML) "
                                                    "here: the estimator and its predicted budget."),
               quiet: bool = QUIET):
    """Recommend the loss, labelled fraction and control, and predict the force evaluations to reach --tol."""
    import yaml

    from macrodyn.config import default_config_path, load_config
    from macrodyn.data.outdir import check_out_dir
    from macrodyn.io import save_text
    from macrodyn.study.advise import advise, recommended_config

    if not tol > 0 or not tol < 1:
        raise InputError(f"--tol {tol} must be a relative error in (0, 1), e.g. 3e-3.")
    cfg = load_config(config or default_config_path())
    out_dir = _out_dir(config, out)  # refuses a blank --out
    if out is None:  # beside the run folder of the same config, not in it
        out_dir = out_dir.with_name(f"{out_dir.name}_advise")
    check_out_dir(out_dir, creating=True, kind="study")
    advice = advise(cfg, out_dir, tol, budget=budget, fraction=fraction, p=p, members=members, steps=steps,
                    exponent=exponent, progress=not quiet)
    typer.echo("\npilot: " + ", ".join(f"{r['name']} error {r['error']:.3g}" for r in advice.pilot)
               + f"  ({advice.pilot_evaluations:,} force evaluations, {advice.pilot_evaluations / advice.budget:.1%} "
               f"of {advice.budget:,}; {sum(r['seconds'] for r in advice.pilot):.0f} s)")
    c = advice.curve
    typer.echo(f"exact labels: error ~ {c['a']:.3g} n^-{c['b']:.2f}; label noise adds {advice.noise_scale:.3g} r^2/n "
               "to the squared error")
    typer.echo(advice.table())
    for n in advice.notes:
        typer.echo(f"note: {n}")
    typer.echo(f"{out_dir / 'advice.json'}")
    if write is not None:
        rec = recommended_config(cfg, advice)
        save_text(yaml.safe_dump(rec.model_dump(mode="json"), sort_keys=False), write)
        grown = (f", {rec.data.n_train_trajectories} training runs instead of {cfg.data.n_train_trajectories}"
                 if rec.data.n_train_trajectories != cfg.data.n_train_trajectories else "")
        typer.echo(f"recommended config: {write} (training.loss {rec.training.loss}, p {rec.training.p:g}, "
                   f"control {rec.training.control}, budget {rec.training.budget:,}{grown})")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int) -> None:
    typer.echo(_one_line(message), err=True)
    sys.exit(code)


def _usage_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(no-args-is-help, usage error, other click error) classes: typer raises those of its
    bundled click copy (``typer._click``); the standalone ``click``'s are caught as well in
    case a dependency or an older typer raises them."""
    from typer._click import exceptions as tc

    no_args, usage, click_exc = [tc.NoArgsIsHelpError], [tc.UsageError], [tc.ClickException]
    try:
        import click.exceptions as cc
    except ImportError:  # pragma: no cover
        pass
    else:
        no_args += [getattr(cc, "NoArgsIsHelpError", tc.NoArgsIsHelpError)]
        usage.append(cc.UsageError)
        click_exc.append(cc.ClickException)
    return tuple(no_args), tuple(usage), tuple(click_exc)


def _aborts() -> tuple[type, ...]:
    import typer.exceptions as te

    aborts = [te.Abort]
    try:
        import click.exceptions as cc

        aborts.append(cc.Abort)
    except ImportError:  # pragma: no cover
        pass
    return tuple(aborts)


@app.command("systems")
def systems_cmd():
    """List the systems a config can name (built-in, registered, installed plug-ins) with their parameters."""
    from macrodyn.systems.registry import ENTRY_POINT_GROUP, available_systems

    for s in available_systems():
        typer.echo(f"{s.name}  [{s.source}] {s.class_path}" + (f"  {s.doc}" if s.doc else ""))
        if s.error:
            typer.echo(f"    failed to load: {s.error}")
        for p in s.params:
            default = "required" if p.required else f"default {p.default!r}"
            typer.echo(f"    {p.name}: {p.type} ({default})" + (f"  {p.description}" if p.description else ""))
    typer.echo(f"\nYour own class: system.name: 'package.module:ClassName' (importable), or a package declaring an "
               f"entry point in the group {ENTRY_POINT_GROUP!r}.")


@app.command("validate")
def validate_cmd(config: Path = typer.Argument(..., help="YAML config to check."),
                 out: Optional[str] = typer.Option(None, "--out", "-o", show_default=False,
                                                   help="Run folder whose disk must hold the data (default: "
                                                   "runs/<config file stem>); nothing is written.")):
    """Check a config and its system in seconds (forces vs partial forces, observable, sizes); exit 2 on problems."""
    from macrodyn.config import load_config
    from macrodyn.preflight import preflight

    try:
        report = preflight(load_config(config), out=_out_dir(config, out))
    except InputError as e:  # one line per problem (entry() would join them into one)
        if _state["traceback"]:
            raise
        for line in str(e).splitlines():
            typer.echo(f"error: {line.strip()}", err=True)
        raise typer.Exit(2)
    typer.echo(report.summary())


def entry(argv: Optional[list[str]] = None) -> None:
    """Console entry point. Every user error is one line on stderr: usage errors and bad input
    exit 2, Ctrl-C exits 130 (``--traceback`` shows the full traceback of an input error)."""
    no_args, usage, click_exc = _usage_exceptions()
    try:
        # standalone_mode=False: errors come back to us; typer turns a KeyboardInterrupt in a
        # command into Exit(130), which this mode returns as the code
        rc = app(args=argv, prog_name=PROG, standalone_mode=False)
    except InputError as e:
        if _state["traceback"]:
            raise
        _fail(f"error: {e}", 2)
    except KeyboardInterrupt:
        rc = INTERRUPTED
    except usage as e:  # unknown command or option, missing argument, bad value; bare `macrodyn`
        path = e.ctx.command_path if getattr(e, "ctx", None) is not None else PROG
        msg = _one_line(e.format_message())
        if isinstance(e, no_args) or msg.startswith("Missing command"):
            _fail(f"usage: {path} COMMAND [ARGS]...; try `{path} --help` for the commands.", 2)
        _fail(f"error: {msg}{'' if msg.endswith(('.', '?', '!')) else '.'} Try `{path} --help`.", 2)
    except click_exc as e:
        _fail(f"error: {e.format_message()}", e.exit_code or 1)
    except _aborts():
        rc = INTERRUPTED
    except OSError as e:  # disk full, permission denied, a vanished file: the stage's words, one line
        if _state["traceback"]:
            raise
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        _fail(f"error: {e.strerror or e}{where} (rerun with --traceback for details)", 1)
    if rc == INTERRUPTED:
        _fail("interrupted; rerun the same command to resume.", INTERRUPTED)
    if isinstance(rc, int) and rc:
        sys.exit(rc)


if __name__ == "__main__":
    entry()
