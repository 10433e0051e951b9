"""Shared fixtures. Tests never write into the checkout: every MLflow store and
artifact root lives under pytest's tmp_path."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis keeps a folder of its own; keep it out of the checkout too.
try:
    from hypothesis import configuration as _hypothesis_configuration

    _hypothesis_configuration.set_hypothesis_home_dir(tempfile.mkdtemp(prefix="gdlab-hypothesis-"))
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """An initialized, empty sqlite store: creating one runs MLflow's migrations (~1.5 s),
    so each test gets a copy of this file instead."""
    import mlflow

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking(tmp_path, monkeypatch, empty_store):
    """A fresh sqlite tracking store and artifact root under tmp_path, made current.

    Sets MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID (inherited by subprocesses,
    e.g. ``mlflow run``) and changes into tmp_path so nothing lands in the checkout.
    """
    import mlflow

    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment("gdlab-test", artifact_location=(tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    yield SimpleNamespace(uri=uri, experiment_id=experiment_id, root=tmp_path, client=mlflow.MlflowClient(uri))
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def project_env(tracking):
    """Environment for subprocesses that run the project (``python -m steps.x``, ``mlflow run``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # `mlflow run --env-manager local` runs `python -m steps...`: make that this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env
