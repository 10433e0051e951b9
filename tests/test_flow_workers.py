"""`main` and `sweep` children in the workflow's own worker processes (docs: steps/flow/workers.py).

Real processes throughout: `python -m steps.main` starts its forkserver and workers,
and the tests kill, interrupt and inspect them as a user or the OS would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import interactive_sigint

from steps.adam import adam
from steps.cli.workflow import cores
from steps.main import main
from steps.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]
CHILDREN = ("sgd", "adam", "l1", "l2")


def runs_by_technique(tracking) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in tracking.client.search_runs([tracking.experiment_id], max_results=1000):
        out.setdefault(r.data.tags.get("technique"), []).append(r)
    return out


def start_main(project_env, log: Path, *args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "steps.main", "--output-dir", str(log.parent / "out"), *args]
    with open(log, "w") as out:  # a file, not a pipe: the workers must not hold our read end open
        return subprocess.Popen(
            cmd, cwd=ROOT, env=project_env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=interactive_sigint
        )


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def workers_of(pid: int) -> list[int]:
    """The worker processes of a workflow: the children of its forkserver (its own child)."""
    return [w for server in forkservers_of(pid) for w in children_of(server) if is_forkserver(w)]


def wait_for_training(tracking, proc, n: int, timeout: float = 120, trained=None) -> list:
    """Until ``n`` child runs are live, and then until ``trained(kids)`` says they have trained a
    while (without it, a moment more). Returns those runs."""
    deadline = time.monotonic() + timeout
    kids = []
    while time.monotonic() < deadline and proc.poll() is None:
        if len(kids) < n:
            kids = [
                r
                for r in tracking.client.search_runs([tracking.experiment_id])
                if r.data.tags.get("technique") in CHILDREN and r.info.status == "RUNNING"
            ]
        if len(kids) >= n and trained is None:
            time.sleep(1.0)
            return kids
        if len(kids) >= n and trained(kids):
            return kids
        time.sleep(0.2)
    raise AssertionError("the children never started training")


def stop_two_training_children(tracking, proc, log: Path, sig, code: int, technique: str, trained) -> list:
    """Signal a workflow once two children have trained (``trained``, as wait_for_training takes
    it), and check that it exits ``code`` with no traceback and no run left RUNNING, its own
    run (tagged ``technique``) KILLED. Returns the two children's runs as they were when signalled.

    (Signalled once they have trained, not just begun: on a loaded machine a child a second old
    may not have reached its second logged epoch: seen in CI.)"""
    try:
        kids = wait_for_training(tracking, proc, 2, trained=trained)
        proc.send_signal(sig)
        proc.wait(timeout=90)
    finally:
        proc.kill()
    out = log.read_text()
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out
    runs = tracking.client.search_runs([tracking.experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs), out[-3000:]
    (parent,) = [r for r in runs if r.data.tags.get("technique") == technique]
    assert parent.info.status == "KILLED"
    return kids


def logged_twice(tracking):
    """Whether each run has two loss values in the store already (a flush that followed training)."""
    return lambda kids: all(len(tracking.client.get_metric_history(k.info.run_id, "loss")) >= 2 for k in kids)


def test_children_are_nested_runs_with_the_tags_and_params_of_a_run_of_their_own(tracking):
    result = CliRunner().invoke(main, ["--output-dir", str(tracking.root / "out"), "--epochs", "30"])
    assert result.exit_code == 0, result.output
    runs = runs_by_technique(tracking)
    (parent,) = runs["main"]
    assert parent.info.run_name == "main"
    for technique in CHILDREN:
        (child,) = runs[technique]
        tags = child.data.tags
        assert child.info.status == "FINISHED"
        assert child.info.run_name == technique
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["mlflow.project.entryPoint"] == technique
        assert tags["mlflow.source.type"] == "PROJECT"
        assert tags["mlflow.source.name"] == str(ROOT)
        if (ROOT / ".git").exists():
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
            assert tags["mlflow.source.git.commit"] == head.stdout.strip()
        assert {"gdlab.config_sha", "gdlab.code_sha", "gdlab.data_sha", "optimizer", "penalty"} <= set(tags)
        assert {"final_loss", "final_objective", "zero_weights", "train_time_s"} <= set(child.data.metrics)
        artifacts = {a.path for a in tracking.client.list_artifacts(child.info.run_id)}
        assert {"weights.json", "trajectory.csv"} <= artifacts
        assert len(child.outputs.model_outputs) == 1  # its LoggedModel
    (compare,) = runs["compare"]
    assert compare.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert compare.info.status == "FINISHED"
    # The report says whose runs it compares, not the filter of run ids it used.
    title = (tracking.root / "out" / "compare.md").read_text().splitlines()[0]
    assert title == f"# gdlab comparison: 4 runs of the children of main run {parent.info.run_id} (experiment id " + (
        f"{tracking.experiment_id})"
    )
    assert "attributes.run_id" not in result.output

    # The adam child logs what `adam` run on its own logs: the same params, the same weights.
    result = CliRunner().invoke(adam, ["--epochs", "30"])
    assert result.exit_code == 0, result.output
    (alone,) = [r for r in runs_by_technique(tracking)["adam"] if not r.data.tags.get("mlflow.parentRunId")]
    (child,) = runs["adam"]
    assert child.data.params == alone.data.params
    assert child.data.metrics["final_loss"] == alone.data.metrics["final_loss"]
    assert child.data.tags["gdlab.config_sha"] == alone.data.tags["gdlab.config_sha"]


@pytest.mark.slow
def test_a_worker_killed_mid_child_fails_that_child_and_the_others_finish(tracking, project_env):
    log = tracking.root / "main.log"
    # Long enough children (a few seconds each) to kill one while it trains.
    proc = start_main(project_env, log, "--epochs", "40000", "--log-every", "5000", "--max-parallel", "2")
    try:
        wait_for_training(tracking, proc, 1)
        workers = workers_of(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    out = log.read_text()
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    runs = runs_by_technique(tracking)
    children = [r for t in CHILDREN for r in runs.get(t, [])]
    assert len(children) == 4
    failed = [c for c in children if c.info.status == "FAILED"]
    assert len(failed) == 1, [(c.data.tags["technique"], c.info.status) for c in children]
    assert failed[0].data.tags["failure_reason"] == "its worker process died (killed by SIGKILL)"
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    assert f"these steps failed: {failed[0].data.tags['technique']}" in out
    assert runs["main"][0].info.status == "FAILED"
    assert runs["compare"][0].info.status == "FINISHED"


def forked_by(pid: int) -> list[int]:
    """The children of a single-threaded process, cheaply enough to poll in a tight loop."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def sleeping(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"
    except OSError:
        return False


