"""`sweep`: a grid of learning rates (and lambdas) for one technique, as nested parallel runs.

Modelled on MLflow's examples/hyperparam (nested child runs, a parent that knows the
best), with these differences: the children train in the workflow's own worker
processes (:mod:`steps.workers`; ``--launcher mlflow`` for MLflow's own launch, on
any backend), at most ``--max-parallel`` at a time; every declared parameter is
used; a failed child is reported without sinking the sweep; the best child is
tagged, and `compare` runs over the grid.
"""

from __future__ import annotations

import math
import sys

import click

from .launch import plan, workflow
from .main import launch_of, workflow_options
from .options import COMMON, NON_NEGATIVE, POSITIVE, apply, command
from .runner import load_checked

TECHNIQUES = ("sgd", "adam", "l1", "l2")
PENALIZED = ("l1", "l2")


class FloatList(click.ParamType):
    """Comma-separated numbers, each checked by ``item`` (a Click float type)."""

    name = "list"

    def __init__(self, item: click.ParamType):
        self.item = item

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if not parts:
            self.fail("give at least one number, e.g. 0.001,0.01,0.1", param, ctx)
        out = []
        for part in parts:
            try:
                number = self.item.convert(part, param, ctx)
            except click.BadParameter as exc:
                self.fail(f"{part!r}: {exc.message}", param, ctx)
            if number not in out:
                out.append(number)
        return tuple(out)


@command()
@click.option(
    "--technique",
    type=click.Choice(TECHNIQUES),
    default="l1",
    show_default=True,
    help="The entry point every child runs.",
)
@click.option(
    "--learning-rates",
    type=FloatList(POSITIVE),
    default="0.001,0.01,0.1",
    show_default=True,
    help="Comma-separated learning rates (each > 0) to try.",
)
@click.option(
    "--lambdas",
    type=FloatList(NON_NEGATIVE),
    default="0.001,0.01,0.1",
    show_default=True,
    help="Comma-separated penalty strengths (each >= 0); used by l1 and l2, ignored otherwise.",
)
@apply([o for o in COMMON if o != "learning-rate"])
@workflow_options
def sweep(
    technique, learning_rates, lambdas, reuse, max_parallel, launcher, backend, backend_config, output_dir, **shared
):
    """Run a grid (learning rates x lambdas) of one technique as nested child runs, in parallel;
    tag the sweep run with the best child (`best_run_id`), then compare the grid."""
    launch = launch_of(launcher, max_parallel, backend, backend_config)
    grid = [(lr, lam) for lr in learning_rates for lam in (lambdas if technique in PENALIZED else (None,))]
    children = []
    for lr, lam in grid:
        label = f"{technique} lr={lr!r}" + (f" lambda={lam!r}" if lam is not None else "")  # distinct values
        extra = {"learning_rate": lr, **({"lam": lam} if lam is not None else {})}
        children.append(plan(label, technique, shared, **extra))
    data = load_checked(children[0].config)
    split = data.X_val is not None
    key = "final_val_loss" if split else "final_objective"
    best: dict = {}

    def tag_best(client, parent_id, outcomes):
        from . import tracking

        scored = []
        for label, o in outcomes.items():
            value = client.get_run(o.run_id).data.metrics.get(key) if o.ok else None
            if value is not None and math.isfinite(value):
                scored.append((value, label, o.run_id))
        if scored:
            value, label, run_id = min(scored)
            best.update(label=label, run_id=run_id, value=value)
            tracking.set_tags(client, parent_id, {"best_run_id": run_id, "best_metric": key, "best_label": label})
            client.log_metric(parent_id, f"best_{key}", value)
        failed = [label for label, o in outcomes.items() if not o.ok]
        if failed:
            tracking.set_tags(client, parent_id, {"failed_children": ", ".join(failed)})

    def judge(outcomes, compare_ok):
        if not any(o.ok for o in outcomes.values()):
            return "every child failed"
        return None if compare_ok else "failed: compare"

    params = {
        "technique": technique,
        "learning_rates": ",".join(map(str, learning_rates)),
        "lambdas": ",".join(map(str, lambdas)),
        **shared,
        "reuse": reuse,
        "max_parallel": max_parallel,
        "launcher": launcher,
        "output_dir": output_dir,
        **({"backend": backend, "backend_config": backend_config} if launcher == "mlflow" else {}),
    }
    outcomes, reason = workflow(
        "sweep",
        children,
        params,
        data=data,
        launch=launch,
        reuse=reuse,
        output_dir=output_dir,
        judge=judge,
        after_children=tag_best,
        name=f"sweep {technique}",
    )
    failed = [label for label, o in outcomes.items() if not o.ok]
    if failed:
        click.echo(f"warning: {len(failed)} of {len(outcomes)} children failed: {', '.join(failed)}", err=True)
    if best:
        click.echo(f"best ({key} = {best['value']:.6g}): {best['label']}, run {best['run_id']}")
    if reason:
        click.echo(f"Error: {reason}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    sweep()
