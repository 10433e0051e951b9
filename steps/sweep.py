"""`sweep`: a grid of learning rates (and lambdas) for one technique, as nested parallel runs.

Modelled on MLflow's examples/hyperparam (nested child runs, a parent that knows the
best), with these differences: the children train in the workflow's own worker
processes (:mod:`steps.workers`; ``--launcher mlflow`` for MLflow's own launch, on
any backend), at most ``--max-parallel`` at a time; every declared parameter is
used; a failed child is reported without sinking the sweep; the best child is
tagged, and `compare` runs over the grid.
"""

from __future__ import annotations

import sys

import click

from .launch import make_child, workflow
from .main import Workflow, workflow_options
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
def sweep(technique, learning_rates, lambdas, flow: Workflow, **shared):
    """Run a grid (learning rates x lambdas) of one technique as nested child runs, in parallel;
    tag the sweep run with the best child (`best_run_id`), then compare the grid."""
    grid = [(lr, lam) for lr in learning_rates for lam in (lambdas if technique in PENALIZED else (None,))]
    children = []
    for lr, lam in grid:
        label = f"{technique} lr={lr!r}" + (f" lambda={lam!r}" if lam is not None else "")  # distinct values
        extra = {"learning_rate": lr, **({"lam": lam} if lam is not None else {})}
        children.append(make_child(label, technique, shared, **extra))
    data = load_checked(children[0].config)

    def failure_of(outcomes, compare_ok):
        if not any(o.ok for o in outcomes.values()):
            return "every child failed"
        return None if compare_ok else "failed: compare"

    params = {
        "technique": technique,
        "learning_rates": ",".join(map(str, learning_rates)),
        "lambdas": ",".join(map(str, lambdas)),
        **shared,
        **flow.params,
    }
    outcomes, reason = workflow(
        "sweep",
        children,
        params,
        data=data,
        flow=flow,
        failure_of=failure_of,
        name=f"sweep {technique}",
    )
    failed = [label for label, o in outcomes.items() if not o.ok]
    if failed:
        click.echo(f"warning: {len(failed)} of {len(outcomes)} children failed: {', '.join(failed)}", err=True)
    if reason:
        click.echo(f"Error: {reason}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    sweep()
