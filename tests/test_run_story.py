"""What a run says about itself: its name, its description, its summary metrics at step 0, and
what the terminal prints when it ends (issue 22, findings 4 and 6)."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import ROOT

from core.config import TrainConfig
from steps.l1 import l1
from steps.run import story
from steps.sgd import sgd
from steps.train import train

DIABETES = str(ROOT / "examples" / "diabetes.csv")


def only_run(tracking):
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    return run


def test_a_standalone_run_is_named_for_what_it_is(tracking):
    result = CliRunner().invoke(
        train, ["--optimizer", "adam", "--learning-rate", "0.05", "--dataset", "rosenbrock", "--epochs", "5"]
    )
    assert result.exit_code == 0, result.output
    assert only_run(tracking).info.run_name == "adam lr=0.05 rosenbrock"


def test_run_names_say_the_penalty_the_data_and_the_network():
    assert story.run_name(TrainConfig(penalty="l1", lam=0.01), "l1") == "l1 λ=0.01 lr=0.01 seed"
    cfg = TrainConfig(optimizer="adamw", penalty="l2", lam=0.1, dataset="data/diabetes.csv", hidden=(16, 8))
    assert story.run_name(cfg, "train") == "adamw l2 λ=0.1 lr=0.01 diabetes 16,8"


def test_the_summary_metrics_are_logged_at_step_0_so_mlflow_charts_them_across_runs(tracking):
    assert CliRunner().invoke(sgd, ["--epochs", "7"]).exit_code == 0
    run = only_run(tracking)
    for name in ("final_loss", "final_objective", "epochs_run", "train_time_s", "steps_per_s", "zero_weights"):
        (point,) = tracking.client.get_metric_history(run.info.run_id, name)
        assert point.step == 0, name
    assert max(m.step for m in tracking.client.get_metric_history(run.info.run_id, "loss")) == 6  # per epoch


def test_a_run_describes_itself_and_the_lessons_penalties_say_what_was_fixed(tracking):
    assert CliRunner().invoke(l1, ["--epochs", "3"]).exit_code == 0
    note = only_run(tracking).data.tags[story.NOTE_TAG]
    assert "never to the gradient" in note
    assert "gdlab minimizes the objective it logs" in note
    assert "Trains a ReLU neuron on seed with sgd at learning rate 0.01, penalty l1 (lambda 0.01)" in note


def test_the_terminal_ends_with_the_final_numbers_the_run_and_where_to_see_it(tracking):
    result = CliRunner().invoke(train, ["--epochs", "4", "--validation-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    run = only_run(tracking)
    lines = result.output.strip().splitlines()
    assert lines[-2].startswith("Final loss ")
    assert " · val_loss " in lines[-2]
    assert f"(run {run.info.run_id[:8]}: sgd lr=0.01 seed)" in lines[-2]
    assert lines[-1].startswith("See it: run `mlflow ui --backend-store-uri sqlite:///")
    assert f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in lines[-1]


def test_where_gives_a_servers_page_directly():
    assert story.where("http://127.0.0.1:5000/", "3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    assert story.where("sqlite:///mlflow.db", "0", "abc").startswith("run `mlflow ui`, then open")


def test_divergence_on_features_in_their_own_units_suggests_standardizing(tracking):
    args = ["--dataset", DIABETES, "--target", "target", "--model", "linear", "--fit-intercept", "true"]
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 1
    assert "training diverged" in result.output
    assert "--standardize true puts them on one" in result.output
    assert "--standardize true" in only_run(tracking).data.tags["failure_reason"]


def test_divergence_on_unit_scale_features_does_not_blame_the_scale(tracking):
    result = CliRunner().invoke(train, ["--model", "linear", "--learning-rate", "90", "--epochs", "300"])
    assert result.exit_code == 1, result.output
    assert "training diverged" in result.output
    assert "standardize" not in result.output


def test_each_launcher_logs_a_known_number_of_params(tracking):
    # Run by gdlab (a command, or a workflow's child), a run logs the options that act: 18 to 20
    # at the defaults. `mlflow run` first logs every parameter the entry point declares (MLflow
    # does; params cannot be removed), so there the count is the MLproject's: pinned below and in
    # test_project_mlflow_run (adam: its 59 declared + optimizer and penalty = 61). docs/runs.md.
    import yaml
    from conftest import ROOT as root

    from steps.adam import adam

    expected = {sgd: 18, adam: 19, l1: 20, train: 18}
    for command in expected:
        assert CliRunner().invoke(command, ["--epochs", "2"]).exit_code == 0
    counts = sorted(len(r.data.params) for r in tracking.client.search_runs([tracking.experiment_id]))
    assert counts == sorted(expected.values())
    declared = yaml.safe_load((root / "MLproject").read_text())["entry_points"]
    assert {ep: len(declared[ep]["parameters"]) for ep in ("train", "adam", "sgd", "main")} == {
        "train": 86,
        "adam": 59,
        "sgd": 58,
        "main": 64,
    }


def test_the_data_is_logged_as_mlflow_dataset_inputs_one_a_split(tracking):
    import json

    args = ["--dataset", DIABETES, "--target", "target", "--standardize", "true", "--validation-fraction", "0.2"]
    assert CliRunner().invoke(train, [*args, "--epochs", "3"]).exit_code == 0
    inputs = only_run(tracking).inputs.dataset_inputs
    by_context = {i.tags[0].value: i.dataset for i in inputs}
    assert set(by_context) == {"training", "validation"}
    training, validation = by_context["training"], by_context["validation"]
    assert training.name == validation.name == "diabetes"
    assert json.loads(training.source)["uri"] == DIABETES
    assert json.loads(training.profile) == {"features_shape": [354, 10], "targets_shape": [354]}
    assert json.loads(validation.profile) == {"features_shape": [88, 10], "targets_shape": [88]}
    assert training.digest != validation.digest
    assert "tensor" in training.schema


def test_a_test_function_logs_no_dataset_and_the_lessons_data_is_named_seed(tracking):
    assert CliRunner().invoke(train, ["--dataset", "beale", "--epochs", "2"]).exit_code == 0
    assert only_run(tracking).inputs.dataset_inputs == []
    tracking.client.delete_run(only_run(tracking).info.run_id)
    assert CliRunner().invoke(sgd, ["--epochs", "2"]).exit_code == 0
    (lesson,) = only_run(tracking).inputs.dataset_inputs
    assert (lesson.dataset.name, lesson.dataset.source_type) == ("seed", "code")
