"""`sweep` end to end: a grid as nested parallel children, the best tagged, a failure survived."""

from __future__ import annotations

import json
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
        (["--learning-rates", "1e-4:1e-1"], "is a range: ranges need --search random or tpe"),
        (["--search", "tpe", "--learning-rates", "0.1:0.01"], "0 < LOW < HIGH"),
        (["--search", "tpe", "--learning-rates", "0.1:0.1"], "0 < LOW < HIGH"),
        (["--search", "random", "--lambdas", "0:1"], "0 < LOW < HIGH"),
        (["--search", "random", "--lambdas", "1e-3:x"], "'x'"),
        (["--n-trials", "5"], "--n-trials needs --search random or tpe"),
        (["--prune", "true", "--timeout", "3"], "--timeout, --prune need --search random or tpe"),
        (["--storage", "mlflow"], "--storage needs --search random or tpe"),
        (["--search", "tpe", "--n-trials", "0"], "--n-trials"),
        (["--search", "tpe", "--optimizers", "adam,bogus"], "unknown bogus"),
        (["--search", "tpe", "--optimizers", "adam,adam"], "named twice"),
        (["--search", "random", "--storage", "mlflow"], "--storage needs --study-name"),
        (["--search", "random", "--study-name", "s", "--storage", "study.db"], "database URL"),
        (["--search", "random", "--study-name", "a b"], "--study-name"),
        (["--search", "random", "--study-name", "s", "--storage", "sqlite:////no/such/dir/s.db"], "cannot open"),
        (["--search", "random", "--study-name", "s", "--storage", "nosuchdb://x/y"], "cannot open"),
        (["--search", "tpe", "--launcher", "mlflow"], "--launcher local"),
        (["--search", "tpe", "--reuse", "true"], "--reuse applies to --search grid"),
    ],
)
def test_bad_sweep_options_are_refused_before_anything_starts(tracking, args, needle):
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_a_pruned_run_ends_finished_tagged_with_the_history_it_logged(tracking):
    from core.config import TrainConfig
    from core.training import load_data
    from steps.run.errors import Pruned
    from steps.run.runner import train_run

    cfg = TrainConfig()
    reported = []

    def on_epoch(epoch, metrics):
        reported.append((epoch, metrics["objective"]))
        if epoch == 3:
            raise Pruned(epoch)

    assert train_run(cfg, "sgd", load_data(cfg), on_epoch=on_epoch) is None
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["pruned"] == "epoch 3"
    history = tracking.client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert [m.value for m in tracking.client.get_metric_history(run.info.run_id, "objective")] == [
        v for _, v in reported
    ]
    assert "final_loss" not in run.data.metrics
    logged = {a.path for a in tracking.client.list_artifacts(run.info.run_id)}
    assert {"trajectory.csv", "internals.csv"} <= logged
    assert "weights.json" not in logged


