"""Which system a config's ``system.name`` means, and how its parameters are validated.

A name resolves, in this order, to

1. a registered class: the built-ins and anything passed to :func:`register`;
2. an installed plug-in: an entry point of the group ``macrodyn.systems``, e.g. in the
   plug-in's ``pyproject.toml``::

       [project.entry-points."macrodyn.systems"]
       kuramoto = "macrodyn_oscillators:Kuramoto"

3. an import path ``package.module:ClassName`` (the module must be importable: installed,
   on ``PYTHONPATH``, or in the current directory).

Every class gets a pydantic model of its constructor parameters (:func:`params_model`):
its nested ``Params`` if it declares one, else one derived from the ``__init__``
signature, so a typo or a wrong type in ``system.params`` is refused by name.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
import typing
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from macrodyn.errors import InputError
from macrodyn.systems.allen_cahn import AllenCahn, CoarseAllenCahn
from macrodyn.systems.base import MicroSystem
from macrodyn.systems.md import LennardJones
from macrodyn.systems.predator_prey import PredatorPrey

#: entry-point group installed packages use to offer systems
ENTRY_POINT_GROUP = "macrodyn.systems"

class SystemRegistry(dict):
    """The registered systems, name -> class (a plain dict), plus the lookups that also know
    plug-ins and import paths: :meth:`resolve` and :meth:`params_model`."""

    @staticmethod
    def resolve(name: str) -> type[MicroSystem]:
        return resolve_system(name)

    @staticmethod
    def params_model(cls_or_name) -> type[BaseModel]:
        return params_model(cls_or_name)


#: registered systems (the built-ins, then :func:`register`): name -> class
SYSTEMS: SystemRegistry = SystemRegistry({
    "predator_prey": PredatorPrey,
    "lennard_jones": LennardJones,
    "allen_cahn": AllenCahn,
    "allen_cahn_coarse": CoarseAllenCahn,
})
BUILTIN = frozenset(SYSTEMS)


def class_path(cls: type) -> str:
    """``module:qualname``, the import path that :func:`resolve_system` accepts."""
    return f"{cls.__module__}:{cls.__qualname__}"


def register(cls: type[MicroSystem] | None = None, *, replace: bool = False):
    """Make a user system available to configs under ``cls.name``.

    Usable as ``@register``, ``@register(replace=True)`` or ``register(cls)``. A name
    that is already taken by another class is an :class:`InputError` unless
    ``replace=True``; registering the same class again (a re-imported module, a notebook
    cell run twice: same ``module:qualname``) replaces it silently.
    """
    if cls is None:
        return lambda c: register(c, replace=replace)
    _check_class(cls, f"register({getattr(cls, '__name__', cls)!r})")
    name = cls.__dict__.get("name") or getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name == MicroSystem.name:
        raise InputError(f"register: {cls.__qualname__} needs a class attribute name = '...' (the name configs "
                         "use in system.name).")
    if ":" in name:
        raise InputError(f"register: {cls.__qualname__}.name = {name!r} may not contain ':' (that marks an import "
                         "path); choose a plain name.")
    old = SYSTEMS.get(name)
    if old is not None and old is not cls and not replace and class_path(old) != class_path(cls):
        raise InputError(f"register: the system name {name!r} is already taken by {class_path(old)}; give "
                         f"{cls.__qualname__} another name, or register(..., replace=True) to replace it.")
    SYSTEMS[name] = cls
    _PARAMS.pop(old, None)
    return cls


def _check_class(obj, where: str) -> None:
    if not (inspect.isclass(obj) and issubclass(obj, MicroSystem)):
        what = f"the class {obj.__qualname__}" if inspect.isclass(obj) else f"a {type(obj).__name__}"
        raise InputError(f"{where} is {what}, not a subclass of macrodyn.systems.MicroSystem; subclass MicroSystem "
                         "(see the README, 'Bring your own system').")


# ------------------------------------------------------------------ entry points
def _entry_points() -> dict[str, Any]:
    """Installed plug-ins' entry points by name (the first wins when two packages clash)."""
    out: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep)
    return out


