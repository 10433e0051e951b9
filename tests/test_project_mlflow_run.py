"""End to end: `mlflow run` of the project, from its folder and from a Git URL.

These start real processes (`mlflow run` imports MLflow and builds or reuses an
environment), so they take seconds each; the default virtualenv manager, which
builds a whole environment the first time, is marked slow.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = {
    "sgd": [0.3644996182867053, 0.5455535728846579],
    "adam": [0.823853144243253, 0.9236083308245637],
}


def mlflow_run(env, *args, timeout=600):
    cmd = [sys.executable, "-m", "mlflow", "run", *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def runs(tracking):
    return tracking.client.search_runs([tracking.experiment_id], order_by=["start_time ASC"])


def weights_of(tracking, run):
    import mlflow

    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="weights.json", dst_path=str(tracking.root / run.info.run_id)
    )
    return json.loads(Path(path).read_text())["weights"]


# sgd, l1 and l2 through `mlflow run` add nothing here: their commands come from the same generated
# MLproject (test_cli_options checks it is current) and their weights are checked in process (test_cli_options);
# sgd goes through `mlflow run` in the slow environment-building tests below.
@pytest.mark.slow
def test_mlflow_run_local_env_logs_the_lessons_weights_with_another_spelling_of_a_param(tracking, project_env):
    # -P learning_rate=1e-2: MLflow logs the string as given; gdlab must not log 0.01 over it.
    proc = mlflow_run(project_env, ROOT, "-e", "adam", "--env-manager", "local", "-P", "learning_rate=1e-2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = runs(tracking)
    assert run.info.status == "FINISHED"
    assert run.data.tags["technique"] == "adam"
    assert run.data.tags["mlflow.project.entryPoint"] == "adam"
    assert run.data.params["learning_rate"] == "1e-2"
    assert len(run.data.params) == 61  # adam's 59 declared parameters (MLflow logs them) + optimizer, penalty
    weights = weights_of(tracking, run)
    np.testing.assert_allclose(weights, LESSON["adam"], rtol=1e-14)
    assert f"Final weights: {weights}" in proc.stdout


@pytest.mark.parametrize(
    ("entry_point", "param", "message"),
    # One option error and one data error through MLflow's -P; the other bad values are refused
    # the same way in process (test_cli_options.test_bad_options_are_refused_before_a_run_starts).
    [
        ("adam", "beta1=1", "Invalid value for '--beta1'"),
        # These two are MLflow's quoting and argv, as the first is; -m slow keeps the default suite
        # within its time. Quoted, so never run by a shell:
        pytest.param("sgd", "dataset=seed; touch {tmp}/pwned", "no such file", marks=pytest.mark.slow),
        # A dash for the underscore: MLflow appends a second --learning-rate, and logged the first
        # (the same argv is checked in process: test_cli_options.py).
        pytest.param(
            "sgd", "learning-rate=0.5", "--learning-rate is given twice ('0.01', then '0.5')", marks=pytest.mark.slow
        ),
    ],
    ids=["beta1", "shell-injection", "dashed-name"],
)
def test_mlflow_run_with_a_bad_param_fails_cleanly(tracking, project_env, entry_point, param, message):
    param = param.format(tmp=tracking.root)
    proc = mlflow_run(project_env, ROOT, "-e", entry_point, "--env-manager", "local", "-P", param)
    assert proc.returncode != 0
    assert message in proc.stderr
    ours = proc.stderr[proc.stderr.index("Usage:") :] if "Usage:" in proc.stderr else proc.stderr
    assert "Traceback" not in ours.split("mlflow.exceptions")[0]
    (run,) = runs(tracking)
    assert run.info.status == "FAILED"  # not left RUNNING
    assert not (tracking.root / "pwned").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def git_daemon(tmp_path):
    """The checkout's HEAD as a bare repo served by `git daemon` on 127.0.0.1."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    base = tmp_path / "served"
    base.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(base / "gdlab.git")], check=True)
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/gdlab.git", sha.stdout.strip()
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


