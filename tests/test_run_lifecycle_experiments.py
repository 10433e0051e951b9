"""Which experiment the runs go to: MLflow's documented variables, for main, sweep and compare.

`mlflow run` resolves --experiment-name / --experiment-id (and MLFLOW_EXPERIMENT_NAME, which is
that option's environment variable) into the run it makes and MLFLOW_EXPERIMENT_ID for the entry
point: test_main.py runs `mlflow run .` with MLFLOW_EXPERIMENT_NAME, the slow test below with
--experiment-id. Here the workflows run in process under each variable.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from steps.compare import compare
from steps.main import main
from steps.sweep import sweep


def runs_in(tracking, experiment_id):
    return tracking.client.search_runs([experiment_id])


def names(runs):
    return sorted(r.info.run_name for r in runs)


@pytest.mark.slow
def test_main_then_compare_under_mlflow_experiment_name(tracking, monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "lesson")  # not there yet: MLflow makes it
    result = CliRunner().invoke(main, ["--epochs", "5"])
    assert result.exit_code == 0, result.output + result.stderr
    lesson = tracking.client.get_experiment_by_name("lesson")
    runs = runs_in(tracking, lesson.experiment_id)
    assert names(runs) == ["adam", "compare 4 runs on seed · MSE", "l1", "l2", "main", "sgd"]
    assert runs_in(tracking, tracking.experiment_id) == []
    # Without --output-dir the report has a folder of its own run's (the working folder is tmp).
    (parent,) = [r for r in runs if r.info.run_name == "main"]
    assert (tracking.root / "compare_output" / f"main-{parent.info.run_id[:8]}" / "compare.html").is_file()

    # compare on its own: the experiment the variable names, and its run lands there too.
    result = CliRunner().invoke(compare, ["--output-dir", str(tracking.root / "c")])
    assert result.exit_code == 0, result.output + result.stderr
    assert f"experiment 'lesson' (id {lesson.experiment_id})" in result.output
    assert "4 runs of" in result.output  # the training runs; main and the first compare are skipped
    assert sum(n.startswith("compare") for n in names(runs_in(tracking, lesson.experiment_id))) == 2


def test_sweep_under_mlflow_experiment_id(tracking, monkeypatch):
    other = tracking.client.create_experiment("other", artifact_location=(tracking.root / "other").as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", other)
    args = ["--technique", "sgd", "--learning-rates", "0.01,0.1", "--epochs", "5"]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output + result.stderr
    runs = runs_in(tracking, other)
    assert names(runs) == ["compare 2 runs on seed · MSE", "sgd lr=0.01", "sgd lr=0.1", "sweep sgd"]
    (parent,) = [r for r in runs if r.info.run_name == "sweep sgd"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in runs if r is not parent)
    assert runs_in(tracking, tracking.experiment_id) == []
    # The compare run's params read as the report's title does: whose runs, which ones, where.
    (compared,) = [r for r in runs if r.info.run_name.startswith("compare")]
    children = sorted(r.info.run_id for r in runs if r.info.run_name.startswith("sgd"))
    subject = f"the children of sweep sgd run {parent.info.run_id} (experiment id {other})"
    assert compared.data.params["compared"] == subject
    assert sorted(compared.data.params["run_ids"].split(", ")) == children
    assert "filter" not in compared.data.params
    assert (tracking.root / "compare_output" / f"sweep-sgd-{parent.info.run_id[:8]}" / "compare.html").is_file()


@pytest.mark.slow
def test_mlflow_run_sweep_with_experiment_id_puts_every_run_there(tracking, project_env):
    from pathlib import Path

    other = tracking.client.create_experiment("other", artifact_location=(tracking.root / "other").as_uri())
    env = {k: v for k, v in project_env.items() if k != "MLFLOW_EXPERIMENT_ID"}
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "mlflow", "run", str(root), "-e", "sweep", "--env-manager", "local"]
    cmd += ["--experiment-id", other, "-P", "technique=adam", "-P", "learning_rates=0.01,0.1", "-P", "epochs=5"]
    cmd += ["-P", f"output_dir={tracking.root / 'out'}"]
    proc = subprocess.run(cmd, env=env, cwd=tracking.root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_in(tracking, other)
    assert names(runs) == ["adam lr=0.01", "adam lr=0.1", "compare 2 runs on seed · MSE", "sweep adam"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert runs_in(tracking, tracking.experiment_id) == []
