"""The workflows' own options (`main`, `sweep`, `benchmark`), besides the training options: how
children are launched (--launcher, --max-parallel, --backend), --reuse, where the report goes
(--output-dir) and --register-model; the command receives them as one :class:`Workflow`."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import click

from steps.cli.options import not_a_root
from steps.flow.launch import LAUNCHERS, Launch

REUSE_HELP = "Skip a child whose entry point, resolved options, code and data match a FINISHED run; use that run."
OUTPUT_HELP = (
    "Folder where compare writes its table and pictures (also logged as the compare run's artifacts); "
    "by default one of this run's own, compare_output/<run name>-<run id>. When MLflow runs the project "
    "from a Git URL, a relative folder would be in its temporary checkout: the report is then in the "
    "compare run's artifacts only, and the command that downloads it is printed."
)


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


REGISTER_HELP = (
    "Register the best child's model (lowest final_val_loss with a validation split, else final_objective; "
    "the parent's best_run_id) in the MLflow Model Registry under this name, with the alias 'champion'."
)


class RegisteredModelName(click.ParamType):
    """A registered model's name ('' for none): no '/', ':' or '%' (they would break a models:/ URI)."""

    name = "name"

    def convert(self, value, param, ctx):
        value = str(value).strip()
        if value and any(c in value for c in "/:%"):
            self.fail(f"{value!r}: a registered model's name cannot hold '/', ':' or '%'", param, ctx)
        return value


@dataclass(frozen=True)
class Workflow:
    """What the workflow options (:func:`workflow_options`) say, checked together."""

    reuse: bool
    launch: Launch
    output_dir: str
    register_model: str
    params: dict  # as the parent run logs them

    @classmethod
    def of(cls, reuse, max_parallel, launcher, backend, backend_config, output_dir, register_model) -> Workflow:
        params = {"reuse": reuse, "max_parallel": max_parallel, "launcher": launcher, "output_dir": output_dir}
        if launcher == "mlflow":
            params.update(backend=backend, backend_config=backend_config)
        if register_model:
            params.update(register_model=register_model)
        launch = launch_of(launcher, max_parallel, backend, backend_config)
        return cls(reuse, launch, output_dir, register_model, params)


WORKFLOW_OPTIONS = ("reuse", "max_parallel", "launcher", "backend", "backend_config", "output_dir", "register_model")


def workflow_options(f=None, *, register: bool = True, output_help: str = OUTPUT_HELP):
    """Options of the workflows (`main`, `sweep`, `benchmark`) besides the training options; the
    command receives them as one ``flow`` (a :class:`Workflow`). ``register=False`` leaves out
    ``--register-model`` (a benchmark has no single best model)."""
    if f is None:
        return functools.partial(workflow_options, register=register, output_help=output_help)
    command = f

    @functools.wraps(command)
    def with_flow(**kwargs):
        given = {name: kwargs.pop(name) for name in WORKFLOW_OPTIONS if name in kwargs}
        flow = Workflow.of(**{"register_model": "", **given})
        return command(flow=flow, **kwargs)

    f = with_flow
    if register:
        f = click.option("--register-model", type=RegisteredModelName(), default="", help=REGISTER_HELP)(f)
    f = click.option("--output-dir", default="", callback=not_a_root, help=output_help)(f)
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
