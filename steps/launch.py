"""Run entry points as nested child runs of the current run, then `compare` them.

Shared by `main` (the lesson's four techniques) and `sweep` (a grid of one).
Children go through MLflow's own machinery, ``mlflow.projects.run(...,
synchronous=False)`` called from the main thread, so each is a separate run with
MLflow's project tags and ``mlflow.parentRunId`` = the parent (even when `mlflow
run` set MLFLOW_RUN_ID for the parent's process: the local backend gives each
child its own). At most ``max_parallel`` run at once; a child that fails is
reported and the others go on.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import click

from core.config import TrainConfig
from core.data import Dataset

from . import fingerprint
from .options import as_param
from .runner import make_config
from .signals import Stops

NOT_DONE = ("RUNNING", "SCHEDULED")


def _command(entry_point: str) -> click.Command:
    return getattr(importlib.import_module(f"steps.{entry_point}"), entry_point)


@dataclass(frozen=True)
class Child:
    """One planned child run: which entry point, with which options."""

    label: str
    entry_point: str
    options: dict  # Click parameter name -> value
    config: TrainConfig  # what the child will resolve them to (checked before anything starts)

    @property
    def parameters(self) -> dict[str, str]:
        """The options as MLproject parameters (``-P`` strings)."""
        out = {}
        for name, value in self.options.items():
            key = "lambda" if name == "lam" else name
            out[key] = as_param(value)
        return out


def plan(label: str, entry_point: str, shared: dict, **overrides) -> Child:
    """A child of ``entry_point`` taking the ``shared`` options it accepts, then ``overrides``."""
    command = _command(entry_point)
    accepted = {p.name for p in command.params}
    options = {k: v for k, v in {**shared, **overrides}.items() if k in accepted}
    dataset = options.get("dataset")
    if dataset and os.path.exists(dataset):  # children run in the project folder, not here
        options["dataset"] = os.path.abspath(dataset)
    kwargs = {p.name: p.default for p in command.params if p.name != "help"}
    kwargs.update(options)
    return Child(label, entry_point, options, make_config(entry_point, **kwargs))


def find_reusable(client, experiment_id: str, child: Child, data: Dataset) -> str | None:
    """A FINISHED run of the same entry point with the same resolved config, code and data."""
    clauses = [f"tags.`mlflow.project.entryPoint` = '{child.entry_point}'", "attributes.status = 'FINISHED'"]
    clauses += [f"tags.`{k}` = '{v}'" for k, v in fingerprint.tags(child.config, data).items()]
    runs = client.search_runs([experiment_id], " and ".join(clauses), max_results=1, order_by=["start_time DESC"])
    return runs[0].info.run_id if runs else None


@dataclass
class Outcome:
    run_id: str
    ok: bool
    reused: bool = False


def run_children(
    client, experiment_id: str, children: list[Child], *, max_parallel: int, reuse: bool, data: Dataset
) -> dict[str, Outcome]:
    """Run (or reuse) every child, at most ``max_parallel`` at once; label -> outcome."""
    from mlflow.projects import run as run_project

    outcomes: dict[str, Outcome] = {}
    pending, active = list(children), {}
    total, done = len(children), 0
    try:
        while pending or active:
            while pending and len(active) < max_parallel:
                child = pending.pop(0)
                found = find_reusable(client, experiment_id, child, data) if reuse else None
                if found:
                    outcomes[child.label] = Outcome(found, True, reused=True)
                    done += 1
                    click.echo(
                        f"[{done}/{total}] {child.label}: reusing run {found} (same options, code and data)", err=True
                    )
                    continue
                submitted = run_project(
                    str(fingerprint.ROOT),
                    entry_point=child.entry_point,
                    parameters=child.parameters,
                    experiment_id=experiment_id,
                    env_manager="local",
                    synchronous=False,
                )
                active[child.label] = submitted
                click.echo(f"{child.label}: started run {submitted.run_id}", err=True)
            for label, submitted in list(active.items()):
                if submitted.get_status() in NOT_DONE:
                    continue
                del active[label]
                ok = submitted.wait()
                if not ok and client.get_run(submitted.run_id).info.status in NOT_DONE:
                    client.set_terminated(submitted.run_id, "FAILED")  # it died before our code could close it
                outcomes[label] = Outcome(submitted.run_id, ok)
                done += 1
                click.echo(
                    f"[{done}/{total}] {label}: run {submitted.run_id} {'finished' if ok else 'FAILED'}", err=True
                )
            if active:
                time.sleep(0.2)
    except KeyboardInterrupt:
        for submitted in active.values():
            submitted.cancel()
            if client.get_run(submitted.run_id).info.status in NOT_DONE:
                client.set_terminated(submitted.run_id, "KILLED")
        raise
    return outcomes


def compare_children(experiment_id: str, run_ids: list[str], output_dir: str) -> bool:
    """`compare` over exactly ``run_ids``, as a nested child run."""
    from mlflow.projects import run as run_project

    ids = ", ".join(f"'{rid}'" for rid in run_ids)
    submitted = run_project(
        str(fingerprint.ROOT),
        entry_point="compare",
        parameters={"filter": f"attributes.run_id IN ({ids})", "output_dir": output_dir},
        experiment_id=experiment_id,
        env_manager="local",
        synchronous=False,
    )
    try:
        return submitted.wait()
    except KeyboardInterrupt:
        submitted.cancel()
        raise


def workflow(
    technique: str,
    children: list[Child],
    params: dict,
    *,
    data: Dataset,
    max_parallel: int,
    reuse: bool,
    output_dir: str,
    judge: Callable[[dict[str, Outcome], bool], str | None],
    after_children: Callable | None = None,
) -> tuple[dict[str, Outcome], str | None]:
    """Start (or resume) the parent run, run the children, compare them, close the parent.

    ``judge(outcomes, compare_ok)`` returns a failure reason (the parent then ends
    FAILED) or None. Returns the outcomes and that reason.
    """
    import mlflow

    from . import tracking

    tracking.check_reachable()
    client = mlflow.MlflowClient()
    parent = tracking.start_run()  # resumes the run `mlflow run` made, if any
    parent_id, experiment_id = parent.info.run_id, parent.info.experiment_id
    status, reason = "FAILED", None

    # SIGTERM (e.g. a Job's deadline) closes the runs like Ctrl-C does; neither lands inside a store write.
    with Stops(on_term=KeyboardInterrupt) as stops:
        try:
            with stops.held():
                tracking.log_params(client, parent_id, {("lambda" if k == "lam" else k): v for k, v in params.items()})
                tracking.set_tags(client, parent_id, {"technique": technique})
            outcomes = run_children(client, experiment_id, children, max_parallel=max_parallel, reuse=reuse, data=data)
            with stops.held():
                if after_children is not None:
                    after_children(client, parent_id, outcomes)
            compare_ok = compare_children(
                experiment_id, [o.run_id for o in outcomes.values()], os.path.abspath(output_dir)
            )
            reason = judge(outcomes, compare_ok)
            status = "FAILED" if reason else "FINISHED"
            if reason:
                with stops.held():
                    tracking.set_tags(client, parent_id, {"failure_reason": reason})
        except KeyboardInterrupt:
            status = "KILLED"  # the run is ended below, before the exit
            click.echo(f"{technique} run {parent_id} interrupted: running children were stopped (KILLED)", err=True)
            sys.exit(130)
        finally:
            with stops.ignore():
                mlflow.end_run(status=status)
    return outcomes, reason
