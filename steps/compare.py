"""`compare`: gather training runs into one pandas table and pictures, logged to a run of its own.

Runs are chosen by experiment (default: the current one, from MLFLOW_EXPERIMENT_ID or
MLFLOW_EXPERIMENT_NAME, else ``Default``), by parent run (``--parent-run-id``: the runs
tagged ``mlflow.parentRunId``) and/or an MLflow search filter. Runs tagged
``technique`` = compare, main or sweep are skipped (they do not train).

Everything is read through public MLflow APIs:

* ``MlflowClient.search_runs``: params, tags, status and the final metrics of every run,
  1,000 runs a request;
* each run's artifacts ``weights.json`` (the final weights) and ``trajectory.csv`` (epoch,
  weights, loss; written by runs with <= 10 parameters), read in place from a local artifact
  store (the run's ``artifact_uri``) or else with ``mlflow.artifacts.download_artifacts``,
  by a pool of threads. The trajectory's ``loss`` column holds exactly the values logged as
  the ``loss`` metric, so one small file gives the loss curve and the weight path;
* ``MlflowClient.get_metric_history(run_id, "loss")``: only for runs without a trajectory.

Why not ``get_metric_history`` for every run: one call a run, each slower as the store
grows (on sqlite about 2.4 ms a run among 100 runs, 12-16 ms among 1,000: 12 s or more for
1,000 runs, quadratic overall), and threads do not help there. MLflow's bulk history
endpoints (the UI's ``get-history-bulk-interval``) are not on the Python client, and the
store behind them samples one run at a time too (about 22 ms a run on sqlite). Reading the
trajectory artifacts costs about 0.4 ms a run: ``benchmarks/bench_compare.py`` measures both.

Outputs (in ``--output-dir`` and as artifacts of the compare run): compare.csv (full
precision), compare.json (``mlflow.log_table``, for the MLflow UI), compare.md,
compare.html (self-contained), loss_curves.png and, for runs with two weights,
trajectories.png.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import click

from .options import OPTIMIZER, PENALTY, command

SKIP_TECHNIQUES = ("compare", "main", "sweep")
# Hyperparameters of the optimizers and penalties, in the order the table shows them.
# The hyperparameters a table shows: the learning rate, the penalty's, then the optimizers'.
KEY_PARAMS = tuple(o.replace("-", "_") for o in ["learning-rate", *PENALTY[1:], *OPTIMIZER[1:]])
ALWAYS_SHOWN = ("learning_rate", "lambda")
# Setup params reported on the "common to all runs" line when they do not vary.
SETUP_PARAMS = (
    "dataset",
    "model",
    "fit_intercept",
    "init",
    "epochs",
    "batch_size",
    "lr_schedule",
    "validation_fraction",
)
# Table columns that come from tags (params of the same name are not repeated).
FIXED_COLUMNS = ("run_id", "run_name", "technique", "optimizer", "penalty")
METRICS = ("final_loss", "final_objective", "final_val_loss")
OUTPUT_FILES = ("compare.csv", "compare.md", "compare.html", "loss_curves.png", "trajectories.png")
PAGE_SIZE = 1000
WORKERS = 8


@dataclass
class Gathered:
    """What compare knows about one run."""

    run: object  # mlflow.entities.Run
    technique: str
    weights: list[float] | None = None
    bias: float | None = None
    epochs: object = None  # np.ndarray of the steps of the loss curve
    loss: object = None  # np.ndarray, the loss per logged epoch
    path: object = None  # np.ndarray (steps, n_features): the weight path, from trajectory.csv
    curve_source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def params(self) -> dict:
        return self.run.data.params

    @property
    def metrics(self) -> dict:
        return self.run.data.metrics

    @property
    def status(self) -> str:
        return self.run.info.status


# --------------------------------------------------------------------------- choosing runs


def technique_of(run) -> str:
    tags = run.data.tags
    return tags.get("technique") or tags.get("mlflow.project.entryPoint") or ""


def resolve_experiment(client, experiment_name: str, experiment_id: str, parent_run=None):
    """The experiment to read: the options, else the parent's, else the current one."""
    exp = None
    if experiment_id:
        exp = _experiment_by_id(client, experiment_id, f"no experiment with id {experiment_id!r}")
    if experiment_name:
        by_name = _experiment_by_name(client, experiment_name, f"no experiment named {experiment_name!r}")
        if exp is not None and exp.experiment_id != by_name.experiment_id:
            raise click.UsageError(
                f"--experiment-name {experiment_name!r} is experiment {by_name.experiment_id}, "
                f"not --experiment-id {experiment_id}; give one of them",
                _ctx(),
            )
        exp = by_name
    if exp is None and parent_run is not None:
        exp = client.get_experiment(parent_run.info.experiment_id)
    if exp is None:
        env_id, env_name = os.environ.get("MLFLOW_EXPERIMENT_ID"), os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if env_id:
            exp = _experiment_by_id(client, env_id, f"MLFLOW_EXPERIMENT_ID={env_id}: no such experiment")
        elif env_name:
            exp = _experiment_by_name(client, env_name, f"MLFLOW_EXPERIMENT_NAME={env_name!r}: no such experiment")
        else:
            exp = _experiment_by_id(client, "0", "no current experiment, and no Default one", known=True)
    if exp.lifecycle_stage != "active":
        raise click.UsageError(f"experiment {exp.name!r} (id {exp.experiment_id}) is deleted", _ctx())
    return exp


