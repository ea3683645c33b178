"""The structure holds: layers import only downward (import-linter's contract in pyproject.toml),
light imports stay light, option names become objects in one place."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "macrodyn"
OPTION_NAMES = {"L_z", "L_x", "L_xp", "uniform", "importance", "fixed", "on_demand", "snapshots", "surrogate",
                "rollout", "plateau", "cosine", "onsager", "mlp", "gfinn", "coordinates", "descriptors"}


def test_layers_contract():
    """A new upward import (or a cycle across layers) fails here."""
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(SRC.parents[1] / "pyproject.toml")) == 0


def test_no_deferred_imports_of_macrodyn():
    """Imports of macrodyn modules sit at the top of each module: none inside a function dodges a
    cycle. The CLI alone defers them, so `macrodyn --help` starts without torch."""
    bad = []
    for path in SRC.rglob("*.py"):
        if path.name == "cli.py":
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    mod = getattr(node, "module", None) if isinstance(node, ast.ImportFrom) else None
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [mod or ""]
                    if any(n == "macrodyn" or n.startswith("macrodyn.") for n in names):
                        bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not bad, bad


@pytest.mark.parametrize("module", ["macrodyn.dynamics", "macrodyn.keys"])
def test_light_imports(module):
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                         text=True, check=True).stderr
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in out.splitlines() if "|" in line}
    assert not loaded & {"zarr", "numba", "dask", "pydantic", "torchdiffeq"}, loaded & {"zarr", "numba", "dask"}


def test_option_names_compared_only_in_config_and_factories():
    """``t.loss == "L_z"``-style checks belong on the loss / sampler objects: a comparison with an
    option's name is allowed only in config.py and inside a ``make_*`` factory."""
    bad = []
    for path in SRC.rglob("*.py"):
        if path.name == "config.py" or "data" in path.relative_to(SRC).parts:  # data/: storage layouts
            continue
        tree = ast.parse(path.read_text())
        allowed = {id(n) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) and fn.name.startswith("make_")
                   for n in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and id(node) not in allowed:
                consts = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                if any(isinstance(v, str) and v in OPTION_NAMES for v in consts):
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not bad, bad