@pytest.mark.slow
def test_tpe_search_with_pruning_runs_its_trials_as_children_and_reports_the_study(tracking):
    out = tracking.root / "report"
    # Seed 4: TPE's first (random) learning rates are 0.23, 0.008, 0.24, 0.031, 0.027 then 0.00056, far
    # below their median: after 5 complete trials the median pruner stops that sixth one.
    args = ["--technique", "sgd", "--search", "tpe", "--n-trials", "6", "--learning-rates", "1e-4:0.3"]
    args += ["--seed", "4", "--epochs", "40", "--prune", "true", "--max-parallel", "1", "--output-dir", str(out)]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output
    runs = tracking.client.search_runs([tracking.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("technique") == "sweep"]
    children = sorted((r for r in runs if r.data.tags.get("technique") == "sgd"), key=lambda r: r.info.start_time)
    assert len(children) == 6
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    assert [c.data.tags["optuna.trial"] for c in children] == [str(i) for i in range(6)]
    assert children[0].info.run_name == "sgd lr=0.2304 (trial 0)"
    *complete, pruned = children
    assert pruned.data.tags["pruned"] == "epoch 4"  # the warmup: a tenth of the 40 epochs
    assert [m.step for m in tracking.client.get_metric_history(pruned.info.run_id, "loss")] == [0, 1, 2, 3, 4]
    assert not any("pruned" in c.data.tags for c in complete)
    best = min(complete, key=lambda c: c.data.metrics["final_objective"])
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_final_objective"] == best.data.metrics["final_objective"]
    assert parent.data.metrics["trials"] == 6
    assert parent.data.metrics["trials_pruned"] == 1
    assert parent.data.params["search"] == "tpe"
    assert parent.data.params["learning_rates"] == "0.0001:0.3"
    assert parent.data.tags["optuna.storage"] == "memory"
    parent_files = {a.path for a in tracking.client.list_artifacts(parent.info.run_id)}
    assert parent_files >= {"optimization_history.png", "param_importances.png", "study.json"}
    study = json.loads((out / "study.json").read_text())  # what compare.html draws live (test_report_interactive)
    assert study["number"] == [0, 1, 2, 3, 4]  # the complete trials
    assert study["value"] == [complete[k].data.metrics["final_objective"] for k in range(5)]
    assert list(study["importances"]) == ["learning_rate"]
    html = (out / "compare.html").read_text()
    assert "pruned by the sweep&#x27;s pruner (epoch 4)" in html  # the run's note, in the table
    assert "Runs that need a look" not in html  # a pruned trial did what pruning is for
    assert "Pruned by the search: 1 of 6 trials (stopped at epoch 4)" in html
    assert "Pruned by the search: 1 of 6 trials" in result.output
    assert set(pd.read_csv(out / "compare.csv")["run_id"]) == {c.info.run_id for c in children}


def test_a_search_cut_short_by_its_timeout_says_so(tracking):
    # (It stopped starting trials without a word: 7 of 100 ran, and nothing said why.)
    args = ["--search", "random", "--n-trials", "100", "--timeout", "0.3", "--max-parallel", "1", "--epochs", "200"]
    result = CliRunner().invoke(sweep, [*args, "--output-dir", str(tracking.root / "out")])
    assert result.exit_code == 0, result.output
    started = len(tracking.client.search_runs([tracking.experiment_id], "tags.technique = 'l1'"))
    assert 0 < started < 100
    assert f"--timeout 0.3 s has passed: no new trial starts ({started} of --n-trials 100 started)" in result.output


def test_random_and_tpe_draw_the_same_values_from_the_same_seed_and_others_with_a_storage():
    import optuna

    from steps.flow.search import Range, Search, Space

    space = Space("l2", Range(1e-4, 0.3), (0.01, 0.1), ("sgd", "adam"))

    def draws(method, seed, storage="", run_id="r1"):
        study = optuna.create_study(sampler=Search(method, 5, 0, False, "s", storage, seed).sampler(run_id))
        out = []
        for _ in range(5):
            trial = study.ask()
            values = space.suggest(trial)
            study.tell(trial, values["learning_rate"])
            out.append(values)
        return out

    for method in ("random", "tpe"):
        assert draws(method, 0) == draws(method, 0)
        assert draws(method, 0) != draws(method, 1)
        # Two sweeps adding to one stored study, started with the same --seed, do not draw the same values.
        assert draws(method, 0, "mlflow", "r1") != draws(method, 0, "mlflow", "r2")
    assert {v["optimizer"] for v in draws("random", 0)} == {"sgd", "adam"}
    assert all(1e-4 <= v["learning_rate"] <= 0.3 and v["lambda"] in (0.01, 0.1) for v in draws("random", 0))


def test_a_study_made_by_a_sweep_with_other_settings_is_refused(tracking):
    import optuna

    url = f"sqlite:///{tracking.root / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.set_user_attr("gdlab", {"technique": "l2"})
    args = ["--search", "random", "--study-name", "s", "--storage", url]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 2, result.output
    assert "was made by a sweep with other settings: technique ('l2' there, 'l1' here)" in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 0


def test_a_study_refused_for_one_training_option_names_that_option_only(tracking):
    # (It showed the whole table of ~50 training options twice, the one that differed buried in it.)
    url = f"sqlite:///{tracking.root / 'study.db'}"
    args = ["--search", "random", "--n-trials", "1", "--study-name", "s", "--storage", url, "--max-parallel", "1"]
    first = CliRunner().invoke(sweep, [*args, "--epochs", "30", "--output-dir", str(tracking.root / "a")])
    assert first.exit_code == 0, first.output
    result = CliRunner().invoke(sweep, [*args, "--epochs", "20"])
    assert result.exit_code == 2, result.output
    assert "was made by a sweep with other settings: epochs ('30' there, '20' here); a trial's" in result.output


def test_the_mlflow_storage_makes_one_study_reads_every_trial_in_order_and_keeps_finished_ones(tracking):
    import optuna

    from steps.flow import study as study_mod

    spec, storage = study_mod._open_mlflow("shared")
    again, _ = study_mod._open_mlflow("shared")  # a second sweep of the same name finds the study
    assert again == spec
    experiment = tracking.client.get_experiment_by_name("gdlab-test.optuna.shared")
    (container,) = tracking.client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'shared'")
    assert container.info.status == "FINISHED"  # no run left RUNNING
    storage.page_size = 2  # read in pages (MLflow's own storage reads one page of 1,000 at most)
    study = optuna.load_study(study_name="shared", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(5):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, float(i))
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert [t.value for t in trials] == [0.0, 1.0, 2.0, 3.0, 4.0]
    reads = []
    real = type(storage).__mro__[1].get_trial
    storage.__class__.__mro__[1].get_trial = lambda self, trial_id: reads.append(trial_id) or real(self, trial_id)
    try:
        assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 5
    finally:
        storage.__class__.__mro__[1].get_trial = real
    assert reads == []  # finished trials are read once
    study_mod.close_storage(spec)


def test_optimizers_are_a_grid_axis_of_train_children_with_the_techniques_penalty(tracking, monkeypatch):
    planned = []
    monkeypatch.setattr("steps.sweep.workflow", lambda _t, children, *a, **k: planned.extend(children) or ({}, None))
    args = ["--optimizers", "sgd,adam", "--learning-rates", "0.01,0.1", "--lambdas", "0.1", "--technique", "l1"]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output
    assert [c.label for c in planned] == [
        "sgd+l1 lr=0.01 lambda=0.1",
        "sgd+l1 lr=0.1 lambda=0.1",
        "adam+l1 lr=0.01 lambda=0.1",
        "adam+l1 lr=0.1 lambda=0.1",
    ]
    assert {c.entry_point for c in planned} == {"train"}
    assert [(c.config.optimizer, c.config.penalty, c.config.lam) for c in planned[1:3]] == [
        ("sgd", "l1", 0.1),
        ("adam", "l1", 0.1),
    ]


def test_a_sweep_over_optimizers_needs_no_technique_and_adds_no_penalty(tracking):
    # --technique used to default to l1, so `sweep --optimizers sgd,adam` trained every child with an L1 term.
    args = ["--optimizers", "sgd,adam", "--learning-rates", "0.01,0.1", "--epochs", "3"]
    result = CliRunner().invoke(sweep, [*args, "--output-dir", str(tracking.root / "out")])
    assert result.exit_code == 0, result.output
    runs = tracking.client.search_runs([tracking.experiment_id])
    children = [r for r in runs if r.data.tags.get("technique") == "train"]
    assert len(children) == 4
    assert {r.data.tags["penalty"] for r in children} == {"none"}
    assert {r.data.tags["optimizer"] for r in children} == {"sgd", "adam"}
    assert [r.info.run_name for r in runs if r.data.tags.get("technique") == "sweep"] == ["sweep sgd,adam"]


def test_the_optimization_history_is_on_a_log_axis_when_its_values_span_decades():
    import matplotlib.pyplot as plt
    import optuna

    from steps.flow.search import optimization_history

    for values, scale in (([0.011, 0.012, 1.34, 0.0105], "log"), ([0.5, 0.4, 0.3], "linear")):
        study = optuna.create_study()
        for v in values:
            study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=v))
        assert optimization_history(study).get_yscale() == scale
        plt.close("all")