@pytest.mark.slow
def test_mlflow_run_of_main_from_a_git_url_at_a_commit_keeps_its_report(tracking, project_env, git_daemon):
    url, sha = git_daemon
    proc = mlflow_run(project_env, url, "-e", "main", "--version", sha, "--env-manager", "local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_name = {r.info.run_name: r for r in runs(tracking)}
    assert sorted(by_name) == ["adam", "compare 4 runs on seed · MSE", "l1", "l2", "main", "sgd"]
    assert all(r.info.status == "FINISHED" for r in by_name.values())
    trained = [r for r in by_name.values() if not r.info.run_name.startswith("compare")]
    assert {r.data.tags["mlflow.source.git.commit"] for r in trained} == {sha}
    np.testing.assert_allclose(weights_of(tracking, by_name["adam"]), LESSON["adam"], rtol=1e-14)
    # MLflow ran the project in a temporary checkout: the report is in the compare run, and the
    # command that gets it is printed (not a path that is gone once `mlflow run` returns).
    compare_id = by_name["compare 4 runs on seed · MSE"].info.run_id
    assert f"mlflow artifacts download --run-id {compare_id} --dst-path compare_output" in proc.stdout
    checkout = re.search(r"Fetching project from \S+ into (\S+)", proc.stderr)
    assert checkout, proc.stderr[-2000:]
    assert checkout.group(1) not in proc.stdout
    logged = {a.path for a in tracking.client.list_artifacts(compare_id)}
    assert {"compare.html", "compare.csv", "loss_curves.png"} <= logged


@pytest.mark.slow
@pytest.mark.parametrize("env_manager", ["virtualenv", "uv"])
def test_mlflow_run_builds_its_own_environment(tracking, project_env, env_manager):
    """python_env.yaml pins the Python patch (3.11.7) so no download is needed."""
    if env_manager == "uv" and shutil.which("uv") is None:
        pytest.skip("uv is not installed")
    env = dict(project_env)
    env.pop("PYTHONPATH", None)  # the built environment must stand on its own
    env["UV_COMPILE_BYTECODE"] = "1"
    # Each manager builds its own environment: MLflow names it by the project's environment alone,
    # so under a shared MLFLOW_ENV_ROOT the second test would reuse the first one's.
    env["MLFLOW_ENV_ROOT"] = str(tracking.root / f"envs-{env_manager}")
    proc = mlflow_run(env, ROOT, "-e", "sgd", "--env-manager", env_manager, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = list(Path(env["MLFLOW_ENV_ROOT"]).glob("mlflow-*"))
    assert built, f"{env_manager} built no environment under MLFLOW_ENV_ROOT"
    (run,) = runs(tracking)
    np.testing.assert_allclose(weights_of(tracking, run), LESSON["sgd"], rtol=1e-15)


@pytest.mark.slow  # two `mlflow run`s from a Git URL at once, a PostgreSQL study: about a minute
def test_two_sweeps_from_a_git_url_share_a_postgresql_study_to_its_max_trials(
    tracking, project_env, git_daemon, postgres
):
    """The team recipe of docs/scale.md as written: `mlflow run <git url> -e sweep -P storage=postgresql://...
    -P max_trials=...` on two machines at once (here two processes)."""
    import optuna
    from optuna.trial import TrialState

    url, sha = git_daemon
    study = postgres.database("team_recipe")
    params = ["-P", "search=tpe", "-P", "study_name=lr-l2", "-P", f"storage={study}", "-P", "max_trials=6"]
    params += ["-P", "technique=l2", "-P", "learning_rates=1e-4:0.3", "-P", "lambdas=1e-5:0.1", "-P", "epochs=30"]
    cmd = [sys.executable, "-m", "mlflow", "run", url, "-e", "sweep", "--version", sha, "--env-manager", "local"]
    procs = [
        subprocess.Popen([*cmd, *params], env=project_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    storage = optuna.storages.RDBStorage(study)
    try:
        trials = optuna.load_study(study_name="lr-l2", storage=storage).get_trials()
    finally:
        storage.remove_session()
        storage.engine.dispose()
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 6
    children = [r for r in runs(tracking) if r.data.tags.get("technique") == "l2"]
    assert len(children) == 6
    assert {c.data.tags["mlflow.source.git.commit"] for c in children} == {sha}
    assert all(r.info.status == "FINISHED" for r in runs(tracking))
