"""`--register-model`: the best child's LoggedModel in the Model Registry, served as a user would.

A real `mlflow models serve -m models:/NAME@champion` answers over HTTP (``-m slow``, which CI
runs too: the server takes about 10 s to start); nothing is stubbed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from steps.main import main
from steps.sweep import sweep


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parent_of(tracking, technique):
    (parent,) = [
        r for r in tracking.client.search_runs([tracking.experiment_id]) if r.data.tags.get("technique") == technique
    ]
    return parent


def logged_model_of(tracking, run_id):
    (output,) = tracking.client.get_run(run_id).outputs.model_outputs
    return output.model_id


def serve(tracking, uri: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.uri}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = ["mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with open(tracking.root / "serve.log", "wb") as log:
        return subprocess.Popen(cmd, env=env, cwd=tracking.root, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(server: subprocess.Popen, port: int, log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow models serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("mlflow models serve did not answer /ping")


def invocations(port: int, rows) -> list:
    body = json.dumps({"dataframe_split": {"columns": ["x0", "x1"], "data": rows}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())["predictions"]


@pytest.mark.slow
def test_main_and_sweep_register_their_best_child_as_champion(tracking):
    result = CliRunner().invoke(
        main, ["--epochs", "30", "--register-model", "lesson", "--output-dir", str(tracking.root / "m")]
    )
    assert result.exit_code == 0, result.output + result.stderr
    parent = parent_of(tracking, "main")
    best_id = parent.data.tags["best_run_id"]
    assert parent.data.tags["best_metric"] == "final_objective"
    children = tracking.client.search_runs(
        [tracking.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.technique != 'compare'"
    )
    assert min(children, key=lambda c: c.data.metrics["final_objective"]).info.run_id == best_id
    version = tracking.client.get_model_version_by_alias("lesson", "champion")
    assert (int(version.version), version.run_id) == (1, best_id)
    assert version.source == f"models:/{logged_model_of(tracking, best_id)}"
    assert parent.data.tags["registered_model"] == "lesson version 1"
    assert "models:/lesson@champion" in result.output

    # A sweep registering under the same name adds version 2 and moves the alias.
    args = ["--technique", "adam", "--learning-rates", "0.05,0.1", "--epochs", "30", "--register-model", "lesson"]
    result = CliRunner().invoke(sweep, [*args, "--output-dir", str(tracking.root / "s")])
    assert result.exit_code == 0, result.output + result.stderr
    best_id = parent_of(tracking, "sweep").data.tags["best_run_id"]
    version = tracking.client.get_model_version_by_alias("lesson", "champion")
    assert (int(version.version), version.run_id) == (2, best_id)


@pytest.mark.slow  # a real `mlflow models serve` takes about 10 s to answer
def test_the_champion_is_served_by_mlflow_models_serve(tracking):
    args = ["--technique", "sgd", "--learning-rates", "0.01,0.1", "--epochs", "30", "--register-model", "lesson"]
    result = CliRunner().invoke(sweep, [*args, "--output-dir", str(tracking.root / "s")])
    assert result.exit_code == 0, result.output + result.stderr
    best_id = parent_of(tracking, "sweep").data.tags["best_run_id"]
    port = free_port()
    server = serve(tracking, "models:/lesson@champion", port)
    try:
        wait_ready(server, port, tracking.root / "serve.log")
        predictions = invocations(port, [[1.0, 2.0], [-3.0, 0.5]])
        # NaN, null and ±Inf were answered 200 with [NaN], which is not JSON: now 400 with the reason.
        for bad in ([[1.0, None]], [[float("nan"), 1.0]], [[1.0, float("inf")]]):
            with pytest.raises(urllib.error.HTTPError) as refused:
                invocations(port, bad)
            assert refused.value.code == 400
            body = json.loads(refused.value.read())
            assert "the model predicts from finite numbers only" in body["message"]
            assert "Traceback" not in json.dumps(body)
    finally:
        server.terminate()
        server.wait(timeout=30)
    weights = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=best_id, artifact_path="weights.json", dst_path=str(tracking.root / "w")
            )
        ).read_text()
    )["weights"]
    expected = np.maximum(np.array([[1.0, 2.0], [-3.0, 0.5]]) @ np.array(weights), 0.0)
    np.testing.assert_allclose(np.asarray(predictions, dtype=float).ravel(), expected, rtol=1e-12)


def test_a_name_that_cannot_be_registered_is_refused_before_any_run(tracking):
    result = CliRunner().invoke(main, ["--register-model", "a/b"])
    assert result.exit_code == 2
    assert "cannot hold '/'" in result.output + result.stderr
    assert tracking.client.search_runs([tracking.experiment_id]) == []
