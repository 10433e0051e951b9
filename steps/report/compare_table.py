"""The table `compare` builds from the runs, and its renderers: terminal, CSV, Markdown, HTML, JSON."""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from core.config import GROUPS, SPECS, unused_options
from core.data import printable
from core.schema import Number, OrNone
from core.verdict import on_edge
from steps.report.compare_runs import Gathered
from steps.report.report_files import ALL, ReportFile

# Hyperparameters of the optimizers and penalties, in the order the table shows them.
# The hyperparameters a table shows: the learning rate, the penalty's, then the optimizers'.
KEY_PARAMS = ("learning_rate", *GROUPS["penalty"][1:], *GROUPS["optimizer"][1:])
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
    "standardize",
)
# Table columns that come from tags (params of the same name are not repeated).
FIXED_COLUMNS = ("run_id", "run_name", "technique", "optimizer", "penalty")
METRICS = ("final_loss", "final_objective", "final_val_loss", "final_accuracy", "final_val_accuracy")


# --------------------------------------------------------------------------- the table


def parse_param(value: str, name: str = ""):
    """A logged param as a number when it is one: read by the option's own codec when ``name`` is
    a numeric option of :mod:`core.config` ("1" for --learning-rate is 1.0), else guessed ("100"
    -> 100, "1e-2" -> 0.01, a foreign "abc" stays a string); anything that does not read stays
    the string it was."""
    codec = SPECS[name].codec if name in SPECS else None
    if isinstance(codec, OrNone) and value.strip().lower() != "none":
        codec = codec.inner
    if isinstance(codec, Number):
        try:
            number = codec.parse(value, name)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        v = float(value)
    except ValueError:
        return value
    return v if math.isfinite(v) else value


def ranking_metric(validated: bool) -> str:
    """The one metric runs are ranked by, in compare's table and for a workflow's best child: the
    held-out loss when there is a split, else the objective each run minimized (the loss plus its
    penalty; the loss itself without one)."""
    return "final_val_loss" if validated else "final_objective"


def relevant(p: dict) -> dict:
    """A run's params without the ones its setup ignores (gdlab logs only those that act, but
    `mlflow run` logs every parameter the MLproject declares): :func:`core.config.unused_options`."""
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


# The objective's curvature at the last epoch it was logged (`--curvature-every`): a column each
# when any run has it.
CURVATURE = ("sharpness", "condition_number")

# The table's own columns; a run's param of the same name (another tool's `bias`, say) is shown
# as params.<name> instead of clashing with it (FIXED_COLUMNS come from the run's tags first).
REPORT_COLUMNS = frozenset(
    {*METRICS, "zero_weights", *CURVATURE, "weights", "bias", "train_time_s", "epochs_run", "status", "note"}
    | {"start_time"}
)


def _column(param: str) -> str:
    return f"params.{param}" if param in REPORT_COLUMNS else param


def _kind(g: Gathered) -> str:
    """Which runs a setting belongs to, as the report names them: the technique, or for a `train`
    run its optimizer (each has options of its own: "lion runs", not "train runs")."""
    return g.params.get("optimizer", g.technique) if g.technique == "train" else g.technique


def build_table(gathered: list[Gathered]) -> Table:
    """One row a run: its technique, optimizer, penalty, the key hyperparameters and the params
    that vary, its final metrics, weights and status; sorted best first, failed runs last."""
    params = [relevant({_column(k): parse_param(v, k) for k, v in g.params.items()}) for g in gathered]
    if any("hidden" in p for p in params):  # a run without hidden layers logs none: it is the neuron
        for p in params:
            p.setdefault("hidden", "none")
    every = sorted({k for p in params for k in p})
    key = [k for k in KEY_PARAMS if any(k in p for p in params)]
    varying = [
        k for k in every if k not in KEY_PARAMS and k not in FIXED_COLUMNS and _varies([p[k] for p in params if k in p])
    ]
    df, order, sort_metric = _sorted(_frame(gathered, params, key + varying))
    shown = ["run_id", "technique", "optimizer", "penalty"]
    fixed: dict[tuple, dict] = {}  # techniques having them -> hyperparameters with one value
    for k in key:
        having = [(_kind(g), p[k]) for g, p in zip(gathered, params, strict=True) if k in p]
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
    shown += varying + _result_columns(df)
    if df["bias"].isna().all():
        df = df.drop(columns=["bias"])
    return Table(df, shown, common, fixed, sort_metric, [gathered[i] for i in order])


