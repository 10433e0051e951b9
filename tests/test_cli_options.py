"""The Click entry points, in process (CliRunner), against a temporary tracking store."""

from __future__ import annotations

import json

import click
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import refused

from steps.adam import adam
from steps.cli import mlproject
from steps.l1 import l1
from steps.l2 import l2
from steps.main import main
from steps.sgd import sgd
from steps.train import train

SGD_WEIGHTS = [0.3644996182867053, 0.5455535728846579]
ADAM_WEIGHTS = [0.823853144243253, 0.9236083308245637]
COMMANDS = {"sgd": sgd, "adam": adam, "l1": l1, "l2": l2, "train": train}


def invoke(command, args=()):
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def only_run(tracking):
    runs = tracking.client.search_runs([tracking.experiment_id])
    assert len(runs) == 1
    return runs[0]


def artifact_json(tracking, run_id, path):
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(tracking.root / "dl"))
    with open(local) as fh:
        return json.load(fh)


def test_sgd_defaults_reproduce_the_lesson_and_log_the_contract(tracking):
    result = invoke(sgd)
    assert result.exit_code == 0, result.output
    assert f"Final weights: {SGD_WEIGHTS}" in result.output
    assert "Downloading artifacts" not in result.stderr  # no progress bars while the model is saved
    run = only_run(tracking)
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert (tags["technique"], tags["optimizer"], tags["penalty"]) == ("sgd", "sgd", "none")
    assert params["learning_rate"] == "0.01"
    assert params["epochs"] == "100"
    assert params["nesterov"] == "false"
    # Only the options that acted: no penalty, no synthetic generator, no other optimizer's.
    assert not {"lambda", "l1_ratio", "n_samples", "target", "beta1", "lr_step_size"} & set(params)
    for key in ("final_loss", "final_objective", "zero_weights", "train_time_s", "steps_per_s"):
        assert key in metrics
    assert metrics["final_loss"] == metrics["final_objective"]
    history = tracking.client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(100))
    assert artifact_json(tracking, run.info.run_id, "weights.json") == {"weights": SGD_WEIGHTS, "bias": None}


def test_adam_defaults_reproduce_the_lesson(tracking):
    result = invoke(adam)
    assert result.exit_code == 0, result.output
    run = only_run(tracking)
    weights = artifact_json(tracking, run.info.run_id, "weights.json")["weights"]
    np.testing.assert_allclose(weights, ADAM_WEIGHTS, rtol=1e-14)
    assert run.data.params["beta2"] == "0.999"


@pytest.mark.parametrize("command", [l1, l2], ids=["l1", "l2"])
def test_penalty_entry_points_change_the_weights_unlike_the_lesson(tracking, command):
    result = invoke(command)
    assert result.exit_code == 0, result.output
    run = only_run(tracking)
    weights = artifact_json(tracking, run.info.run_id, "weights.json")["weights"]
    assert all(w < s for w, s in zip(weights, SGD_WEIGHTS, strict=True))  # shrunk towards 0
    assert run.data.metrics["final_objective"] > run.data.metrics["final_loss"]
    assert run.data.params["lambda"] == "0.01"


def test_logged_model_loads_and_predicts_on_a_dataframe(tracking):
    invoke(train, ["--fit-intercept", "true", "--model", "linear"])
    run = only_run(tracking)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    spec = artifact_json(tracking, run.info.run_id, "weights.json")
    frame = pd.DataFrame({"x0": [0.1, 0.4, -1.0], "x1": [0.2, 0.5, 2.0]})
    expected = frame.to_numpy() @ np.array(spec["weights"]) + spec["bias"]
    np.testing.assert_allclose(np.asarray(model.predict(frame)), expected)
    assert model.metadata.signature is not None


def test_the_model_is_an_mlflow_3_logged_model_with_the_final_metrics(tracking):
    invoke(sgd)
    run = only_run(tracking)
    (logged,) = mlflow.search_logged_models(experiment_ids=[tracking.experiment_id], output_format="list")
    assert (logged.name, logged.status.name, logged.source_run_id) == ("model", "READY", run.info.run_id)
    linked = {m.key: (m.value, m.step) for m in logged.metrics}
    assert linked["final_loss"] == (run.data.metrics["final_loss"], 0)  # a summary: step 0
    assert set(linked) >= {"final_objective", "zero_weights", "epochs_run"}
    assert "loss" not in linked  # the history stays the run's
    assert logged.params["learning_rate"] == run.data.params["learning_rate"]
    assert [o.model_id for o in run.outputs.model_outputs] == [logged.model_id]
    frame = pd.DataFrame({"x0": [0.1, 0.4], "x1": [0.2, 0.5]})
    by_id = mlflow.pyfunc.load_model(f"models:/{logged.model_id}").predict(frame)
    by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(frame)
    np.testing.assert_array_equal(np.asarray(by_id), np.asarray(by_run))
    np.testing.assert_allclose(np.asarray(by_id), np.maximum(frame.to_numpy() @ np.array(SGD_WEIGHTS), 0.0))


