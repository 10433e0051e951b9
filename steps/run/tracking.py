"""MLflow side of a training run: batched metrics, conflict-free params, the model.

``import mlflow`` costs about 2 s, so it happens here and never in ``core``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from steps.cli.options import as_param
from steps.run.env import seconds, setenv
from steps.run.errors import ArtifactsFailed, StoreGone

# MLflow's log_batch takes at most 1,000 metrics a call.
MAX_BATCH = 1000


class MetricBuffer:
    """Collects metrics and writes them with ``log_batch``: in chunks of at most
    1,000, every ``flush_every_s`` seconds (so the UI shows live curves), and on
    :meth:`flush` (call it at the end and on failure)."""

    def __init__(self, client: MlflowClient, run_id: str, flush_every_s: float = 5.0, guard=contextlib.nullcontext):
        self.client, self.run_id, self.flush_every_s = client, run_id, flush_every_s
        self.guard = guard  # e.g. DeferredSignals.held: no signal lands half-way through a write
        self.pending: list[Metric] = []
        self.last_flush = time.monotonic()

    def add(self, metrics: dict[str, float], step: int, model_id: str | None = None) -> None:
        ts = int(time.time() * 1000)
        self.pending.extend(Metric(k, float(v), ts, step, model_id=model_id) for k, v in metrics.items())
        if len(self.pending) >= MAX_BATCH or time.monotonic() - self.last_flush > self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        with self.guard():
            try:
                while self.pending:
                    chunk = self.pending[:MAX_BATCH]
                    retry(lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk, synchronous=True))
                    self.pending = self.pending[MAX_BATCH:]  # dropped only once written
            except BaseException:  # the store went away, or a second Ctrl-C abandoned the write
                if self.pending:
                    spill(self.run_id, metrics=self.pending)
                    self.pending = []
                raise
        self.last_flush = time.monotonic()


# --------------------------------------------------------------------------- a store that goes away

# Seconds of retrying a tracking store that does not answer before giving up on it
# (--store-timeout, GDLAB_STORE_TIMEOUT_S); each attempt waits at most MLFLOW_HTTP_REQUEST_TIMEOUT.
STORE_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = "10"


_gone: list[str] = []  # why this process gave up on the store (then every write fails at once)


def gone() -> str | None:
    """Why this process gave up on the tracking store, or None."""
    return _gone[0] if _gone else None


def store_timeout_s() -> float:
    return seconds("GDLAB_STORE_TIMEOUT_S", STORE_TIMEOUT_S, 0.0)


def bound_http_waits() -> None:
    """MLflow's HTTP client retries a dead server for minutes (7 retries, 120 s timeouts); gdlab's
    own writes retry within a stated budget instead, so MLflow's calls are kept short."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_S)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")


def _unanswered(exc: BaseException) -> bool:
    """The store did not answer (refused, timed out, 5xx), as opposed to refusing the write."""
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None and response.status_code in (502, 503, 504):
        return True
    text = str(getattr(exc, "message", None) or exc)
    return (
        "failed with exception" in text
        or "failed with timeout exception" in text
        or "Max retries exceeded" in text
        or re.search(r"error code 5\d\d", text) is not None
    )


@contextlib.contextmanager
def http_waits(max_retries: int, timeout_s: float | None = None):
    """MLflow's HTTP client with these retries (and timeout) inside the block: none for the writes
    :func:`retry` retries itself, a short wait for a store already given up on."""
    values = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries)}
    if timeout_s is not None:
        values["MLFLOW_HTTP_REQUEST_TIMEOUT"] = f"{timeout_s:g}"
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def spill_dir() -> Path:
    """Where metrics a run could not write wait for ``recover`` (GDLAB_SPILL_DIR, else a user cache)."""
    if chosen := os.environ.get("GDLAB_SPILL_DIR"):
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gdlab" / "spill"


def spill_file(run_id: str) -> Path:
    return spill_dir() / f"{run_id}.jsonl"


