"""compare's work: choose the runs, build the table, draw, write the report and log it to a
compare run (`steps/compare.py` is the command; workflows call :func:`run_compare` in process)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import click

from steps.report.animation import trajectories_gif
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
from steps.report.interactive import live_compare, run_colors
from steps.report.problems import Problem, group
from steps.report.report_files import EXTRA_FILES, OUTPUT_FILES

# --------------------------------------------------------------------------- the compare run


# --------------------------------------------------------------------------- the command


MANIFEST = ".gdlab-compare"  # in --output-dir: the files the last compare wrote there
INDEX = "index.md"  # with several problems: their list, each with its folder


def _forget_stale(output_dir: Path, written: set[str]) -> None:
    """Remove outputs of an earlier compare that this one did not produce (a trajectories.png
    of two-weight runs, say, or a problem's folder), but only files compare itself wrote there:
    a user's own file of the same name is never touched. ``written``: paths relative to
    ``output_dir``."""
    manifest = output_dir / MANIFEST
    try:
        before = set(manifest.read_text().split()) if manifest.exists() else set()
    except OSError:
        before = set()
    ours = {*OUTPUT_FILES, *EXTRA_FILES, INDEX}
    for stale in sorted(before - written):
        parts = Path(stale).parts
        if parts and parts[-1] in ours and ".." not in parts and len(parts) <= 2:
            (output_dir / stale).unlink(missing_ok=True)
            if len(parts) == 2:
                with contextlib.suppress(OSError):
                    (output_dir / parts[0]).rmdir()  # the folder of a problem no longer there, once empty
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


PROBLEMS = ("newest", "all")


@dataclass
class Section:
    """One problem's report: its runs, table and title, and its folder under --output-dir ('' for
    the folder itself)."""

    problem: Problem
    runs: list
    table: Table
    title: str
    folder: str = ""


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
    problem: str = "newest",
):
    """The command's work (``compare`` turns MLflow errors into a message).

    Runs are ranked only against runs on the same problem (:mod:`steps.report.problems`): with
    ``problem`` "newest" the report is on the newest run's problem and says what it left out;
    with "all" every problem gets its own table and pictures, in a folder of its own when there
    are several.

    With ``output_dir`` None the report goes to the compare run's artifacts only (a workflow
    run from a Git URL, whose working folder is MLflow's temporary checkout), and the command
    that downloads it is printed.

    A workflow gives the ``subject`` of the title (whose runs these are: "the children of main
    run ...", not the experiment and the filter of ids it builds) and the ``params`` its compare
    run logs, and ``images``: more pictures for the report (PNGs by file name, from
    :data:`EXTRA_FILES`), written, embedded and logged with its own.
    """
    from steps.run.tracking import check_reachable, store_client

    check_reachable()
    client = store_client()  # reads outlast a store that restarts within --store-timeout
    options = (experiment_name, experiment_id, parent_run_id, filter_string, max_runs)
    exp, where, runs, more = _choose_runs(client, *options, subject)
    found = group(runs)
    chosen = found if problem == "all" else found[:1]
    sections = []
    for i, prob in enumerate(chosen, 1):
        table = build_table(gather(client, prob.runs))
        on = f", on {prob.label}" if len(found) > 1 else ""
        heading = f"{len(prob.runs)} runs of {where}{on}, best {table.sort_metric} first:\n"
        click.echo(("\n" if i > 1 else "") + heading)
        click.echo(text_table(table))
        click.echo(settings_text(table))
        title = f"gdlab comparison: {len(prob.runs)} runs of {where}{on}"
        folder = f"{i}-{prob.slug}" if len(chosen) > 1 else ""
        sections.append(Section(prob, prob.runs, table, title, folder))
    left = found[len(chosen) :]
    if left:
        others = ", ".join(f"{p.label} ({len(p.runs)})" for p in left)
        click.echo(
            f"\nRanked only the runs on {chosen[0].label}, the newest run's problem: the losses of "
            f"{sum(len(p.runs) for p in left)} other runs measure something else ({others}). "
            "--problem all reports each problem on its own."
        )
    if more:
        click.echo(f"\nNote: more than {max_runs} runs matched; these are the newest {max_runs} (see --max-runs).")
    if all(s.table.frame["final_loss"].isna().all() for s in sections):
        raise click.ClickException(f"none of the {len(runs)} runs has final metrics: nothing to compare")

    params = params or {  # the options as given, under their MLproject names
        "experiment_name": experiment_name,
        "experiment_id": experiment_id,
        "parent_run_id": parent_run_id,
        "filter": filter_string,
        "output_dir": output_dir,
        "max_runs": max_runs,
        "problem": problem,
    }
    if output_dir is None:
        with tempfile.TemporaryDirectory(prefix="gdlab-compare-") as tmp:
            return _report(exp, sections, Path(tmp), parent_run_id, params, images, kept=False)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"--output-dir {output_dir}: {exc.strerror or exc}") from None
    return _report(exp, sections, output_dir, parent_run_id, params, images, kept=True)


def _report(exp, sections: list[Section], output_dir: Path, parent_run_id, params: dict, images, kept: bool):
    """Write each section's files (its folder under ``output_dir``) and log them to a new compare run."""
    import mlflow

    written: dict[str, list[Path]] = {}
    try:
        for section in sections:
            folder = output_dir / section.folder
            folder.mkdir(exist_ok=True)
            with warnings.catch_warnings():
                # Diverged runs carry losses near 1e300; matplotlib's log scale warns about them.
                warnings.simplefilter("ignore", RuntimeWarning)
                figs = figures(section.table)
            written[section.folder] = write(folder, section.table, figs, section.title, images)
        if len(sections) > 1:
            written[""] = [_index(output_dir, sections)]
        _forget_stale(output_dir, {p.relative_to(output_dir).as_posix() for files in written.values() for p in files})
    except OSError as exc:
        raise click.ClickException(f"could not write to {output_dir}: {exc.strerror or exc}") from None

    from steps.run.lifecycle import tracked_run
    from steps.run.tracking import upload

    if os.environ.get("MLFLOW_RUN_ID") == parent_run_id:
        os.environ.pop("MLFLOW_RUN_ID")  # called from inside the parent's process: never take over its run
    tags = {"technique": "compare", "compared_experiment_id": exp.experiment_id}
    n_runs = sum(len(s.runs) for s in sections)
    name = (
        f"compare {n_runs} runs on {sections[0].problem.label}"
        if len(sections) == 1
        else (f"compare {n_runs} runs on {len(sections)} problems")
    )
    with tracked_run(experiment_id=exp.experiment_id, parent_run_id=parent_run_id or None, name=name, tags=tags) as run:
        run_id = run.id
        run.log_params(params)
        frames = [s.table.frame for s in sections]
        run.log_metrics(
            {
                "runs_compared": n_runs,
                "runs_failed": int(sum(f["status"].isin(["FAILED", "KILLED"]).sum() for f in frames)),
                "runs_without_metrics": int(sum(f["final_loss"].isna().sum() for f in frames)),
                "problems_compared": len(sections),
            }
        )
        first = sections[0].table
        best = first.frame.loc[0, first.sort_metric]
        if best == best and len(sections) == 1:  # not NaN; one problem (a best across problems means nothing)
            run.log_metrics({f"best_{first.sort_metric}": float(best)})
        with run.held():
            for section in sections:
                where = f"{section.folder}/" if section.folder else ""
                frame = json_frame(section.table.frame)
                upload(lambda f=frame, w=where: mlflow.log_table(f, artifact_file=f"{w}compare.json"), "compare.json")
            for folder, files in written.items():
                for f in files:  # the pictures as written (log_figure would draw each one again: ~1 s apiece)
                    upload(lambda f=f, d=folder: mlflow.log_artifact(str(f), artifact_path=d or None), f.name)
    names = ", ".join(f.name for f in written.get(sections[0].folder, []))
    if len(sections) > 1:
        names = f"index.md and a folder per problem ({', '.join(s.folder for s in sections)})"
    if kept:
        click.echo(f"\nWrote {names} to {output_dir}/ (and to compare run {run_id}).")
    else:
        click.echo(
            f"\nLogged {names} to compare run {run_id}; to get them here:\n"
            f"  mlflow artifacts download --run-id {run_id} --dst-path compare_output"
        )


def _index(output_dir: Path, sections: list[Section]) -> Path:
    """index.md: the problems, each with its runs, its best run and its report's folder."""
    lines = ["# gdlab comparison, one problem at a time", "",
             "Runs are ranked only against runs on the same problem (the same rows and the same loss).", "",
             "| problem | runs | best | ranked by | report |", "|---|---:|---|---|---|"]  # fmt: skip
    for s in sections:
        frame, metric = s.table.frame, s.table.sort_metric
        best = f"{frame.loc[0, 'run_id'][:8]} ({frame.loc[0, metric]:.6g})" if len(frame) else "-"
        label = s.problem.label.replace("|", "\\|")
        lines.append(f"| {label} | {len(s.runs)} | {best} | {metric} | [{s.folder}/]({s.folder}/compare.md) |")
    path = output_dir / INDEX
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- files


def _live(table: Table, st, study: bytes | None):
    """compare.html's live plots, or None (they could not be made: a note, and the page keeps its pictures)."""
    from steps.run.tracking import first_line

    try:
        return live_compare(table, st, study)
    except Exception as exc:
        click.echo(f"note: compare.html has no live plots ({first_line(exc)}); its pictures instead", err=True)
        return None


def animation(table: Table, st) -> bytes | None:
    """trajectories.gif, or None (no 2-weight paths; or it could not be drawn: a note, and the report goes on)."""
    from steps.run.tracking import first_line

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return trajectories_gif(table, st)
    except Exception as exc:
        click.echo(f"note: trajectories.gif not drawn ({first_line(exc)})", err=True)
        return None


def write(output_dir: Path, table: Table, figs: dict, title: str, images: dict | None = None) -> list[Path]:
    """Write compare.csv/.md/.html, the figures and ``images`` (PNG bytes by file name) into
    ``output_dir``; returns the paths."""
    files = []
    for name, fig in figs.items():
        fig.savefig(output_dir / name)  # same call as mlflow.log_figure: identical files
        files.append(output_dir / name)
    st = styles(table)
    if (gif := animation(table, st)) is not None:
        (output_dir / "trajectories.gif").write_bytes(gif)
        files.append(output_dir / "trajectories.gif")
    for name, data in (images or {}).items():
        (output_dir / name).write_bytes(data)
        files.append(output_dir / name)
    csv_path = output_dir / "compare.csv"
    csv_frame(table.frame).to_csv(csv_path, index=False)
    md_path = output_dir / "compare.md"
    md_path.write_text(markdown(table, title, [f.name for f in files]), encoding="utf-8")
    html_path = output_dir / "compare.html"
    live = _live(table, st, (images or {}).get("study.json"))
    html = html_report(table, title, {f.name: f.read_bytes() for f in files}, run_colors(st, len(st)), live)
    html_path.write_text(html, encoding="utf-8")
    return [csv_path, md_path, html_path, *files]
