"""Run entry points as child runs nested under the workflow's run, then `compare` them.

Shared by `main` (the lesson's four techniques) and `sweep` (a grid of one). Two launchers:

* ``local`` (the default): children train in the workflow's own worker processes
  (:mod:`steps.flow.workers`), at most ``max_parallel`` at a time, each worker importing MLflow
  once. A child gets the tags an `mlflow run` child would have (``mlflow.source.*``,
  ``mlflow.project.entryPoint``) besides its own.
* ``mlflow``: each child through MLflow's own ``mlflow.projects.run(..., synchronous=False)``
  from the main thread (so it nests), on any MLflow backend (``kubernetes`` puts each child
  in a Job of its own). Two interpreter start-ups a child on the local backend.

Either way a child that fails is reported and the others go on, and `compare` then runs
in this process, nested under the workflow's run, over exactly the children.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from core.config import BUILT_IN_DATASETS, TEST_FUNCTIONS, TrainConfig, option_name
from core.data import Dataset
from steps.cli.options import as_param, command_defaults
from steps.report.compare_table import ranking_metric
from steps.run import fingerprint
from steps.run.errors import StoreGone
from steps.run.lifecycle import NOT_DONE, RunStopped, claim, end_if_open, tracked_run
from steps.run.runner import make_config
from steps.run.signals import SIGNALS

LAUNCHERS = ("local", "mlflow")
# What a child copies from the workflow's run: where the code came from, as `mlflow run` tags it.
SOURCE_TAGS = (
    "mlflow.user",
    "mlflow.source.name",
    "mlflow.source.type",
    "mlflow.source.git.commit",
    "mlflow.source.git.repoURL",
    "mlflow.source.git.branch",
    "mlflow.gitRepoURL",
    "mlflow.project.env",
    "mlflow.project.backend",
)


def _command(entry_point: str) -> click.Command:
    return getattr(importlib.import_module(f"steps.{entry_point}"), entry_point)


@dataclass(frozen=True)
class Child:
    """One planned child run: which entry point, with which options."""

    label: str
    entry_point: str
    options: dict  # Click parameter name -> value
    config: TrainConfig  # what the child will resolve them to (checked before anything starts)
    extra_tags: tuple = ()  # (name, value) pairs its run carries besides what it trains (a benchmark's phase)
    log_model: bool = True  # False: the run logs no LoggedModel (a benchmark's tuning trials stay cheap)

    @property
    def parameters(self) -> dict[str, str]:
        """The options as MLproject parameters (``-P`` strings)."""
        return {option_name(name): as_param(value) for name, value in self.options.items()}

    @property
    def tags(self) -> dict[str, str]:
        """What its run says it is from the moment the workflow creates it, so that a run whose
        worker dies before training (and tagging) is still found and named as that child."""
        cfg = self.config
        return {
            "mlflow.project.entryPoint": self.entry_point,
            "technique": self.entry_point,
            "optimizer": cfg.optimizer,
            "penalty": cfg.penalty,
            **dict(self.extra_tags),
        }


def make_child(
    label: str, entry_point: str, shared: dict, *, extra_tags: tuple = (), log_model: bool = True, **overrides
) -> Child:
    """A child of ``entry_point`` taking the ``shared`` options it accepts, then ``overrides``."""
    command = _command(entry_point)
    accepted = {p.name for p in command.params}
    options = {k: v for k, v in {**shared, **overrides}.items() if k in accepted}
    dataset = options.get("dataset")
    if dataset and dataset not in BUILT_IN_DATASETS and os.path.exists(dataset):  # children run in the project folder
        options["dataset"] = os.path.abspath(dataset)
    kwargs = {**command_defaults(command), **options}
    return Child(label, entry_point, options, make_config(entry_point, **kwargs), tuple(extra_tags), log_model)


def runs_by_id(client, experiment_id: str, run_ids) -> dict:
    """{run id: Run} of those of ``run_ids`` that are runs of the experiment, read in pages of 100
    (one search a page, not one ``get_run`` a run)."""
    ids, found = list(run_ids), {}
    for i in range(0, len(ids), 100):
        chunk = ", ".join(f"'{r}'" for r in ids[i : i + 100])
        for run in client.search_runs([experiment_id], f"attributes.run_id IN ({chunk})", max_results=100):
            found[run.info.run_id] = run
    return found


def find_reusable(client, experiment_id: str, child: Child, data: Dataset) -> str | None:
    """A FINISHED run of the same entry point with the same resolved config, code and data that did
    all the child would do: not stopped by a search's pruner (no final metrics), and with a
    LoggedModel when the child logs one (a benchmark's tuning trial has the config of its winner's
    first rerun, but no model)."""
    clauses = [f"tags.`mlflow.project.entryPoint` = '{child.entry_point}'", "attributes.status = 'FINISHED'"]
    clauses += [f"tags.`{k}` = '{v}'" for k, v in fingerprint.tags(child.config, data).items()]
    runs = client.search_runs([experiment_id], " and ".join(clauses), max_results=50, order_by=["start_time DESC"])
    needs_model = child.log_model and child.config.dataset not in TEST_FUNCTIONS
    for run in runs:
        if "pruned" in run.data.tags:
            continue
        if needs_model and not (run.outputs and run.outputs.model_outputs):
            continue
        if not _files_there(client, run, needs_model):
            continue
        return run.info.run_id
    return None


def _files_there(client, run, needs_model: bool) -> bool:
    """Whether a run's files are still in the artifact store: its weights.json and, when it stands
    in for a model, its LoggedModel's MLmodel. (Tags alone said yes for a run whose artifacts were
    deleted, and `--register-model` then made a model without files the champion.)"""
    from mlflow.exceptions import MlflowException

    try:
        if "weights.json" not in {a.path for a in client.list_artifacts(run.info.run_id)}:
            return False
        if needs_model:
            model_id = run.outputs.model_outputs[-1].model_id
            return "MLmodel" in {a.path for a in client.list_logged_model_artifacts(model_id)}
    except (MlflowException, OSError):
        return False
    return True


@dataclass
class Outcome:
    run_id: str
    ok: bool
    reused: bool = False


@dataclass(frozen=True)
class Launch:
    """How the children are started (`--launcher`, and for ``mlflow`` the backend)."""

    launcher: str = "local"
    max_parallel: int = 2
    backend: str = "local"
    backend_config: str | None = None


def source_tags(parent_tags: dict) -> dict[str, str]:
    """The `mlflow run` tags a child gets: the parent's source, else this checkout's."""
    tags = {k: parent_tags[k] for k in SOURCE_TAGS if k in parent_tags}
    if parent_tags.get("mlflow.source.type") != "PROJECT":  # the workflow was not started by `mlflow run`
        tags.update({"mlflow.source.name": str(fingerprint.ROOT), "mlflow.source.type": "PROJECT"})
        tags.pop("mlflow.source.git.commit", None)
        commit = _git_commit(fingerprint.ROOT)
        if commit:
            tags["mlflow.source.git.commit"] = commit
    return tags


def _git_commit(root: Path) -> str | None:
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def progress(done: int, total: int, label: str, run_id: str, what: str) -> None:
    click.echo(f"[{done}/{total}] {label}: run {run_id} {what}", err=True)


def run_children(
    parent,
    children: list[Child],
    *,
    launch: Launch,
    reuse: bool,
    data: Dataset,
    pool=None,
    counted=(0, None),
    announce: bool = True,
):
    """Run (or reuse) every child; label -> outcome. ``data`` is the children's dataset, or a function
    of the child giving its own (a benchmark's problems differ). ``counted`` (done before, total) numbers the
    progress lines of a workflow that runs its children in several calls (a benchmark's phases);
    ``announce=False`` prints a line when a child ends only, not also when it starts."""
    outcomes: dict[str, Outcome] = {}
    todo = []
    before, total = counted[0], counted[1] or len(children)
    for child in children:
        found = None
        if reuse:
            found = find_reusable(parent.client, parent.experiment_id, child, data(child) if callable(data) else data)
        if found:
            outcomes[child.label] = Outcome(found, True, reused=True)
            click.echo(
                f"[{before + len(outcomes)}/{total}] {child.label}: reusing run {found} (same options, code and data)",
                err=True,
            )
        else:
            todo.append(child)
    if todo and pool is not None:
        _run_in_workers(parent, todo, pool, outcomes, total, before, announce)
    elif todo:
        _run_with_mlflow(parent, todo, launch, outcomes, total, before)
    return {c.label: outcomes[c.label] for c in children}


def _run_in_workers(
    parent, todo: list[Child], pool, outcomes: dict, total: int, before: int = 0, announce: bool = True
) -> None:
    import mlflow

    from steps.flow.workers import Task

    client = parent.client
    parent_tags = client.get_run(parent.id).data.tags
    base = source_tags(parent_tags)
    uri, env, cwd = mlflow.get_tracking_uri(), dict(os.environ), os.getcwd()

    def make_task(child: Child) -> Task:  # called with signals held
        # The workflow holds the child's run until a worker takes it over (claim: owner and heartbeat).
        tags = {**base, "mlflow.parentRunId": parent.id, **child.tags, **claim()}
        run = client.create_run(parent.experiment_id, run_name=child.label, tags=tags)
        return Task(
            child.label, child.entry_point, child.config, run.info.run_id, uri, env, cwd, log_model=child.log_model
        )

    def started(task: Task) -> None:
        click.echo(f"{task.label}: started run {task.run_id}", err=True)

    try:
        for done in pool.run(todo, make_task, started if announce else None):
            if done.status != "FINISHED":  # ended by its worker, unless the worker died or could not
                close_run(client, done.run_id, done.status, done.reason)
            outcomes[done.label] = Outcome(done.run_id, done.status == "FINISHED")
            what = "finished" if done.status == "FINISHED" else f"{done.status}: {done.reason}"
            progress(before + len(outcomes), total, done.label, done.run_id, what)
    except BaseException:
        with SIGNALS.closing():  # a second Ctrl-C must not cut the closing short
            for task in pool.stop():
                close_run(client, task.run_id, "KILLED", "the workflow was stopped")
        raise


def close_run(client, run_id: str, status: str, reason: str | None) -> None:
    """End a run whose worker could not (it died, or was killed); a store error is a warning. When
    the store has gone away, how the run should end is spilled for `recover`."""
    from steps.run import tracking

    if tracking.spill_file(run_id).exists():  # its values wait there: `recover` writes them, then ends it
        tracking.spill(run_id, end={"status": status, "failure_reason": reason or status.lower()})
        return
    try:
        end_if_open(client, run_id, status, reason)
    except StoreGone as exc:
        end = {"status": status, "failure_reason": f"{reason}; the store went away ({exc})"}
        path = tracking.spill(run_id, end=end)
        click.echo(f"warning: could not close run {run_id} (the store went away): its end is in {path}", err=True)
    except Exception as exc:
        click.echo(f"warning: could not close run {run_id}: {exc}", err=True)


def project_uri(backend: str) -> str:
    """The project a child is launched from: kubernetes/ (its docker_env twin) for Kubernetes Jobs."""
    return str(fingerprint.ROOT / "kubernetes") if backend == "kubernetes" else str(fingerprint.ROOT)


def _run_with_mlflow(parent, todo: list[Child], launch: Launch, outcomes: dict, total: int, before: int = 0) -> None:
    """Each child through ``mlflow.projects.run`` (an `mlflow run` of its own; a Job on Kubernetes)."""
    from mlflow.projects import run as run_project

    from steps.run.tracking import retry

    client = parent.client
    uri = project_uri(launch.backend)
    pending, active = list(todo), {}
    try:
        while pending or active:
            while pending and len(active) < launch.max_parallel:
                child = pending.pop(0)
                with parent.held():
                    submitted = run_project(
                        uri,
                        entry_point=child.entry_point,
                        run_name=child.label,
                        parameters=child.parameters,
                        experiment_id=parent.experiment_id,
                        backend=launch.backend,
                        backend_config=launch.backend_config,
                        env_manager="local" if launch.backend == "local" else None,
                        build_image=launch.backend == "kubernetes",
                        synchronous=False,
                    )
                    active[child.label] = submitted
                    # MLflow made the run, and its process takes seconds to start: say what it is in the workflow.
                    for key, value in child.extra_tags:
                        retry(lambda r=submitted.run_id, k=key, v=value: client.set_tag(r, k, v))
                click.echo(f"{child.label}: started run {submitted.run_id}", err=True)
            for label, submitted in list(active.items()):
                if submitted.get_status() in NOT_DONE:
                    continue
                del active[label]
                ok = submitted.wait()
                if not ok:
                    close_run(client, submitted.run_id, "FAILED", "its process ended before closing the run")
                outcomes[label] = Outcome(submitted.run_id, ok)
                progress(before + len(outcomes), total, label, submitted.run_id, "finished" if ok else "FAILED")
            if active:
                time.sleep(0.2)
    except BaseException as exc:
        interrupted = not isinstance(exc, Exception)
        with SIGNALS.closing():
            for submitted in active.values():
                submitted.cancel()
                close_run(client, submitted.run_id, "KILLED", "the workflow was stopped")
            # A child MLflow created before its launch failed (image build, cluster config) is open too.
            _close_strays(parent, "KILLED" if interrupted else "FAILED", f"its launch failed: {exc}")
        raise


def _close_strays(parent, status: str, reason: str) -> None:
    """Close the parent's children that are still open (MLflow made them; nobody will end them)."""
    try:
        strays = parent.client.search_runs(
            [parent.experiment_id],
            f"tags.`mlflow.parentRunId` = '{parent.id}' and attributes.status = 'RUNNING'",
            max_results=1000,
        )
    except Exception:
        return
    for run in strays:
        close_run(parent.client, run.info.run_id, status, reason)


REPORTS = "compare_output"


def report_dir(run, output_dir: str, root: str = REPORTS) -> str | None:
    """Where a workflow's compare writes its files: ``--output-dir`` if given, else a folder of
    its own under ``compare_output/`` (``main-1a2b3c4d``), so one workflow's report never replaces
    another's. None (the compare run's artifacts only) when MLflow runs the project from a Git
    URL: the working folder is then MLflow's temporary checkout."""
    tags = run.data.tags
    source = tags.get("mlflow.source.name", "")
    fetched = tags.get("mlflow.source.type") == "PROJECT" and "://" in source and not source.startswith("file:")
    if fetched and not os.path.isabs(output_dir):
        if output_dir:
            click.echo(f"warning: --output-dir {output_dir} would be inside MLflow's temporary checkout", err=True)
        return None
    if output_dir:
        return os.path.abspath(output_dir)
    folder = f"{run.info.run_name or 'workflow'}-{run.info.run_id[:8]}".replace(" ", "-").replace("/", "-")
    return os.path.abspath(os.path.join(root, folder))


def compare_children(parent, run_ids: list[str], output_dir: str, images: dict[str, bytes] | None = None) -> bool:
    """`compare` over exactly ``run_ids``, in this process, as a run nested under ``parent``;
    ``images`` (PNGs by file name, e.g. a search's study pictures) go into its report too."""
    from steps.report.compare_report import run_compare

    ids = ", ".join(f"'{rid}'" for rid in run_ids)
    try:
        # By id (reused children belong to an earlier parent); nested under the active run, ``parent``.
        run = parent.client.get_run(parent.id)
        subject = f"the children of {run.info.run_name} run {parent.id} (experiment id {parent.experiment_id})"
        listed = ", ".join(run_ids)
        out = report_dir(run, output_dir)
        params = {
            "compared": subject,
            # MLflow keeps at most 6,000 characters a param; compare.csv lists every run anyway.
            "run_ids": listed if len(listed) <= 6000 else f"{len(run_ids)} runs, listed in compare.csv",
            "output_dir": out or "(the compare run's artifacts)",
        }
        filter_string = f"attributes.run_id IN ({ids})"
        run_compare(
            "", parent.experiment_id, "", filter_string, out and Path(out), len(run_ids), subject, params, images
        )
    except RunStopped:
        raise
    except click.ClickException as exc:
        click.echo(f"compare failed: {exc.format_message()}", err=True)
        return False
    except Exception as exc:  # its run ended FAILED with the reason; the workflow goes on to close
        click.echo(f"compare failed: {type(exc).__name__}: {exc}", err=True)
        return False
    return True


@dataclass
class Ran:
    """What a workflow's children came to."""

    outcomes: dict[str, Outcome]  # this workflow's own children, by label
    scored: dict[str, Outcome]  # the children the best is chosen from (a search: the study's)
    compared: list[str]  # the run ids `compare` covers
    images: dict[str, bytes]  # pictures for the report (PNGs by file name)


@dataclass(frozen=True)
class Best:
    """The workflow's best child: lowest ``metric`` (validation loss with a split, else the objective)."""

    label: str
    run_id: str
    metric: str
    value: float
    model_id: str | None  # its LoggedModel (None for a run logged before gdlab logged them)


def best_metric(data: Dataset) -> str:
    return ranking_metric(data.X_val is not None)


def on_the_edge(children: list[Child], best_label: str) -> str:
    """What of the best child's grid values lies on the grid's edge ("", none): the best learning
    rate (or lambda) is the smallest or the largest of three or more tried, so the optimum may lie
    beyond them (:func:`core.verdict.on_edge`)."""
    from core.verdict import on_edge

    best = next((c for c in children if c.label == best_label), None)
    if best is None:
        return ""
    said = []
    for field, what in (("learning_rate", "learning rate"), ("lam", "lambda")):
        values = sorted({getattr(c.config, field) for c in children})
        value = getattr(best.config, field)
        if len(values) >= 3 and on_edge(values, value):
            end = "largest" if value == values[-1] else "smallest"
            said.append(f"the best {what}, {value:g}, is the {end} tried")
    if not said:
        return ""
    return "; ".join(said) + ": the best may lie beyond the grid, widen it"


def tag_best(parent, outcomes: dict[str, Outcome], metric: str) -> Best | None:
    """Tag the parent with its best finished child (``best_run_id``) and log ``best_<metric>``."""
    import math

    scored = []
    for label, o in outcomes.items():
        run = parent.client.get_run(o.run_id) if o.ok else None
        value = run.data.metrics.get(metric) if run is not None else None
        if value is not None and math.isfinite(value):
            models = run.outputs.model_outputs if run.outputs else []
            scored.append((value, label, o.run_id, models[-1].model_id if models else None))
    failed = [label for label, o in outcomes.items() if not o.ok]
    if failed:
        parent.set_tags({"failed_children": ", ".join(failed)})
    if not scored:
        return None
    value, label, run_id, model_id = min(scored, key=lambda s: s[:3])
    parent.set_tags({"best_run_id": run_id, "best_metric": metric, "best_label": label})
    parent.log_metrics({f"best_{metric}": value})
    return Best(label, run_id, metric, value, model_id)


CHAMPION = "champion"


def register_best(parent, best: Best | None, name: str) -> str | None:
    """Register the best child's LoggedModel under ``name`` and point the alias ``champion`` at it.

    Says what was done; returns None, or why nothing was registered.
    """
    import mlflow

    from steps.run import tracking

    if best is None:
        return f"no child finished, so no model was registered as {name!r}"
    source = f"models:/{best.model_id}" if best.model_id else f"runs:/{best.run_id}/model"
    try:  # a champion that does not load is worse than none
        mlflow.pyfunc.load_model(source)
    except Exception as exc:
        return f"{best.label}'s model does not load, so it was not registered as {name!r}: {tracking.first_line(exc)}"
    try:
        with parent.held():
            version = mlflow.register_model(source, name, await_registration_for=0)
            parent.client.set_registered_model_alias(name, CHAMPION, version.version)
    except Exception as exc:
        return f"registering {best.label}'s model as {name!r} failed: {tracking.first_line(exc)}"
    parent.set_tags({"registered_model": f"{name} version {version.version}"})
    click.echo(
        f"registered {best.label}'s model as {name} version {version.version}, "
        f"alias @{CHAMPION} (models:/{name}@{CHAMPION})"
    )
    return None


def workflow(
    technique: str,
    children: list[Child],
    params: dict,
    *,
    data: Dataset,
    flow,
    failure_of: Callable[[dict[str, Outcome], bool], str | None],
    name: str | None = None,
    search: Callable | None = None,
    slots: int | None = None,
) -> tuple[dict[str, Outcome], str | None]:
    """Start (or resume) the parent run, run the children, tag the best, compare them, close the parent.

    ``failure_of(outcomes, compare_ok)`` returns a failure reason (the parent then ends
    FAILED) or None. ``flow`` (a :class:`steps.cli.workflow.Workflow`) says how to launch the children,
    whether to reuse runs, where the report goes and, with ``flow.register_model``, the name
    under which the best child's model is registered (alias ``champion``) before the compare.
    Returns the outcomes and that reason. Ctrl-C / SIGTERM stop the children
    and end every started run KILLED, then exit 130 / 143.

    ``search(parent, pool)`` (a sweep's random or tpe search, :mod:`steps.flow.search`) runs instead of
    ``children``, at most ``slots`` at once, and returns a :class:`Ran`.
    """
    if flow.register_model and children[0].config.dataset in TEST_FUNCTIONS:
        raise click.UsageError(
            f"--register-model: a run on the test function {children[0].config.dataset} logs no model to register"
        )

    def body(pool):
        with tracked_run(name=name or technique, tags={"technique": technique}) as parent:
            parent.log_params({option_name(k): v for k, v in params.items()})
            if search is None:
                outcomes = run_children(parent, children, launch=flow.launch, reuse=flow.reuse, data=data, pool=pool)
                ran = Ran(outcomes, outcomes, [o.run_id for o in outcomes.values()], {})
            else:
                ran = search(parent, pool)
            best = tag_best(parent, ran.scored, best_metric(data))
            if best is not None:
                click.echo(f"best ({best.metric} = {best.value:.6g}): {best.label}, run {best.run_id}")
                if search is None and (edge := on_the_edge(children, best.label)):
                    parent.set_tags({"best_on_edge": edge})
                    click.echo(f"warning: {edge}", err=True)
            unregistered = flow.register_model and register_best(parent, best, flow.register_model)
            compare_ok = compare_children(parent, ran.compared, flow.output_dir, ran.images)
            reason = "; ".join(filter(None, [failure_of(ran.outcomes, compare_ok), unregistered])) or None
            if reason:
                parent.fail(reason)
        return ran.outcomes, reason

    return with_workers(body, flow.launch, slots or len(children))


def with_workers(body: Callable, launch: Launch, slots: int):
    """``body(pool)`` under :func:`~steps.run.lifecycle.exit_on_end`, with a pool of at most ``slots``
    worker processes (None with ``--launcher mlflow``); a stopped workflow's workers are stopped
    and any run they still hold is closed KILLED."""
    from steps.flow.workers import Workers
    from steps.run.lifecycle import exit_on_end

    if launch.launcher != "local":
        return exit_on_end(body, None)
    with Workers(max(1, min(launch.max_parallel, slots))) as pool:
        try:
            return exit_on_end(body, pool)
        except BaseException:
            from steps.run.tracking import store_client

            with SIGNALS.closing():
                for task in pool.stop():  # normally none: the children's loop closed its own
                    close_run(store_client(), task.run_id, "KILLED", "the workflow was stopped")
            raise
