"""The benchmark scripts as a user starts them (their numbers are read by people, not asserted)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_bench_core_names_its_sections_when_asked_for_one_it_does_not_have():
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_core.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "usage: python benchmarks/bench_core.py [fullbatch|lesson|minibatch|logging|memory ...]" in proc.stderr


def test_bench_study_names_the_storages_it_has_when_given_one_it_does_not():
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_study.py", "--storages", "redis"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown storage(s) redis; choose from memory,journal,sqlite,postgresql,mlflow" in proc.stderr