def _frame(gathered: list[Gathered], params: list[dict], columns: list[str]):
    """The rows, in the runs' order: fixed columns, the params ``columns``, metrics, weights, status."""
    import numpy as np
    import pandas as pd

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
        row.update({k: p.get(k) for k in columns})
        row.update({k: m.get(k, np.nan) for k in METRICS})
        row["zero_weights"] = m.get("zero_weights")
        row.update({k: m.get(k, np.nan) for k in CURVATURE})
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
    return df


def _sorted(df):
    """The rows best first by the validation loss when every finished run has one, else the
    training loss; failed or metric-less runs last. Returns the frame, the runs' original
    positions in the new order, and the metric."""
    ok = (df["status"] == "FINISHED") & df["final_loss"].notna()
    has_val = ok.any() and df.loc[ok, "final_val_loss"].notna().all()
    sort_metric = ranking_metric(has_val)
    df["_rank"] = (~ok).astype(int)
    df["_order"] = range(len(df))
    df = df.sort_values(["_rank", sort_metric, "technique", "start_time"], na_position="last", kind="stable")
    order = df["_order"].tolist()
    return df.drop(columns=["_rank", "_order", "start_time"]).reset_index(drop=True), order, sort_metric


def _result_columns(df) -> list[str]:
    """The printed table's result columns: the losses that say something, zero_weights when a run
    has an L1 term or a zero weight, weights, status."""
    shown = ["final_loss"]
    if (df["final_objective"].fillna(0) != df["final_loss"].fillna(0)).any():
        shown.append("final_objective")
    if df["final_val_loss"].notna().any():
        shown.append("final_val_loss")
    shown += [k for k in ("final_accuracy", "final_val_accuracy") if df[k].notna().any()]  # classifiers
    if df["penalty"].isin(["l1", "elasticnet"]).any() or (df["zero_weights"].fillna(0) > 0).any():
        shown.append("zero_weights")  # what an L1 term does; zeros without one are worth seeing too
    shown += [k for k in CURVATURE if df[k].notna().any()]
    shown.append("weights")
    if df["bias"].notna().any():
        shown.append("bias")
    shown += ["train_time_s", "status"]
    if (df["note"] != "").any():
        shown.append("note")
    return shown


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


NUMERIC = {
    "final_loss",
    "final_objective",
    "final_val_loss",
    "final_accuracy",
    "final_val_accuracy",
    "zero_weights",
    *CURVATURE,
    "bias",
    "train_time_s",
    "epochs_run",
}
SHORT = {
    "learning_rate": "lr",
    "lambda": "λ",
    "beta1": "β1",
    "beta2": "β2",
    "epsilon": "ε",
    "weight_decay": "wd",
    "batch_size": "batch",
    "lr_schedule": "schedule",
}


# --------------------------------------------------------------------------- formatting


def missing(v) -> bool:
    """None, NaN or pandas' NA (lists are never missing)."""
    import pandas as pd

    return v is None or (np.ndim(v) == 0 and bool(pd.isna(v)))


def fmt_value(v) -> str:
    """A param value as people write it: 0.01, 1e-08, 100, prox."""
    if missing(v):
        return ""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"
    return str(v)


def fmt_cell(col: str, v) -> str:
    if col == "weights":
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        shown = [f"{w:.4g}" for w in v[:4]]
        return "[" + ", ".join(shown) + (f", … ({len(v)})" if len(v) > 4 else "") + "]"
    if col == "run_id":
        return str(v)[:8]
    if missing(v):
        return "-" if col in NUMERIC else ""
    if col in ("zero_weights", "epochs_run"):
        return str(int(v))
    if col == "train_time_s":
        return f"{v:.3g}"
    if col in NUMERIC:
        return f"{v:.6g}"
    return fmt_value(v)