def _load_entry_point(ep) -> type[MicroSystem]:
    dist = getattr(getattr(ep, "dist", None), "name", None)
    where = f"plug-in system {ep.name!r} ({ep.value}{', package ' + dist if dist else ''})"
    try:
        obj = ep.load()
    except Exception as e:  # noqa: BLE001 - a broken plug-in is the user's to fix: say which and why
        raise InputError(f"{where} failed to load: {type(e).__name__}: {e}; fix or reinstall that package.") from None
    _check_class(obj, where)
    return obj


# ------------------------------------------------------------------ import paths
def _import_path(path: str) -> type[MicroSystem]:
    module_name, _, qualname = path.partition(":")
    module_name, qualname = module_name.strip(), qualname.strip()
    if not module_name or not qualname or ":" in qualname:
        raise InputError(f"system {path!r}: an import path is 'package.module:ClassName'.")
    try:
        module = _import_module(module_name)
    except ModuleNotFoundError as e:
        raise InputError(f"system {path!r}: cannot import module {module_name!r} ({e}); install the package "
                         "(pip install -e ...), or put its folder on PYTHONPATH.") from None
    except Exception as e:  # noqa: BLE001 - the user's module fails on import: say where
        raise InputError(f"system {path!r}: importing {module_name!r} failed: {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n, v in vars(module).items()
                           if inspect.isclass(v) and issubclass(v, MicroSystem) and v is not MicroSystem)
            raise InputError(f"system {path!r}: module {module_name!r} has no {qualname!r}"
                             + (f"; its systems: {names}." if names else "."))
        obj = getattr(obj, part)
    _check_class(obj, f"system {path!r}")
    return obj


def _import_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        # `macrodyn` is a console script, so unlike `python -m` the current folder is not on
        # sys.path: a module next to the config would not be found. Look there too.
        cwd = os.getcwd()
        top = name.split(".")[0]
        if e.name != top or cwd in sys.path or "" in sys.path or not _module_in(cwd, top):
            raise
        sys.path.append(cwd)
        return importlib.import_module(name)


def _module_in(folder: str, top: str) -> bool:
    return os.path.isfile(os.path.join(folder, top + ".py")) or os.path.isdir(os.path.join(folder, top))


# ------------------------------------------------------------------ resolution
def known_names() -> list[str]:
    """Registered and plug-in system names."""
    return sorted(set(SYSTEMS) | set(_entry_points()))


def resolve_system(name: str) -> type[MicroSystem]:
    """The class a config's ``system.name`` means (registered name, plug-in, or import path)."""
    if not isinstance(name, str):
        raise InputError(f"system.name must be a string; got {name!r}.")
    if name in SYSTEMS:
        return SYSTEMS[name]
    if ":" in name:
        return _import_path(name)
    eps = _entry_points()
    if name in eps:
        return _load_entry_point(eps[name])
    raise InputError(f"unknown system {name!r}; known: {known_names()}. For your own class give its import "
                     "path, system.name: 'package.module:ClassName', register it with macrodyn.systems.register, "
                     f"or install a plug-in that declares an entry point in the group {ENTRY_POINT_GROUP!r} "
                     "(`macrodyn systems` lists what is available).")


# ------------------------------------------------------------------ parameters
_PARAMS: dict[type, type[BaseModel]] = {}


def params_model(cls: type[MicroSystem] | str) -> type[BaseModel]:
    """The pydantic model of a system's constructor parameters.

    The class's nested ``Params`` (a ``BaseModel``) if it has one; otherwise a model derived
    from ``cls.__init__``'s signature: a parameter without a default is required, its
    annotation (or, without one, the type of its default) is checked, and unknown keys are
    refused unless ``__init__`` takes ``**kwargs``.
    """
    if isinstance(cls, str):
        cls = resolve_system(cls)
    declared = getattr(cls, "Params", None)
    if inspect.isclass(declared) and issubclass(declared, BaseModel):
        return declared
    if cls not in _PARAMS:
        _PARAMS[cls] = _derive_params(cls)
    return _PARAMS[cls]