def test_a_grid_whose_best_is_on_its_edge_says_so(tracking):
    # lr = 0.1 was the best of 0.001..0.1 and nothing said the optimum may lie beyond.
    args = ["--technique", "sgd", "--learning-rates", "0.001,0.01,0.1", "--epochs", "20"]
    result = CliRunner().invoke(sweep, [*args, "--output-dir", str(tracking.root / "a")])
    assert result.exit_code == 0, result.output
    assert "the best learning rate, 0.1, is the largest tried: the best may lie beyond the grid" in result.output
    (parent,) = [r for r in tracking.client.search_runs([tracking.experiment_id]) if r.info.run_name == "sweep sgd"]
    assert parent.data.tags["best_on_edge"].startswith("the best learning rate, 0.1")
    # Inside the grid (GD on the lesson is stable below lr 4.37): no warning.
    args = ["--technique", "sgd", "--learning-rates", "0.1,4,20", "--epochs", "20"]
    result = CliRunner().invoke(sweep, [*args, "--output-dir", str(tracking.root / "b")])
    assert "best (final_objective" in result.output
    assert "beyond the grid" not in result.output


def test_a_study_in_an_in_memory_database_is_refused(tracking):
    # Every worker would open its own empty study: each child then failed.
    args = ["--search", "random", "--study-name", "s", "--learning-rates", "1e-3:1", "--n-trials", "2"]
    for storage in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        result = CliRunner().invoke(sweep, [*args, "--storage", storage])
        assert result.exit_code == 2, result.output
        assert "a database in memory" in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_two_trials_of_an_mlflow_stored_study_never_keep_one_number(tracking, monkeypatch):
    """The shared-study race (issue 24): a worker takes its timestamp, is descheduled, and writes it
    after another worker's later one; MLflow orders the study's ``trial_id`` history by timestamp,
    so both read the same place and the two trials got one number (two children named
    "(trial 0)"). Numbers are read again when a trial ends."""
    import types

    import mlflow.optuna.storage as mlflow_storage
    import optuna
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from steps.flow.study import _shared_mlflow_storage_class

    shared = _shared_mlflow_storage_class()
    first, second = shared(tracking.experiment_id), shared(tracking.experiment_id)
    study_id = first.create_new_study([StudyDirection.MINIMIZE], "race")
    now = {"t": 1000.0}
    monkeypatch.setattr(mlflow_storage, "time", types.SimpleNamespace(time=lambda: now["t"], sleep=lambda s: None))
    now["t"] = 1000.105
    late = second.create_new_trial(study_id)  # the second worker's trial: a later timestamp, written first
    now["t"] = 1000.100
    early = first.create_new_trial(study_id)  # the first worker's: taken earlier, written after
    assert first.get_trial_number_from_id(early) == second.get_trial_number_from_id(late) == 0  # the race
    for storage, trial_id in ((first, early), (second, late)):
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    for storage in (first, second):
        storage.flush_all_batches()
    monkeypatch.undo()
    trials = optuna.load_study(study_name="race", storage=shared(tracking.experiment_id)).get_trials()
    assert sorted((t.number, t._trial_id) for t in trials) == [(0, early), (1, late)]
