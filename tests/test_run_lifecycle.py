"""One run lifecycle (steps/run/lifecycle.py): every way a block ends gives the right run status."""

from __future__ import annotations

import os
import signal

import click
import mlflow
import pytest
from click.testing import CliRunner

from steps.run.lifecycle import RunFailed, RunStopped, tracked_run
from steps.sgd import sgd


def status_and_reason(tracking, run_id):
    run = tracking.client.get_run(run_id)
    return run.info.status, run.data.tags.get("failure_reason")


def test_a_block_that_returns_finishes_the_run_with_its_buffered_metrics(tracking):
    with tracked_run(name="ok", tags={"technique": "test"}) as run:
        run.log_params({"a": 1})
        for step in range(3):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step)
    assert status_and_reason(tracking, run.id) == ("FINISHED", None)
    assert [m.step for m in tracking.client.get_metric_history(run.id, "loss")] == [0, 1, 2]
    assert tracking.client.get_run(run.id).info.run_name == "ok"


def diverge(runs: list) -> None:
    with tracked_run() as run:
        runs.append(run)
        run.log_metrics({"loss": 1.0}, 0)
        raise RunFailed("diverged at epoch 3")


def test_run_failed_ends_failed_with_the_reason_and_is_raised_with_the_run_id(tracking):
    runs = []
    with pytest.raises(RunFailed) as caught:
        diverge(runs)
    (run,) = runs
    assert caught.value.run_id == run.id
    assert status_and_reason(tracking, run.id) == ("FAILED", "diverged at epoch 3")
    assert tracking.client.get_metric_history(run.id, "loss")  # flushed before the end


def test_fail_without_an_exception_ends_failed(tracking):
    with tracked_run() as run:
        run.fail("failed: l2")
    assert status_and_reason(tracking, run.id) == ("FAILED", "failed: l2")


def signalled(runs: list, saved: list, signum: int) -> None:
    with tracked_run() as run:
        runs.append(run)
        run.on_close.append(lambda: saved.append("trajectory"))
        os.kill(os.getpid(), signum)


