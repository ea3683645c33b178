"""MkDocs hooks for the macrodyn documentation (declared under ``hooks:`` in mkdocs.yml).

* ``on_page_markdown`` replaces the ``<!-- macrodyn:... -->`` markers of ``config.md`` with
  tables generated from the pydantic models in :mod:`macrodyn.config` (and each registered
  system's ``Params``, and the force-budget study model), so the reference cannot drift
  from the code. A field with neither a ``description=`` in its ``Field`` nor an entry in
  ``NOTES`` below is reported as a warning, which fails ``mkdocs build --strict``.
* ``on_page_content`` tidies the API pages rendered from docstrings: Sphinx roles
  (``:meth:`x```), which the Markdown renderer leaves as text, are dropped.
* ``on_files`` publishes the benchmark figures ``benchmarks/results/*.png`` under
  ``results/img/`` in the site, so the results pages show them without a copy in ``docs/``.

The generators are plain functions (no MkDocs import) so the tests can call them directly.
"""
from __future__ import annotations

import logging
import re
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "benchmarks" / "results"
log = logging.getLogger("mkdocs.plugins.macrodyn")

# Meanings of fields whose pydantic Field has no description (keyed by dotted name).
# A key that no longer names a field is reported as a warning (strict build fails).
NOTES: dict[str, str] = {
    "name": "label of the run in the report and the summary",
    "seed": "seeds every stage (per chunk, so a resumed run is identical to an uninterrupted one)",
    "device": "where the networks train and roll out; `cuda` without a visible GPU is refused",
    "system.name": "a registered system (`macrodyn systems` lists them) or a plug-in `pkg.module:Class`",
    "system.params": "constructor arguments, validated by the system's `Params` model (tables below)",
    "data.n_train_trajectories": "training pool: both stages draw their snapshots from it",
    "data.n_test_trajectories": "fresh trajectories for the rollout metric",
    "closure.hidden": "encoder widths (decoder mirrored), softplus",
    "closure.epochs": "autoencoder epochs (Adam, betas 0.9 / 0.95)",
    "closure.batch_size": "autoencoder batch size",
    "closure.lr": "autoencoder learning rate",
    "closure.weight_decay": "autoencoder weight decay",
    "closure.cond_on": "penalise the condition number of the full Jacobian `J` or of its closure rows only",
    "closure.observable_scale": "scale of the given observables at the decoder input",
    "model.kind": "`onsager` (OnsagerNet), `mlp`, or `gfinn` (GENERIC-type: energy conserved, entropy "
                  "non-decreasing by construction)",
    "model.hidden": "hidden widths of the network (OnsagerNet: of the net giving its matrices)",
    "model.potential_hidden": "OnsagerNet: widths of the potential's network",
    "model.alpha": "OnsagerNet: extra damping `α ∇V`",
    "model.beta": "OnsagerNet: `β‖z‖²` term that keeps the potential bounded below",
    "model.forcing": "OnsagerNet: add a learned external-forcing term",
    "model.activation": "activation function; `requ` is `relu(x)² − relu(x − ½)²`",
    "training.loss": "`L_z` (all forces, macroscopic velocities), `L_x` (all forces, mapped back with the "
                     "pseudo-inverse; needs `p: 1`) or `L_xp` (forces on a random subset)",
    "training.epochs": "maximum epochs of the dynamics fit (AdamW)",
    "training.batch_size": "labelled configurations per optimiser step",
    "training.lr": "learning rate of the dynamics fit",
    "training.weight_decay": "AdamW weight decay",
    "training.lr_factor": "`plateau`: factor applied to the learning rate on a plateau",
    "training.lr_patience": "`plateau`: epochs without a better validation loss before the rate drops",
    "training.min_lr": "floor of the learning rate (both schedules)",
    "training.val_fraction": "held-out labelled configurations for the validation loss",
    "evaluation.method": "torchdiffeq integrator for the rollouts",
    "losses": "which losses the study trains",
}

# The same for the Params models of the built-in systems, keyed "system_name.field".
PARAM_NOTES: dict[str, str] = {
    "predator_prey.a": "`a` in `v_t = a v (u − b) + Δv`",
    "predator_prey.b": "`b` in `v_t = a v (u − b) + Δv`",
    "predator_prey.D": "prey diffusion `D` in `u_t = u (1 − u − v) + D Δu` (the stencil has no 1/dx² factor)",
    "predator_prey.dt": "RK4 step",
}

