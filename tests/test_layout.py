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


def test_the_code_fingerprint_behind_reuse_hashes_every_source_file_subfolders_included(tmp_path):
    import shutil

    from steps.fingerprint import code_files, code_sha

    sources = {p for folder in ("core", "steps") for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
    assert sources <= set(code_files())
    # a file in a new subfolder changes the fingerprint
    copy = tmp_path / "copy"
    for part in ("core", "steps"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_sha(copy)
    (copy / "steps" / "room").mkdir()
    (copy / "steps" / "room" / "plan.py").write_text("X = 1\n")
    assert code_sha(copy) != before