def _experiment_by_id(client, experiment_id: str, missing: str, known: bool = False):
    """The experiment, or a usage error saying ``missing`` (plus the known names if ``known``)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_experiment(experiment_id)
    except MlflowException as exc:
        _reraise_unless_missing(exc)
        raise click.UsageError(missing + (_known(client) if known else ""), _ctx()) from None


def _experiment_by_name(client, name: str, missing: str):
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise click.UsageError(missing + _known(client), _ctx())
    return exp


def _ctx():
    return click.get_current_context(silent=True)


def _reraise_unless_missing(exc) -> None:
    """Only "no such experiment / run" is the user's mistake; anything else (a tracking
    server that does not answer, ...) goes on up as the MLflow error it is."""
    if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        raise exc


def _known(client) -> str:
    try:
        names = [e.name for e in client.search_experiments(max_results=20)]
    except Exception:  # only decorates an error message
        return ""
    return f" (experiments: {', '.join(map(repr, names))})" if names else ""


def search(client, experiment_id: str, filter_string: str, max_runs: int, skip_ids=()) -> tuple[list, int, bool]:
    """Runs of the experiment matching the filter, newest first, skipping the non-training ones.

    Returns (runs, number skipped, whether more runs matched than ``max_runs``).
    """
    from mlflow.exceptions import MlflowException

    runs, skipped, token = [], 0, None
    while True:
        try:
            page = client.search_runs(
                [experiment_id],
                filter_string,
                max_results=PAGE_SIZE,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
        except MlflowException as exc:
            if filter_string and exc.error_code == "INVALID_PARAMETER_VALUE":
                raise click.UsageError(f"--filter {filter_string!r}: {exc.message}", _ctx()) from None
            raise click.ClickException(f"could not search the runs: {exc.message}") from None
        for run in page:
            if run.info.run_id in skip_ids or technique_of(run) in SKIP_TECHNIQUES:
                skipped += 1
            elif len(runs) == max_runs:
                return runs, skipped, True
            else:
                runs.append(run)
        token = page.token
        if not token:
            return runs, skipped, False


# --------------------------------------------------------------------------- reading runs


def gather(client, runs, workers: int = WORKERS) -> list[Gathered]:
    """Fetch each run's final weights and loss curve (and weight path), in parallel."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        _quiet_downloads(),
        ThreadPoolExecutor(max_workers=max(1, min(workers, len(runs)))) as pool,
    ):
        return list(pool.map(lambda r: _gather_one(client, r, Path(tmp) / r.info.run_id), runs))


@contextlib.contextmanager
def _quiet_downloads():
    """No progress bar per artifact (1,000 runs would print 2,000 of them)."""
    key, old = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when they are on this machine (a path or file: URI)."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a plain path (C:\... on Windows)
        return Path(artifact_uri)
    return None


