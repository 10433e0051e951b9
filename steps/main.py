"""`main`: the whole lesson in one command.

Runs `sgd`, `adam`, `l1` and `l2` on the same data and initialization, each as a
child run nested under this one (see :mod:`steps.launch`), then `compare` over
exactly those children. A failed child is reported, the rest are still compared,
and `main` exits 1.
"""

from __future__ import annotations

import sys

import click

from .launch import plan, workflow
from .options import COMMON, apply
from .runner import load_checked

CHILDREN = ("sgd", "adam", "l1", "l2")

REUSE_HELP = "Skip a child whose entry point, resolved options, code and data match a FINISHED run; use that run."
OUTPUT_HELP = "Folder where compare writes its table and pictures (also logged as artifacts)."


def workflow_options(f):
    """Options of the workflows (`main`, `sweep`) besides the training options."""
    f = click.option("--output-dir", default="compare_output", show_default=True, help=OUTPUT_HELP)(f)
    f = click.option(
        "--max-parallel",
        type=click.IntRange(1, 16),
        default=2,
        show_default=True,
        help="How many child runs train at once.",
    )(f)
    return click.option("--reuse", type=click.BOOL, default=False, show_default=True, help=REUSE_HELP)(f)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@apply([*COMMON, "lambda"], {"lambda": {"default": 0.01, "help": "Penalty strength of the l1 and l2 children."}})
@workflow_options
def main(reuse: bool, max_parallel: int, output_dir: str, **shared):
    """Run the lesson end to end: sgd, adam, l1, l2 as nested child runs, then compare them."""
    children = [plan(ep, ep, shared) for ep in CHILDREN]  # checks every child's options first
    data = load_checked(children[0].config)  # one dataset for every child

    def judge(outcomes, compare_ok):
        failed = [label for label, o in outcomes.items() if not o.ok] + ([] if compare_ok else ["compare"])
        return f"failed: {', '.join(failed)}" if failed else None

    _, reason = workflow(
        "main",
        children,
        {**shared, "reuse": reuse, "max_parallel": max_parallel},
        data=data,
        max_parallel=max_parallel,
        reuse=reuse,
        output_dir=output_dir,
        judge=judge,
    )
    if reason:
        click.echo(f"Error: these steps {reason} (see their runs' failure_reason tag)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