def is_forkserver(pid: int) -> bool:
    """Whether ``pid`` runs multiprocessing's forkserver, or is a worker forked from one."""
    try:
        return b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def forkservers_of(pid: int) -> list[int]:
    return [kid for kid in children_of(pid) if is_forkserver(kid)]


def test_a_worker_dead_before_its_child_started_leaves_a_failed_run_that_says_which_child(tracking, project_env):
    # The worker is stopped as soon as it exists, so it never reads its child: the run the
    # workflow created for it is all there is. (It used to carry no technique tag, so the
    # child went missing from every search by technique: seen in CI.)
    log = tracking.root / "main.log"
    proc = start_main(project_env, log, "--epochs", "30", "--max-parallel", "1")
    try:
        deadline = time.monotonic() + 120
        servers = []
        while not servers and time.monotonic() < deadline and proc.poll() is None:
            servers = forkservers_of(proc.pid)
        assert len(servers) == 1, log.read_text()[-3000:]
        worker = None
        while worker is None and time.monotonic() < deadline and proc.poll() is None:
            for pid in forked_by(servers[0]):
                # Stopped as soon as it is forked, long before the workflow has created the run it
                # hands it. The forkserver also runs commands (`uname -p`) while it imports: those
                # are let go, and so is one still between vfork and exec (that hangs the forkserver).
                if is_forkserver(pid) and sleeping(servers[0]):
                    os.kill(pid, signal.SIGSTOP)
                    if is_forkserver(pid):
                        worker = pid
                    else:
                        os.kill(pid, signal.SIGCONT)
        assert worker is not None, log.read_text()[-3000:]
        handed = wait_for_runs(tracking, proc, "mlflow.parentRunId")
        assert not handed.data.params, "the worker started its child before it was stopped"
        os.kill(worker, signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    out = log.read_text()
    assert proc.returncode == 1, out[-3000:]
    runs = runs_by_technique(tracking)
    assert None not in runs, [r.info.run_name for r in runs[None]]
    children = [r for t in CHILDREN for r in runs.get(t, [])]
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    assert failed.info.run_id == handed.info.run_id
    assert failed.info.run_name == failed.data.tags["technique"] == "sgd"
    assert (failed.data.tags["optimizer"], failed.data.tags["penalty"]) == ("sgd", "none")
    assert failed.data.tags["failure_reason"] == "its worker process died (killed by SIGKILL)"
    assert "these steps failed: sgd" in out


def wait_for_runs(tracking, proc, tag: str, timeout: float = 120):
    """The first run of the experiment that has ``tag``, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        runs = [r for r in tracking.client.search_runs([tracking.experiment_id]) if tag in r.data.tags]
        if runs:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError(f"no run with the tag {tag} was created")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_main_ends_every_started_run_killed_with_its_history(tracking, project_env, sig, code):
    log = tracking.root / "main.log"
    # (Logged every 100 epochs, 1,000 values fill the buffer in well under a second: flushed.)
    proc = start_main(project_env, log, "--epochs", "100000000", "--log-every", "100")
    kids = stop_two_training_children(tracking, proc, log, sig, code, "main", logged_twice(tracking))
    for kid in kids:
        run = tracking.client.get_run(kid.info.run_id)
        assert run.info.status == "KILLED"
        assert run.data.tags["failure_reason"] in ("terminated (SIGTERM)", "interrupted (Ctrl-C)")
        steps = [m.step for m in tracking.client.get_metric_history(kid.info.run_id, "loss")]
        assert steps == sorted(steps)
        assert steps[0] == 0  # the history up to the signal, flushed
        assert len(steps) > 1
    assert not workers_of(proc.pid)


def test_max_parallel_zero_means_one_worker_a_core(tracking):
    result = CliRunner().invoke(main, ["--max-parallel", "0", "--epochs", "5", "--output-dir", tracking.root / "o"])
    assert result.exit_code == 0, result.output
    (parent,) = runs_by_technique(tracking)["main"]
    assert parent.data.params["max_parallel"] == "0"
    assert parent.data.params["launcher"] == "local"


@pytest.mark.parametrize(("cpu_max", "cap"), [("max 100000", None), ("150000 100000", 2), ("50000 100000", 1)])
def test_one_worker_a_core_respects_a_container_cpu_limit(tmp_path, cpu_max, cap):
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    n = len(os.sched_getaffinity(0))
    assert cores(tmp_path / "cpu.max") == (n if cap is None else min(n, cap))
    assert cores(tmp_path / "missing") == n


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backend", "kubernetes"], "--backend and --backend-config need --launcher mlflow"),
        (["--launcher", "mlflow", "--backend-config", "/no/such.json"], "no such file: /no/such.json"),
        (["--launcher", "ray"], "--launcher"),
    ],
)
def test_bad_launch_options_are_refused_before_anything_starts(tracking, args, needle):
    for command in (main, sweep):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 2, result.output
        assert needle in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_sweep_children_are_named_for_their_values_and_reuse_works(tracking):
    args = ["--technique", "l1", "--learning-rates", "0.01,0.1", "--lambdas", "0.01", "--epochs", "10"]
    first = CliRunner().invoke(sweep, [*args, "--reuse", "true", "--output-dir", tracking.root / "a"])
    assert first.exit_code == 0, first.output
    names = {r.info.run_name for r in runs_by_technique(tracking)["l1"]}
    assert names == {"l1 lr=0.01 lambda=0.01", "l1 lr=0.1 lambda=0.01"}
    assert {r.info.run_name for r in runs_by_technique(tracking)["sweep"]} == {"sweep l1"}
    second = CliRunner().invoke(sweep, [*args, "--reuse", "true", "--output-dir", tracking.root / "b"])
    assert second.exit_code == 0, second.output
    assert second.output.count("reusing run") == 2
    assert len(runs_by_technique(tracking)["l1"]) == 2


@pytest.mark.slow
def test_launcher_mlflow_runs_each_child_through_mlflow_run(tracking, project_env):
    proc = subprocess.run(
        [sys.executable, "-m", "steps.main", "--launcher", "mlflow", "--epochs", "10", "--output-dir", "out"],
        cwd=tracking.root,
        env=project_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_by_technique(tracking)
    (parent,) = runs["main"]
    for technique in CHILDREN:
        (child,) = runs[technique]
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["mlflow.project.backend"] == "local"  # MLflow's own launch tags it
    assert runs["compare"][0].info.status == "FINISHED"


@pytest.mark.slow  # a workflow started, interrupted mid-search and inspected: about 20 s
def test_ctrl_c_to_a_search_ends_every_run_killed_and_tells_the_study_its_trials_failed(tracking, project_env):
    import optuna
    from optuna.trial import TrialState

    log = tracking.root / "sweep.log"
    url = f"sqlite:///{tracking.root / 'study.db'}"
    args = ["--search", "random", "--study-name", "s", "--storage", url, "--prune", "true", "--max-parallel", "2"]
    args += ["--epochs", "100000000", "--log-every", "1000", "--output-dir", str(tracking.root / "out")]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "steps.sweep", *args],
            cwd=ROOT,
            env=project_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=interactive_sigint,
        )

    def reported_twice(kids) -> bool:  # the trials report each logged epoch to the study at once
        trials = optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)
        return len(trials) == 2 and all(len(t.intermediate_values) >= 2 for t in trials)

    kids = stop_two_training_children(tracking, proc, log, signal.SIGINT, 130, "sweep", reported_twice)
    for kid in kids:
        run = tracking.client.get_run(kid.info.run_id)
        assert run.info.status == "KILLED"
        assert len(tracking.client.get_metric_history(kid.info.run_id, "loss")) > 1  # its history, flushed
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    assert len(trials) == 2
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]  # none left RUNNING in the study
    assert all(len(t.intermediate_values) > 1 for t in trials)  # the reports reached the study
    assert not workers_of(proc.pid)


def test_a_workers_data_cache_tells_a_classifiers_labels_from_a_regressions_target(tmp_path):
    # One CSV, two models: a linear child trains on the target's values, a logistic child on 0/1 labels.
    from steps.flow import workers
    from steps.flow.launch import make_child

    csv = tmp_path / "two.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{3 if i % 2 else 7}\n" for i in range(12)))
    linear = make_child("a", "train", {"dataset": str(csv)}, model="linear").config
    logistic = make_child("b", "train", {"dataset": str(csv)}, model="logistic").config
    workers._data_cache.clear()
    assert sorted(set(workers._load(linear).y_train)) == [3.0, 7.0]
    as_labels = workers._load(logistic)  # (was the linear child's data: the cache key had no model)
    assert as_labels.classes == (3.0, 7.0)
    assert sorted(set(as_labels.y_train)) == [0.0, 1.0]
    assert linear.data_key() != logistic.data_key()
