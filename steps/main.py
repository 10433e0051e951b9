"""`main`: the whole lesson in one command.

Runs `sgd`, `adam`, `l1` and `l2` on the same data and initialization, each as a
child run nested under this one (see :mod:`steps.launch`), then `compare` over
exactly those children. A failed child is reported, the rest are still compared,
and `main` exits 1.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import click

from .launch import LAUNCHERS, Launch, plan, workflow
from .options import COMMON, apply, command
from .runner import load_checked

CHILDREN = ("sgd", "adam", "l1", "l2")

REUSE_HELP = "Skip a child whose entry point, resolved options, code and data match a FINISHED run; use that run."
OUTPUT_HELP = "Folder where compare writes its table and pictures (also logged as artifacts)."


CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def cores(cpu_max: Path = CPU_MAX) -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota (a container's
    CPU limit, e.g. a Kubernetes pod's, which the affinity does not show)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def workflow_options(f):
    """Options of the workflows (`main`, `sweep`) besides the training options."""
    f = click.option("--output-dir", default="compare_output", show_default=True, help=OUTPUT_HELP)(f)
    f = click.option(
        "--backend-config",
        default="",
        show_default=True,
        help="With --launcher mlflow: the backend's config file (JSON), e.g. kubernetes/kubernetes_config.json.",
    )(f)
    f = click.option(
        "--backend",
        default="local",
        show_default=True,
        help="With --launcher mlflow: MLflow's backend for each child (local, kubernetes, databricks, ...).",
    )(f)
    f = click.option(
        "--launcher",
        type=click.Choice(LAUNCHERS),
        default="local",
        show_default=True,
        help="local: children train in this workflow's worker processes (MLflow imported once a worker); "
        "mlflow: each child through mlflow.projects.run, an `mlflow run` of its own (any --backend).",
    )(f)
    f = click.option(
        "--max-parallel",
        type=click.IntRange(0, 64),
        default=0,
        show_default=True,
        help="How many children train at once; 0 means one a core.",
    )(f)
    return click.option("--reuse", type=click.BOOL, default=False, show_default=True, help=REUSE_HELP)(f)


def launch_of(launcher: str, max_parallel: int, backend: str, backend_config: str) -> Launch:
    """The launch options, checked together."""
    if launcher == "local" and (backend != "local" or backend_config):
        raise click.UsageError("--backend and --backend-config need --launcher mlflow")
    if backend_config and not os.path.isfile(backend_config):
        raise click.BadParameter(f"no such file: {backend_config}", param_hint="'--backend-config'")
    return Launch(
        launcher, max_parallel or cores(), backend, os.path.abspath(backend_config) if backend_config else None
    )


@command()
@apply([*COMMON, "lambda"], {"lambda": {"default": 0.01, "help": "Penalty strength of the l1 and l2 children."}})
@workflow_options
def main(reuse: bool, max_parallel: int, launcher: str, backend: str, backend_config: str, output_dir: str, **shared):
    """Run the lesson end to end: sgd, adam, l1, l2 as nested child runs, then compare them."""
    launch = launch_of(launcher, max_parallel, backend, backend_config)
    children = [plan(ep, ep, shared) for ep in CHILDREN]  # checks every child's options first
    data = load_checked(children[0].config)  # one dataset for every child

    def judge(outcomes, compare_ok):
        failed = [label for label, o in outcomes.items() if not o.ok] + ([] if compare_ok else ["compare"])
        return f"failed: {', '.join(failed)}" if failed else None

    params = {**shared, "reuse": reuse, "max_parallel": max_parallel, "launcher": launcher, "output_dir": output_dir}
    if launcher == "mlflow":
        params.update(backend=backend, backend_config=backend_config)
    _, reason = workflow(
        "main", children, params, data=data, launch=launch, reuse=reuse, output_dir=output_dir, judge=judge
    )
    if reason:
        click.echo(f"Error: these steps {reason} (see their runs' failure_reason tag)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
