"""The project against a shared tracking server, as on a cluster: a real `mlflow server`
(sqlite backend, proxied artifacts, all under tmp_path) on 127.0.0.1, then `mlflow run`
of `main` and a direct `python -m steps.compare` through it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHILDREN = {"sgd", "adam", "l1", "l2"}
EPOCHS = 100
REPORT = {"compare.csv", "compare.md", "compare.html", "compare.json", "loss_curves.png", "trajectories.png"}


@pytest.fixture
def server_env(server, project_env):
    """The project's subprocess environment, pointed at the server."""
    return {**project_env, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_EXPERIMENT_ID": server.experiment_id}


def _runs(server) -> dict[str, list]:
    out: dict[str, list] = {}
    for run in server.client.search_runs([server.experiment_id], max_results=1000):
        out.setdefault(run.data.tags.get("technique"), []).append(run)
    return out


@pytest.mark.slow
def test_main_and_compare_through_a_tracking_server(server, server_env, tmp_path):
    client = server.client
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "steps.main", "--output-dir", str(out)],  # workers write through the server too
        env=server_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    runs = _runs(server)
    assert set(runs) == {"main", "compare"} | CHILDREN
    every = [r for rs in runs.values() for r in rs]
    assert len(every) == 6
    assert all(r.info.status == "FINISHED" for r in every), [(r.info.run_name, r.info.status) for r in every]
    (main,) = runs["main"]
    for technique in CHILDREN:
        (child,) = runs[technique]
        assert child.data.tags["mlflow.parentRunId"] == main.info.run_id
        assert child.data.tags["mlflow.project.entryPoint"] == technique
        history = client.get_metric_history(child.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(EPOCHS)), technique
        assert "weights.json" in {a.path for a in client.list_artifacts(child.info.run_id)}
    (compare,) = runs["compare"]
    assert compare.data.tags["mlflow.parentRunId"] == main.info.run_id
    assert compare.data.metrics["runs_compared"] == len(CHILDREN)
    logged = {a.path for a in client.list_artifacts(compare.info.run_id)}
    assert logged >= REPORT
    # The artifacts went through the server to its artifacts destination, and come back the same.
    assert compare.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = list(server.artifacts.rglob("compare.csv"))
    assert len(stored) == 1
    downloaded = Path(client.download_artifacts(compare.info.run_id, "compare.csv", str(tmp_path)))
    assert downloaded.read_bytes() == stored[0].read_bytes() == (out / "compare.csv").read_bytes()

    # `compare` run by hand against the same server.
    direct = tmp_path / "direct"
    proc = subprocess.run(
        [sys.executable, "-m", "steps.compare", "--experiment-id", server.experiment_id, "--output-dir", str(direct)],
        env=server_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "4 runs of experiment 'gdlab-server'" in proc.stdout
    assert {p.name for p in direct.iterdir()} >= REPORT - {"compare.json"}
    compares = _runs(server)["compare"]
    assert len(compares) == 2
    (new,) = [r for r in compares if r.info.run_id != compare.info.run_id]
    assert new.info.status == "FINISHED"
    assert new.data.metrics["runs_compared"] == len(CHILDREN)
    assert {a.path for a in client.list_artifacts(new.info.run_id)} >= REPORT


def _once_it_has_metrics(server):
    """The one run in the server's experiment, once some of its epochs have reached the server."""
    deadline = time.monotonic() + 120
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in server.client.search_runs([server.experiment_id]) if "loss" in r.data.metrics]
        time.sleep(0.5)
    assert runs, "no metrics ever reached the server"
    (run,) = runs
    return run