SECTION_TITLES = {
    "system": "`system`: the microscopic system",
    "data": "`data`: trajectories",
    "closure": "`closure`: closure autoencoder",
    "model": "`model`: macroscopic model",
    "training": "`training`: labels and the dynamics fit",
    "evaluation": "`evaluation`: rollouts and metric",
    "parallel": "`parallel`: where the work runs",
}


# ------------------------------------------------------------------ formatting helpers
def _type_str(ann) -> str:
    from pydantic import BaseModel

    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Literal:
        return " / ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_str(a) for a in args if a is not type(None)]
        return " / ".join(parts) + (" / null" if type(None) in args else "")
    if origin is typing.Annotated:
        return _type_str(args[0])
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return "[" + ", ".join(_type_str(a) for a in args) + "]"
        return f"list of {_type_str(args[0])}" if args else "list"
    if origin is dict or ann is dict:
        return "mapping"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "section"
    return getattr(ann, "__name__", str(ann))


def _value_str(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int) and abs(v) >= 10**5:
        k = len(str(abs(v))) - 1
        if abs(v) == 10**k:
            return f"{'-' if v < 0 else ''}1e{k}"
        if v > 0 and v & (v - 1) == 0:
            return f"2^{v.bit_length() - 1}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{}" if not v else "{" + ", ".join(f"{k}: {_value_str(x)}" for k, x in v.items()) + "}"
    return str(v)


def _default_str(field) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        return f"`{_value_str(field.default_factory())}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{_value_str(field.default)}`"


def _bounds(metadata) -> list[str]:
    """``> 0``, ``≤ 1e8``, ``at most 64 items`` ... from annotated-types / pydantic metadata."""
    import annotated_types as at
    from pydantic.fields import FieldInfo

    out = []
    sym = {at.Gt: ("> ", "gt"), at.Ge: ("≥ ", "ge"), at.Lt: ("< ", "lt"), at.Le: ("≤ ", "le")}
    for m in metadata:
        if isinstance(m, FieldInfo):  # Annotated[int, Field(gt=0)] inside a type alias
            out += _bounds(m.metadata)
        for cls, (s, attr) in sym.items():
            if isinstance(m, cls):
                out.append(s + _value_str(getattr(m, attr)))
        if isinstance(m, at.MinLen):
            out.append(f"at least {m.min_length} item{'s' if m.min_length > 1 else ''}")
        if isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} items")
    return out


