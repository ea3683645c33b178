"""The paper's reference numbers, kept in one data file (``reference.yaml``, package data)."""
from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources

import yaml

#: the file's sections
SECTIONS = ("force_budget", "predator_prey_budget", "allen_cahn_200x200", "lj800")


def reference(section: str | None = None) -> dict:
    """The reference numbers of ``section`` (one of :data:`SECTIONS`), or all of them (a fresh copy)."""
    data = _load()
    if section is None:
        return copy.deepcopy(data)
    if section not in data:
        raise KeyError(f"no reference section {section!r}; the sections are {sorted(data)}")
    return copy.deepcopy(data[section])


@lru_cache(maxsize=1)
def _load() -> dict:
    text = resources.files(__package__).joinpath("reference.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    _check_numbers(data, "")
    return data


def _check_numbers(node, where: str) -> None:
    """Every leaf is a number (YAML 1.1 reads ``1e6`` as a string: the file writes ``1e+6``)."""
    if isinstance(node, dict):
        for k, v in node.items():
            _check_numbers(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ValueError(f"reference.yaml: {where} = {node!r} is not a number")
