"""compare's work: choose the runs, build the table, draw, write the report and log it to a
compare run (`steps/compare.py` is the command; workflows call :func:`run_compare` in process)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import click

from steps.report.compare_figures import figures, styles
from steps.report.compare_runs import gather, reraise_unless_missing, resolve_experiment, search
from steps.report.compare_table import (
    Table,
    build_table,
    csv_frame,
    html_report,
    json_frame,
    markdown,
    settings_text,
    text_table,
)
from steps.report.report_files import EXTRA_FILES, OUTPUT_FILES

# --------------------------------------------------------------------------- the compare run


# --------------------------------------------------------------------------- the command


MANIFEST = ".gdlab-compare"  # in --output-dir: the files the last compare wrote there


def _forget_stale(output_dir: Path, written: set[str]) -> None:
    """Remove outputs of an earlier compare that this one did not produce (a trajectories.png
    of two-weight runs, say), but only files compare itself wrote there: a user's own file of
    the same name is never touched."""
    manifest = output_dir / MANIFEST
    try:
        before = set(manifest.read_text().split()) if manifest.exists() else set()
    except OSError:
        before = set()
    for stale in (before & {*OUTPUT_FILES, *EXTRA_FILES}) - written:
        (output_dir / stale).unlink(missing_ok=True)
    manifest.write_text("\n".join(sorted(written)) + "\n")


def _choose_runs(client, experiment_name, experiment_id, parent_run_id, filter_string, max_runs, subject):
    """The experiment, whose runs these are (``subject``, else the experiment and the filter: for
    the title), the runs, and whether more matched than ``max_runs``."""
    from mlflow.exceptions import MlflowException

    parent = None
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException as exc:
            reraise_unless_missing(exc)
            raise click.UsageError(f"--parent-run-id: no run with id {parent_run_id!r}") from None
    exp = resolve_experiment(client, experiment_name, experiment_id, parent)
    filters = [f for f in (filter_string.strip(), parent and f"tags.`mlflow.parentRunId` = '{parent_run_id}'") if f]
    where = subject or f"experiment {exp.name!r} (id {exp.experiment_id})" + (
        f", filter {' and '.join(filters)!r}" if filters else ""
    )
    own = {r for r in (os.environ.get("MLFLOW_RUN_ID"), parent_run_id) if r}
    runs, skipped, more = search(client, exp.experiment_id, " and ".join(filters), max_runs, own)
    if not runs:
        extra = f" ({skipped} compare/main/sweep runs skipped)" if skipped else ""
        raise click.ClickException(f"nothing to compare: no training runs in {where}{extra}")
    return exp, where, runs, more


def run_compare(
    experiment_name,
    experiment_id,
    parent_run_id,
    filter_string,
    output_dir: Path | None,
    max_runs: int,
    subject: str | None = None,
    params: dict | None = None,
    images: dict[str, bytes] | None = None,
):
    """The command's work (``compare`` turns MLflow errors into a message).

    With ``output_dir`` None the report goes to the compare run's artifacts only (a workflow
    run from a Git URL, whose working folder is MLflow's temporary checkout), and the command
    that downloads it is printed.

    A workflow gives the ``subject`` of the title (whose runs these are: "the children of main
    run ...", not the experiment and the filter of ids it builds) and the ``params`` its compare
    run logs, and ``images``: more pictures for the report (PNGs by file name, from
    :data:`EXTRA_FILES`), written, embedded and logged with its own.
    """
    from mlflow.tracking import MlflowClient

    from steps.run.tracking import check_reachable

    check_reachable()
    client = MlflowClient()
    options = (experiment_name, experiment_id, parent_run_id, filter_string, max_runs)
    exp, where, runs, more = _choose_runs(client, *options, subject)

    gathered = gather(client, runs)
    table = build_table(gathered)
    click.echo(f"{len(runs)} runs of {where}, best {table.sort_metric} first:\n")
    click.echo(text_table(table))
    click.echo(settings_text(table))
    if more:
        click.echo(f"\nNote: more than {max_runs} runs matched; these are the newest {max_runs} (see --max-runs).")
    if table.frame["final_loss"].isna().all():
        raise click.ClickException(f"none of the {len(runs)} runs has final metrics: nothing to compare")

    params = params or {  # the options as given, under their MLproject names
        "experiment_name": experiment_name,
        "experiment_id": experiment_id,
        "parent_run_id": parent_run_id,
        "filter": filter_string,
        "output_dir": output_dir,
        "max_runs": max_runs,
    }
    title = f"gdlab comparison: {len(runs)} runs of {where}"
    if output_dir is None:
        with tempfile.TemporaryDirectory(prefix="gdlab-compare-") as tmp:
            return _report(exp, runs, table, Path(tmp), title, parent_run_id, params, images, kept=False)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"--output-dir {output_dir}: {exc.strerror or exc}") from None
    return _report(exp, runs, table, output_dir, title, parent_run_id, params, images, kept=True)


def _report(exp, runs, table, output_dir: Path, title: str, parent_run_id, params: dict, images, kept: bool):
    """Write the report's files to ``output_dir`` and log them to a new compare run."""
    import mlflow

    with warnings.catch_warnings():
        # Diverged runs carry losses near 1e300; matplotlib's log scale warns about them.
        warnings.simplefilter("ignore", RuntimeWarning)
        figs = figures(table)
    try:
        files = write(output_dir, table, figs, title, images)
        _forget_stale(output_dir, {f.name for f in files})
    except OSError as exc:
        raise click.ClickException(f"could not write to {output_dir}: {exc.strerror or exc}") from None

    from steps.run.lifecycle import tracked_run

    if os.environ.get("MLFLOW_RUN_ID") == parent_run_id:
        os.environ.pop("MLFLOW_RUN_ID")  # called from inside the parent's process: never take over its run
    tags = {"technique": "compare", "compared_experiment_id": exp.experiment_id}
    with tracked_run(
        experiment_id=exp.experiment_id, parent_run_id=parent_run_id or None, name="compare", tags=tags
    ) as run:
        run_id = run.id
        run.log_params(params)
        status = table.frame["status"]
        run.log_metrics(
            {
                "runs_compared": len(runs),
                "runs_failed": int(status.isin(["FAILED", "KILLED"]).sum()),
                "runs_without_metrics": int(table.frame["final_loss"].isna().sum()),
            }
        )
        best = table.frame.loc[0, table.sort_metric]
        if best == best:  # not NaN
            run.log_metrics({f"best_{table.sort_metric}": float(best)})
        with run.held():
            mlflow.log_table(json_frame(table.frame), artifact_file="compare.json")
            for f in files:  # the pictures as written (log_figure would draw each one again: ~1 s apiece)
                mlflow.log_artifact(str(f))
    names = ", ".join(f.name for f in files)
    if kept:
        click.echo(f"\nWrote {names} to {output_dir}/ (and to compare run {run_id}).")
    else:
        click.echo(
            f"\nLogged {names} to compare run {run_id}; to get them here:\n"
            f"  mlflow artifacts download --run-id {run_id} --dst-path compare_output"
        )


# --------------------------------------------------------------------------- files


def write(output_dir: Path, table: Table, figs: dict, title: str, images: dict | None = None) -> list[Path]:
    """Write compare.csv/.md/.html, the figures and ``images`` (PNG bytes by file name) into
    ``output_dir``; returns the paths."""
    files = []
    for name, fig in figs.items():
        fig.savefig(output_dir / name)  # same call as mlflow.log_figure: identical files
        files.append(output_dir / name)
    for name, data in (images or {}).items():
        (output_dir / name).write_bytes(data)
        files.append(output_dir / name)
    csv_path = output_dir / "compare.csv"
    csv_frame(table.frame).to_csv(csv_path, index=False)
    md_path = output_dir / "compare.md"
    md_path.write_text(markdown(table, title, [f.name for f in files]), encoding="utf-8")
    html_path = output_dir / "compare.html"
    colors = [style.color for style in styles(table)]
    html = html_report(table, title, {f.name: f.read_bytes() for f in files}, colors)
    html_path.write_text(html, encoding="utf-8")
    return [csv_path, md_path, html_path, *files]