@pytest.mark.slow  # two server start-ups, a run and `recover`: about a minute
def test_a_server_that_dies_mid_run_is_given_up_on_within_the_budget_and_nothing_is_lost(server, server_env, tmp_path):
    spill = tmp_path / "spill"
    env = {**server_env, "GDLAB_SPILL_DIR": str(spill), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "steps.train", "--dataset", "synthetic", "--model", "linear"]
    cmd += ["--epochs", "100000000", "--log-every", "100", "--store-timeout", "5"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run = _once_it_has_metrics(server)
        server.kill()
        killed = time.monotonic()
        first_line = proc.stderr.readline()
        warned = time.monotonic() - killed
        rest = proc.communicate(timeout=120)[1]
        exited = time.monotonic() - killed
    finally:
        proc.kill()
    err = first_line + rest
    print(f"after the kill: first warning {warned:.1f} s, exit {exited:.1f} s")  # for the closing note (-s)
    assert "warning: the tracking store" in first_line, err
    assert "does not answer" in first_line, err
    assert warned < 20  # the next flush (every 5 s) meets the dead server and says so at once
    assert exited < 45  # the 5 s budget, then the close without waiting on the store again
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    spilled = spill / f"{run.info.run_id}.jsonl"
    assert f"what was not written is in {spilled}" in err
    assert "python -m steps.recover" in err
    kept = [json.loads(line) for line in spilled.read_text().splitlines()]
    assert kept[0]["run_id"] == run.info.run_id
    assert kept[-1]["end"]["status"] == "FAILED"
    points = sum(1 for k in kept if "key" in k)
    assert points > 0

    server.restart()
    assert server.client.get_run(run.info.run_id).info.status == "RUNNING"  # the store could not be told
    recovered = _recover(env, tmp_path)
    assert recovered.returncode == 0, recovered.stderr
    assert f"run {run.info.run_id}: {points} metric values written" in recovered.stdout
    assert not spilled.exists()
    after = server.client.get_run(run.info.run_id)
    assert after.info.status == "FAILED"
    assert "the tracking store went away" in after.data.tags["failure_reason"]
    steps = sorted(m.step for m in server.client.get_metric_history(run.info.run_id, "loss"))
    assert steps == list(range(0, steps[-1] + 1, 100))  # every logged epoch: none lost, none twice


@pytest.mark.slow  # a server, two sweeps of 10 trials each against it: about two minutes on 2 busy cores
def test_two_sweep_workers_started_at_once_share_one_study_in_the_tracking_server(server, server_env, tmp_path):
    import optuna
    from optuna.trial import TrialState

    from steps.flow.study import _shared_mlflow_storage_class

    args = ["--search", "random", "--n-trials", "10", "--study-name", "shared", "--storage", "mlflow"]
    args += ["--learning-rates", "1e-3:0.3", "--lambdas", "1e-4:0.1", "--max-parallel", "1", "--epochs", "30"]
    args += ["--prune", "true"]
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "steps.sweep", *args, "--output-dir", str(tmp_path / f"report{i}")],
            env=server_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=600) for w in workers]
    finally:
        for w in workers:
            w.kill()
    print(f"two workers, 10 trials each: {time.monotonic() - started:.1f} s")  # for the closing note (-s)
    for w, (_out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-4000:]
        assert "Traceback" not in err

    client = server.client
    runs = _runs(server)
    parents, children, compares = runs["sweep"], runs["l1"], runs["compare"]
    assert len(parents) == 2
    assert len(children) == 20
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id for p in parents}
    assert all(c.info.status == "FINISHED" for c in children)

    # The study: in an experiment of its own on the server, one study run, 20 trials, each with one child.
    experiment = client.get_experiment_by_name("gdlab-server.optuna.shared")
    (container,) = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'shared'")
    assert container.info.status == "FINISHED"

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)  # MlflowStorage talks to the current tracking server
    try:
        storage = _shared_mlflow_storage_class()(experiment.experiment_id)
        trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    finally:
        mlflow.set_tracking_uri(before)
    assert len(trials) == 20
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert sorted(t.user_attrs["gdlab.run_id"] for t in trials) == sorted(c.info.run_id for c in children)
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(20))  # none repeated (SharedMlflowStorage corrects the race, steps/flow/study.py)
    pruned = {t.user_attrs["gdlab.run_id"] for t in trials if t.state == TrialState.PRUNED}
    assert pruned == {c.info.run_id for c in children if "pruned" in c.data.tags}
    every = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]

    # One best: the sweep that read the study last saw every trial finished; its best is the best
    # of all 20. (Not always the last to end: the other may read the study while this one's last
    # trial still trains, 19 finished, then take longer over its report: seen in CI.)
    last = max(parents, key=lambda p: p.data.metrics["study_trials"])
    assert all(p.data.metrics["study_trials"] >= p.data.metrics["trials"] for p in parents)
    complete = [c for c in children if "pruned" not in c.data.tags]
    lowest = min(c.data.metrics["final_objective"] for c in complete)
    assert last.data.metrics["best_final_objective"] == lowest
    (best,) = [c for c in complete if c.data.metrics["final_objective"] == lowest]
    assert last.data.tags["best_run_id"] == best.info.run_id
    assert last.data.metrics["study_trials"] == 20
    assert sum(p.data.metrics["trials"] for p in parents) == 20
    (last_compare,) = [c for c in compares if c.data.tags["mlflow.parentRunId"] == last.info.run_id]
    assert last_compare.data.metrics["runs_compared"] == 20
    assert {"optimization_history.png", "param_importances.png"} <= {
        a.path for a in client.list_artifacts(last.info.run_id)
    }


