"""The README is a front door, and every link in it and in docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES += [ROOT / folder / "README.md" for folder in ("examples", "kubernetes", "benchmarks", "tests")]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped, spaces as -)."""
    out = set()
    for line in path.read_text().splitlines():
        if re.match(r"#{1,6} ", line):
            text = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def test_the_readme_is_a_front_door_of_at_most_250_lines():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    first = text.split("```")[1]  # the two commands come first
    assert "mlflow run ." in first
    assert "python -m pytest" in first


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_page_resolves_to_a_file_and_a_heading(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} leads nowhere"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name}: {target}: no such heading"


def test_the_options_reference_is_current_with_the_click_options():
    from steps.cli import reference

    assert reference.FILE.read_text() == reference.render(), "run: python -m steps.cli.reference > docs/reference.md"


def _same_value(text: str, value) -> bool:
    """A default as docs/options.md writes it ("1e4", "1/3", "`false`", "none") against the schema's."""
    from fractions import Fraction

    from core.schema import spell

    text = text.strip().strip("`").split(" ")[0]
    if spell(value) == text:
        return True
    try:
        return float(Fraction(text)) == pytest.approx(float(value), rel=1e-12)
    except (TypeError, ValueError, ZeroDivisionError):
        return False


def test_the_defaults_docs_options_md_quotes_are_the_schemas():
    # options.md explains the options by topic; every default it quotes is checked against core.config.
    from core import optimizers
    from core.config import OPTIONS

    rows = [r for r in (ROOT / "docs" / "options.md").read_text().splitlines() if r.startswith("| `")]
    checked = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[0].startswith("`--"):  # | options | meaning | defaults, one per option |
            names = re.findall(r"`--([a-z0-9-]+)`", cells[0])
            defaults = [d.strip() for d in cells[-1].split(",")]
            assert len(names) == len(defaults), row
            for name, text in zip(names, defaults, strict=True):
                assert _same_value(text, OPTIONS[name.replace("-", "_")].default), (name, text)
                checked += 1
        else:  # | optimizers | `--option` default, ... |
            for name in re.findall(r"`([a-z]+)`", cells[0]):
                for option, text in re.findall(r"`--([a-z0-9-]+)` ([^ ,;(\\]+)", cells[1]):
                    key = option.replace("-", "_")
                    if key in optimizers.DEFAULTS[name] and not text.startswith("`"):
                        assert _same_value(text, optimizers.DEFAULTS[name][key]), (name, option, text)
                        checked += 1
    assert checked > 80
