"""`main`: the whole lesson in one command.

Runs `sgd`, `adam`, `l1` and `l2` on the same data and initialization, each as a
child run nested under this one, then `compare` over exactly those children.

Children go through MLflow's own machinery, ``mlflow.projects.run(...,
synchronous=False)`` from the main thread, so each is a separate run with
MLflow's project tags and ``mlflow.parentRunId`` = this run (even though
``mlflow run`` has set MLFLOW_RUN_ID for this process: the local backend gives
each child its own). At most ``--max-parallel`` run at once.
"""

from __future__ import annotations

import sys
import time

import click

from .options import COMMON, apply
from .runner import make_config

CHILDREN = ("sgd", "adam", "l1", "l2")
NOT_DONE = ("RUNNING", "SCHEDULED")


def _fmt(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def child_options(entry_point: str, shared: dict) -> dict:
    """The options `main` passes to a child: the shared ones that child accepts."""
    import importlib

    command = getattr(importlib.import_module(f"steps.{entry_point}"), entry_point)
    return {p.name: shared[p.name] for p in command.params if p.name in shared}


def child_config(entry_point: str, passed: dict):
    """The resolved config the child will build (its own defaults, then what main passes)."""
    import importlib

    command = getattr(importlib.import_module(f"steps.{entry_point}"), entry_point)
    kwargs = {p.name: p.default for p in command.params if p.name != "help"}
    kwargs.update(passed)
    return make_config(entry_point, **kwargs)


def find_reusable(client, experiment_id: str, entry_point: str, tags: dict) -> str | None:
    """A FINISHED run of the same entry point with the same config, code and data."""
    clauses = [f"tags.`mlflow.project.entryPoint` = '{entry_point}'", "attributes.status = 'FINISHED'"]
    clauses += [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    runs = client.search_runs([experiment_id], " and ".join(clauses), max_results=1, order_by=["start_time DESC"])
    return runs[0].info.run_id if runs else None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@apply([*COMMON, "lambda"], {"lambda": {"default": 0.01, "help": "Penalty strength of the l1 and l2 children."}})
@click.option(
    "--reuse",
    type=click.BOOL,
    default=False,
    show_default=True,
    help="Skip a child whose entry point, resolved options, code and data match a FINISHED run; use that run.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="How many children run at once.",
)
@click.option(
    "--output-dir",
    default="compare_output",
    show_default=True,
    help="Folder where compare writes its table and pictures (also logged as artifacts).",
)
def main(reuse: bool, max_parallel: int, output_dir: str, **shared):
    """Run the lesson end to end: sgd, adam, l1, l2 as nested child runs, then compare them."""
    from core.training import load_data

    from . import fingerprint

    # Check every child's options and the data before anything starts.
    passed = {ep: child_options(ep, shared) for ep in CHILDREN}
    configs = {ep: child_config(ep, passed[ep]) for ep in CHILDREN}
    from core.data import DataError

    try:
        data = load_data(configs["sgd"])
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="'--dataset'") from None

    import mlflow
    from mlflow.projects import run as run_project

    from . import tracking

    tracking.check_reachable()
    client = mlflow.MlflowClient()
    parent = mlflow.start_run()  # resumes the run `mlflow run` made, if any
    parent_id, experiment_id = parent.info.run_id, parent.info.experiment_id
    logged = {("lambda" if k == "lam" else k): v for k, v in shared.items()}
    tracking.log_params(client, parent_id, {**logged, "reuse": reuse, "max_parallel": max_parallel})
    tracking.set_tags(client, parent_id, {"technique": "main"})
    project = str(fingerprint.ROOT)

    children: dict[str, str] = {}  # entry point -> run id
    failed: list[str] = []
    pending = list(CHILDREN)
    active: dict[str, object] = {}
    status = "FAILED"
    try:
        while pending or active:
            while pending and len(active) < max_parallel:
                ep = pending.pop(0)
                if reuse:
                    tags = fingerprint.tags(configs[ep], data)
                    found = find_reusable(client, experiment_id, ep, tags)
                    if found:
                        click.echo(f"{ep}: reusing run {found} (same options, code and data)", err=True)
                        children[ep] = found
                        continue
                params = {k.replace("-", "_"): _fmt(v) for k, v in passed[ep].items()}
                if "lam" in params:
                    params["lambda"] = params.pop("lam")
                submitted = run_project(
                    project,
                    entry_point=ep,
                    parameters=params,
                    experiment_id=experiment_id,
                    env_manager="local",
                    synchronous=False,
                )
                children[ep] = submitted.run_id
                active[ep] = submitted
                click.echo(f"{ep}: started run {submitted.run_id}", err=True)
            for ep, submitted in list(active.items()):
                if submitted.get_status() in NOT_DONE:
                    continue
                del active[ep]
                if not submitted.wait():
                    failed.append(ep)
                    info = client.get_run(submitted.run_id).info
                    if info.status in NOT_DONE:  # failed before our code could close it
                        client.set_terminated(submitted.run_id, "FAILED")
                    click.echo(f"{ep}: run {submitted.run_id} FAILED", err=True)
                else:
                    click.echo(f"{ep}: run {submitted.run_id} finished", err=True)
            if active:
                time.sleep(0.2)

        ids = ", ".join(f"'{rid}'" for rid in children.values())
        compare_ok = run_project(
            project,
            entry_point="compare",
            parameters={"filter": f"attributes.run_id IN ({ids})", "output_dir": output_dir},
            experiment_id=experiment_id,
            env_manager="local",
            synchronous=False,
        ).wait()
        if not compare_ok:
            failed.append("compare")
        tracking.set_tags(client, parent_id, {f"child.{ep}": rid for ep, rid in children.items()})
        status = "FAILED" if failed else "FINISHED"
        if failed:
            tracking.set_tags(client, parent_id, {"failure_reason": f"failed: {', '.join(failed)}"})
    except KeyboardInterrupt:
        for submitted in active.values():
            submitted.cancel()
            client.set_terminated(submitted.run_id, "KILLED")
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)
    if failed:
        click.echo(f"Error: these steps failed: {', '.join(failed)} (see their runs' failure_reason tag)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