def _download(run, name: str, dst: Path) -> Path | None:
    """One artifact of a run as a local file, or None if it is missing or unreadable.

    Local artifact stores are read in place (``download_artifacts`` would copy the file
    through MLflow's artifact repository: about 2 ms a file); anything else (S3, the
    tracking server's proxied ``mlflow-artifacts:``, ...) goes through
    ``mlflow.artifacts.download_artifacts``.
    """
    import mlflow

    local = local_artifact_dir(run.info.artifact_uri)
    if local is not None:
        path = local / name
        return path if path.is_file() else None
    uri = run.info.artifact_uri.rstrip("/") + "/" + name
    try:
        dst.mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except Exception:  # a missing or unreadable artifact: the caller notes it and goes on
        return None


def _gather_one(client, run, dst: Path) -> Gathered:
    import numpy as np

    from .runner import MAX_TRAJECTORY_PARAMS

    g = Gathered(run=run, technique=technique_of(run))
    if g.status == "RUNNING":
        g.notes.append("still running (or never finished)")
    if reason := run.data.tags.get("failure_reason"):
        g.notes.append(reason)
    if "final_loss" not in g.metrics and g.status == "FINISHED":
        g.notes.append("no final metrics logged")
    if stopped := run.data.tags.get("stopped_early"):
        g.notes.append(f"stopped early ({stopped})")

    weights_file = _download(run, "weights.json", dst)
    if weights_file is not None:
        try:
            spec = json.loads(weights_file.read_text())
            g.weights = [float(w) for w in spec["weights"]]
            g.bias = None if spec.get("bias") is None else float(spec["bias"])
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: absurdly nested JSON
            g.notes.append("weights.json unreadable")

    small = g.weights is None or len(g.weights) + (g.bias is not None) <= MAX_TRAJECTORY_PARAMS
    traj = _download(run, "trajectory.csv", dst) if small else None
    if traj is not None:
        try:
            lines = traj.read_text().splitlines()
            header = lines[0].strip().split(",") if lines else []
            if len(lines) < 2 or header[0] != "epoch" or header[-1] != "loss":
                raise ValueError("no data, or unexpected columns")
            data = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
            if data.shape[1] != len(header):
                raise ValueError("unexpected columns")
            g.epochs, g.loss, g.curve_source = data[:, 0], data[:, -1], "trajectory.csv"
            g.path = data[:, [i for i, c in enumerate(header) if c.startswith("w_")]]
        except (ValueError, OSError):
            g.notes.append("trajectory.csv unreadable")
    if g.loss is None and "loss" in g.metrics:
        from mlflow.exceptions import MlflowException

        try:
            history = client.get_metric_history(g.run_id, "loss")
        except MlflowException as exc:
            g.notes.append(f"loss history unreadable ({exc.error_code})")
            return g
        history = sorted(history, key=lambda m: (m.step, m.timestamp))
        by_step = {m.step: m.value for m in history}  # the last value logged at a step wins
        g.epochs = np.array(list(by_step), dtype=float)
        g.loss = np.array(list(by_step.values()), dtype=float)
        g.curve_source = "metric history"
    return g


# --------------------------------------------------------------------------- the table


