"""The code's own rules of the house: imports go one way, and no module reaches into another's privates."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("core/*.py"), *ROOT.glob("steps/*.py")])


def test_no_module_imports_a_private_name_of_another():
    imported = re.compile(r"^\s*from \.+[\w.]* import ([^\n]+)", re.M)
    reached = re.compile(r"\b(?:tracking|launch|study|search|runner|lifecycle|workers|options|compare\w*)\._[a-z]\w*")
    found = []
    for path in SOURCES:
        text = path.read_text()
        for names in imported.findall(text):
            found += [f"{path.name}: {n.strip()}" for n in names.strip("()").split(",") if n.strip().startswith("_")]
        found += [f"{path.name}: {m}" for m in reached.findall(text)]
    assert found == []


def test_core_imports_nothing_of_steps_click_or_mlflow():
    for path in ROOT.glob("core/*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) (steps|click|mlflow)\b", text, re.M), path.name