@pytest.mark.parametrize(
    ("signum", "code", "reason"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted (Ctrl-C)")],
)
def test_a_signal_ends_the_run_killed_and_runs_the_close_hooks(tracking, signum, code, reason):
    runs, saved = [], []
    with pytest.raises(RunStopped) as caught:
        signalled(runs, saved, signum)
    (run,) = runs
    assert (caught.value.exit_code, caught.value.run_id) == (code, run.id)
    assert status_and_reason(tracking, run.id) == ("KILLED", reason)
    assert saved == ["trajectory"]


def interrupted_inside(runs: list) -> None:
    with tracked_run(name="parent") as parent, tracked_run(name="compare") as inner:
        runs += [parent, inner]
        raise KeyboardInterrupt


def test_a_run_stopped_inside_a_nested_run_stops_the_outer_one_too(tracking):
    runs = []
    with pytest.raises(RunStopped) as caught:
        interrupted_inside(runs)
    parent, inner = runs
    assert caught.value.run_id == parent.id
    assert status_and_reason(tracking, inner.id) == ("KILLED", "interrupted (Ctrl-C)")
    assert status_and_reason(tracking, parent.id) == ("KILLED", "interrupted (Ctrl-C)")
    assert tracking.client.get_run(inner.id).data.tags["mlflow.parentRunId"] == parent.id
    assert mlflow.active_run() is None


def refuse(runs: list) -> None:
    with tracked_run() as run:
        runs.append(run)
        raise click.ClickException("nothing to compare")


def test_any_other_error_ends_the_run_failed_and_is_raised(tracking):
    runs = []
    with pytest.raises(click.ClickException):
        refuse(runs)
    (run,) = runs
    assert status_and_reason(tracking, run.id) == ("FAILED", "ClickException: nothing to compare")


def test_a_finished_run_in_mlflow_run_id_is_never_written_into(tracking, monkeypatch):
    done = tracking.client.create_run(tracking.experiment_id).info.run_id
    tracking.client.set_terminated(done, "FINISHED")
    monkeypatch.setenv("MLFLOW_RUN_ID", done)
    result = CliRunner().invoke(sgd, [])
    assert result.exit_code == 1
    assert f"run {done} (from MLFLOW_RUN_ID) is FINISHED" in result.output
    assert "Traceback" not in result.output
    run = tracking.client.get_run(done)
    assert run.info.status == "FINISHED"
    assert run.data.params == {}
    assert run.data.metrics == {}


@pytest.mark.parametrize(("given", "kept"), [("auspicious-kit-7", False), ("lesson adam seed=3", True)])
def test_a_run_mlflow_run_made_is_renamed_for_its_entry_point_only_when_mlflow_named_it_at_random(
    tracking, monkeypatch, given, kept
):
    # `mlflow run` makes the run (random name unless --run-name / projects.run(run_name=...)) and sets MLFLOW_RUN_ID.
    made = tracking.client.create_run(
        tracking.experiment_id, run_name=given, tags={"mlflow.project.entryPoint": "train"}
    )
    monkeypatch.setenv("MLFLOW_RUN_ID", made.info.run_id)
    with tracked_run(name="train"):
        pass
    assert tracking.client.get_run(made.info.run_id).info.run_name == (given if kept else "train")


def test_a_pruned_run_or_one_without_the_model_a_child_logs_never_stands_in_for_it(tracking):
    from steps.flow.launch import find_reusable, make_child
    from steps.run.runner import load_checked, train_run

    child = make_child("adam", "adam", {"epochs": 5})
    data = load_checked(child.config)

    def trained(log_model=True, tags=None):
        run = tracking.client.create_run(tracking.experiment_id, tags={"mlflow.project.entryPoint": "adam"})
        train_run(child.config, "adam", data, run_id=run.info.run_id, log_model=log_model)
        for k, v in (tags or {}).items():
            tracking.client.set_tag(run.info.run_id, k, v)
        return run.info.run_id

    trained(tags={"pruned": "epoch 2"})  # (a pruned trial: FINISHED, no final metrics)
    trained(log_model=False)
    assert find_reusable(tracking.client, tracking.experiment_id, child, data) is None
    plain = make_child("adam", "adam", {"epochs": 5}, log_model=False)
    assert find_reusable(tracking.client, tracking.experiment_id, plain, data) is not None
    whole = trained()
    assert find_reusable(tracking.client, tracking.experiment_id, child, data) == whole


# --------------------------------------------------------------------------- one writer a run (issue 23, case 7)


@pytest.mark.slow  # two training processes: about 10 s
def test_a_second_process_given_the_id_of_a_run_a_live_process_writes_is_refused_and_writes_nothing(
    tracking, project_env
):
    import json
    import subprocess
    import sys
    import time

    client = tracking.client
    run_id = client.create_run(tracking.experiment_id).info.run_id
    env = {**project_env, "MLFLOW_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "steps.train", "--epochs", "100000000", "--log-every", "1000"],
        env=env,
        cwd=tracking.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "loss" not in client.get_run(run_id).data.metrics and time.monotonic() < deadline:
            time.sleep(0.2)
        before = client.get_run(run_id)
        assert json.loads(before.data.tags["gdlab.owner"])["pid"] == first.pid
        second = subprocess.run(
            [sys.executable, "-m", "steps.adam", "--epochs", "3", "--learning-rate", "0.5"],
            env=env,
            cwd=tracking.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        first.send_signal(signal.SIGTERM)
        _, first_err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert second.returncode == 1, second.stderr
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith(f"Error: run {run_id} (from MLFLOW_RUN_ID) is being written by process {first.pid} on ")
    assert "Traceback" not in second.stderr
    assert first.returncode == 143, first_err
    after = client.get_run(run_id)
    assert after.info.status == "KILLED"
    assert after.data.params == before.data.params  # the second wrote nothing: the first's params,
    assert after.data.params["optimizer"] == "sgd"
    assert "adam" not in after.data.tags.values()  # tags,
    steps = [m.step for m in client.get_metric_history(run_id, "loss")]
    assert len(steps) == len(set(steps))  # and no second history


def test_a_run_whose_owner_is_gone_can_be_resumed(tracking, monkeypatch):
    import json
    import socket

    from steps.run.lifecycle import OWNER_TAG, live_owner, owner

    me = json.loads(owner())
    assert live_owner(owner()) is None  # this process
    gone = subprocess_pid_that_exited()
    here = socket.gethostname()
    assert live_owner(json.dumps({"host": here, "pid": gone, "start": 1})) is None
    assert live_owner(json.dumps({"host": here, "pid": os.getppid(), "start": me["start"] + 10**9})) is None  # reused
    assert live_owner(json.dumps({"host": here, "pid": os.getppid(), "start": None})).startswith("process ")
    assert live_owner(json.dumps({"host": "elsewhere", "pid": 1, "start": 1})) == "process 1 on elsewhere"
    assert live_owner("not json") is None

    run_id = tracking.client.create_run(
        tracking.experiment_id, tags={OWNER_TAG: json.dumps({"host": here, "pid": gone})}
    )
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id.info.run_id)
    result = CliRunner().invoke(sgd, ["--epochs", "2"])
    assert result.exit_code == 0, result.output
    run = tracking.client.get_run(run_id.info.run_id)
    assert run.info.status == "FINISHED"
    assert json.loads(run.data.tags[OWNER_TAG])["pid"] == os.getpid()


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)