def parse_param(value: str):
    """A logged param as a number when it is one ("100" -> 100, "1e-2" -> 0.01), else the string."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        v = float(value)
    except ValueError:
        return value
    return v if math.isfinite(v) else value


def relevant(p: dict) -> dict:
    """A run's params without the ones its setup ignores (gdlab logs only those that act, but
    `mlflow run` logs every parameter the MLproject declares): :func:`core.config.unused_options`."""
    from core.config import unused_options

    unused = unused_options(p)
    return {k: v for k, v in p.items() if k not in unused}


def _varies(values: list) -> bool:
    """More than one distinct value."""
    return len({repr(v) for v in values}) > 1


@dataclass
class Table:
    frame: object  # pandas.DataFrame, one row a run, full precision
    shown: list[str]  # columns of the printed table
    common: dict  # setup params with one value for every run (left out of the printed table)
    fixed: dict  # (techniques, or () for all) -> hyperparameters with one value where present
    sort_metric: str
    gathered: list[Gathered]  # in the table's row order


# The table's own columns; a run's param of the same name (another tool's `bias`, say) is shown
# as params.<name> instead of clashing with it (FIXED_COLUMNS come from the run's tags first).
REPORT_COLUMNS = frozenset(
    (*METRICS, "zero_weights", "weights", "bias", "train_time_s", "epochs_run", "status", "note", "start_time")
)


def _column(param: str) -> str:
    return f"params.{param}" if param in REPORT_COLUMNS else param


def build_table(gathered: list[Gathered]) -> Table:
    import numpy as np
    import pandas as pd

    params = [relevant({_column(k): parse_param(v) for k, v in g.params.items()}) for g in gathered]
    every = sorted({k for p in params for k in p})
    key = [k for k in KEY_PARAMS if any(k in p for p in params)]
    varying = [
        k for k in every if k not in KEY_PARAMS and k not in FIXED_COLUMNS and _varies([p[k] for p in params if k in p])
    ]

    rows = []
    for g, p in zip(gathered, params, strict=True):
        m = g.metrics
        row = {
            "run_id": g.run_id,
            "run_name": g.run.info.run_name or "",
            "technique": g.technique,
            "optimizer": g.run.data.tags.get("optimizer") or str(p.get("optimizer", "")),
            "penalty": g.run.data.tags.get("penalty") or str(p.get("penalty", "")),
        }
        row.update({k: p.get(k) for k in key + varying})
        row.update({k: m.get(k, np.nan) for k in METRICS})
        row["zero_weights"] = m.get("zero_weights")
        row["weights"] = g.weights
        row["bias"] = g.bias
        row["train_time_s"] = m.get("train_time_s", np.nan)
        row["epochs_run"] = m.get("epochs_run")
        row["status"] = g.status
        row["note"] = "; ".join(g.notes)
        row["start_time"] = g.run.info.start_time
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("zero_weights", "epochs_run"):  # counts: integers, or <NA> when not logged
        df[col] = pd.array([None if v is None or v != v else round(v) for v in df[col]], dtype="Int64")

    ok = (df["status"] == "FINISHED") & df["final_loss"].notna()
    has_val = ok.any() and df.loc[ok, "final_val_loss"].notna().all()
    sort_metric = "final_val_loss" if has_val else "final_loss"
    df["_rank"] = (~ok).astype(int)
    df["_order"] = range(len(df))
    df = df.sort_values(["_rank", sort_metric, "technique", "start_time"], na_position="last", kind="stable")
    order = df["_order"].tolist()
    df = df.drop(columns=["_rank", "_order", "start_time"]).reset_index(drop=True)

    shown = ["run_id", "technique", "optimizer", "penalty"]
    fixed: dict[tuple, dict] = {}  # techniques having them -> hyperparameters with one value
    for k in key:
        having = [(g.technique, p[k]) for g, p in zip(gathered, params, strict=True) if k in p]
        if k in ALWAYS_SHOWN or _varies([v for _, v in having]):
            shown.append(k)
        else:
            who = tuple(sorted({t for t, _ in having})) if len(having) < len(params) else ()
            fixed.setdefault(who, {})[k] = having[0][1]
    common = {}
    for k in SETUP_PARAMS:
        values = [p[k] for p in params if k in p]
        if values and k not in varying:
            common[k] = values[0]
    shown += varying
    shown += ["final_loss"]
    if (df["final_objective"].fillna(0) != df["final_loss"].fillna(0)).any():
        shown.append("final_objective")
    if df["final_val_loss"].notna().any():
        shown.append("final_val_loss")
    shown += ["zero_weights", "weights"]
    if df["bias"].notna().any():
        shown.append("bias")
    shown += ["train_time_s", "status"]
    if (df["note"] != "").any():
        shown.append("note")
    if df["bias"].isna().all():
        df = df.drop(columns=["bias"])
    return Table(df, shown, common, fixed, sort_metric, [gathered[i] for i in order])


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...)).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_frame(df):
    """The table as written to compare.csv: weights as a JSON list (full precision); text cells
    that a spreadsheet would run as a formula get a leading apostrophe (OWASP's advice)."""
    out = df.copy()
    out["weights"] = [None if w is None else json.dumps(w) for w in out["weights"]]
    for col in out.columns:
        values = out[col].tolist()
        if any(isinstance(v, str) and v.startswith(FORMULA_START) for v in values):
            out[col] = [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v for v in values]
    return out


# --------------------------------------------------------------------------- the compare run


# --------------------------------------------------------------------------- the command


@command()
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
    type=click.Path(file_okay=False, path_type=Path),
    default="compare_output",
    show_default=True,
    help="Folder for compare.csv/.md/.html and the PNGs (created if missing).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Compare at most this many runs (the newest).",
)
def compare(experiment_name, experiment_id, parent_run_id, filter_string, output_dir, max_runs):
    """Compare training runs: a table (terminal, CSV, Markdown, HTML) and loss-curve and
    weight-path pictures, all logged to a compare run of their own.
    """
    from mlflow.exceptions import MlflowException

    from .lifecycle import exit_on_end

    try:
        exit_on_end(run_compare, experiment_name, experiment_id, parent_run_id, filter_string, output_dir, max_runs)
    except MlflowException as exc:  # e.g. the tracking server is unreachable
        raise click.ClickException(f"MLflow: {exc.message}") from None


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
    for stale in (before & set(OUTPUT_FILES)) - written:
        (output_dir / stale).unlink(missing_ok=True)
    manifest.write_text("\n".join(sorted(written)) + "\n")


