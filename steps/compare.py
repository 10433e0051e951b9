"""`compare`: gather training runs into one pandas table and pictures, logged to a run of its own.

Runs are chosen by experiment (default: the current one, from MLFLOW_EXPERIMENT_ID or
MLFLOW_EXPERIMENT_NAME, else ``Default``), by parent run (``--parent-run-id``: the runs
tagged ``mlflow.parentRunId``) and/or an MLflow search filter. Runs tagged
``technique`` = compare, main or sweep are skipped (they do not train).

This module is the command and its order of work; the work itself is in three modules
that import one way (compare -> figures -> table -> runs):

* :mod:`steps.report.compare_runs` reads the runs (experiment, search, artifacts);
* :mod:`steps.report.compare_table` makes the table and renders it (terminal, CSV, Markdown,
  HTML, JSON);
* :mod:`steps.report.compare_figures` draws the pictures.

Outputs (in ``--output-dir`` and as artifacts of the compare run): compare.csv (full
precision), compare.json (``mlflow.log_table``, for the MLflow UI), compare.md,
compare.html (self-contained), loss_curves.png and, for runs with two weights,
trajectories.png.
"""

from __future__ import annotations

from pathlib import Path

import click

from steps.cli.options import command, not_a_root
from steps.report.compare_report import PROBLEMS, run_compare

DEFAULT_OUTPUT = "compare_output"

# --------------------------------------------------------------------------- the compare run


# --------------------------------------------------------------------------- the command


@command(
    examples=(
        "python -m steps.compare",
        "python -m steps.compare --problem all --output-dir compare_output/all/",
        "python -m steps.compare --filter \"params.optimizer = 'adam'\"",
    )
)
@click.option(
    "--experiment-name",
    type=str,
    default="",
    show_default=True,
    help="Experiment to compare, by name ('' = the current one: MLFLOW_EXPERIMENT_ID / "
    "MLFLOW_EXPERIMENT_NAME, else Default; with --parent-run-id, the parent's).",
)
@click.option("--experiment-id", type=str, default="", show_default=True, help="Experiment to compare, by id.")
@click.option(
    "--parent-run-id",
    type=str,
    default="",
    show_default=True,
    help="Compare the child runs of this run (tag mlflow.parentRunId); the compare run is nested under it.",
)
@click.option(
    "--filter",
    "filter_string",
    type=str,
    default="",
    show_default=True,
    help="MLflow search filter, e.g. \"params.optimizer = 'adam' and metrics.final_loss < 0.1\".",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=DEFAULT_OUTPUT,
    show_default=True,
    callback=lambda ctx, param, value: Path(not_a_root(ctx, param, value or DEFAULT_OUTPUT)),
    help="Folder for compare.csv/.md/.html and the PNGs (created if missing; '' is the default).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Compare at most this many runs (the newest).",
)
@click.option(
    "--problem",
    type=click.Choice(PROBLEMS),
    default="newest",
    show_default=True,
    help="Runs are ranked only against runs on the same problem (the same rows and the same loss): "
    "'newest' compares the runs on the newest run's problem and says what it left out; 'all' gives each "
    "problem its own table and pictures, in a folder of its own.",
)
def compare(experiment_name, experiment_id, parent_run_id, filter_string, output_dir, max_runs, problem):
    """Compare training runs: a table (terminal, CSV, Markdown, HTML) and loss-curve and
    weight-path pictures, all logged to a compare run of their own. Runs are ranked only
    against runs on the same problem (see --problem).
    """
    from mlflow.exceptions import MlflowException

    from steps.run.lifecycle import exit_on_end

    try:
        options = (experiment_name, experiment_id, parent_run_id, filter_string, output_dir, max_runs)
        exit_on_end(run_compare, *options, problem=problem)
    except MlflowException as exc:  # e.g. the tracking server is unreachable
        raise click.ClickException(f"MLflow: {exc.message}") from None


if __name__ == "__main__":
    compare()
