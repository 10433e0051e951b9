"""Reading the runs `compare` compares: the experiment, the search, each run's artifacts.

Everything is read through public MLflow APIs:

* ``MlflowClient.search_runs``: params, tags, status and the final metrics of every run,
  1,000 runs a request;
* each run's artifacts ``weights.json`` (the final weights) and ``trajectory.csv`` (epoch,
  weights, loss; written by runs with <= 10 parameters), read in place from a local artifact
  store (the run's ``artifact_uri``) or else with ``mlflow.artifacts.download_artifacts``,
  by a pool of threads. The trajectory's ``loss`` column holds exactly the values logged as
  the ``loss`` metric, so one small file gives the loss curve and the weight path; and
  ``internals.csv`` (epoch, lr, grad_norm, update_norm, zero_weights, val_loss; every training run);
* ``MlflowClient.get_metric_history(run_id, "loss")``: only for runs without a trajectory.

Why not ``get_metric_history`` for every run: one call a run, each slower as the store grows
(quadratic overall), and threads do not help there; MLflow's bulk history endpoints are not on
the Python client. ``benchmarks/bench_compare.py`` measures both ways (numbers in
benchmarks/README.md).
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import click

SKIP_TECHNIQUES = ("compare", "main", "sweep")
PAGE_SIZE = 1000
WORKERS = 8


@dataclass
class Gathered:
    """What compare knows about one run."""

    run: object  # mlflow.entities.Run
    technique: str
    weights: list[float] | None = None
    bias: float | None = None
    epochs: object = None  # np.ndarray of the steps of the loss curve
    loss: object = None  # np.ndarray, the loss per logged epoch
    path: object = None  # np.ndarray (steps, n_features): the weight path, from trajectory.csv
    internals: dict | None = None  # column -> np.ndarray (epoch, lr, grad_norm, ...), from internals.csv
    curve_source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def params(self) -> dict:
        return self.run.data.params

    @property
    def metrics(self) -> dict:
        return self.run.data.metrics

    @property
    def status(self) -> str:
        return self.run.info.status


# --------------------------------------------------------------------------- choosing runs


def technique_of(run) -> str:
    tags = run.data.tags
    return tags.get("technique") or tags.get("mlflow.project.entryPoint") or ""


def resolve_experiment(client, experiment_name: str, experiment_id: str, parent_run=None):
    """The experiment to read: the options, else the parent's, else the current one."""
    exp = None
    if experiment_id:
        exp = _experiment_by_id(client, experiment_id, f"no experiment with id {experiment_id!r}")
    if experiment_name:
        by_name = _experiment_by_name(client, experiment_name, f"no experiment named {experiment_name!r}")
        if exp is not None and exp.experiment_id != by_name.experiment_id:
            raise click.UsageError(
                f"--experiment-name {experiment_name!r} is experiment {by_name.experiment_id}, "
                f"not --experiment-id {experiment_id}; give one of them",
                _ctx(),
            )
        exp = by_name
    if exp is None and parent_run is not None:
        exp = client.get_experiment(parent_run.info.experiment_id)
    if exp is None:
        env_id, env_name = os.environ.get("MLFLOW_EXPERIMENT_ID"), os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if env_id:
            exp = _experiment_by_id(client, env_id, f"MLFLOW_EXPERIMENT_ID={env_id}: no such experiment")
        elif env_name:
            exp = _experiment_by_name(client, env_name, f"MLFLOW_EXPERIMENT_NAME={env_name!r}: no such experiment")
        else:
            exp = _experiment_by_id(client, "0", "no current experiment, and no Default one", known=True)
    if exp.lifecycle_stage != "active":
        raise click.UsageError(f"experiment {exp.name!r} (id {exp.experiment_id}) is deleted", _ctx())
    return exp


def _experiment_by_id(client, experiment_id: str, missing: str, known: bool = False):
    """The experiment, or a usage error saying ``missing`` (plus the known names if ``known``)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_experiment(experiment_id)
    except MlflowException as exc:
        reraise_unless_missing(exc)
        raise click.UsageError(missing + (_known(client) if known else ""), _ctx()) from None


def _experiment_by_name(client, name: str, missing: str):
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise click.UsageError(missing + _known(client), _ctx())
    return exp


def _ctx():
    return click.get_current_context(silent=True)


def reraise_unless_missing(exc) -> None:
    """Only "no such experiment / run" is the user's mistake; anything else (a tracking
    server that does not answer, ...) goes on up as the MLflow error it is."""
    if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        raise exc


def _known(client) -> str:
    try:
        names = [e.name for e in client.search_experiments(max_results=20)]
    except Exception:  # only decorates an error message
        return ""
    return f" (experiments: {', '.join(map(repr, names))})" if names else ""


def search(client, experiment_id: str, filter_string: str, max_runs: int, skip_ids=()) -> tuple[list, int, bool]:
    """Runs of the experiment matching the filter, newest first, skipping the non-training ones.

    Returns (runs, number skipped, whether more runs matched than ``max_runs``).
    """
    from mlflow.exceptions import MlflowException

    runs, skipped, token = [], 0, None
    while True:
        try:
            page = client.search_runs(
                [experiment_id],
                filter_string,
                max_results=PAGE_SIZE,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
        except MlflowException as exc:
            if filter_string and exc.error_code == "INVALID_PARAMETER_VALUE":
                raise click.UsageError(f"--filter {filter_string!r}: {exc.message}", _ctx()) from None
            raise click.ClickException(f"could not search the runs: {exc.message}") from None
        for run in page:
            if run.info.run_id in skip_ids or technique_of(run) in SKIP_TECHNIQUES:
                skipped += 1
            elif len(runs) == max_runs:
                return runs, skipped, True
            else:
                runs.append(run)
        token = page.token
        if not token:
            return runs, skipped, False


# --------------------------------------------------------------------------- reading runs


def gather(client, runs, workers: int = WORKERS) -> list[Gathered]:
    """Fetch each run's final weights and loss curve (and weight path), in parallel."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        _quiet_downloads(),
        ThreadPoolExecutor(max_workers=max(1, min(workers, len(runs)))) as pool,
    ):
        return list(pool.map(lambda r: _gather_one(client, r, Path(tmp) / r.info.run_id), runs))


