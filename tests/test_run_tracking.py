"""Bad input, interruption, concurrency, an unreachable server: nothing lost, no traceback."""

from __future__ import annotations

import contextlib
import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import mlflow
import pytest
from click.testing import CliRunner
from conftest import interactive_sigint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import DataError
from core.training import DivergenceError, fit, load_data
from steps.run.runner import make_config
from steps.sgd import sgd
from steps.train import train

ROOT = Path(__file__).resolve().parents[1]


def start(env, *args):
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interactive_sigint,
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_flushes_metrics_and_ends_the_run_killed(tracking, project_env, sig, code):
    proc = start(project_env, "steps.train", "--dataset", "synthetic", "--model", "linear", "--epochs", "100000000")
    try:
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline:  # wait until the run is live and has flushed some epochs
            runs = tracking.client.search_runs([tracking.experiment_id])
            if runs and tracking.client.get_metric_history(runs[0].info.run_id, "loss"):
                break
            time.sleep(0.3)
        assert runs, "the run never started"
        time.sleep(0.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code
    assert "Traceback" not in err
    run = tracking.client.get_run(runs[0].info.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"] in ("interrupted (Ctrl-C)", "terminated (SIGTERM)")
    steps = [m.step for m in tracking.client.get_metric_history(run.info.run_id, "loss")]
    assert steps == list(range(len(steps)))  # contiguous from epoch 0: nothing buffered was lost
    assert len(steps) > 1


@pytest.mark.slow
def test_four_runs_at_once_on_one_sqlite_store_lose_nothing(tracking, project_env):
    procs = [
        start(
            project_env,
            "steps.train",
            "--dataset",
            "synthetic",
            "--model",
            "linear",
            "--epochs",
            "1500",
            "--seed",
            str(i),
        )
        for i in range(4)  # twice as many writers as this machine's cores
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    runs = tracking.client.search_runs([tracking.experiment_id])
    assert len(runs) == 4
    for run in runs:
        assert run.info.status == "FINISHED"
        steps = [m.step for m in tracking.client.get_metric_history(run.info.run_id, "loss")]
        assert steps == list(range(1500))


@pytest.mark.parametrize("module", ["steps.sgd", "steps.compare", "steps.main"])
def test_an_unreachable_tracking_server_is_a_clear_error_within_seconds(project_env, module):
    env = dict(project_env, MLFLOW_TRACKING_URI="http://127.0.0.1:9")  # port 9 (discard): nothing listens
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 1
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


NUMERIC = {
    "--learning-rate": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["1e-2", "x", ""])),
    "--momentum": st.one_of(st.floats(-1, 2), st.just("nan")),
    "--beta1": st.floats(-0.5, 1.5),
    "--beta2": st.floats(-0.5, 1.5),
    "--epsilon": st.one_of(st.floats(-1, 1), st.just("inf")),
    "--lambda": st.floats(-1, 10),
    "--l1-ratio": st.floats(-1, 2),
    "--alpha": st.floats(-1, 2),
    "--lr-decay": st.floats(-1, 2),
    "--weight-decay": st.floats(-1, 2),
    "--epochs": st.one_of(st.integers(-3, 30), st.just("1.5")),
    "--batch-size": st.integers(-2, 4),
    "--validation-fraction": st.floats(-0.5, 1.5),
    "--patience": st.integers(-1, 3),
    "--optimizer": st.sampled_from(["sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"]),
    "--penalty": st.sampled_from(["none", "l1", "l2", "elasticnet", "l3"]),
    "--nesterov": st.sampled_from(["true", "false", "maybe"]),
    "--lr-schedule": st.sampled_from(["constant", "step", "exponential", "cosine", "invscaling", "warm"]),
}


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    options=st.dictionaries(st.sampled_from(sorted(NUMERIC)), st.none(), max_size=6).flatmap(
        lambda keys: st.fixed_dictionaries({k: NUMERIC[k] for k in keys})
    )
)
def test_any_options_either_train_or_give_a_clean_usage_error(options):
    args = [a for k, v in options.items() for a in (k, str(v))]
    try:
        with train.make_context("train", args) as ctx:
            cfg = make_config("train", **ctx.params)
    except click.UsageError as exc:  # BadParameter is one; the message names what is wrong
        message = exc.format_message()
        assert message, args
        return
    try:
        data = load_data(cfg)
    except DataError as exc:  # the entry points turn this into a usage error on --dataset
        message = str(exc)
        assert message, args
        return
    try:
        result = fit(cfg, data)
    except DivergenceError as exc:
        message = str(exc)
        assert "diverged at epoch" in message
        return
    assert all(math.isfinite(w) for w in result.weights)