def _constraints(field) -> str:
    out = _bounds(field.metadata)
    # list[Annotated[int, ...]]: the constraints of the items sit on the item type
    args = typing.get_args(field.annotation)
    if typing.get_origin(field.annotation) is list and args and typing.get_origin(args[0]) is typing.Annotated:
        items = _bounds(typing.get_args(args[0])[1:])
        if items:
            out.insert(0, "items " + " and ".join(items))
    return ", ".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def field_rows(model, prefix: str = "", missing: list[str] | None = None,
               notes: dict[str, str] | None = None, note_prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(dotted name, type, default, meaning)`` for every field of ``model`` that is not a section.

    A field without a description takes its meaning from ``notes[note_prefix + name]``
    (default: ``NOTES[prefix + name]``); one with neither is appended to ``missing``.
    """
    from pydantic import BaseModel

    notes = NOTES if notes is None else notes
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            continue
        dotted = prefix + name
        note = notes.get((note_prefix or prefix) + name)
        meaning = ". ".join(t for t in (note, field.description) if t)
        if not meaning and missing is not None:
            missing.append(dotted)
        limits = _constraints(field)
        typ = _type_str(ann) + (f" ({limits})" if limits else "")
        rows.append((dotted, typ, _default_str(field), meaning))
        sub = _optional_section(ann)
        if sub is not None:  # an optional section (`training.surrogate`): its fields follow as rows
            rows += field_rows(sub, dotted + ".", missing, notes, note_prefix + name + "."
                               if note_prefix else "")
    return rows


def _optional_section(ann):
    """``Model`` of an annotation ``Model | None`` (a section that may be left out), else None."""
    from pydantic import BaseModel

    if typing.get_origin(ann) not in (typing.Union, types.UnionType):
        return None
    models = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def _table(rows) -> str:
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{d}` | {_cell(t)} | {_cell(v)} | {_cell(m)} |" for d, t, v, m in rows]
    return "\n".join(lines)


def _sections(model):
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield name, ann


# ------------------------------------------------------------------ generated blocks
def run_config_reference(missing: list[str] | None = None) -> str:
    """Markdown tables for every field of every section of :class:`macrodyn.config.RunConfig`."""
    from macrodyn.config import RunConfig

    out = ["### Top level", "", _table(field_rows(RunConfig, "", missing)), ""]
    for name, section in _sections(RunConfig):
        out += [f"### {SECTION_TITLES.get(name, f'`{name}`')}", ""]
        doc = " ".join((section.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")
        if doc:
            out += [doc, ""]
        out += [_table(field_rows(section, name + ".", missing)), ""]
    return "\n".join(out)


def system_params_reference(missing: list[str] | None = None) -> str:
    """One table per registered system with a ``Params`` model (``system.params``)."""
    from macrodyn.systems.registry import SYSTEMS

    out = []
    for name, cls in sorted(SYSTEMS.items()):
        params = getattr(cls, "Params", None)
        if params is None:
            continue
        out += [f"#### `{name}` (`{cls.__module__}.{cls.__qualname__}`)", ""]
        builtin = cls.__module__.startswith("macrodyn.")
        out += [_table(field_rows(params, "", missing if builtin else None, PARAM_NOTES, name + ".")), ""]
    return "\n".join(out)


def study_reference(missing: list[str] | None = None) -> str:
    """The ``macrodyn study force-budget`` YAML (:class:`macrodyn.study.ForceBudgetStudy`)."""
    from macrodyn.study import ForceBudgetStudy

    rows = field_rows(ForceBudgetStudy, "", missing)
    run = ForceBudgetStudy.model_fields["run"]
    rows.insert(0, ("run", "section", "required", run.description or "a whole run config"))
    return _table(rows)


def embedded_differences() -> str:
    """Where the embedded predator–prey config differs from the defaults of the models."""
    from macrodyn.config import RunConfig, default_config_path, load_config

    default, embedded = RunConfig().model_dump(), load_config(default_config_path()).model_dump()
    rows = []

    def walk(a, b, prefix):
        for key in a:
            if isinstance(a[key], dict) and key != "params":
                walk(a[key], b[key], prefix + key + ".")
            elif a[key] != b[key]:
                rows.append(f"| `{prefix}{key}` | `{_value_str(a[key])}` | `{_value_str(b[key])}` |")

    walk(default, embedded, "")
    return "\n".join(["| field | default | embedded predator–prey config |", "|---|---|---|", *rows])


MARKERS = {
    "<!-- macrodyn:run-config -->": run_config_reference,
    "<!-- macrodyn:system-params -->": system_params_reference,
    "<!-- macrodyn:study-config -->": study_reference,
    "<!-- macrodyn:embedded-differences -->": lambda missing=None: embedded_differences(),
}


def stale_notes() -> list[str]:
    """NOTES keys that name no field any more."""
    from macrodyn.config import RunConfig
    from macrodyn.study import ForceBudgetStudy

    names = {d for d, *_ in field_rows(RunConfig)} | {d for d, *_ in field_rows(ForceBudgetStudy)}
    for sec, model in _sections(RunConfig):
        names |= {d for d, *_ in field_rows(model, sec + ".")}
    from macrodyn.systems.registry import SYSTEMS

    params = {f"{n}.{f}" for n, cls in SYSTEMS.items() for f in getattr(getattr(cls, "Params", None), "model_fields", {})}
    return sorted((set(NOTES) - names) | (set(PARAM_NOTES) - params))


# ------------------------------------------------------------------ MkDocs events
def on_page_markdown(markdown: str, page, config, files):
    if not any(m in markdown for m in MARKERS):
        return markdown
    missing: list[str] = []
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make(missing))
    for dotted in missing:
        log.warning(f"config field {dotted!r} has no meaning: give it Field(description=...) in its pydantic "
                    "model, or an entry in NOTES in docs/hooks.py")
    for key in stale_notes():
        log.warning(f"docs/hooks.py NOTES / PARAM_NOTES [{key!r}] names no config field; remove or rename it")
    return markdown


_SPHINX_ROLE = re.compile(r":(?:meth|class|func|mod|attr|data|exc|obj):(?=<code>)")


def on_page_content(html: str, page, config, files):
    if not page.file.src_uri.startswith("api/"):
        return html
    return _SPHINX_ROLE.sub("", html)


def on_files(files, config):
    from mkdocs.structure.files import File

    for png in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"results/img/{png.name}", abs_src_path=str(png)))
    return files