def test_logged_model_contains_no_pickle(tracking):
    invoke(sgd)
    run = only_run(tracking)
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model", dst_path=str(tracking.root / "m")
    )
    names = [p.name for p in __import__("pathlib").Path(local).rglob("*")]
    assert "MLmodel" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".cloudpickle"))]
    # It carries its forward pass (core.neuron), as source only.
    assert (__import__("pathlib").Path(local) / "code" / "core" / "neuron.py").is_file()
    assert "__pycache__" not in names


def test_trajectory_artifact_records_the_weight_path(tracking):
    invoke(sgd, ["--epochs", "5"])
    run = only_run(tracking)
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="trajectory.csv", dst_path=str(tracking.root / "t")
    )
    frame = pd.read_csv(local)
    assert list(frame.columns) == ["epoch", "w_0", "w_1", "loss"]
    assert frame["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert frame.loc[0, ["w_0", "w_1"]].tolist() == [0.1, 0.2]


def test_log_every_thins_metrics_but_keeps_the_last_epoch(tracking):
    invoke(sgd, ["--epochs", "10", "--log-every", "4"])
    run = only_run(tracking)
    steps = [m.step for m in tracking.client.get_metric_history(run.info.run_id, "loss")]
    assert steps == [0, 4, 8, 9]


def test_a_schedule_sets_each_epochs_rate_and_logs_only_its_own_options(tracking):
    from core import schedules

    result = invoke(
        train, ["--lr-schedule", "cyclic", "--lr-max-lr", "0.05", "--lr-step-size-up", "3", "--epochs", "12"]
    )
    assert result.exit_code == 0, result.output
    run = only_run(tracking)
    params = run.data.params
    assert (params["lr_max_lr"], params["lr_step_size_up"], params["lr_mode"]) == ("0.05", "3", "triangular")
    assert not {"lr_cyclic_gamma", "lr_pct_start", "lr_factor", "lr_poly_power", "lr_monitor"} & set(params)
    history = sorted(tracking.client.get_metric_history(run.info.run_id, "lr"), key=lambda m: m.step)
    rate = schedules.cyclic(0.01, epochs=12, max_lr=0.05, step_size_up=3)
    assert [m.value for m in history] == [rate(e) for e in range(12)]


def test_validation_split_logs_val_loss(tracking):
    invoke(train, ["--dataset", "synthetic", "--validation-fraction", "0.25", "--model", "linear", "--epochs", "20"])
    run = only_run(tracking)
    assert "val_loss" in run.data.metrics
    assert "final_val_loss" in run.data.metrics


def test_every_option_has_help_text():
    for name, command in COMMANDS.items():
        for p in command.params:
            if isinstance(p, click.Option) and p.name != "help":
                assert p.help, f"{name} --{p.name} has no help"


@pytest.mark.parametrize(
    ("command", "args", "needle"),
    [
        (sgd, ["--learning-rate", "nan"], "--learning-rate"),
        (sgd, ["--learning-rate", "-1"], "--learning-rate"),
        (sgd, ["--learning-rate", "inf"], "--learning-rate"),
        (adam, ["--beta1", "1"], "--beta1"),
        (adam, ["--beta2", "1.5"], "--beta2"),
        (l1, ["--lambda", "-0.1"], "--lambda"),
        (train, ["--optimizer", "newton"], "--optimizer"),
        (train, ["--optimizer", "adafactor", "--d", "0.5"], "--d"),
        (train, ["--optimizer", "adafactor", "--eps1", "-1"], "--eps1"),
        (train, ["--optimizer", "adafactor", "--beta2-decay", "0.2"], "--beta2-decay"),
        (train, ["--optimizer", "lbfgs", "--line-search-fn", "armijo"], "--line-search-fn"),
        (train, ["--optimizer", "lbfgs", "--max-eval", "0"], "--max-eval"),
        (train, ["--optimizer", "lbfgs", "--max-iter", "2.5"], "--max-iter"),
        (train, ["--optimizer", "adam", "--history-size", "5"], "--history-size"),
        (train, ["--optimizer", "lbfgs", "--batch-size", "10"], "lbfgs takes the full batch"),
        (train, ["--optimizer", "lbfgs", "--clip-norm", "1"], "lbfgs does not clip"),
        (train, ["--optimizer", "lbfgs", "--penalty", "l1", "--lambda", "0.1"], "l1_method subgradient"),
        (sgd, ["--epochs", "0"], "--epochs"),
        (sgd, ["--model", "tanh"], "--model"),
        (sgd, ["--nesterov", "maybe"], "--nesterov"),
        (sgd, ["--nesterov", "true"], "Nesterov"),
        (train, ["--optimizer", "sgd", "--beta1", "0.5"], "--beta1"),
        (train, ["--optimizer", "adam", "--weight-decay", "0.1"], "--weight-decay"),
        (train, ["--optimizer", "sgd", "--epsilon", "1e-8"], "--epsilon"),
        (train, ["--lambda", "0.1"], "--penalty"),
        (train, ["--penalty", "l2", "--l1-ratio", "0.3"], "--l1-ratio"),
        (train, ["--patience", "3"], "validation"),
        (sgd, ["--dataset", "no/such/file.csv"], "no such file"),
        (sgd, ["--validation-fraction", "0.9"], "validation"),
        (train, ["--lr-schedule", "onecycle", "--warmup-epochs", "2"], "warmup of its own"),
        (train, ["--lr-schedule", "plateau", "--warmup-epochs", "2"], "cannot follow a warmup"),
        (train, ["--lr-schedule", "plateau", "--lr-monitor", "val_loss"], "validation split"),
        (train, ["--lr-schedule", "cyclic", "--lr-max-lr", "0.001"], "max_lr (0.001) must be >="),
        (train, ["--lr-schedule", "onecycle", "--epochs", "10", "--lr-pct-start", "0.1"], "0 epochs long"),
        (sgd, ["--lr-pct-start", "1.5"], "--lr-pct-start"),
        (sgd, ["--lr-factor", "1"], "--lr-factor"),
        (adam, ["--lr-mode", "sine"], "--lr-mode"),
        (train, ["--lr-monitor", "objective"], "--lr-monitor"),
        (train, ["--lr-step-size-up", "0"], "--lr-step-size-up"),
        (l1, ["--lr-div-factor", "0.5"], "--lr-div-factor"),
        (l2, ["--lr-cyclic-gamma", "nan"], "--lr-cyclic-gamma"),
        (train, ["--lr-three-phase", "maybe"], "--lr-three-phase"),
        (sgd, ["--standardize", "maybe"], "--standardize"),
        (main, ["--standardize", "2"], "--standardize"),
    ],
)
def test_bad_options_are_refused_before_a_run_starts(tracking, command, args, needle):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_bad_csv_names_column_and_line(tracking, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,3\n4,oops,6\n")
    result = CliRunner().invoke(sgd, ["--dataset", str(path)])
    assert result.exit_code == 2
    assert "'b'" in result.output
    assert "line 3" in result.output


def test_logistic_on_a_target_with_three_values_is_a_clean_error_and_no_run(tracking, tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("x0,y\n1,a\n2,b\n3,c\n4,a\n")
    result = CliRunner().invoke(train, ["--dataset", str(path), "--model", "logistic"])
    assert result.exit_code == 2, result.output
    assert "target column 'y' has 3 distinct values (a, b, c); --model logistic needs two" in result.output
    assert "Traceback" not in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []  # refused before a run: none RUNNING


def test_csv_dataset_trains_on_its_columns(tracking, tmp_path):
    path = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "target": X @ [1.0, 0.0, -2.0]}).to_csv(path, index=False)
    result = invoke(
        train,
        [
            "--dataset",
            str(path),
            "--target",
            "target",
            "--model",
            "linear",
            "--epochs",
            "300",
            "--learning-rate",
            "0.1",
        ],
    )
    assert result.exit_code == 0, result.output
    run = only_run(tracking)
    weights = artifact_json(tracking, run.info.run_id, "weights.json")["weights"]
    np.testing.assert_allclose(weights, [1.0, 0.0, -2.0], atol=1e-3)


def test_divergence_ends_the_run_failed_with_a_reason_and_keeps_metrics(tracking):
    result = CliRunner().invoke(train, ["--learning-rate", "1e6", "--model", "linear"])
    assert result.exit_code == 1
    assert "diverged at epoch" in result.output
    assert "Traceback" not in result.output
    run = only_run(tracking)
    assert run.info.status == "FAILED"
    assert "diverged at epoch" in run.data.tags["failure_reason"]
    steps = [m.step for m in tracking.client.get_metric_history(run.info.run_id, "loss")]
    assert steps == list(range(len(steps)))
    assert steps


def test_params_already_logged_by_mlflow_run_do_not_conflict(tracking, monkeypatch):
    # `mlflow run -P learning_rate=1e-2` logs the string first, then starts the entry point.
    run = tracking.client.create_run(tracking.experiment_id)
    tracking.client.log_param(run.info.run_id, "learning_rate", "1e-2")
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    result = invoke(sgd, ["--learning-rate", "1e-2"])
    assert result.exit_code == 0, result.output
    got = tracking.client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["learning_rate"] == "1e-2"
    assert got.data.params["epochs"] == "100"


def test_mlproject_is_current_with_the_click_options():
    assert (mlproject.ROOT_FILE.read_text()) == mlproject.render()


def test_mlflow_reads_each_wrapped_command_as_the_one_line_it_stands_for(tmp_path):
    """The commands are folded over lines for people; MLflow must read the same single line as
    before (every declared option, `--flag {name}`, one space apart)."""
    import importlib
    import shutil

    from mlflow.projects import _project_spec

    shutil.copy(mlproject.ROOT_FILE, tmp_path / "MLproject")
    shutil.copy(mlproject.ROOT_FILE.parent / "python_env.yaml", tmp_path / "python_env.yaml")
    project = _project_spec.load_project(str(tmp_path))
    for ep in mlproject.ENTRY_POINTS:
        command = getattr(importlib.import_module(f"steps.{ep}"), ep)
        args = "".join(f" {flag} {{{name}}}" for name, flag, _t, _d in mlproject.parameters(command))
        assert project.get_entry_point(ep).command == f"python -m steps.{ep}{args}"


def test_mlproject_declares_every_option_with_its_default():

    spec = yaml.safe_load(mlproject.ROOT_FILE.read_text())
    for name, command in {**COMMANDS, "main": main}.items():
        declared = spec["entry_points"][name]["parameters"]
        for p in command.params:
            if not isinstance(p, click.Option) or p.name == "help" or p.default is None:
                continue
            key = p.opts[0].lstrip("-").replace("-", "_")
            assert key in declared, f"{name}: {key} not declared"
            assert f"{p.opts[0]} {{{key}}}" in spec["entry_points"][name]["command"]


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [("nadam", {"weight_decay": "0.0"}), ("asgd", {"alpha": "0.75"}), ("adadelta", {"epsilon": "1e-06"})],
)
def test_train_leaves_an_optimizer_dependent_default_to_the_optimizer(tracking, optimizer, expected):
    # --weight-decay's default is AdamW's 0.01 and --alpha's RMSprop's 0.99: NAdam and ASGD have their own.
    result = invoke(train, ["--optimizer", optimizer, "--epochs", "3"])
    assert result.exit_code == 0, result.output
    params = only_run(tracking).data.params
    assert {k: params[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--optimizer", "adafactor"], {"eps1": "none", "eps2": "0.001", "d": "1.0", "beta2_decay": "-0.8"}),
        (["--optimizer", "adafactor", "--eps1", "1e-30"], {"eps1": "1e-30"}),
        (
            ["--optimizer", "lbfgs", "--learning-rate", "1", "--line-search-fn", "strong_wolfe", "--max-eval", "None"],
            {"line_search_fn": "strong_wolfe", "max_eval": "none", "max_iter": "20", "history_size": "100"},
        ),
    ],
)
def test_none_is_an_option_value_for_torchs_none(tracking, args, expected):
    # Adafactor's eps1 and LBFGS's max_eval and line_search_fn default to torch's None, spelled none.
    result = invoke(train, [*args, "--epochs", "3"])
    assert result.exit_code == 0, result.output
    params = only_run(tracking).data.params
    assert {k: params[k] for k in expected} == expected


