"""Shared fixtures. Tests never write into the checkout: every MLflow store and
artifact root lives under pytest's tmp_path."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
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


@pytest.fixture(scope="session")
def open_store(empty_store):
    """``open_store(root, monkeypatch)``: a fresh store and artifact root under ``root``, made
    current (MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID, inherited by subprocesses such as
    ``mlflow run``; the working directory is ``root`` so nothing lands in the checkout)."""
    import mlflow

    def open_(root: Path, mp: pytest.MonkeyPatch) -> SimpleNamespace:
        shutil.copy(empty_store, root / "mlflow.db")
        uri = f"sqlite:///{root}/mlflow.db"
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mp.chdir(root)
        mlflow.set_tracking_uri(uri)
        experiment_id = mlflow.create_experiment("gdlab-test", artifact_location=(root / "artifacts").as_uri())
        mp.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
        return SimpleNamespace(uri=uri, experiment_id=experiment_id, root=root, client=mlflow.MlflowClient(uri))

    return open_


@pytest.fixture
def tracking(tmp_path, monkeypatch, open_store):
    """A fresh sqlite tracking store and artifact root under tmp_path, made current."""
    import mlflow

    yield open_store(tmp_path, monkeypatch)
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


def interactive_sigint() -> None:
    """``preexec_fn`` for a subprocess that a test interrupts with SIGINT: Ctrl-C's default action.

    A shell starts background jobs with SIGINT ignored, and children inherit that: under
    `./.ci/run &` every process would ignore the test's Ctrl-C (Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _python_handles_sigint():
    """Each test starts with Python's own Ctrl-C handler (KeyboardInterrupt), as in a terminal,
    even when pytest itself was started with SIGINT ignored (see interactive_sigint)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


# Modules whose tests start processes (`mlflow run`, servers, workflows) and take seconds each.
HEAVY_MODULES = (
    "test_project_mlflow_run",
    "test_main",
    "test_run_tracking_server",
    "test_run_pyfunc_model",
    "test_flow_workers",
    "test_run_tracking",
    "test_run_lifecycle_experiments",
    "test_sweep",
    "test_compare",
)


def pytest_collection_modifyitems(config, items):
    """Heavy tests first: pytest-xdist hands out the rest as workers free up, so the run does not
    end with one worker on a long test while the other sits idle."""
    items.sort(key=lambda item: item.module.__name__.rsplit(".", 1)[-1] not in HEAVY_MODULES)


# A small CSV, and the check that a bad input is refused: exit 2, the needles, no traceback.
LINES = "x0,x1,y\n0.1,0.2,0.3\n0.4,0.5,0.9\n"


def refused(result, *needles):
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- a real PostgreSQL


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of its own for the session (scripts/local_postgres.py: 127.0.0.1, a free
    port, the role ``gdlab``; as root it runs as the ``postgres`` user). ``postgres.database(name)``
    creates a database and returns its URL (``postgresql://gdlab@127.0.0.1:PORT/name``: SQLAlchemy's
    psycopg 3 driver, the ``psycopg[binary]`` package). Skipped where PostgreSQL is not installed;
    `.ci/run` installs it."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import local_postgres

    if local_postgres.server_programs() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with local_postgres.running() as server:
        yield server


# --------------------------------------------------------------------------- a real mlflow server


START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and its workers (its own process group), politely first."""
    if proc.poll() is None:
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
    else:  # the server is gone; make sure no worker it started is left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _mlflow_server(root: Path, backend: str):
    """A tracking server on 127.0.0.1 with ``backend`` as its store and artifacts (served through the
    server, as a cluster's pods need) under ``root``. Stopped whatever happens."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("w")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
    cmd += ["--artifacts-destination", (root / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # No job runner (GenAI jobs): its seven worker processes would take the CPU the runs need.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    procs = []

    def start() -> None:
        procs.append(
            subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if procs[-1].poll() is not None:
                pytest.fail(f"mlflow server exited with {procs[-1].returncode}:\n{_tail(root / 'server.log')}")
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {START_TIMEOUT_S} s:\n{_tail(root / 'server.log')}")
            time.sleep(0.25)

    def kill() -> None:  # the server dies and stays down (its workers too)
        os.killpg(procs[-1].pid, signal.SIGKILL)
        procs[-1].wait(timeout=30)

    import mlflow

    try:
        start()
        client = mlflow.MlflowClient(url)
        experiment_id = client.create_experiment("gdlab-server")
        yield SimpleNamespace(
            url=url, client=client, experiment_id=experiment_id, artifacts=root / "artifacts", kill=kill, restart=start
        )
    finally:
        for proc in procs:
            _stop(proc)
        log.close()


@pytest.fixture
def server(tmp_path, empty_store):
    """A tracking server on a sqlite store (already migrated: it starts ~8 s sooner)."""
    root = tmp_path / "server"
    root.mkdir()
    shutil.copy(empty_store, root / "mlflow.db")
    with _mlflow_server(root, f"sqlite:///{root / 'mlflow.db'}") as running:
        yield running


@pytest.fixture
def pg_server(tmp_path, postgres, request):
    """A tracking server whose backend store is a PostgreSQL database of its own, as a team runs it."""
    root = tmp_path / "server"
    root.mkdir()
    name = "mlflow_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[-40:].lower()
    with _mlflow_server(root, postgres.database(name)) as running:
        yield running
