"""`recover` after a process was killed outright: it ends the runs nobody else will end, and never
one whose process is alive (issue 24). Its spill-file half is tested in test_run_tracking.py and,
against a real server, in test_run_tracking_server.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from steps.run.lifecycle import HEARTBEAT_TAG, OWNER_TAG


def _recover(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steps.recover"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _wait(predicate, timeout: float = 90, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.3)


def _start(args: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.slow  # main and a training run started, killed and recovered: about half a minute
def test_recover_ends_what_a_killed_main_left_running_and_never_a_run_that_is_alive(tracking, project_env):
    client = tracking.client
    env = {**project_env, "GDLAB_SPILL_DIR": str(tracking.root / "spill")}
    forever = ["--epochs", "100000000", "--log-every", "1000"]
    main = _start(["steps.main", *forever, "--output-dir", str(tracking.root / "out")], env, tracking.root)
    alive = _start(["steps.train", *forever], env, tracking.root)
    try:

        def runs():
            return {r.info.run_name: r for r in client.search_runs([tracking.experiment_id])}

        _wait(lambda: sum("loss" in r.data.metrics for r in runs().values()) >= 3, what="two children and train")
        main.kill()  # SIGKILL: main cannot close anything
        main.wait(timeout=30)
        # Its workers lose their parent and close their children KILLED; main's own run stays RUNNING.
        children = [r for r in runs().values() if r.data.tags.get("mlflow.parentRunId")]
        _wait(
            lambda: all(client.get_run(c.info.run_id).info.status != "RUNNING" for c in children),
            what="the workers close their runs",
        )
        (parent,) = [r for r in runs().values() if r.data.tags.get("technique") == "main"]
        assert client.get_run(parent.info.run_id).info.status == "RUNNING"

        recovered = _recover(env, tracking.root)
        print(recovered.stdout)  # for the closing note (-s)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        after = client.get_run(parent.info.run_id)
        assert after.info.status == "KILLED"
        reason = after.data.tags["failure_reason"]
        assert f"its process {main.pid} on {socket.gethostname()} is gone (no such process)" in reason
        assert "its last heartbeat was at" in reason
        assert "1 RUNNING run(s) have a live process: left alone" in recovered.stdout
        (train,) = [r for r in runs().values() if r.data.tags.get("technique") == "train"]
        assert client.get_run(train.info.run_id).info.status == "RUNNING"  # alive: never ended
        statuses = {r.info.run_name: r.info.status for r in runs().values()}
        print(statuses)
        assert [name for name, status in statuses.items() if status == "RUNNING"] == [train.info.run_name]
    finally:
        main.kill()
        alive.send_signal(signal.SIGTERM)
        alive.wait(timeout=60)
    assert client.get_run(train.info.run_id).info.status == "KILLED"  # its own process ended it


def test_a_run_on_another_host_is_ended_only_once_its_heartbeat_is_stale(tracking, monkeypatch):
    from click.testing import CliRunner

    from steps.recover import recover

    monkeypatch.setenv("GDLAB_HEARTBEAT_S", "1")  # stale after 4 s
    client = tracking.client
    owner = json.dumps({"host": "another-machine", "pid": 4242, "start": 1})
    now = time.time()
    fresh = client.create_run(tracking.experiment_id, tags={OWNER_TAG: owner, HEARTBEAT_TAG: str(int(now))})
    stale = client.create_run(tracking.experiment_id, tags={OWNER_TAG: owner, HEARTBEAT_TAG: str(int(now - 60))})
    foreign = client.create_run(tracking.experiment_id)  # no owner: not gdlab's to judge
    result = CliRunner().invoke(recover, [])
    assert result.exit_code == 0, result.output
    assert client.get_run(fresh.info.run_id).info.status == "RUNNING"
    assert client.get_run(foreign.info.run_id).info.status == "RUNNING"
    ended = client.get_run(stale.info.run_id)
    assert ended.info.status == "KILLED"
    reason = ended.data.tags["failure_reason"]
    assert "its process 4242 on another-machine is gone (no heartbeat for over 4 s)" in reason
    assert "1 RUNNING run(s) have a live process: left alone" in result.output


def test_recover_removes_the_study_journal_of_a_sweep_that_is_gone_and_keeps_a_live_ones(tracking):
    from click.testing import CliRunner

    from steps.recover import recover

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Path(tempfile.mkdtemp(prefix=f"gdlab-study-{int(gone.stdout)}-"))
    live = Path(tempfile.mkdtemp(prefix=f"gdlab-study-{os.getpid()}-"))
    (dead / "study.journal").write_text("{}\n")
    try:
        result = CliRunner().invoke(recover, [])
        assert result.exit_code == 0, result.output
        assert f"removed {dead}: the study journal of a sweep that is gone" in result.output
        assert not dead.exists()
        assert live.exists()
    finally:
        live.rmdir()


def test_a_workflow_never_ends_a_child_whose_values_wait_in_its_spill_file(tracking, monkeypatch):
    """A worker's flush gave up and spilled; the parent's close must not end the run before `recover`
    has written the values (it did: recover then kept them in .ended, unwritten)."""
    from mlflow.entities import Metric

    from steps.flow.launch import close_run
    from steps.recover import replay
    from steps.run import tracking as store

    monkeypatch.setenv("GDLAB_SPILL_DIR", str(tracking.root / "spill"))
    client = tracking.client
    run_id = client.create_run(tracking.experiment_id).info.run_id
    path = store.spill(run_id, metrics=[Metric("loss", 0.5, 1, 0), Metric("loss", 0.25, 2, 1)])
    close_run(store.store_client(), run_id, "FAILED", "its worker gave up on the store")
    assert client.get_run(run_id).info.status == "RUNNING"
    replay(path)
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.5, 0.25]
    ended = client.get_run(run_id)
    assert ended.info.status == "FAILED"
    assert ended.data.tags["failure_reason"] == "its worker gave up on the store"


@pytest.mark.parametrize("tag", ["not json", "123", "[1, 2]"])
def test_recover_leaves_a_run_whose_owner_tag_it_cannot_read_alone(tracking, tag):
    from click.testing import CliRunner

    from steps.recover import recover

    run_id = tracking.client.create_run(tracking.experiment_id, tags={OWNER_TAG: tag}).info.run_id
    result = CliRunner().invoke(recover, [])
    assert result.exit_code == 0, result.output
    assert tracking.client.get_run(run_id).info.status == "RUNNING"