def run_compare(
    experiment_name,
    experiment_id,
    parent_run_id,
    filter_string,
    output_dir: Path | None,
    max_runs: int,
    subject: str | None = None,
    params: dict | None = None,
):
    """The command's work (``compare`` turns MLflow errors into a message).

    With ``output_dir`` None the report goes to the compare run's artifacts only (a workflow
    run from a Git URL, whose working folder is MLflow's temporary checkout), and the command
    that downloads it is printed.

    A workflow gives the ``subject`` of the title (whose runs these are) and the ``params`` its
    compare run logs, in place of the filter it builds from the children's ids.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from . import compare_report as report
    from .tracking import check_reachable

    check_reachable()
    client = MlflowClient()
    parent = None
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException as exc:
            _reraise_unless_missing(exc)
            raise click.UsageError(f"--parent-run-id: no run with id {parent_run_id!r}") from None
    exp = resolve_experiment(client, experiment_name, experiment_id, parent)
    filters = [f for f in (filter_string.strip(), parent and f"tags.`mlflow.parentRunId` = '{parent_run_id}'") if f]
    # Whose runs these are, for the title: what the caller says (a workflow: "the children of main
    # run ..."), else the experiment and the filter as given.
    where = subject or f"experiment {exp.name!r} (id {exp.experiment_id})" + (
        f", filter {' and '.join(filters)!r}" if filters else ""
    )
    own = {r for r in (os.environ.get("MLFLOW_RUN_ID"), parent_run_id) if r}
    runs, skipped, more = search(client, exp.experiment_id, " and ".join(filters), max_runs, own)
    if not runs:
        extra = f" ({skipped} compare/main/sweep runs skipped)" if skipped else ""
        raise click.ClickException(f"nothing to compare: no training runs in {where}{extra}")

    gathered = gather(client, runs)
    table = build_table(gathered)
    click.echo(f"{len(runs)} runs of {where}, best {table.sort_metric} first:\n")
    click.echo(report.text_table(table))
    click.echo(report.settings_text(table))
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
            return _report(exp, runs, table, Path(tmp), title, parent_run_id, params, kept=False)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"--output-dir {output_dir}: {exc.strerror or exc}") from None
    return _report(exp, runs, table, output_dir, title, parent_run_id, params, kept=True)


def _report(exp, runs, table, output_dir: Path, title: str, parent_run_id, params: dict, kept: bool):
    """Write the report's files to ``output_dir`` and log them to a new compare run."""
    import mlflow

    from . import compare_report as report

    with warnings.catch_warnings():
        # Diverged runs carry losses near 1e300; matplotlib's log scale warns about them.
        warnings.simplefilter("ignore", RuntimeWarning)
        figures = report.figures(table)
    try:
        files = report.write(output_dir, table, figures, title)
        _forget_stale(output_dir, {f.name for f in files})
    except OSError as exc:
        raise click.ClickException(f"could not write to {output_dir}: {exc.strerror or exc}") from None

    from .lifecycle import tracked_run

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
            mlflow.log_table(report.json_frame(table.frame), artifact_file="compare.json")
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


if __name__ == "__main__":
    compare()