# --------------------------------------------------------------------------- hostile input (was test_hostile.py)

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


# --------------------------------------------------------------------------- an outage at any moment (issue 23)


class Lines:
    """A process's stderr read line by line in the background: wait for a line, keep them all."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.new = proc, [], threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self) -> None:
        """Kill the process if it still runs, read the rest, close the pipe."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)
        self.proc.stderr.close()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self.new:
                self.lines.append(line)
                self.new.notify_all()
        with self.new:
            self.lines.append(None)  # the end
            self.new.notify_all()

    def wait_for(self, text: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        with self.new:
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        pytest.fail(f"the process ended before {text!r}:\n{self.text()[-4000:]}")
                    if text in line:
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {text!r} within {timeout} s:\n{self.text()[-4000:]}")
                self.new.wait(left)

    def text(self) -> str:
        return "".join(line for line in self.lines if line)


def _start(args, env, cwd) -> tuple[subprocess.Popen, Lines]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    return proc, Lines(proc)


def _through_an_outage(server, args: list[str], env: dict, cwd: Path, trigger: str, back: bool) -> str:
    """Run ``python -m <args>`` and kill the server when ``trigger`` is printed; with ``back`` start it
    again at once (it is down for the seconds it takes to start: the process must outlast that and
    exit 0), else leave it down (the process exits 1 with one line that the store went away). Never
    a traceback. Returns its stderr."""
    proc, err = _start(args, env, cwd)
    try:
        err.wait_for(trigger)
        server.kill()
        if back:
            down = time.monotonic()
            server.restart()
            print(f"the server was down {time.monotonic() - down:.1f} s")  # for the closing note (-s)
        proc.wait(timeout=300)
    finally:
        err.close()
    text = err.text()
    assert proc.returncode == (0 if back else 1), text[-4000:]
    assert "Traceback" not in text
    if not back:
        assert text.strip().splitlines()[-1].startswith("Error: the tracking store went away"), text[-4000:]
    return text


def _recover(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steps.recover"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _spilled(spill: Path) -> dict[str, list[dict]]:
    return {p.stem: [json.loads(x) for x in p.read_text().splitlines()] for p in spill.glob("*.jsonl")}


def _steps(client, run_id: str, key: str = "loss") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


@pytest.mark.slow  # a server killed and restarted under main: about a minute
def test_an_outage_while_main_starts_its_children_is_outlasted(server, server_env, tmp_path):
    """Case 1 of issue 23: the server dies as the first child starts (its run being created, opened,
    the next one created) and comes back ~10 s later, within the budget: every run FINISHED."""
    spill = tmp_path / "spill"
    env = {**server_env, "GDLAB_SPILL_DIR": str(spill), "PYTHONUNBUFFERED": "1"}
    args = ["steps.main", "--output-dir", str(tmp_path / "out")]
    _through_an_outage(server, args, env, tmp_path, ": started run", back=True)
    runs = _runs(server)
    every = [r for rs in runs.values() for r in rs]
    print({r.info.run_name: r.info.status for r in every})
    assert sorted(runs) == sorted({"main", "compare"} | CHILDREN)
    assert len(every) == 6
    assert all(r.info.status == "FINISHED" for r in every)
    for technique in CHILDREN:
        (child,) = runs[technique]
        assert _steps(server.client, child.info.run_id) == list(range(EPOCHS)), technique
    assert not _spilled(spill)


@pytest.mark.slow  # a server killed under main and sweep, the budget spent, restarted, recover: about two minutes
@pytest.mark.parametrize("workflow", ["main", "sweep"])
def test_an_outage_longer_than_the_budget_as_children_start_leaves_nothing_running(
    workflow, server, server_env, tmp_path
):
    """Case 1, the server gone for longer than --store-timeout: one line that names the spill files,
    no traceback; once it is back, `recover` ends every run, and none is left RUNNING."""
    spill = tmp_path / "spill"
    env = {**server_env, "GDLAB_SPILL_DIR": str(spill), "PYTHONUNBUFFERED": "1"}
    args = ["steps.main"] if workflow == "main" else ["steps.sweep", "--learning-rates", "0.01,0.1,1"]
    args += ["--store-timeout", "3", "--output-dir", str(tmp_path / "out")]
    text = _through_an_outage(server, args, env, tmp_path, ": started run", back=False)
    last = text.strip().splitlines()[-1]
    kept = _spilled(spill)
    assert kept, text[-4000:]
    for run_id in kept:
        assert str(spill / f"{run_id}.jsonl") in last
    print({run_id: [line for line in lines if "key" not in line] for run_id, lines in kept.items()})
    print({run_id: sum("key" in line for line in lines) for run_id, lines in kept.items()})

    server.restart()
    recovered = _recover(env, tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert not _spilled(spill)
    every = server.client.search_runs([server.experiment_id], max_results=1000)
    print({r.info.run_name: (r.info.status, r.data.tags.get("failure_reason")) for r in every})
    assert every
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]
    for run in every:
        if run.info.status != "FINISHED":
            assert run.data.tags.get("failure_reason"), run.info.run_name
        elif "technique" in run.data.tags and run.data.tags["technique"] in CHILDREN:
            steps = _steps(server.client, run.info.run_id)
            assert steps == list(range(len(steps))), run.info.run_name  # gap-free


@pytest.mark.slow  # a server killed and restarted as main compares its children: about a minute
def test_an_outage_while_main_compares_its_children_is_outlasted_or_said(server, server_env, tmp_path):
    """Case 2 of issue 23: the server dies as main's compare step starts reading the children and
    comes back within the budget: the report is whole (every weight, every picture, no "unreadable"
    row), never a silent "-"."""
    import pandas as pd

    spill = tmp_path / "spill"
    out = tmp_path / "out"
    env = {**server_env, "GDLAB_SPILL_DIR": str(spill), "PYTHONUNBUFFERED": "1"}
    # "[4/4]": the last child has ended, main compares next
    text = _through_an_outage(server, ["steps.main", "--output-dir", str(out)], env, tmp_path, "[4/4]", back=True)
    assert "does not answer" in text  # the outage was met, and outlasted
    table = pd.read_csv(out / "compare.csv")
    assert len(table) == 4
    assert table["weights"].notna().all(), table.to_string()
    notes = table["note"].astype("string").fillna("")
    assert not notes.str.contains("unreadable|missing").any(), notes.tolist()
    assert {"loss_curves.png", "trajectories.png", "internals.png"} <= {p.name for p in out.iterdir()}
    every = server.client.search_runs([server.experiment_id])
    assert all(r.info.status == "FINISHED" for r in every), [(r.info.run_name, r.info.status) for r in every]
    assert not _spilled(spill)


@pytest.mark.slow  # main through a server that dies as it compares and stays down: about a minute
def test_an_outage_longer_than_the_budget_while_main_compares_fails_and_says_so(server, server_env, tmp_path):
    """Case 2, the server gone for longer than the budget while compare reads: exit 1 with one line
    that says so, no report over data it could not read; `recover` ends the runs afterwards."""
    spill = tmp_path / "spill"
    out = tmp_path / "out"
    env = {**server_env, "GDLAB_SPILL_DIR": str(spill), "PYTHONUNBUFFERED": "1"}
    # "[4/4]": the last child has ended, main compares next
    args = ["steps.main", "--store-timeout", "3", "--output-dir", str(out)]
    _through_an_outage(server, args, env, tmp_path, "[4/4]", back=False)
    assert not (out / "compare.csv").exists()
    kept = _spilled(spill)
    print({run_id: [line for line in lines if "key" not in line][1:] for run_id, lines in kept.items()})
    server.restart()
    recovered = _recover(env, tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    every = server.client.search_runs([server.experiment_id])
    print({r.info.run_name: (r.info.status, r.data.tags.get("failure_reason")) for r in every})
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]


@pytest.mark.slow  # a server killed under a run, two SIGTERMs, a restart and recover twice: about a minute
def test_a_second_sigterm_during_an_outage_abandons_the_close_and_recover_never_writes_into_an_ended_run(
    server, server_env, tmp_path
):
    """Case 3 of issue 23: the server dies under a training run; SIGTERM, then SIGTERM again. The
    second abandons the close at once; the last line names the spill file; the run is not ended
    while values wait in it; `recover` writes them and ends it KILLED, and refuses to write the
    same values into the run once it has ended."""
    spill = tmp_path / "spill"
    env = {**server_env, "GDLAB_SPILL_DIR": str(spill), "PYTHONUNBUFFERED": "1"}
    cmd = ["steps.train", "--dataset", "synthetic", "--model", "linear", "--epochs", "100000000"]
    proc, err = _start([*cmd, "--log-every", "100"], env, tmp_path)
    try:
        run = _once_it_has_metrics(server)
        server.kill()
        err.wait_for("does not answer")  # a flush meets the dead server, and retries (120 s by default)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # a second signal, not part of the first stop
        second = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - second
    finally:
        err.close()
    text = err.text()
    print(f"exit {took:.1f} s after the second SIGTERM")
    assert proc.returncode == 143, text[-3000:]
    assert took < 10, text[-3000:]
    assert "Traceback" not in text
    spilled = spill / f"{run.info.run_id}.jsonl"
    last = text.strip().splitlines()[-1]
    assert str(spilled) in last, last
    assert "python -m steps.recover" in last
    kept = [json.loads(line) for line in spilled.read_text().splitlines()]
    points = sum("key" in k for k in kept)
    print(f"spilled: {points} values, end {kept[-1]}")
    assert points > 0
    assert kept[-1]["end"]["status"] == "KILLED"

    server.restart()
    assert server.client.get_run(run.info.run_id).info.status == "RUNNING"  # not ended while values wait
    before = len(_steps(server.client, run.info.run_id))
    stale = spilled.read_bytes()
    recovered = _recover(env, tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert f"{points} metric values written" in recovered.stdout
    after = server.client.get_run(run.info.run_id)
    assert after.info.status == "KILLED"
    written = _steps(server.client, run.info.run_id)
    print(f"history: {before} points before recover, {len(written)} after")
    assert written == list(range(0, written[-1] + 1, 100))  # gap-free, none twice

    spilled.write_bytes(stale)  # the same values again, now that the run has ended
    again = _recover(env, tmp_path)
    assert again.returncode == 1
    assert "has ended (KILLED)" in again.stderr
    assert f"{points} metric values were not written" in again.stderr
    assert "Traceback" not in again.stderr
    assert spilled.with_name(spilled.name + ".ended").exists()
    assert _steps(server.client, run.info.run_id) == written  # nothing written into the ended run


# --------------------------------------------------------------------------- a team on PostgreSQL (issue 24)


def _trials(url: str, name: str) -> list:
    """The trials of study ``name`` in the database ``url`` (its connections closed after)."""
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.remove_session()
        storage.engine.dispose()


@pytest.mark.slow  # a PostgreSQL-backed server and three sweeps against it: about a minute and a half
def test_three_sweeps_started_together_end_with_exactly_max_trials_in_a_postgresql_study(
    pg_server, project_env, postgres, tmp_path
):
    from optuna.trial import TrialState

    server = pg_server
    study_url = postgres.database("study_max_trials")
    env = {**project_env, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_EXPERIMENT_ID": server.experiment_id}
    args = ["--search", "random", "--learning-rates", "1e-3:0.3", "--lambdas", "1e-4:0.1", "--epochs", "30"]
    args += ["--max-trials", "9", "--study-name", "team", "--storage", study_url, "--max-parallel", "1"]
    started = time.monotonic()
    outs = [str(tmp_path / f"out{i}") for i in range(3)]
    sweeps = [_start(["steps.sweep", *args, "--output-dir", out], env, tmp_path) for out in outs]
    try:
        for proc, _err in sweeps:
            proc.wait(timeout=600)
    finally:
        for _proc, err in sweeps:
            err.close()
    print(f"three sweeps, --max-trials 9: {time.monotonic() - started:.1f} s")  # for the closing note (-s)
    for proc, err in sweeps:
        assert proc.returncode == 0, err.text()[-3000:]
        assert "Traceback" not in err.text()

    trials = _trials(study_url, "team")
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    over = [t for t in trials if t.user_attrs.get("gdlab.over_budget")]
    print(f"{len(finished)} finished, {len(over)} asked over the budget and failed unrun, {len(trials)} in all")
    assert len(finished) == 9
    assert len(trials) == 9 + len(over)  # nothing else: no trial left RUNNING, none failed
    run_ids = [t.user_attrs["gdlab.run_id"] for t in finished]
    assert len(set(run_ids)) == 9  # none repeated
    children = [r for r in _runs(server).get("l1", [])]
    assert sorted(c.info.run_id for c in children) == sorted(run_ids)
    assert all(c.info.status == "FINISHED" for c in children)
    every = server.client.search_runs([server.experiment_id], max_results=1000)
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]


@pytest.mark.slow  # two sweeps, one killed outright, a PostgreSQL study: about half a minute
def test_a_sweep_killed_outright_has_its_trial_failed_and_run_again_by_another_and_the_budget_is_met(
    tracking, project_env, postgres, tmp_path
):
    from optuna.trial import TrialState

    study_url = postgres.database("study_retry")
    env = {**project_env, "GDLAB_HEARTBEAT_S": "1", "PYTHONUNBUFFERED": "1"}  # a trial is stale after 4 s
    args = ["--search", "random", "--learning-rates", "1e-3:0.3", "--lambdas", "1e-4:0.1", "--max-parallel", "1"]
    args += ["--epochs", "20000", "--log-every", "500", "--max-trials", "2", "--retry-failed", "true"]
    args += ["--study-name", "team", "--storage", study_url]
    first, err = _start(["steps.sweep", *args, "--output-dir", str(tmp_path / "a")], env, tmp_path)
    try:
        err.wait_for(": started run")
        first.kill()  # SIGKILL, mid-trial: nothing of it can say goodbye
        first.wait(timeout=30)
    finally:
        err.close()
    second, err = _start(["steps.sweep", *args, "--output-dir", str(tmp_path / "b")], env, tmp_path)
    try:
        second.wait(timeout=300)
    finally:
        err.close()
    assert second.returncode == 0, err.text()[-3000:]
    assert "Traceback" not in err.text()

    trials = _trials(study_url, "team")
    print({t.number: (t.state.name, t.params, t.system_attrs.get("failed_trial")) for t in trials})
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 2  # the budget
    (retried,) = [t for t in finished if t.system_attrs.get("failed_trial") == failed.number]
    assert retried.params == failed.params  # run again with the same values
    client = tracking.client
    dead = client.get_run(failed.user_attrs["gdlab.run_id"])
    print(dead.info.status, dead.data.tags.get("failure_reason"))
    assert dead.info.status in ("KILLED", "FAILED")  # its worker closed it, or the survivor did
    (killed_sweep,) = [
        r
        for r in client.search_runs([tracking.experiment_id])
        if r.info.run_id not in {dead.info.run_id}
        and r.data.tags.get("technique") == "sweep"
        and r.info.status == "RUNNING"
    ]
    recovered = _recover(env, tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert client.get_run(killed_sweep.info.run_id).info.status == "KILLED"
    every = client.search_runs([tracking.experiment_id], max_results=1000)
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]


@pytest.mark.slow  # a PostgreSQL-backed server killed and restarted under a sweep: about a minute
def test_a_postgresql_backed_server_restarted_during_a_sweep_loses_nothing(pg_server, project_env, postgres, tmp_path):
    server = pg_server
    spill = tmp_path / "spill"
    env = {**project_env, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_EXPERIMENT_ID": server.experiment_id}
    env.update({"GDLAB_SPILL_DIR": str(spill), "PYTHONUNBUFFERED": "1"})
    args = ["steps.sweep", "--search", "random", "--learning-rates", "1e-3:0.3", "--lambdas", "1e-4:0.1"]
    args += ["--n-trials", "6", "--epochs", "300", "--study-name", "team", "--output-dir", str(tmp_path / "out")]
    args += ["--storage", postgres.database("study_outage")]
    _through_an_outage(server, args, env, tmp_path, ": started run", back=True)
    runs = _runs(server)
    children = runs["l1"]
    print({c.info.run_name: (c.info.status, len(_steps(server.client, c.info.run_id))) for c in children})
    assert len(children) == 6
    for child in children:
        assert child.info.status == "FINISHED", child.info.run_name
        assert _steps(server.client, child.info.run_id) == list(range(300)), child.info.run_name  # gap-free
    assert all(r.info.status == "FINISHED" for rs in runs.values() for r in rs)
    assert not _spilled(spill)


_ASK_AND_TELL = """
import sys, time, warnings
warnings.simplefilter("ignore")
import mlflow, optuna
from steps.flow.study import _shared_mlflow_storage_class
optuna.logging.set_verbosity(optuna.logging.WARNING)
experiment, trials, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
storage = _shared_mlflow_storage_class()(experiment)
study = optuna.load_study(study_name="race", storage=storage, sampler=optuna.samplers.RandomSampler())
time.sleep(max(0.0, start - time.time()))
for _ in range(trials):
    trial = study.ask()
    study.tell(trial, trial.suggest_float("x", -1, 1) ** 2)
storage.flush_all_batches()
"""


@pytest.mark.slow  # a server, four workers a round on two loaded cores, two rounds: about a minute
def test_workers_sharing_an_mlflow_stored_study_on_loaded_cores_never_share_a_trial_number(server, server_env):
    """The shared-study race (issue 24), under load: both cores kept busy while four workers ask and
    tell as fast as they can through a real server, twice over."""
    import optuna
    from optuna.study import StudyDirection

    from steps.flow.study import _shared_mlflow_storage_class

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    try:
        for round_ in range(2):
            experiment = server.client.create_experiment(f"race-{round_}")
            _shared_mlflow_storage_class()(experiment).create_new_study([StudyDirection.MINIMIZE], "race")
            start = str(time.time() + 6)  # every worker has imported and opened the study by then
            workers = [
                subprocess.Popen([sys.executable, "-c", _ASK_AND_TELL, experiment, "10", start], env=server_env)
                for _ in range(4)
            ]
            for w in workers:
                assert w.wait(timeout=300) == 0
            trials = optuna.load_study(study_name="race", storage=_shared_mlflow_storage_class()(experiment)).trials
            print(f"round {round_}: {len(trials)} trials, numbers {sorted(t.number for t in trials)}")
            assert len(trials) == 40
            assert sorted(t.number for t in trials) == list(range(40))
    finally:
        mlflow.set_tracking_uri(before)
        for b in busy:
            b.kill()
            b.wait()