def _derive_params(cls: type) -> type[BaseModel]:
    init = cls.__init__
    try:
        sig = inspect.signature(init)
    except (TypeError, ValueError):
        sig = inspect.Signature()
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: check that parameter by its default only
        hints = {}
    fields: dict[str, Any] = {}
    docs = {**_arg_docs(cls.__doc__), **_arg_docs(init.__doc__)}
    extra = "forbid"
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if i == 0 and pname == "self" or p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            continue
        if p.kind is p.VAR_KEYWORD:
            extra = "allow"
            continue
        default = ... if p.default is p.empty else p.default
        fields[pname] = (_field_type(hints.get(pname, p.annotation), default),
                         Field(default, description=docs.get(pname)))
    config = ConfigDict(extra=extra, allow_inf_nan=False, arbitrary_types_allowed=True)
    return create_model(f"{cls.__name__}Params", __config__=config, __module__=cls.__module__, **fields)


def _arg_docs(doc: str | None) -> dict[str, str]:
    """``{name: description}`` from a Google-style ``Args:`` section (``a, b: text`` names both)."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:", "Parameters:"))
    except StopIteration:
        return out
    indent, names = None, []
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        ind = len(line) - len(line.lstrip())
        if indent is None:
            indent = ind
        if ind < indent or ind == 0:
            break
        head, sep, text = line.strip().partition(":")
        if ind == indent and sep and all(n.strip().isidentifier() for n in head.split(",")):
            names = [n.strip().split(" ")[0] for n in head.split(",")]
            for n in names:
                out[n] = text.strip()
        elif names:  # a continuation line
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


def _field_type(annotation, default):
    if annotation is not inspect.Parameter.empty and not isinstance(annotation, str):
        return annotation
    # unannotated: the default's type, loosely (an int default may be meant as a float)
    if default is ... or default is None:
        return Any
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float | int if isinstance(default, int) else float
    if isinstance(default, str):
        return str
    return Any


def format_params_error(err: ValidationError, where: str = "system.params") -> str:
    """One line per offending parameter, as the config loader writes them."""
    lines = []
    for e in err.errors():
        loc = ".".join([where, *(str(p) for p in e["loc"])])
        msg = "unknown parameter (check the spelling; `macrodyn systems` lists the parameters)" \
            if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{loc}: {msg}")
    return "\n".join(lines)


def validate_params(cls: type[MicroSystem] | str, params: dict | None) -> dict:
    """``params`` checked against :func:`params_model` (defaults filled in); :class:`InputError` otherwise."""
    model = params_model(cls)
    try:
        return model.model_validate(params or {}).model_dump()
    except ValidationError as e:
        raise InputError(format_params_error(e)) from None


def build_system(name: str, params: dict | None = None) -> MicroSystem:
    """Instantiate a system (registered name, plug-in or import path) from its parameters."""
    cls = resolve_system(name)
    return cls(**validate_params(cls, params))


# ------------------------------------------------------------------ listing
@dataclass
class ParamInfo:
    name: str
    type: str
    default: Any  # ``...`` when required
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is ...


@dataclass
class SystemInfo:
    """One row of ``macrodyn systems``."""

    name: str
    source: str  # "built-in", "registered" or "plug-in (package)"
    class_path: str
    params: list[ParamInfo]
    doc: str = ""
    error: str = ""  # a plug-in that failed to load


def _type_name(annotation) -> str:
    if annotation is None:
        return "None"
    if inspect.isclass(annotation) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe(cls: type[MicroSystem]) -> list[ParamInfo]:
    """Parameters of a system: name, type, default (``...`` when required), description."""
    out = []
    for fname, f in params_model(cls).model_fields.items():
        default = ... if f.is_required() else (f.get_default(call_default_factory=True))
        out.append(ParamInfo(fname, _type_name(f.annotation), default, f.description or ""))
    return out


def available_systems() -> list[SystemInfo]:
    """Every system a config can name without an import path: registered ones and plug-ins."""
    rows = []
    for name, cls in SYSTEMS.items():
        rows.append(SystemInfo(name, "built-in" if name in BUILTIN and cls.__module__.startswith("macrodyn.")
                               else "registered", class_path(cls), describe(cls), _first_line(cls.__doc__)))
    for name, ep in sorted(_entry_points().items()):
        if name in SYSTEMS:
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        try:
            cls = _load_entry_point(ep)
        except InputError as e:
            rows.append(SystemInfo(name, f"plug-in ({dist})", ep.value, [], error=str(e)))
            continue
        rows.append(SystemInfo(name, f"plug-in ({dist})", class_path(cls), describe(cls), _first_line(cls.__doc__)))
    return rows


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0].strip().replace("``", "`")
