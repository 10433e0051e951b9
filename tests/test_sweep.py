"""`sweep` end to end: a grid as nested parallel children, the best tagged, a failure survived."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from steps.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]


def test_sweep_runs_the_grid_nested_tags_the_best_and_survives_a_failed_child(tracking):
    out = tracking.root / "report"
    # l2 on a linear model: lambda 1e6 diverges (the L2 gradient 2*lambda*w blows up), 0.01 trains.
    args = ["--technique", "l2", "--learning-rates", "0.01,0.05", "--lambdas", "0.01,1e6", "--model", "linear"]
    result = CliRunner().invoke(sweep, [*args, "--max-parallel", "3", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 of 4 children failed" in result.stderr
    runs = tracking.client.search_runs([tracking.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("technique") == "sweep"]
    children = [r for r in runs if r.data.tags.get("technique") == "l2"]
    assert len(children) == 4
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert sorted(c.info.status for c in children) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    assert parent.info.status == "FINISHED"
    finished = [c for c in children if c.info.status == "FINISHED"]
    best = min(finished, key=lambda c: c.data.metrics["final_objective"])
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert parent.data.tags["best_metric"] == "final_objective"
    assert {c.data.params["learning_rate"] for c in children} == {"0.01", "0.05"}
    table = pd.read_csv(out / "compare.csv")
    assert set(table["run_id"]) == {c.info.run_id for c in children}


def test_sweep_picks_the_best_by_validation_loss_when_there_is_a_split(tracking):
    args = ["--technique", "sgd", "--learning-rates", "0.001,0.1", "--lambdas", "5,6", "--dataset", "synthetic"]
    args += ["--model", "linear", "--validation-fraction", "0.25", "--epochs", "20"]
    result = CliRunner().invoke(sweep, [*args, "--output-dir", str(tracking.root / "report")])
    assert result.exit_code == 0, result.output
    runs = tracking.client.search_runs([tracking.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("technique") == "sweep"]
    children = [r for r in runs if r.data.tags.get("technique") == "sgd"]
    assert len(children) == 2  # lambdas are ignored for sgd
    assert parent.data.tags["best_metric"] == "final_val_loss"
    best = min(children, key=lambda c: c.data.metrics["final_val_loss"])
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert f"best (final_val_loss = {best.data.metrics['final_val_loss']:.6g})" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--learning-rates", "0.1,-1"], "'-1'"),
        (["--learning-rates", ""], "at least one number"),
        (["--lambdas", "0.1,nan"], "'nan'"),
        (["--technique", "rmsprop"], "--technique"),
        (["--max-parallel", "-1"], "--max-parallel"),
    ],
)
def test_bad_sweep_options_are_refused_before_anything_starts(tracking, args, needle):
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 2
    assert needle in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []
