"""`mlflow run .` (the `main` entry point) end to end: nested children, compare, failure, reuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from core.optimizers import OPTIMIZERS
from steps.adam import adam
from steps.flow.launch import make_child
from steps.main import main
from steps.run.runner import make_config
from steps.train import train

ROOT = Path(__file__).resolve().parents[1]
CHILDREN = {"sgd", "adam", "l1", "l2"}


def run_main(env, out, *params, timeout=600):
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local", "-P", f"output_dir={out}"]
    for p in params:
        cmd += ["-P", p]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def invoke_main(out, *args):
    """`main` in this process (its children still train in worker processes): the same code as
    `mlflow run .` minus MLflow's launch, which the first test covers."""
    return CliRunner().invoke(main, ["--output-dir", str(out), *args])


def by_technique(tracking):
    runs = tracking.client.search_runs([tracking.experiment_id], max_results=1000)
    out: dict[str, list] = {}
    for r in runs:
        out.setdefault(r.data.tags.get("technique"), []).append(r)
    return out


@pytest.mark.slow
def test_mlflow_run_dot_runs_the_lesson_as_nested_children_then_compares_them(tracking, project_env):
    out = tracking.root / "report"
    # The experiment by name, as MLflow documents it (`mlflow run` and its children must agree).
    env = {k: v for k, v in project_env.items() if k != "MLFLOW_EXPERIMENT_ID"}
    env["MLFLOW_EXPERIMENT_NAME"] = "gdlab-test"
    proc = run_main(env, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = by_technique(tracking)
    (main,) = runs["main"]
    assert main.info.status == "FINISHED"
    assert main.info.run_name == "main"  # not the random name `mlflow run` gave it
    assert {r.info.run_name for t in CHILDREN for r in runs[t]} == CHILDREN
    children = [r for t in CHILDREN for r in runs[t]]
    assert len(children) == 4
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == main.info.run_id
        assert child.data.tags["mlflow.project.entryPoint"] == child.data.tags["technique"]
        assert child.info.run_id != main.info.run_id
    (compare,) = runs["compare"]
    assert compare.data.tags["mlflow.parentRunId"] == main.info.run_id
    assert compare.info.status == "FINISHED"

    # The table's numbers are the children's own metrics, to the last digit.
    table = pd.read_csv(out / "compare.csv")
    assert set(table["technique"]) == CHILDREN
    for child in children:
        row = table[table["run_id"] == child.info.run_id].iloc[0]
        for key in ("final_loss", "final_objective", "zero_weights", "train_time_s"):
            assert row[key] == child.data.metrics[key]
    for name in ("loss_curves.png", "trajectories.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG"
            assert img.size[0] > 400
            assert len(img.convert("L").getcolors(1 << 20) or []) > 10  # not blank
    html = (out / "compare.html").read_text()
    assert "<table" in html
    assert 'src="http' not in html  # one file (plotly.js inlined): test_report_interactive checks it asks for nothing
    assert html.count("<script") == 3
    assert (out / "compare.html").stat().st_size < 6_000_000  # 5.31 MB on 2026-12-06, 4.8 of it plotly.js
    artifacts = {a.path for a in tracking.client.list_artifacts(compare.info.run_id)}
    assert {"compare.csv", "compare.md", "compare.html", "loss_curves.png", "trajectories.gif"} <= artifacts


def test_a_failing_child_is_reported_and_the_rest_are_still_compared(tracking):
    out = tracking.root / "report"
    # A linear model with lambda 1e6: the L2 gradient 2*lambda*w makes l2 diverge; the others train.
    result = invoke_main(out, "--lambda", "1e6", "--model", "linear")
    assert result.exit_code == 1, result.output
    assert "these steps failed: l2" in result.stderr
    runs = by_technique(tracking)
    (l2,) = runs["l2"]
    assert l2.info.status == "FAILED"
    assert "diverged" in l2.data.tags["failure_reason"]
    assert runs["main"][0].info.status == "FAILED"
    assert runs["compare"][0].info.status == "FINISHED"
    table = pd.read_csv(out / "compare.csv")
    assert set(table["technique"]) == CHILDREN
    assert table.loc[table["technique"] == "l2", "status"].item() == "FAILED"


@pytest.mark.slow
def test_reuse_skips_children_whose_config_code_and_data_match(tracking):
    first = invoke_main(tracking.root / "r1", "--reuse", "true", "--epochs", "20")
    assert first.exit_code == 0, first.output
    # Same values, other spellings: matched on the resolved config, not the strings.
    second = invoke_main(tracking.root / "r2", "--reuse", "true", "--epochs", "20", "--learning-rate", "1e-2")
    assert second.exit_code == 0, second.output
    assert second.stderr.count("reusing run") == 4
    runs = by_technique(tracking)
    assert all(len(runs[t]) == 1 for t in CHILDREN)
    assert len(runs["main"]) == 2
    table = pd.read_csv(tracking.root / "r2" / "compare.csv")
    assert set(table["run_id"]) == {runs[t][0].info.run_id for t in CHILDREN}
    # A changed option is not reused.
    third = invoke_main(tracking.root / "r3", "--reuse", "true", "--epochs", "21")
    assert third.exit_code == 0, third.output
    assert "reusing run" not in third.stderr
    assert all(len(by_technique(tracking)[t]) == 2 for t in CHILDREN)


@pytest.mark.parametrize("technique", sorted(CHILDREN))
def test_main_passes_the_shared_options_to_each_child(technique):
    shared = {"epochs": 7, "seed": 3, "dataset": "synthetic", "model": "linear", "lam": 0.5}
    cfg = make_child(technique, technique, shared).config
    assert (cfg.epochs, cfg.seed, cfg.dataset, cfg.model) == (7, 3, "synthetic", "linear")
    assert cfg.optimizer == ("adam" if technique == "adam" else "sgd")
    assert cfg.penalty == (technique if technique in ("l1", "l2") else "none")
    assert cfg.lam == (0.5 if technique in ("l1", "l2") else 0.0)


def test_techniques_mixes_entry_points_and_optimizer_names(tracking):
    out = tracking.root / "report"
    result = invoke_main(out, "--techniques", "sgd,nadam,lion,l1", "--epochs", "30", "--lambda", "0.1")
    assert result.exit_code == 0, result.output
    runs = by_technique(tracking)
    (parent,) = runs["main"]
    assert parent.data.params["techniques"] == "sgd,nadam,lion,l1"
    trained = {r.info.run_name: r for r in runs["train"]}
    assert set(trained) == {"nadam", "lion"}
    for name, run in trained.items():
        assert run.data.params["optimizer"] == name
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "lambda" not in run.data.params  # --lambda is the l1/l2 children's
    assert runs["l1"][0].data.params["lambda"] == "0.1"
    table = pd.read_csv(out / "compare.csv")
    assert sorted(table["optimizer"]) == ["lion", "nadam", "sgd", "sgd"]
    assert len(table) == 4
    # under the table: what this ranking is, and the command that makes it fair
    note = result.stdout[result.stdout.index("Wrote compare.csv") :]
    assert "one shared learning rate (0.01)" in note
    assert "mlflow run . -e benchmark" in note


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_child_for_each_optimizer_has_the_config_train_gives_it(name):
    # (--max-eval and --eps1 default to the word "none": a child took the word, not None,
    # and lbfgs and adafactor children crashed with a TypeError before any run started.)
    ctx = train.make_context("train", ["--optimizer", name])
    alone = make_config("train", {p.name: p.default for p in train.params}, **ctx.params)
    assert make_child(name, "train", {}, optimizer=name).config == alone


def test_techniques_runs_the_optimizers_whose_options_default_to_none(tracking):
    result = invoke_main(tracking.root / "report", "--techniques", "lbfgs,adafactor,lion", "--epochs", "5")
    assert result.exit_code == 0, result.output
    assert {r.data.params["optimizer"] for r in by_technique(tracking)["train"]} == {"lbfgs", "adafactor", "lion"}
    # The report says whose settings are whose by optimizer: Lion has no eps1 ("train runs" said it had).
    assert "eps2=0.001, d=1 (adafactor runs)" in result.output
    assert "weight_decay=0 (adafactor, lion runs)" in result.output
    assert "train runs" not in result.output


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sgd,bogus", "unknown bogus"),
        ("adam,adam", "named twice"),
        (" , ", "name at least one"),
        ("adam,,sgd", "an empty name (two commas in a row, or one at an end)"),  # (it ran adam and sgd)
        ("adam,", "an empty name"),
    ],
)
def test_techniques_refuses_unknown_repeated_or_no_names_before_any_run(tracking, value, message):
    result = invoke_main(tracking.root / "report", "--techniques", value)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_a_technique_that_is_an_optimizer_name_trains_with_that_optimizer():
    from steps.main import technique_child

    child = technique_child("radam", {"epochs": 7, "lam": 0.5, "learning_rate": 0.05})
    assert child.entry_point == "train"
    assert (child.config.optimizer, child.config.penalty, child.config.lam) == ("radam", "none", 0.0)
    assert (child.config.epochs, child.config.learning_rate) == (7, 0.05)
    assert technique_child("adam", {}).entry_point == "adam"  # both: the entry point


@pytest.mark.slow
def test_reuse_does_not_stand_in_a_run_whose_files_are_gone(tracking):
    # With a child's artifacts deleted, `main --reuse true --register-model` reused it on its tags and
    # made a model without files the champion; loading it failed.
    import shutil
    from urllib.parse import urlparse

    import mlflow

    first = invoke_main(tracking.root / "r1", "--reuse", "true", "--epochs", "20")
    assert first.exit_code == 0, first.output
    (adam,) = by_technique(tracking)["adam"]
    shutil.rmtree(urlparse(adam.info.artifact_uri).path)
    model_id = adam.outputs.model_outputs[-1].model_id
    shutil.rmtree(urlparse(mlflow.get_logged_model(model_id).artifact_location).path)
    second = invoke_main(tracking.root / "r2", "--reuse", "true", "--epochs", "20", "--register-model", "champ")
    assert second.exit_code == 0, second.output
    assert second.stderr.count("reusing run") == 3  # sgd, l1, l2; adam is trained again
    assert len(by_technique(tracking)["adam"]) == 2
    model = mlflow.pyfunc.load_model("models:/champ@champion")  # the champion (adam) has its files
    assert model.predict(pd.DataFrame({"x0": [0.1], "x1": [0.2]})).shape == (1,)


def test_a_best_model_that_does_not_load_is_not_registered(tracking):
    # The check before registering: a model without files was made the champion (issue 23, case 8).
    import shutil
    from urllib.parse import urlparse

    import mlflow

    from steps.flow.launch import Best, register_best
    from steps.run.lifecycle import tracked_run

    result = CliRunner().invoke(adam, ["--epochs", "3"])
    assert result.exit_code == 0, result.output
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    model_id = run.outputs.model_outputs[-1].model_id
    shutil.rmtree(urlparse(mlflow.get_logged_model(model_id).artifact_location).path)
    best = Best("adam", run.info.run_id, "final_objective", 0.1, model_id)
    with tracked_run(name="main") as parent:
        reason = register_best(parent, best, "champ")
    assert reason.startswith("adam's model does not load, so it was not registered as 'champ'")
    assert tracking.client.search_registered_models() == []