@pytest.fixture
def given_up_store(monkeypatch):
    """A store this process has not given up on yet, and forgets again after the test (the
    give-up is process-wide: every later write would fail at once)."""
    from steps.run import tracking

    monkeypatch.setattr(tracking, "_gone", [])
    monkeypatch.setenv("GDLAB_STORE_TIMEOUT_S", "0.3")
    return tracking


def test_metrics_a_store_did_not_take_wait_in_a_spill_file_and_recover_writes_them_and_ends_the_run(
    tracking, given_up_store, tmp_path, monkeypatch
):
    """The spill -> recover path, fast: a run's metric writes meet a server that refuses the
    connection (a real socket on 127.0.0.1 with nothing behind it), are given up on within the
    budget and kept in the spill file; `recover` then writes them to the run's store and ends it."""

    import mlflow
    from click.testing import CliRunner

    from steps.recover import recover

    monkeypatch.setenv("GDLAB_SPILL_DIR", str(tmp_path / "spill"))
    with socket.socket() as s:  # a port nothing listens on: connection refused, as a dead server gives
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    run = tracking.client.create_run(tracking.experiment_id)
    buffer = given_up_store.MetricBuffer(mlflow.MlflowClient(dead), run.info.run_id)
    for epoch in range(5):
        buffer.add({"loss": 1.0 / (epoch + 1)}, epoch)
    started = time.monotonic()
    with pytest.raises(given_up_store.StoreGone):
        buffer.flush()
    assert time.monotonic() - started < 10  # the 0.3 s budget and a refused connection's own time
    given_up_store.spill(run.info.run_id, end={"status": "FAILED", "failure_reason": "the tracking store went away"})
    spilled = tmp_path / "spill" / f"{run.info.run_id}.jsonl"
    assert spilled.exists()

    given_up_store._gone.clear()  # `recover` is a process of its own, which has not given up on any store
    result = CliRunner().invoke(recover, [])
    assert result.exit_code == 0, result.output
    assert f"run {run.info.run_id}: 5 metric values written" in result.output
    assert not spilled.exists()
    after = tracking.client.get_run(run.info.run_id)
    assert after.info.status == "FAILED"
    assert after.data.tags["failure_reason"] == "the tracking store went away"
    history = tracking.client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- hostile input (was test_hostile.py)

# --------------------------------------------------------------------------- 9, 11: the store


@pytest.mark.parametrize(("make", "needle"), [("text", "is not an SQLite database"), ("folder", "is a folder")])
def test_a_tracking_store_that_cannot_work_is_a_one_line_error(tmp_path, monkeypatch, make, needle):
    store = tmp_path / "store.db"
    if make == "text":
        store.write_text("not a database\n")
    else:
        store.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    monkeypatch.chdir(tmp_path)
    try:
        result = CliRunner().invoke(sgd, [])
    finally:
        mlflow.set_tracking_uri(None)
    assert result.exit_code == 1, result.output
    assert f"the tracking store sqlite:///{store} {needle}" in result.output
    assert "Traceback" not in result.output
    assert "MLFLOW_EXPERIMENT_ID" not in result.output


# --------------------------------------------------------------------------- dataset inputs, logged at once


def _log_the_same_datasets(uri, experiment_id, barrier, errors):
    import mlflow
    import numpy as np

    from steps.run import tracking

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    X, y = np.zeros((2, 2)), np.zeros(2)
    failed = 0
    for i in range(10):
        run = client.create_run(experiment_id)
        barrier.wait()  # every process logs dataset i at the same moment
        try:
            tracking.log_data(client, run.info.run_id, "seed", None, f"data {i}", (("training", X, y),))
        except Exception:
            failed += 1
        client.set_terminated(run.info.run_id)
    errors.put(failed)


