"""Hostile and unlucky inputs (issue 10): one line naming the culprit, exit 2 for bad input, no
traceback, no hang, nothing lost or left RUNNING."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from click.testing import CliRunner
from mlflow.entities import Param

from steps.compare import compare
from steps.main import main
from steps.sgd import sgd

LINES = "x0,x1,y\n0.1,0.2,0.3\n0.4,0.5,0.9\n"


def refused(result, *needles):
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- 7, 9, 10, 11: data


@pytest.mark.parametrize("suffix", [".zst", ".zip", ".tar", ".xz", ".gz", ".bz2"])
def test_a_text_file_with_a_compression_suffix_is_a_one_line_error(tracking, suffix):
    path = tracking.root / f"data.csv{suffix}"
    path.write_text(LINES)
    refused(CliRunner().invoke(sgd, ["--dataset", str(path)]), "'--dataset'", path.name)
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_a_truncated_gzip_is_a_one_line_error_not_aborted(tracking):
    data = gzip.compress(("x0,x1,y\n" + "0.1,0.2,0.3\n" * 5000).encode())
    path = tracking.root / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(sgd, ["--dataset", str(path)])
    refused(result, "cut.csv.gz: not a readable CSV file")
    assert "Aborted" not in result.output


@pytest.mark.parametrize("url", ["s3://bucket/data.csv", "gs://bucket/data.csv"])
def test_a_cloud_url_without_its_filesystem_package_is_a_one_line_error(tracking, url):
    refused(CliRunner().invoke(sgd, ["--dataset", url]), url)


def test_a_fifo_is_refused_at_once_not_read_forever(tracking):
    fifo = tracking.root / "pipe.csv"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    refused(CliRunner().invoke(sgd, ["--dataset", str(fifo)]), "not a regular file")
    assert time.monotonic() - t0 < 10


def test_a_dataset_url_that_never_answers_times_out(tracking, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()  # accepts, never answers
    monkeypatch.setenv("GDLAB_READ_TIMEOUT_S", "1")
    url = f"http://127.0.0.1:{server.getsockname()[1]}/data.csv"
    t0 = time.monotonic()
    try:
        refused(CliRunner().invoke(sgd, ["--dataset", url]), url, "no answer within 1 s")
    finally:
        for conn, _ in held:
            conn.close()
        server.close()
    assert time.monotonic() - t0 < 15


def test_a_csv_served_over_http_is_read(tracking, tmp_path):
    import http.server

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "data.csv.gz").write_bytes(gzip.compress(LINES.encode()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path / "web"), **k)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/data.csv.gz"
        result = CliRunner().invoke(sgd, ["--dataset", url, "--epochs", "3"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.exit_code == 0, result.output


def test_synthetic_data_too_large_for_memory_is_refused_before_allocating(tracking):
    result = CliRunner().invoke(sgd, ["--dataset", "synthetic", "--n-samples", "100000000", "--n-features", "1000"])
    refused(result, "100000000 x 1000 needs", "GiB")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "synthetic", "--noise", "1e308"], "too large for float64"),
        (["--dataset", "synthetic", "--noise", "1e30", "--dtype", "float32"], "overflow float32 when squared"),
    ],
)
def test_data_that_overflows_the_dtype_is_bad_data_not_a_divergence(tracking, args, needle):
    result = CliRunner().invoke(sgd, args)
    refused(result, needle)
    assert "smaller learning rate" not in result.output


def test_finite_csv_values_beyond_float32_are_refused_with_dtype_float32(tracking):
    path = tracking.root / "big.csv"
    path.write_text("x0,y\n1e39,1\n2,3\n")
    refused(CliRunner().invoke(sgd, ["--dataset", str(path), "--dtype", "float32"]), "too large for float32")


def test_n_informative_is_blamed_on_itself_not_on_the_dataset(tracking):
    result = CliRunner().invoke(sgd, ["--dataset", "synthetic", "--n-informative", "20"])
    refused(result, "'--n-informative'", "more than --n-features (10)")
    assert "'--dataset'" not in result.output


def test_a_missing_relative_dataset_says_where_it_looked(tracking, monkeypatch):
    result = CliRunner().invoke(sgd, ["--dataset", "x.csv"])
    refused(result, f"looked for {tracking.root / 'x.csv'}")
    run = tracking.client.create_run(tracking.experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run)  # as under `mlflow run`
    refused(CliRunner().invoke(sgd, ["--dataset", "x.csv"]), "give an absolute path or a URL")


def test_escape_sequences_in_a_csv_never_reach_the_terminal(tracking):
    path = tracking.root / "evil.csv"
    path.write_text("\x1b[2J\x1b[31mx0,y\n1,\x1b]0;pwned\x07\n")
    result = CliRunner().invoke(sgd, ["--dataset", str(path), "--target", "y"])
    refused(result, "\\x1b")
    assert "\x1b" not in result.output
    assert "\x07" not in result.output


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


# --------------------------------------------------------------------------- 3: interrupted compare


def _sigterm_during_compare_logging(monkeypatch):
    real = mlflow.log_table

    def log_table(*args, **kwargs):  # the signal lands while the compare run writes its outputs
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_table", log_table)


def test_sigterm_to_a_standalone_compare_ends_its_run_killed(tracking, monkeypatch):
    assert CliRunner().invoke(sgd, ["--epochs", "3"]).exit_code == 0
    _sigterm_during_compare_logging(monkeypatch)
    result = CliRunner().invoke(compare, ["--output-dir", str(tracking.root / "out")])
    assert result.exit_code == 143, result.output
    (run,) = [r for r in tracking.client.search_runs([tracking.experiment_id]) if r.data.tags["technique"] == "compare"]
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"] == "terminated (SIGTERM)"


@pytest.mark.slow
def test_sigterm_while_main_compares_ends_compare_and_main_killed(tracking, monkeypatch):
    _sigterm_during_compare_logging(monkeypatch)
    result = CliRunner().invoke(main, ["--epochs", "3", "--output-dir", str(tracking.root / "out")])
    assert result.exit_code == 143, result.output
    runs = {r.data.tags["technique"]: r for r in tracking.client.search_runs([tracking.experiment_id])}
    assert runs["compare"].info.status == "KILLED"
    assert runs["main"].info.status == "KILLED"
    assert runs["main"].data.tags["failure_reason"] == "terminated (SIGTERM)"
    assert all(runs[t].info.status == "FINISHED" for t in ("sgd", "adam", "l1", "l2"))


# --------------------------------------------------------------------------- 8, 12: compare's outputs


def test_compare_survives_another_tools_runs_and_escapes_what_it_writes(tracking, tmp_path):
    client = tracking.client
    assert CliRunner().invoke(sgd, ["--epochs", "3"]).exit_code == 0
    nested = tmp_path / "weights.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    for bias in ("7", "8"):  # two runs of another tool, whose params collide with report columns
        other = client.create_run(tracking.experiment_id, run_name='=HYPERLINK("http://x")').info.run_id
        client.log_batch(other, params=[Param("bias", bias), Param("status", bias), Param("note", "<b>x</b>")])
        client.set_tag(other, "technique", "<b>other</b>|tool\nx")
        client.log_artifact(other, str(nested))
        client.log_metric(other, "final_loss", 0.5)
        client.set_terminated(other)
    out = tmp_path / "out"
    result = CliRunner().invoke(compare, ["--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    md = (out / "compare.md").read_text()
    assert "<b>" not in md
    assert "&lt;b&gt;other&lt;/b&gt;\\|tool x" in md
    csv = (out / "compare.csv").read_text()
    assert "'=HYPERLINK" in csv
    assert ",=HYPERLINK" not in csv
    assert "params.bias" in csv.splitlines()[0]
    assert "weights.json unreadable" in csv


def test_the_logged_model_records_no_local_paths(tracking):
    assert CliRunner().invoke(sgd, ["--epochs", "3"]).exit_code == 0
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model", dst_path=str(tracking.root / "m")
    )
    text = (Path(local) / "MLmodel").read_text()
    (logged,) = mlflow.search_logged_models(experiment_ids=[tracking.experiment_id], output_format="list")
    # Where the model lives in the store is MLflow's to record; the temporary folder it was
    # saved in and the checkout its code came from are not.
    assert yaml.safe_load(text)["artifact_path"] == logged.artifact_location
    text = text.replace(logged.artifact_location, "<store>")
    assert "/tmp" not in text
    assert str(Path(__file__).resolve().parents[1]) not in text
    flavor = yaml.safe_load(text)["flavors"]["python_function"]
    assert flavor["model_code_path"] == "pyfunc_model.py"
    model = mlflow.pyfunc.load_model(local)  # and it still loads and predicts
    import pandas as pd

    assert len(model.predict(pd.DataFrame({"x0": [0.1], "x1": [0.2]}))) == 1
    assert json.loads((Path(local) / "artifacts" / "model_spec.json").read_text())["model"] == "relu"


# --------------------------------------------------------------------------- 2: a store that hangs


def test_a_second_sigterm_gets_out_of_a_store_that_hangs(tmp_path, project_env):
    """A server that answers /health but never answers an API call: the first SIGTERM asks for a
    clean stop (which would wait on the store), a second one abandons the wait at once."""
    import http.server
    import subprocess
    import sys

    from conftest import ROOT

    waiting = threading.Event()  # set once the run is waiting on an API call

    class Hangs(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/health"):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")
                return
            waiting.set()
            time.sleep(600)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hangs)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = {**project_env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{httpd.server_address[1]}"}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "steps.train", "--epochs", "10"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.wait(timeout=120), "the run never called the store"
        time.sleep(0.5)  # in the call, with its signal handlers in place
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        proc.kill()
        httpd.shutdown()
        httpd.server_close()
    assert took < 5, err
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "(SIGTERM)" in err