def display_rows(table: Table) -> tuple[list[str], list[list[str]], list[bool]]:
    """(header, rows of strings, right-aligned flags) of the shown columns."""
    df = table.frame
    cols = table.shown
    rows = [[fmt_cell(c, v) for c, v in zip(cols, rec, strict=True)] for rec in df[cols].itertuples(index=False)]
    right = [c in NUMERIC or _numeric_column(df[c]) for c in cols]
    return cols, rows, right


def _numeric_column(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def text_table(table: Table, max_note: int = 60) -> str:
    """The table for a terminal (notes cut to ``max_note`` characters; the files keep them whole)."""
    header, rows, right = display_rows(table)
    header = [printable(h, limit=10_000) for h in header]  # another tool's names and values reach a terminal
    rows = [[printable(c, limit=10_000) for c in r] for r in rows]
    if "note" in header:
        k = header.index("note")
        rows = [[*r[:k], r[k] if len(r[k]) <= max_note else r[k][: max_note - 1] + "…", *r[k + 1 :]] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells):
        out = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def settings_lines(table: Table) -> list[str]:
    """What the printed table leaves out because it is the same for every run."""
    out = []
    if table.common:
        out.append("Same for all runs: " + ", ".join(f"{k}={fmt_value(v)}" for k, v in table.common.items()))
    if table.fixed:
        groups = []
        for who, values in table.fixed.items():
            text = ", ".join(f"{k}={fmt_value(v)}" for k, v in values.items())
            groups.append(f"{text} ({', '.join(who)} runs)" if who else f"{text} (all runs)")
        out.append("Unchanged hyperparameters: " + "; ".join(groups))
    # Params and tags come from anyone on a shared store: no control sequence reaches a terminal.
    return [printable(line, limit=10_000) for line in out]


def settings_text(table: Table) -> str:
    lines = [*settings_lines(table), *filter(None, [pruned_line(table)])]
    if found := findings(table):
        lines += ["", "Findings:", *[f"- {f}" for f in found]]
    return ("\n" + "\n".join(lines)) if lines else ""


def _who(rec: dict, lr_varies: bool) -> str:
    who = rec["optimizer"] if rec["technique"] in ("train", "") else rec["technique"]
    return f"{who} (lr {fmt_value(rec['learning_rate'])})" if lr_varies else str(who)


def findings(table: Table) -> list[str]:
    """What the runs' own numbers say, in sentences: only statements they support.

    - the best finished run against the next at the same learning rate: how many times lower its
      ranking metric is;
    - each run's first step against lr x the gradient's norm (internals.csv, epoch 0): plain SGD's
      step is exactly that product; an adaptive rule's is not, and the ratio says by how much;
    - the runs that diverged, and when;
    - a best learning rate on the edge of three or more tried;
    - an L1 run's weights at exactly 0.
    """
    df, metric = table.frame, table.sort_metric
    recs = df.to_dict("records")
    lrs = sorted({float(r["learning_rate"]) for r in recs if not missing(r.get("learning_rate"))})
    lr_varies = len(lrs) > 1
    done = [r for r in recs if r["status"] == "FINISHED" and not missing(r[metric]) and r[metric] > 0]
    out = []
    if len(done) >= 2:
        best = done[0]
        rival = next((r for r in done[1:] if r.get("learning_rate") == best.get("learning_rate")), None)
        if rival is not None and rival[metric] > best[metric]:
            ratio = rival[metric] / best[metric]
            out.append(
                f"{_who(best, lr_varies)} ends with a {metric} {ratio:.3g}x lower than {_who(rival, lr_varies)} "
                f"({best[metric]:.3g} against {rival[metric]:.3g}) at the same learning rate, "
                f"{fmt_value(best['learning_rate'])}."
            )
    for rec, g in zip(recs, table.gathered, strict=True):
        cols = g.internals or {}
        first = [cols.get(k, [math.nan])[0] if len(cols.get(k, [])) else math.nan for k in ("lr", "grad_norm")]
        step = cols.get("update_norm", [math.nan])[0] if len(cols.get("update_norm", [])) else math.nan
        product = first[0] * first[1]
        if not (math.isfinite(step) and math.isfinite(product) and product > 0):
            continue
        ratio = step / product
        how = "exactly lr x the gradient's norm" if abs(ratio - 1) < 1e-9 else f"{ratio:.3g}x lr x the gradient's norm"
        how += f" ({first[0]:g} x {first[1]:.3g})"
        n = len(rec.get("weights") or []) + (0 if missing(rec.get("bias")) or rec.get("bias") is None else 1)
        if n and abs(step - first[0] * math.sqrt(n)) < 1e-6 * step:  # Adam's first step: each weight by lr
            how += f"; it is lr x √{n}: every weight moved by the rate, whatever its gradient"
        out.append(f"{_who(rec, lr_varies)}'s first step was {step:.3g}: {how}.")
    for rec in recs:
        note = str(rec.get("note") or "")
        if rec["status"] == "FAILED" and "diverged" in note:
            at = note.split("diverged")[1].split(":")[0].strip()
            out.append(f"{_who(rec, lr_varies)} diverged {at}.".replace("  ", " "))
    if len(lrs) >= 3 and done and on_edge(lrs, float(done[0]["learning_rate"])):
        end = "largest" if float(done[0]["learning_rate"]) == lrs[-1] else "smallest"
        out.append(
            f"The best run's learning rate, {fmt_value(done[0]['learning_rate'])}, is the {end} of the "
            f"{len(lrs)} tried: the best may lie beyond them."
        )
    for rec in done:
        zeros = rec.get("zero_weights")
        if rec.get("penalty") in ("l1", "elasticnet") and not missing(zeros) and zeros > 0 and rec.get("weights"):
            out.append(f"{_who(rec, lr_varies)} set {int(zeros)} of {len(rec['weights'])} weights to exactly 0.")
    for rec, g in zip(recs, table.gathered, strict=True):
        if rec["status"] == "FINISHED" and (said := _theory(g)):
            out.append(f"{_who(rec, lr_varies)}: {said}")
    return out


def quadratic_of(g):
    """(config, Hessian eigenvalues) of a run on a quadratic problem (ill_conditioned; a linear
    model's least squares without a penalty), else None."""
    from steps.report.problems import config_of

    cfg = config_of(g.params)
    if cfg is None or cfg.penalty != "none":
        return None
    try:
        eigenvalues, _ = _quadratic(cfg)
    except Exception:  # the data is not here any more, or not readable
        return None
    return None if eigenvalues is None else (cfg, eigenvalues)


def _theory(g) -> str | None:
    """On a quadratic (ill_conditioned; a linear model's least squares, without a penalty), run by
    SGD at a constant rate on the full batch: the rate theory predicts beside the one the run's
    loss curve shows (core.curvature), else None."""
    from core.curvature import measured_rate, predicted_rate
    from steps.report.problems import config_of

    cfg = config_of(g.params)
    if cfg is None or g.loss is None or g.epochs is None or len(g.loss) < 6:
        return None
    extras = (cfg.warmup_epochs, cfg.batch_size, cfg.clip_norm, cfg.clip_value, cfg.dampening, cfg.weight_decay)
    plain = cfg.optimizer == "sgd" and cfg.lr_schedule == "constant" and cfg.penalty == "none" and not any(extras)
    if not plain:
        return None
    try:
        eigenvalues, f_star = _quadratic(cfg)
    except Exception:  # the data is not here any more, or not readable: no sentence
        return None
    if eigenvalues is None:
        return None
    predicted = predicted_rate(eigenvalues, cfg.learning_rate, cfg.momentum, cfg.nesterov)
    measured = measured_rate(g.loss, f_star, g.epochs, floor=1e-12 * max(1.0, abs(f_star)))
    if not math.isfinite(measured):
        return None
    how = "max |1 − lr λ|" if not cfg.momentum else ("Nesterov's" if cfg.nesterov else "heavy ball's") + " 2×2 map"
    lam = f"{min(eigenvalues):.3g} to {max(eigenvalues):.3g}"
    return (
        f"on this quadratic (Hessian eigenvalues {lam}) theory predicts the error shrinks by "
        f"{predicted:.6g} an epoch ({how}); its loss curve shows {measured:.6g} over its last half."
    )


def _quadratic(cfg):
    """The Hessian's eigenvalues and the lowest loss f* of a quadratic problem, or (None, None).
    Kept per config and file (:func:`~steps.report.problems.data_stamp`): the findings are told three
    times a compare (terminal, Markdown, HTML) and rates.png asks too, and each read the run's data
    and solved its least squares again."""
    from steps.report.problems import data_stamp

    return _quadratic_of(cfg, data_stamp(cfg))


@lru_cache(maxsize=256)
def _quadratic_of(cfg, stamp):
    import numpy as np

    from core.config import TEST_FUNCTIONS
    from core.training import load_data

    if cfg.dataset == "ill_conditioned":
        return [1.0, cfg.condition_number], 0.0
    if cfg.dataset in TEST_FUNCTIONS or cfg.model != "linear" or cfg.hidden:
        return None, None
    data = load_data(cfg)
    X = np.column_stack([data.X_train, np.ones(len(data.X_train))]) if cfg.fit_intercept else data.X_train
    y = data.y_train
    solution = np.linalg.lstsq(X, y, rcond=None)[0]
    residual = X @ solution - y
    return np.linalg.eigvalsh(2.0 / len(y) * (X.T @ X)).tolist(), float(residual @ residual) / len(y)


def md_escape(text: str) -> str:
    """Text for a Markdown cell or line: no HTML, no line breaks, no table pipes, no control characters."""
    text = " ".join(str(text).split("\n"))
    text = printable(text, limit=10_000).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # No links or images from a run's text: [x](javascript:...) and ![p](http://host/pixel.png) stay text.
    return text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def markdown_table(table: Table) -> str:
    header, rows, right = display_rows(table)

    def esc(s):
        return md_escape(s)

    lines = ["| " + " | ".join(map(esc, header)) + " |"]
    lines.append("|" + "|".join("---:" if r else ":---" for r in right) + "|")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def json_frame(df):
    """The table for ``mlflow.log_table``: JSON-friendly values (no NaN, plain lists)."""
    out = df.astype(object).where(df.notna(), None)
    out["weights"] = [None if w is None else list(w) for w in df["weights"]]
    return out


def _notes(table: Table) -> list[str]:
    """The runs that need a look: failed, or finished without final metrics. A search's pruned
    trials are neither: they did what pruning is for, and :func:`pruned_line` counts them."""
    out = []
    for rec, g in zip(table.frame.to_dict("records"), table.gathered, strict=True):
        if g.run.data.tags.get("pruned"):
            continue
        if rec["note"] and (rec["status"] != "FINISHED" or missing(rec["final_loss"])):
            out.append(f"{rec['run_id'][:8]} ({rec['technique']}, {rec['status']}): {rec['note']}")
    return out


def pruned_line(table: Table) -> str:
    """ "Pruned by the search: 7 of 30 trials (stopped at epochs 10 to 40)", or ""."""
    epochs = [
        int(t.split()[-1]) for g in table.gathered if (t := g.run.data.tags.get("pruned", "")) and t[-1].isdigit()
    ]
    pruned = sum(bool(g.run.data.tags.get("pruned")) for g in table.gathered)
    if not pruned:
        return ""
    where = (
        f" (stopped at epoch {min(epochs)})"
        if epochs and min(epochs) == max(epochs)
        else (f" (stopped at epochs {min(epochs)} to {max(epochs)})" if epochs else "")
    )
    return f"Pruned by the search: {pruned} of {len(table.gathered)} trials{where}; they have no final metrics."


def markdown(table: Table, title: str, images: list[str]) -> str:
    parts = [f"# {md_escape(title)}", "", f"Sorted by {table.sort_metric} (best first); failed runs last.", ""]
    parts.append(markdown_table(table))
    for line in settings_lines(table):
        parts += ["", md_escape(line)]
    if notes := _notes(table):
        parts += ["", "Runs that need a look:", "", *[f"- {md_escape(n)}" for n in notes]]
    if pruned := pruned_line(table):
        parts += ["", pruned]
    if found := findings(table):
        parts += ["", "Findings (from the runs' own numbers):", "", *[f"- {md_escape(f)}" for f in found]]
    parts += ["", "Full precision: `compare.csv`.", ""]
    for name in (n for n in images if n.endswith((".png", ".gif"))):
        parts += [f"![{name}]({name})", ""]
        if (known := ALL.get(name)) is not None and known.caption:
            parts += [md_escape(known.caption), ""]
    return "\n".join(parts)


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 24px auto; max-width: 1400px; padding: 0 20px; color: #1d2733; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #5b6675; margin: 0 0 14px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; white-space: nowrap; }
th, td { padding: 5px 9px; border-bottom: 1px solid #e3e7ec; text-align: left; }
th { background: #f3f5f8; position: sticky; top: 0; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4fb; }
tr.best td { background: #e9f7ee; }
tr.failed td { background: #fdecec; color: #7a1f1f; }
tr.warn td { background: #fff6e0; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
code { background: #f3f5f8; padding: 1px 4px; border-radius: 3px; }
figure { margin: 10px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ec; border-radius: 4px; }
figcaption { color: #5b6675; font-size: 13px; margin-top: 4px; }
ul.notes li { margin: 2px 0; }
"""


def html_report(table: Table, title: str, images: dict[str, bytes], colors: list, live=None) -> str:
    """The self-contained HTML report: the table (each run_id with the ``colors`` of its row's
    curves, any matplotlib colour), the settings, the notes and the ``images`` embedded; with ``live``
    (:class:`steps.report.interactive.Live`) its interactive plots, in place of the pictures they show."""
    from matplotlib.colors import to_hex

    header, rows, right = display_rows(table)
    df = table.frame
    e = html.escape
    # <wbr>: a header may break after an underscore, and still copies as the CSV's column name.
    names = [e(h).replace("_", "_<wbr>") for h in header]
    head = "".join(f'<th class="num">{h}</th>' if r else f"<th>{h}</th>" for h, r in zip(names, right, strict=True))
    body = []
    for k, (cells, rec) in enumerate(zip(rows, df.to_dict("records"), strict=True)):
        cls = "failed" if rec["status"] != "FINISHED" else ("warn" if missing(rec["final_loss"]) else "")
        if k == 0 and not cls:
            cls = "best"
        tds = []
        for j, (c, r) in enumerate(zip(cells, right, strict=True)):
            text = e(c)
            if header[j] == "run_id":
                rgb = to_hex(colors[k])
                swatch = f'<span class="swatch" style="background:{rgb}"></span>'
                text = f'{swatch}<code title="{e(rec["run_id"])}">{text}</code>'
            tds.append(f'<td class="num">{text}</td>' if r else f"<td>{text}</td>")
        body.append(f'<tr class="{cls}">' + "".join(tds) + "</tr>")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        live.head if live else "",
        f"<title>{e(title)}</title><style>{CSS}{live.css if live else ''}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{len(df)} runs, sorted by <code>{e(table.sort_metric)}</code> (best first, failed runs '
        f"last). Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Full precision in <code>compare.csv</code>.</p>",
        '<div class="scroll"><table id="runs">',
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>",
    ]
    parts += [f'<p class="meta">{e(line)}</p>' for line in settings_lines(table)]
    if notes := _notes(table):
        parts.append("<h2>Runs that need a look</h2><ul class='notes'>")
        parts += [f"<li>{e(n)}</li>" for n in notes]
        parts.append("</ul>")
    if pruned := pruned_line(table):
        parts.append(f'<p class="meta">{e(pruned)}</p>')
    if found := findings(table):
        parts.append("<h2>Findings</h2><ul class='findings'>")
        parts += [f"<li>{e(f)}</li>" for f in found]
        parts.append("</ul>")
    if live:
        parts.append(live.body)
    for name, data in images.items():
        if not name.endswith(".png") or (live and name in live.covered):
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        known = ALL.get(name, ReportFile(name, name))
        parts.append(f"<h2>{e(known.title)}</h2>")
        parts.append(f'<figure><img src="{uri}" alt="{e(name)}"><figcaption>{e(known.caption)}</figcaption></figure>')
    if live:
        parts.append(live.scripts)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