def test_runs_that_log_the_same_new_dataset_at_once_all_log_it(tracking):
    # The store checks that a dataset is not there, then inserts it: two runs at once both insert,
    # and one broke the unique key (28 of 60 here, 4 processes x 15, before log_data tried again).
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(4), ctx.Queue()
    args = (tracking.uri, tracking.experiment_id, barrier, errors)
    procs = [ctx.Process(target=_log_the_same_datasets, args=args) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert sum(errors.get(timeout=5) for _ in procs) == 0
    runs = tracking.client.search_runs([tracking.experiment_id], max_results=100)
    assert len(runs) == 40
    assert all(len(r.inputs.dataset_inputs) == 1 for r in runs)


def test_recover_replays_every_good_line_of_a_damaged_spill_file_and_goes_on_to_the_next(
    tracking, tmp_path, monkeypatch
):
    # A truncated last line (a kill, a full disk) or bytes that are not UTF-8: a traceback, the good
    # lines not replayed, and every later file skipped.
    from click.testing import CliRunner
    from mlflow.entities import Metric

    from steps.recover import recover
    from steps.run import tracking as store

    monkeypatch.setenv("GDLAB_SPILL_DIR", str(tmp_path / "spill"))
    runs = [tracking.client.create_run(tracking.experiment_id).info.run_id for _ in range(2)]
    for run_id in runs:
        store.spill(run_id, [Metric("loss", 1.0 / (e + 1), 1000 + e, e) for e in range(3)],
                    end={"status": "FAILED", "failure_reason": "the tracking store went away"})  # fmt: skip
    damaged = store.spill_file(runs[0])
    with damaged.open("ab") as fh:
        fh.write(b'{"key": "loss", "value": 0.1, "times\xff\xfe\n{"key": "loss", "value": 0.2, "timest')
    (tmp_path / "spill" / "0-not-gdlab.jsonl").write_bytes(b"\x00\x01 garbage\n")
    result = CliRunner().invoke(recover, [])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{damaged}:6: not UTF-8, skipped" in result.output  # (lines 1-5: the run, 3 values, its end)
    assert f"{damaged}:7: not a JSON object (cut short?), skipped" in result.output
    assert "0-not-gdlab.jsonl: not a gdlab spill file" in result.output
    for run_id in runs:  # the good lines of both files are written, both runs ended as their files say
        assert [m.step for m in tracking.client.get_metric_history(run_id, "loss")] == [0, 1, 2]
        assert tracking.client.get_run(run_id).info.status == "FAILED"
    assert not damaged.exists()
    assert damaged.with_name(damaged.name + ".damaged").exists()
    assert not store.spill_file(runs[1]).exists()


# ----------------------------------------------------------- an artifact store that refuses (issue 23, case 4)


@pytest.fixture
def full_disk(tmp_path):
    """An 8 MiB tmpfs, filled: an artifact store on a full disk (mounting needs root; skipped otherwise)."""
    import os

    where = tmp_path / "full"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        os.sync()
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


@pytest.fixture
def answers_503():
    """An HTTP artifact store that answers every request 503 (Service Unavailable)."""
    import http.server
    import threading

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def _no(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_POST = _no

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/artifacts"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _refused_upload(args: list[str], env: dict, cwd: Path) -> None:
    """``python -m <args>`` exits 1 with one line that says which upload the artifact store refused."""
    proc = subprocess.run([sys.executable, "-m", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("Error:")]
    assert "could not upload" in line
    assert "marked FAILED" in line


@pytest.mark.slow  # four runs, two of them retrying a 503 for 2 s: about 30 s
@pytest.mark.parametrize("module", ["steps.train", "steps.sgd"])
@pytest.mark.parametrize("store", ["full", "503"])
def test_an_artifact_store_that_is_full_or_answers_503_is_one_line_and_the_run_failed(
    tracking, project_env, module, store, request
):
    where = request.getfixturevalue("full_disk").as_uri() if store == "full" else request.getfixturevalue("answers_503")
    if store == "full":
        _fill(request.getfixturevalue("full_disk"))
    experiment_id = tracking.client.create_experiment(f"artifacts-{store}", artifact_location=where)
    env = {**project_env, "MLFLOW_EXPERIMENT_ID": experiment_id}
    _refused_upload([module, "--epochs", "5", "--store-timeout", "2"], env, tracking.root)
    (run,) = tracking.client.search_runs([experiment_id])
    assert run.info.status == "FAILED"
    assert "could not upload" in run.data.tags["failure_reason"]
    assert sorted(m.step for m in tracking.client.get_metric_history(run.info.run_id, "loss")) == list(range(5))


@pytest.mark.slow  # two runs and a compare: about 10 s
def test_compare_on_a_full_artifact_store_is_one_line_and_its_run_failed(tracking, project_env, full_disk):
    experiment_id = tracking.client.create_experiment("artifacts-full", artifact_location=full_disk.as_uri())
    env = {**project_env, "MLFLOW_EXPERIMENT_ID": experiment_id}
    for module in ("steps.sgd", "steps.adam"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--epochs", "5"], env=env, cwd=tracking.root, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    _fill(full_disk)
    _refused_upload(["steps.compare", "--output-dir", str(tracking.root / "out")], env, tracking.root)
    (run,) = tracking.client.search_runs([experiment_id], "tags.technique = 'compare'")
    assert run.info.status == "FAILED"
    assert (tracking.root / "out" / "compare.csv").exists()  # the report is written here all the same
