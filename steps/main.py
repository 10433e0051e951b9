"""`main`: the whole lesson in one command.

Runs `sgd`, `adam`, `l1` and `l2` (or the ``--techniques`` given: entry points, or
optimizer names, each a `train --optimizer NAME` child) on the same data and
initialization, each as a child run nested under this one (see :mod:`steps.flow.launch`),
then `compare` over exactly those children. A failed child is reported, the rest are
still compared, and `main` exits 1.
"""

from __future__ import annotations

import sys

import click

from core import optimizers
from steps.cli.options import COMMON, NameList, apply, command
from steps.cli.workflow import Workflow, workflow_options
from steps.flow.launch import make_child, workflow
from steps.run.runner import load_checked

CHILDREN = ("sgd", "adam", "l1", "l2")  # the lesson's entry points, main's default


# Entry points, or optimizer names (each a `train --optimizer NAME` child); a name that is both
# is the entry point.
TECHNIQUES = NameList(
    (*CHILDREN, *optimizers.OPTIMIZERS),
    "a technique",
    f"the entry points {', '.join(CHILDREN)} or the optimizers "
    f"{', '.join(o for o in optimizers.OPTIMIZERS if o not in CHILDREN)}",
)


TECHNIQUES_HELP = (
    "What main compares, comma-separated: entry points (sgd, adam, l1, l2) or optimizer names, each "
    "trained as `train --optimizer NAME` with torch's defaults (a name that is both is the entry point). "
    "--lambda acts on l1 and l2 only."
)


def technique_child(name: str, shared: dict):
    """The child of one technique: its entry point, or `train` with that optimizer (no penalty,
    so --lambda, the l1/l2 children's, is not passed on)."""
    if name in CHILDREN:
        return make_child(name, name, shared)
    return make_child(name, "train", {k: v for k, v in shared.items() if k != "lam"}, optimizer=name)


def shared_rate_note(lr: float) -> str:
    """What main's ranking is, said under its table: one run each at one shared learning rate."""
    return (
        f"\nNote: this ranks one run of each technique at one shared learning rate ({lr:g}) and one seed; "
        "the order can flip once each optimizer gets its own. For a fair verdict (every optimizer tuned with "
        "the same budget, rerun over seeds): mlflow run . -e benchmark (python -m steps.benchmark --help)."
    )


@command(
    examples=(
        "mlflow run .",
        "python -m steps.main --techniques sgd,adam,nadam,lion --dataset rosenbrock"
        " --epochs 2000 --learning-rate 0.002",
        "python -m steps.main --dataset examples/diabetes.csv --target target --model linear --standardize true",
    )
)
@apply([*COMMON, "lambda"], {"lambda": {"default": 0.01, "help": "Penalty strength of the l1 and l2 children."}})
@click.option("--techniques", type=TECHNIQUES, default=",".join(CHILDREN), show_default=True, help=TECHNIQUES_HELP)
@workflow_options
def main(techniques: tuple[str, ...], flow: Workflow, **shared):
    """Run the lesson end to end: sgd, adam, l1, l2 (or --techniques) as nested child runs, then
    compare them."""
    children = [technique_child(name, shared) for name in techniques]  # checks every child's options first
    data = load_checked(children[0].config)  # one dataset for every child

    def failure_of(outcomes, compare_ok):
        failed = [label for label, o in outcomes.items() if not o.ok] + ([] if compare_ok else ["compare"])
        return f"these steps failed: {', '.join(failed)} (see their runs' failure_reason tag)" if failed else None

    params = {"techniques": ",".join(techniques), **shared, **flow.params}
    _, reason = workflow("main", children, params, data=data, flow=flow, failure_of=failure_of)
    click.echo(shared_rate_note(shared["learning_rate"]))
    if reason:
        click.echo(f"Error: {reason}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