def test_an_underscore_spelling_is_read_as_the_option(tracking):
    # `mlflow run -P weight_decay=0.1` appends `--weight_decay 0.1` (train does not declare it).
    result = invoke(train, ["--optimizer", "nadam", "--weight_decay", "0.1", "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert only_run(tracking).data.params["weight_decay"] == "0.1"
    refused = CliRunner().invoke(train, ["--optimizer", "adam", "--rho", "0.5"])
    assert refused.exit_code == 2
    assert "--rho 0.5 does not apply to --optimizer adam (it is an option of adadelta)" in refused.output


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        (train, ["--lr-t0", "5"], "--lr-t0 5 does not apply to --lr-schedule constant (it is an option of "),
        (sgd, ["--lr-gamma", "0.3"], "--lr-gamma 0.3 does not apply to --lr-schedule constant (it is an option of st"),
        (train, ["--lr-monitor", "val_loss"], "--lr-monitor val_loss does not apply to --lr-schedule constant"),
        (train, ["--lr-schedule", "step", "--lr-max-lr", "0.5"], "does not apply to --lr-schedule step (it is an op"),
        (train, ["--warmup-start-factor", "0.5"], "--warmup-start-factor 0.5 does not act here: it is the warmup's"),
        (
            train,
            ["--lr-schedule", "cyclic", "--lr-cyclic-gamma", "0.9"],
            "--lr-cyclic-gamma 0.9 does not act here: it acts in --lr-mode exp_range only",
        ),
    ],
)
def test_a_schedule_option_the_schedule_does_not_read_is_refused(tracking, command, args, message):
    # (They were silently ignored: the run was a plain one, the option's value logged nowhere.)
    result = CliRunner().invoke(command, [*args, "--epochs", "3"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not tracking.client.search_runs([tracking.experiment_id])


@pytest.mark.parametrize(
    "args",
    [
        ["--lr-schedule", "cyclic", "--lr-mode", "exp_range", "--lr-cyclic-gamma", "0.9"],
        ["--warmup-epochs", "2", "--warmup-start-factor", "0.5"],
        ["--lr-schedule", "step", "--lr-gamma", "0.5"],
    ],
)
def test_a_schedule_option_the_schedule_reads_is_taken(tracking, args):
    result = invoke(train, [*args, "--epochs", "3"])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- hostile input (was test_hostile.py)

# --------------------------------------------------------------------------- 4: -P names MLflow passes on


def test_help_under_mlflow_run_fails_the_run_instead_of_finishing_it_empty(tracking, monkeypatch):
    run = tracking.client.create_run(tracking.experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run)  # `mlflow run -P help=1` appends `--help 1` to the command
    refused(CliRunner().invoke(sgd, ["--epochs", "100", "--help", "1"]), "help is not a parameter")


def test_an_option_given_twice_is_refused(tracking):
    # What `mlflow run -e sgd -P learning-rate=0.5` runs: the declared option, then the unknown key.
    result = CliRunner().invoke(sgd, ["--learning-rate", "0.01", "--epochs", "5", "--learning-rate", "0.5"])
    refused(result, "--learning-rate is given twice ('0.01', then '0.5')", "-P learning_rate=0.5")
    assert tracking.client.search_runs([tracking.experiment_id]) == []


# --------------------------------------------------------------------------- --help in sections, with examples

EVERY_COMMAND = ("main", "sgd", "adam", "l1", "l2", "train", "compare", "sweep", "benchmark", "recover")


def _command(name):
    import importlib

    return getattr(importlib.import_module(f"steps.{name}"), name)


def test_train_help_is_in_sections_with_the_optimizer_near_the_top():
    text = CliRunner().invoke(train, ["--help"], terminal_width=100).output
    lines = text.splitlines()
    titles = [line for line in lines if line and not line.startswith(" ") and line.endswith(":")]
    assert titles == [
        "Optimizer:",
        "Penalty:",
        "Data:",
        "Model:",
        "Training loop:",
        "Learning-rate schedule:",
        "Tracking:",
    ]
    assert next(i for i, line in enumerate(lines) if line.startswith("  --optimizer ")) < 20  # was line 216
    schedule = lines.index("Learning-rate schedule:")
    assert all(lines.index(line) > schedule for line in lines if line.startswith("  --lr-step-size "))
    assert "network with --hidden" in text  # the summary names what it trains today


@pytest.mark.parametrize("name", EVERY_COMMAND)
def test_every_option_is_in_one_section_once_and_every_example_parses(name):
    command = _command(name)
    text = CliRunner().invoke(command, ["--help"], terminal_width=200).output
    for param in command.params:
        if isinstance(param, click.Option):
            assert sum(line.lstrip().startswith(param.opts[0] + " ") or line.strip() == param.opts[0]
                       for line in text.splitlines()) == 1, param.opts[0]  # fmt: skip
    examples = text.split("Examples:")[1].strip().splitlines()
    assert examples
    import shlex

    for line in examples:
        words = shlex.split(line.split("#")[0])
        if words[:3] == ["python", "-m", f"steps.{name}"]:
            with command.make_context(name, words[3:], resilient_parsing=False) as ctx:
                assert ctx.params is not None