def _quiet_downloads():
    """No progress bar per artifact (1,000 runs would print 2,000 of them)."""
    from steps.run.env import setenv

    return setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when they are on this machine (a path or file: URI)."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a plain path (C:\... on Windows)
        return Path(artifact_uri)
    return None


def _download(run, name: str, dst: Path) -> Path | None:
    """One artifact of a run as a local file, or None if it is missing or unreadable.

    Local artifact stores are read in place (``download_artifacts`` would copy the file
    through MLflow's artifact repository: about 2 ms a file); anything else (S3, the
    tracking server's proxied ``mlflow-artifacts:``, ...) goes through
    ``mlflow.artifacts.download_artifacts``.
    """
    import mlflow

    from steps.run.errors import StoreGone
    from steps.run.tracking import retry

    local = local_artifact_dir(run.info.artifact_uri)
    if local is not None:
        path = local / name
        return path if path.is_file() else None
    uri = run.info.artifact_uri.rstrip("/") + "/" + name
    try:
        dst.mkdir(parents=True, exist_ok=True)
        # A store that does not answer is retried within --store-timeout, then StoreGone: compare fails
        # and says so, rather than draw a report of "-" for what it could not read.
        return Path(retry(lambda: mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))))
    except StoreGone:
        raise
    except Exception:  # a missing or unreadable artifact: the caller notes it and goes on
        return None


def _gather_one(client, run, dst: Path) -> Gathered:
    import numpy as np

    from steps.run.runner import MAX_TRAJECTORY_PARAMS

    g = Gathered(run=run, technique=technique_of(run))
    if g.status == "RUNNING":
        g.notes.append("still running (or never finished)")
    if reason := run.data.tags.get("failure_reason"):
        g.notes.append(reason)
    if pruned := run.data.tags.get("pruned"):
        g.notes.append(f"pruned by the sweep's pruner ({pruned}): no final metrics")
    elif "final_loss" not in g.metrics and g.status == "FINISHED":
        g.notes.append("no final metrics logged")
    if stopped := run.data.tags.get("stopped_early"):
        g.notes.append(f"stopped early ({stopped})")

    weights_file = _download(run, "weights.json", dst)
    if weights_file is not None:
        try:
            spec = json.loads(weights_file.read_text())
            g.weights = [float(w) for w in spec["weights"]]
            bias = spec.get("bias")  # a network's is one a unit (a list): the table shows the neuron's
            g.bias = float(bias) if isinstance(bias, (int, float)) else None
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: absurdly nested JSON
            g.notes.append("weights.json unreadable")
    elif g.status == "FINISHED" and "final_loss" in g.metrics:  # every finished run logs it: its "-" must say why
        g.notes.append("weights.json missing from its artifacts")

    small = g.weights is None or len(g.weights) + (g.bias is not None) <= MAX_TRAJECTORY_PARAMS
    traj = _download(run, "trajectory.csv", dst) if small else None
    if traj is not None:
        try:
            header, data = _epoch_table(traj)
            if header[-1] != "loss":
                raise ValueError("unexpected columns")
            g.epochs, g.loss, g.curve_source = data[:, 0], data[:, -1], "trajectory.csv"
            g.path = data[:, [i for i, c in enumerate(header) if c.startswith("w_")]]
        except (ValueError, OSError):
            g.notes.append("trajectory.csv unreadable")
    g.internals = _read_internals(_download(run, "internals.csv", dst))
    if g.loss is None and "loss" in g.metrics:
        from mlflow.exceptions import MlflowException

        try:
            history = client.get_metric_history(g.run_id, "loss")
        except MlflowException as exc:
            g.notes.append(f"loss history unreadable ({exc.error_code})")
            return g
        history = sorted(history, key=lambda m: (m.step, m.timestamp))
        by_step = {m.step: m.value for m in history}  # the last value logged at a step wins
        g.epochs = np.array(list(by_step), dtype=float)
        g.loss = np.array(list(by_step.values()), dtype=float)
        g.curve_source = "metric history"
    return g


def _read_internals(path: Path | None) -> dict | None:
    """internals.csv as {column: array}, or None (absent: a run from before it existed; unreadable)."""
    if path is None:
        return None
    try:
        header, data = _epoch_table(path)
    except (ValueError, OSError):
        return None
    return {name: data[:, k] for k, name in enumerate(header)}


def _epoch_table(path: Path):
    """An artifact of one row a logged epoch (trajectory.csv, internals.csv): its header, whose
    first column is ``epoch``, and its numbers (rows, columns). Raises ValueError for no data or
    unexpected columns, OSError for an unreadable file."""
    import numpy as np

    lines = path.read_text().splitlines()
    header = lines[0].strip().split(",") if lines else []
    if len(lines) < 2 or header[0] != "epoch":
        raise ValueError("no data, or unexpected columns")
    data = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
    if data.shape[1] != len(header):
        raise ValueError("unexpected columns")
    return header, data