STARTED = time.time()  # this process's start: the spill files written since are its own, or its workers'


def spilled_since_start() -> list[Path]:
    """The spill files this process (or a worker of its workflow) wrote to, oldest first."""
    where = spill_dir()
    if not where.is_dir():
        return []
    found = []
    for p in where.glob("*.jsonl"):
        try:
            changed = p.stat().st_mtime
        except OSError:  # (replayed by `recover` meanwhile)
            continue
        if changed >= STARTED - 1:
            found.append((changed, p))
    return [p for _, p in sorted(found)]


def spill(run_id: str, metrics=(), end: dict | None = None) -> Path:
    """Append ``metrics`` (and how the run should end) to the run's spill file, JSON lines."""
    path = spill_file(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    if not path.exists():
        lines.append(json.dumps({"run_id": run_id, "tracking_uri": mlflow.get_tracking_uri()}))
    lines += [json.dumps({"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}) for m in metrics]
    if end is not None:
        lines.append(json.dumps({"end": end}))
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


_local = threading.local()  # how deep this thread is in retry(): an inner call does not retry again
_outage: list[float] = []  # when the store stopped answering (one warning an outage, not one a thread)


def retry(write, attempts: int = 4, gives_up: bool = True):
    """Run ``write``; retry with backoff when the store is busy or does not answer.

    A busy store (a locked sqlite file; MLflow already waits up to 20 s on one) is retried
    ``attempts`` times, so that many runs at once on one store lose no metric. A store that
    does not answer (refused, timed out, 5xx; the tracking store or the artifact store) is
    retried for :func:`store_timeout_s` seconds, with a warning at the first failure, then
    given up on (:class:`StoreGone`; later writes fail at once). With ``gives_up=False`` (an
    artifact upload) the last error is raised instead and the tracking store is not given up on.
    A ``retry`` inside another (a retried client's call inside a retried write) is a plain call.
    """
    if getattr(_local, "depth", 0):
        return write()
    _local.depth = 1
    try:
        return _retry(write, attempts, gives_up)
    finally:
        _local.depth = 0


def _retry(write, attempts: int, gives_up: bool):
    import click
    from mlflow.exceptions import MlflowException

    deadline = None
    for attempt in itertools.count():
        if _gone:
            raise StoreGone(_gone[0])
        try:
            with _quiet_store_errors(), http_waits(max_retries=0):
                result = write()
            if _outage:
                _outage.clear()
            return result
        except Exception as exc:
            if _unanswered(exc):
                now = time.monotonic()
                if deadline is None:
                    deadline = now + store_timeout_s()
                    if not _outage:
                        _outage.append(now)
                        click.echo(
                            f"warning: the tracking store {mlflow.get_tracking_uri()} does not answer "
                            f"({first_line(exc)}); retrying for up to {store_timeout_s():g} s "
                            "(--store-timeout / GDLAB_STORE_TIMEOUT_S)",
                            err=True,
                        )
                if now >= deadline:
                    if not gives_up:
                        raise
                    _gone.append(f"no answer from {mlflow.get_tracking_uri()} for {store_timeout_s():g} s")
                    raise StoreGone(_gone[0]) from None
                time.sleep(min(0.5 * 2**attempt, 5.0, max(0.0, deadline - now)))
                continue
            if not isinstance(exc, MlflowException):
                raise
            busy = "locked" in str(exc).lower() or exc.error_code == "TEMPORARILY_UNAVAILABLE"
            if not busy or attempt >= attempts - 1:
                raise
            wait = 0.5 * 2**attempt
            click.echo(f"warning: the tracking store is busy ({first_line(exc)}); retrying in {wait:g} s", err=True)
            time.sleep(wait)


class StoreClient:
    """An ``MlflowClient`` whose every call goes through :func:`retry`: reads and writes alike
    outlast a store that restarts within the budget, and fail with :class:`StoreGone` after it."""

    def __init__(self, client: MlflowClient | None = None):
        self._client = client if client is not None else MlflowClient()

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        return lambda *args, **kwargs: retry(lambda: attr(*args, **kwargs))


def store_client(uri: str | None = None) -> StoreClient:
    """A retried client of ``uri`` (default: the current tracking URI)."""
    return StoreClient(MlflowClient(uri) if uri else MlflowClient())


def upload(write, what: str):
    """An artifact upload through :func:`retry` (a store answering 5xx or not at all is retried
    within the budget); a store that still fails, or refuses (a full disk), is
    :class:`ArtifactsFailed`: one line that names it, never a traceback."""
    try:
        return retry(write, gives_up=False)
    except StoreGone:
        raise
    except Exception as exc:
        raise ArtifactsFailed(f"could not upload {what} to the artifact store: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (MLflow's can run to a page), at most 200 characters."""
    lines = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


class _DropStoreTracebacks(logging.Filter):
    """MLflow logs a full traceback for every SQLAlchemy OperationalError ("database is
    locked") before it raises; :func:`retry` handles those, so the traceback is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SQLAlchemy database error")


@contextlib.contextmanager
def _quiet_store_errors():
    logger = logging.getLogger("mlflow.store.db.utils")
    drop = _DropStoreTracebacks()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def start_run(**kwargs):
    """``mlflow.start_run(**kwargs)``, with a one-line error for a wrong experiment or run id in the environment."""
    import click
    from mlflow.exceptions import MlflowException

    try:
        return retry(lambda: mlflow.start_run(**kwargs))
    except MlflowException as exc:
        text = first_line(exc)
        store = any(w in text.lower() for w in ("readonly", "read-only", "database", "disk", "permission"))
        hint = (
            f"the tracking store {mlflow.get_tracking_uri()}"
            if store
            else "MLFLOW_EXPERIMENT_ID / MLFLOW_EXPERIMENT_NAME / MLFLOW_RUN_ID"
        )
        raise click.ClickException(f"MLflow could not start the run: {text} (check {hint})") from None


_reached: set[str] = set()  # servers that answered check_reachable in this process


def check_reachable(timeout_s: float = 5.0) -> None:
    """Fail fast, with a clear message, when the tracking server does not answer.

    MLflow's own HTTP client retries for minutes before it gives up; a user who
    mistyped MLFLOW_TRACKING_URI should know within seconds. Once a server has answered, this
    process checks it no more: a later outage (a restart) is retried within --store-timeout.
    """
    import urllib.error
    import urllib.request

    import click

    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:"):
        check_sqlite(uri)
    if not uri.startswith(("http://", "https://")) or uri in _reached:
        return
    bound_http_waits()
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        pass  # it answered: a server is there (auth or proxies may refuse /health)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(
            f"cannot reach the MLflow tracking server at {uri} ({reason}); start it, or point "
            "MLFLOW_TRACKING_URI at a running server (unset it for the local sqlite store)"
        ) from None
    _reached.add(uri)


SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite(uri: str) -> None:
    """A one-line error, before MLflow's tracebacks, for a sqlite store that cannot work:
    not a database, a folder, or a file or folder that cannot be read or written."""
    import os

    import click

    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    if not path or path.startswith(":memory:"):
        return
    path = path.split("?", 1)[0]
    target = Path(path)
    problem = None
    if target.is_dir():
        problem = "is a folder, not a database file"
    elif target.exists():
        try:
            with open(target, "rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            problem = f"cannot be opened ({exc.strerror or exc})"
        else:
            if header and header != SQLITE_HEADER:
                problem = "is not an SQLite database"
            elif not os.access(target, os.W_OK) or not os.access(target.parent, os.W_OK | os.X_OK):
                problem = "cannot be written (read-only file or folder)"
    elif not target.parent.is_dir():
        problem = f"cannot be created: no folder {target.parent}"
    elif not os.access(target.parent, os.W_OK | os.X_OK):
        problem = f"cannot be created: the folder {target.parent} is read-only"
    if problem:
        raise click.ClickException(
            f"the tracking store {uri} {problem}; point MLFLOW_TRACKING_URI at a writable sqlite file "
            "(sqlite:///mlflow.db) or a tracking server"
        )


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    """Log every param the run does not have yet.

    ``mlflow run -P learning_rate=1e-2`` has already logged the string it was
    given; logging ``0.01`` again would raise "Changing param values is not
    allowed", so present keys are kept as they are (their value is what the
    command received).
    """
    existing = retry(lambda: client.get_run(run_id).data.params)
    new = [Param(k, as_param(v)) for k, v in params.items() if k not in existing]
    for i in range(0, len(new), 100):
        retry(lambda chunk=new[i : i + 100]: client.log_batch(run_id, params=chunk, synchronous=True))


def set_tags(client: MlflowClient, run_id: str, tags: dict) -> None:
    batch = [RunTag(k, as_param(v)) for k, v in tags.items()]
    retry(lambda: client.log_batch(run_id, tags=batch, synchronous=True))


MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
CORE = Path(__file__).resolve().parents[2] / "core"  # the model's code/ folder: its forward pass


def log_data(client: MlflowClient, run_id: str, name: str, source: str | None, digest: str, splits) -> None:
    """The run's data as MLflow dataset inputs, the UI's Dataset column: one a split (``splits``:
    (context, X, y), e.g. "training" and "validation"), named ``name``, from ``source`` (a CSV's
    path or URL; None: gdlab's own data, made by code), each with a digest of its own derived
    from the data's hash ``digest``. The schema is read off one row and the profile is the
    shapes, so a million rows cost what two do."""
    import hashlib

    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for context, X, y in splits:
        if X is None:
            continue
        sample = mlflow.data.from_numpy(X[:1], targets=y[:1], source=source, name=name, digest="-")._to_mlflow_entity()
        part = hashlib.sha256(f"{digest}:{context}".encode()).hexdigest()[:8]
        profile = {"features_shape": list(X.shape), "targets_shape": list(y.shape)}
        dataset = Dataset(name, part, sample.source_type, sample.source, sample.schema, json.dumps(profile))
        inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", context)]))
    for attempt in itertools.count(1):
        try:
            return retry(lambda: client.log_inputs(run_id, inputs))
        except mlflow.exceptions.MlflowException as exc:
            # Two runs that log the same new dataset at once: the store checks that it is not there,
            # then both insert it, and the second breaks its unique key (sqlite: "UNIQUE constraint
            # failed", PostgreSQL: "duplicate key"). Once the first has it, logging it again links it.
            if attempt == 5 or not any(w in str(exc) for w in ("UNIQUE constraint", "duplicate key")):
                raise
            time.sleep(0.05 * attempt)


@contextlib.contextmanager
def logged_model(run_id: str, experiment_id: str, params: dict, step: int = 0):
    """An MLflow 3 LoggedModel named ``model`` for the run, yielded while it is PENDING.

    Log the run's final metrics with its ``model_id`` and its files with :func:`log_model`
    inside the block: the model ends READY, or FAILED if the block raises. This is what
    ``mlflow.pyfunc.log_model(name="model")`` does, taken apart so that the MLmodel file can be
    cleaned of this machine's paths before it is uploaded (:func:`_no_local_paths`) and the
    metrics are linked as they are logged, not by re-reading every metric's history.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    client = MlflowClient()
    model = retry(
        lambda: client.create_logged_model(
            experiment_id=experiment_id,
            name="model",
            source_run_id=run_id,
            params={k: as_param(v) for k, v in params.items()},
            model_type="gdlab",
        )
    )
    retry(lambda: client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)]))
    try:
        yield model
    except BaseException:
        with contextlib.suppress(Exception), http_waits(0, 5):
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    retry(lambda: client.finalize_logged_model(model.model_id, LoggedModelStatus.READY))


def log_model(model, run_dir: Path, spec_file: Path, feature_names, example_X) -> None:
    """Save the MLflow model (models-from-code: no pickled Python) as the files of ``model``.

    ``spec_file`` holds {"weights", "bias", "model", "features", "mean", "scale"} (and a logistic
    model's "classes", a network's "hidden"); the model code (``pyfunc_model.py``) reads it back at load time.
    ``example_X``: raw feature rows (the model standardizes its input itself when the spec has a
    scaler). A logistic model's signature declares its params (``output``, ``threshold``:
    ``core.models.PREDICT_PARAMS``).
    """
    import numpy as np
    import pandas as pd
    from mlflow.models import Model

    from core.models import PREDICT_PARAMS
    from core.neuron import model_forward

    example = pd.DataFrame(np.asarray(example_X[:2]), columns=list(feature_names))
    spec = json.loads(spec_file.read_text())
    mean, scale = (None if spec.get(k) is None else np.asarray(spec[k]) for k in ("mean", "scale"))
    weights, hidden = np.asarray(spec["weights"]), spec.get("hidden") or ()
    pred = model_forward(example.to_numpy(), weights, spec["bias"], spec["model"], hidden, mean=mean, scale=scale)
    target = run_dir / "model"
    meta = Model(
        artifact_path=model.artifact_location,
        model_uuid=model.model_id,
        run_id=model.source_run_id,
        model_id=model.model_id,
    )
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.WARNING)  # not "Validating input example against model signature" a run
    try:
        with _no_requirement_scan(), _quiet_copies():
            _save_pyfunc(target, spec_file, example, pred, meta, params=PREDICT_PARAMS if "classes" in spec else None)
    finally:
        pyfunc_log.setLevel(level)
    _no_local_paths(target / "MLmodel")
    client = MlflowClient()
    upload(lambda: client.log_model_artifacts(model.model_id, str(target)), "the model's files")


def _no_local_paths(mlmodel: Path) -> None:
    """MLflow records where the model's files came from on this machine (a temporary folder, the
    checkout); the loader reads only their names. Keep the names, drop the machine's paths."""
    import yaml

    spec = yaml.safe_load(mlmodel.read_text())
    flavor = spec.get("flavors", {}).get("python_function", {})
    if flavor.get("model_code_path"):
        flavor["model_code_path"] = Path(flavor["model_code_path"]).name
    for artifact in (flavor.get("artifacts") or {}).values():
        if isinstance(artifact, dict) and "uri" in artifact:
            artifact["uri"] = artifact.get("path", Path(artifact["uri"]).name)
    mlmodel.write_text(yaml.safe_dump(spec, default_flow_style=False, sort_keys=False))


def _quiet_copies():
    """No "Downloading artifacts" progress bars on stderr while MLflow copies the model's own files
    into its folder (a local copy of two small files, not a download; one bar each, every run)."""
    return setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextlib.contextmanager
def _no_requirement_scan():
    """Skip MLflow's check that the running environment satisfies the model's requirements.

    The requirements below are the running versions themselves, so the check cannot fail,
    yet it maps every installed distribution to its modules: 1.3 s of a 3 s run here.
    (A private MLflow function; if it moves, the check simply runs again.)
    """
    import mlflow.utils.environment as env

    name = "warn_dependency_requirement_mismatches"
    original = getattr(env, name, None)
    if original is not None:
        setattr(env, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        if original is not None:
            setattr(env, name, original)


def _save_pyfunc(target: Path, spec_file: Path, example, pred, meta, params: dict | None = None) -> None:
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    mlflow.pyfunc.save_model(
        path=str(target),
        python_model=str(MODEL_CODE),
        code_paths=[str(CORE)],
        mlflow_model=meta,
        artifacts={"weights": str(spec_file)},
        signature=infer_signature(example, pred, params=params),
        input_example=example,
        pip_requirements=[f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}"],
    )
    for cache in target.rglob("__pycache__"):  # compiled copies of core: not the model's to carry
        shutil.rmtree(cache, ignore_errors=True)
