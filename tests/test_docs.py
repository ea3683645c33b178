"""The documentation: the site builds with ``mkdocs build --strict``, the config reference lists
every field, and README / docs / LICENSE / CITATION.cff say what they must."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _hooks():
    spec = importlib.util.spec_from_file_location("macrodyn_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_config_fields() -> list[str]:
    """Dotted names of every field of RunConfig: top-level scalars and every section's fields."""
    from pydantic import BaseModel

    from macrodyn.config import RunConfig

    names = []
    for name, field in RunConfig.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names += [f"{name}.{sub}" for sub in ann.model_fields]
        else:
            names.append(name)
    return names


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once with ``mkdocs build --strict`` (warnings are errors)."""
    pytest.importorskip("mkdocs", reason="mkdocs not installed (pip install -r requirements.txt)")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


# ---------------------------------------------------------------------------------- the site
def test_docs_build_strict(site):
    for page in ["index.html", "method/index.html", "config/index.html", "systems/index.html",
                 "cluster/index.html", "troubleshooting/index.html", "results/index.html", "api/index.html"]:
        assert (site / page).is_file(), page


def test_results_figures_are_published(site):
    """Every figure a results page shows is in the built site."""
    for md in (DOCS / "results").glob("*.md"):
        for img in re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", md.read_text(encoding="utf-8")):
            assert (site / "results" / img).is_file(), f"{md.name}: {img}"


def test_built_config_reference_lists_every_field(site):
    html = (site / "config" / "index.html").read_text(encoding="utf-8")
    missing = [name for name in _run_config_fields() if f"<code>{name}</code>" not in html]
    assert not missing, f"fields missing from the built config reference: {missing}"
    assert "macrodyn:" not in html, "a <!-- macrodyn:... --> marker was not replaced by the hook"


def test_built_pages_do_not_mention_method_md(site):
    """Generated content too: config descriptions, and the API pages rendered from docstrings
    (which point at the method page of this site, never at notes outside the repository)."""
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "METHOD.md" not in text, page
        if "api" in page.relative_to(site).parts:
            assert ":meth:<code>" not in text and ":class:<code>" not in text, page


# ------------------------------------------------------------------ config reference (no mkdocs)
def test_generated_config_reference_lists_every_field():
    hooks = _hooks()
    missing_meaning: list[str] = []
    text = hooks.run_config_reference(missing_meaning)
    missing = [name for name in _run_config_fields() if f"`{name}`" not in text]
    assert not missing, f"fields missing from the generated config reference: {missing}"
    assert not missing_meaning, (f"config fields without a meaning: {missing_meaning}; give them "
                                 "Field(description=...) or an entry in NOTES in docs/hooks.py")
    assert not hooks.stale_notes(), f"NOTES in docs/hooks.py name no field: {hooks.stale_notes()}"


def test_config_page_has_every_marker():
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    for marker in _hooks().MARKERS:
        assert marker in text, marker


# -------------------------------------------------------------------------------- the README
def test_readme_is_short_and_self_contained():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "METHOD.md" not in text
    assert "../" not in text, "README refers to a path outside the repository"
    assert "/work/" not in text


def test_readme_keeps_the_two_commands():
    text = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci in text.splitlines(), "command 2 must be the line .ci/run runs, verbatim"
    assert ("python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt -e . && "
            ".venv/bin/macrodyn run --out runs/predator_prey") in text.splitlines()


def test_readme_links_to_docs_exist():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", text)
    assert links, "the README links to the docs' results pages"
    for link in links:
        assert (ROOT / link).is_file(), link


# ---------------------------------------------------------------------------------- the pages
def test_docs_pages_do_not_refer_outside_the_repository():
    pages = sorted(DOCS.rglob("*.md"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "METHOD.md" not in text, page
        assert "/work/" not in text, page


# ------------------------------------------------------------------------- LICENSE, CITATION
def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "2026 the macrodyn developers" in text


def test_citation_cff_cites_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software" and cff["title"] and cff["authors"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Learning Macroscopic Dynamics from Partial Microscopic Observations"
    assert [a["family-names"] for a in paper["authors"]] == ["Chen", "Li"]
    assert paper["year"] == 2024
    assert "NeurIPS 2024" in paper["collection-title"]
