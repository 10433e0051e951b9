"""The code's own rules of the house: imports go one way, and no module reaches into another's privates."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("steps/**/*.py")])


def test_no_module_imports_a_private_name_of_another():
    # relative or absolute, on one line or in parentheses over several (it saw only relative ones on one line:
    # `from steps.report.compare_figures import (_curve, ...)` got through)
    imported = re.compile(r"^\s*from (?:\.+[\w.]*|(?:steps|core)[\w.]*) import (\([^)]*\)|[^\n]+)", re.M)
    reached = re.compile(
        r"\b(?:tracking|launch|study|search|runner|lifecycle|workers|options|fingerprint|compare\w*)\._[a-z]\w*"
    )
    found = []
    for path in SOURCES:
        text = path.read_text()
        for names in imported.findall(text):
            names = names.strip("()").replace("\n", " ").split(",")
            found += [f"{path.name}: {n.strip()}" for n in names if n.strip().startswith("_")]
        found += [f"{path.name}: {m}" for m in reached.findall(text)]
    assert found == []


def test_core_imports_nothing_of_steps_click_or_mlflow():
    for path in ROOT.glob("core/*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) (steps|click|mlflow)\b", text, re.M), path.name


def test_the_code_fingerprint_behind_reuse_hashes_every_source_file_subfolders_included(tmp_path):
    import shutil

    from steps.run.fingerprint import code_files, code_sha

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


def test_a_built_wheel_holds_every_module_of_core_and_steps_subfolders_included(tmp_path):
    import shutil
    import subprocess
    import sys
    import zipfile

    # (built from a copy: building in the checkout would leave build/ behind)
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "mlruns"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."]
    built = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("gdlab-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(ROOT)) for p in SOURCES}
    assert sources <= packed, sorted(sources - packed)


def test_steps_top_level_holds_the_commands_only():
    from steps.cli.mlproject import ENTRY_POINTS

    top = {p.stem for p in (ROOT / "steps").glob("*.py")}
    assert top == {"__init__", *ENTRY_POINTS}


def test_test_files_are_named_by_the_code_they_test():
    # One axis: test_core_<module>..., test_<room>_<module>... (steps/<room>/), test_<command>,
    # test_project_<part> (the project as a whole: docs, layout, `mlflow run`, Kubernetes, ...).
    steps = ROOT / "steps"
    rooms = {p.name: {m.stem for m in p.glob("*.py")} for p in steps.iterdir() if (p / "__init__.py").exists()}
    rooms["core"] = {m.stem for m in (ROOT / "core").glob("*.py")}
    commands = {m.stem for m in steps.glob("*.py")} - {"__init__"}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        name = path.stem.removeprefix("test_")
        room, _, rest = name.partition("_")
        if room == "project" or name in commands:
            continue
        assert room in rooms, path.name
        assert any(rest == m or rest.startswith(m + "_") for m in rooms[room]), path.name
