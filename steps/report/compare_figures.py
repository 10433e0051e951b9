"""The pictures of `compare`: loss curves and weight paths on the loss surface.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``): no pyplot,
no GUI backend, no global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.config import BUILT_IN_DATASETS, GROUPS, TEST_FUNCTIONS
from core.data import DataError
from core.functions import Objective
from core.training import components, load_data, loss_surface
from core.verdict import on_edge
from steps.report.compare_table import NUMERIC, SHORT, Table, fmt_value, missing
from steps.report.problems import config_of, data_stamp

MAX_LABELLED = 12  # more runs than this: curves are coloured by technique, the best few labelled
MAX_LABEL_PARTS = 3  # differing hyperparameters named in a run's label
MAX_PANELS = 4
# Beyond this a value from a run's artifacts is not drawn: no loss or weight of a run that trained
# gets there, and a log axis around 1e308 overflows matplotlib's ticks (another tool's run did).
ABSURD = 1e100
FIG_DPI = 110


# --------------------------------------------------------------------------- run styles


@dataclass
class Style:
    label: str
    color: tuple
    failed: bool


def order_note(table: Table) -> str:
    """How the legends and the table are ordered: say the metric (validation loss, when there is a
    split, orders curves that show the training loss)."""
    return f"runs in order of {table.sort_metric}, lowest first"


def styles(table: Table) -> list[Style]:
    """A label and colour per row (the table's order), shared by both figures and the HTML.

    Labels name the technique and every hyperparameter value that differs between runs (at most
    MAX_LABEL_PARTS of them; the ones common to all runs go into the figure's subtitle).
    """
    from matplotlib import colormaps

    df = table.frame
    n = len(df)
    params = _param_columns(table)
    kinds = [kind_of(rec) for rec in df.to_dict("records")]
    # A hyperparameter a label names varies among runs of one kind: adam's β2 0.999 against lion's
    # 0.99 is each one's default, not a choice (the table still shows both).
    own = set(GROUPS["optimizer"]) - {"optimizer"}  # an optimizer's own, whose defaults differ by optimizer
    within = {(k, kind): _varies_present(df[k][[kd == kind for kd in kinds]]) for k in params for kind in set(kinds)}
    varying = [
        k
        for k in table.shown
        if k in params and (any(within[k, kind] for kind in set(kinds)) or (k not in own and _varies_present(df[k])))
    ]
    techniques = list(dict.fromkeys(kinds))
    tab10 = colormaps["tab10"].colors
    recs = df.to_dict("records")
    labels = []
    for rec in recs:
        parts, extra = [rec["technique"] or "?"], []
        if rec["technique"] in ("train", ""):  # a train run is its optimizer (and penalty)
            parts = [rec["optimizer"] or parts[0]]
            if rec["penalty"] not in ("none", ""):
                parts.append(rec["penalty"])
        for k in varying + (["lambda"] if "lambda" in params and "lambda" not in varying else []):
            v = rec.get(k)
            if missing(v) or (k == "lambda" and rec["penalty"] in ("none", "")):
                continue
            if k == "l1_ratio" and rec["penalty"] != "elasticnet":
                continue
            if k in own and not within[k, kinds[len(labels)]]:  # its optimizer's default, the same in every run
                continue
            extra.append(_label_part(k, v))
        # Hyperparameters first (the order of `varying`); at most a few, so legends stay legible.
        shown = extra[:MAX_LABEL_PARTS] + (["…"] if len(extra) > MAX_LABEL_PARTS else [])
        labels.append(" ".join(parts + shown))
    count: dict[str, int] = {}
    for lab in labels:
        count[lab] = count.get(lab, 0) + 1
    out = []
    for i, (lab, rec) in enumerate(zip(labels, recs, strict=True)):
        if n <= 10:
            color = tab10[i]
        elif n <= 20:
            color = colormaps["tab20"].colors[i]
        else:  # many runs: one colour a kind (an optimizer of `train`, else the technique)
            color = tab10[techniques.index(kinds[i]) % 10]
        label = lab + (f" #{rec['run_id'][:6]}" if count[lab] > 1 else "")
        failed = rec["status"] != "FINISHED"
        out.append(Style(label + (f" ({rec['status'].lower()})" if failed else ""), color, failed))
    return out


def kind_of(rec: dict) -> str:
    """What a run is, for colours and groups: a `train` run's optimizer (and penalty), else its technique."""
    if rec.get("technique") in ("train", "", None):
        penalty = rec.get("penalty")
        return str(rec.get("optimizer") or "?") + (f" {penalty}" if penalty not in ("none", "", None) else "")
    return str(rec["technique"])


def _label_part(k: str, v) -> str:
    if k == "dataset":
        return Path(str(v)).name
    if k == "model":
        return str(v)
    if k == "fit_intercept":
        return "with bias" if fmt_value(v) == "true" else "no bias"
    if k == "standardize":
        return "standardized" if fmt_value(v) == "true" else "raw features"
    return f"{SHORT.get(k, k)}={fmt_value(v)}"


def _param_columns(table: Table) -> set[str]:
    fixed = {"run_id", "run_name", "technique", "optimizer", "penalty", "weights", "status", "note", *NUMERIC}
    return {c for c in table.frame.columns if c not in fixed}


def _varies_present(series) -> bool:
    return len({fmt_value(v) for v in series if not missing(v)}) > 1


def subtitle(table: Table) -> str:
    c, df = table.common, table.frame
    bits = []
    if "dataset" in c:
        bits.append(f"{c['dataset']} function" if c["dataset"] in TEST_FUNCTIONS else f"{c['dataset']} data")
    if "model" in c:
        bits.append(f"{c['model']} model")
    if "epochs" in c:
        bits.append(f"{fmt_value(c['epochs'])} epochs")
    if "batch_size" in c:
        bits.append("full batch" if c["batch_size"] == 0 else f"batch {fmt_value(c['batch_size'])}")
    if "learning_rate" in df and df["learning_rate"].notna().all() and not _varies_present(df["learning_rate"]):
        bits.append(f"lr={fmt_value(df['learning_rate'].iloc[0])}")
    return " · ".join(bits)


# --------------------------------------------------------------------------- figures


def figures(table: Table) -> dict:
    """{file name: matplotlib Figure}: loss_curves.png always, trajectories.png for 2-weight runs,
    internals.png for runs that logged their internals.

    Every text is drawn as it is, never as TeX (``text.parse_math`` off): a run's params and tags
    may come from anyone on a shared store, and ``$\\undefinedmacro{x}$`` in a legend stopped
    the whole report."""
    from matplotlib import rc_context

    with rc_context({"text.parse_math": False}):
        return _figures(table)


def _figures(table: Table) -> dict:
    st = styles(table)
    out = {"loss_curves.png": loss_curves(table, st)}
    traj = trajectories(table, st)
    if traj is not None:
        out["trajectories.png"] = traj
    sens = sensitivity(table, st)
    if sens is not None:
        out["sensitivity.png"] = sens
    inside = internals(table, st)
    if inside is not None:
        out["internals.png"] = inside
    phase = rates(table, st)
    if phase is not None:
        out["rates.png"] = phase
    return out


def rates(table: Table, st: list[Style]):
    """Goh's phase diagram for a quadratic problem (ill_conditioned; a linear model's least squares):
    the rate theory predicts at each (learning rate, momentum) of SGD, heavy ball, with every SGD
    run of the table marked where it ran; None unless every run is on that quadratic and one is SGD."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from core.curvature import rate_map, stability_edge
    from steps.report.compare_table import quadratic_of

    eigenvalues = None
    marks = []
    for i, g in enumerate(table.gathered):
        found = quadratic_of(g)
        if found is None:  # a run on something else (a ReLU neuron beside a linear one): no one map fits
            return None
        cfg, values = found
        eigenvalues = eigenvalues if eigenvalues is not None else values
        if cfg.optimizer == "sgd" and not cfg.nesterov:
            marks.append((cfg.learning_rate, cfg.momentum, i))
    if eigenvalues is None or not marks:
        return None
    top = max(eigenvalues)
    lrs = np.geomspace(stability_edge(top) / 1e4, stability_edge(top, 0.99) * 1.5, 240)
    momenta = np.linspace(0.0, 0.99, 200)
    grid = rate_map(eigenvalues, lrs, momenta)
    shown = np.ma.masked_where(grid >= 1.0, 1.0 - grid)  # 1 - rate: the share of the error gone a step
    fig = Figure(figsize=(8.5, 5.6), dpi=FIG_DPI, layout="constrained")
    ax = fig.subplots()
    mesh = ax.pcolormesh(lrs, momenta, shown, shading="auto", cmap="viridis", norm=LogNorm())
    fig.colorbar(mesh, ax=ax, label="1 − rate: the share of the error gone an epoch (brighter: faster)")
    ax.plot(stability_edge(top, momenta), momenta, color="black", lw=1.2, ls="--", label="stability edge 2(1+μ)/λmax")
    for lr, momentum, i in marks:
        ax.scatter([lr], [momentum], color=st[i].color, edgecolor="white", s=90, zorder=3, label=st[i].label)
    ax.set_xscale("log")
    ax.set_xlim(lrs[0], lrs[-1])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("momentum (heavy ball)")
    lam = f"λ from {min(eigenvalues):.3g} to {top:.3g}"
    ax.set_title(f"Rate theory predicts on this quadratic ({lam}); white: diverges", fontsize=11, loc="left")
    ax.legend(fontsize=9, loc="upper left")
    return fig


# What the internals panel shows of each run's internals.csv: (column, title, log scale).
INTERNAL_PANELS = (
    ("lr", "learning rate", True),
    ("grad_norm", "gradient norm  ‖∇J(θ)‖  (before clipping)", True),
    ("update_norm", "update norm  ‖θₑ₊₁ − θₑ‖  (the step taken)", True),
    ("zero_weights", "weights exactly 0 (L1)", False),
    ("sharpness", "sharpness  λₘₐₓ(∇²J);  dotted: 2/lr", True),
)


def internals(table: Table, st: list[Style]):
    """The optimizer's internals per logged epoch, one panel each (lr, grad_norm, update_norm, and
    zero_weights when a run has an L1 term), from each run's internals.csv; None if no run has one."""
    from matplotlib.figure import Figure

    runs = [(i, g.internals) for i, g in enumerate(table.gathered) if g.internals]
    panels = [p for p in INTERNAL_PANELS if any(np.isfinite(cols.get(p[0], [np.nan])).any() for _, cols in runs)]
    rates = {float(v) for _, cols in runs for v in cols.get("lr", []) if np.isfinite(v)}
    same_rate = len(rates) == 1  # one constant rate for every run: a panel of one flat line says nothing
    if same_rate:
        panels = [p for p in panels if p[0] != "lr"]
    if not runs or not panels:
        return None
    labelled = len(runs) <= MAX_LABELLED
    fig = Figure(figsize=(4.6 * len(panels), 4.8), dpi=FIG_DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (column, title, log) in zip(axes, panels, strict=True):
        for i, cols in runs:
            x, y = cols["epoch"], cols.get(column, np.full(len(cols["epoch"]), np.nan))
            keep = np.isfinite(y) & ((y > 0) if log else True)
            s = st[i]
            kw = {"label": s.label} if labelled else {}
            ax.plot(x[keep], y[keep], color=s.color, lw=1.8 if labelled else 0.7, alpha=0.9 if labelled else 0.4,
                    ls="--" if s.failed else "-", drawstyle="steps-post" if not log else "default", **kw)  # fmt: skip
            if column == "sharpness" and "lr" in cols:  # the stability line: GD on a quadratic is stable below it
                edge = 2.0 / cols["lr"]
                ax.plot(x[keep], edge[keep], color=s.color, lw=1.0, ls=":", alpha=0.8)
        if log:
            ax.set_yscale("log")
        else:  # a count
            ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title(title, fontsize=11, loc="left")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.35)
    if labelled:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(runs)), fontsize=10, frameon=False,
                   title=order_note(table), title_fontsize=10)  # fmt: skip
    rate = f" (learning rate {next(iter(rates)):g} for every run, every epoch)" if same_rate else ""
    fig.suptitle(f"Inside the optimizer, per logged epoch{rate}", fontsize=14, x=0.01, ha="left")
    return fig


@dataclass
class Sensitivity:
    """The ranking metric against the learning rate: the runs (records), a line per kind (and
    lambda) with its finished rows and its failed ones, the height a failed run is drawn at, the
    best row (None: no run has the metric), and the grid's learning rates and each run's lambda."""

    recs: list
    lines: list  # (label, colour, finished rows, failed rows), each by learning rate
    top: float
    best: int | None
    lrs: list
    lam: list
    heat: bool  # one kind, two lambdas or more: the lr x lambda grid as well
    log: bool  # the metric on a log axis: every finished run's is above 0


def sensitivity_of(table: Table, st: list[Style]) -> Sensitivity | None:
    """None unless three or more learning rates were tried (a sweep's grid, a search)."""
    df, metric = table.frame, table.sort_metric
    lrs = sorted({float(v) for v in df["learning_rate"] if not missing(v)}) if "learning_rate" in df else []
    if len(lrs) < 3:
        return None
    recs = df.to_dict("records")
    lam = [float(r["lambda"]) if not missing(r.get("lambda")) else 0.0 for r in recs]
    kinds = [kind_of(r) for r in recs]
    groups: dict[tuple, list] = {}
    for k in range(len(recs)):
        groups.setdefault((kinds[k], lam[k] if len(set(lam)) > 1 else None), []).append(k)
    values = [float(r[metric]) for r in recs if not missing(r[metric]) and r["status"] == "FINISHED"]
    lines = []
    for (kind, lam_k), rows in groups.items():
        rows = sorted(rows, key=lambda k: float(recs[k]["learning_rate"]))
        ok = [k for k in rows if recs[k]["status"] == "FINISHED" and not missing(recs[k][metric])]
        color = st[rows[0]].color if len(groups) > 1 else "C0"
        label = kind + (f" λ={lam_k:g}" if lam_k is not None else "")
        lines.append((label, color, ok, [k for k in rows if k not in ok]))
    best = None
    if values:
        best = min(range(len(recs)), key=lambda k: float(recs[k][metric]) if not missing(recs[k][metric]) else math.inf)
    heat = len(set(kinds)) == 1 and len(set(lam)) >= 2
    log = bool(values) and min(values) > 0
    return Sensitivity(recs, lines, max(values) * 3 if values else 1.0, best, lrs, lam, heat, log)


def sensitivity(table: Table, st: list[Style]):
    """The ranking metric against the learning rate, a line per kind (and lambda), log scales; with
    lambdas too (one kind), the lr x lambda grid as a heatmap. None unless three or more learning
    rates were tried (a sweep's grid, a search)."""
    from matplotlib.figure import Figure

    sens = sensitivity_of(table, st)
    if sens is None:
        return None
    metric, recs, lam, lrs, top = table.sort_metric, sens.recs, sens.lam, sens.lrs, sens.top
    heat = sens.heat
    fig = Figure(figsize=(13 if heat else 8, 5.2), dpi=FIG_DPI, layout="constrained")
    axes = fig.subplots(1, 2 if heat else 1, squeeze=False)[0]
    ax = axes[0]
    for label, color, ok, bad in sens.lines:
        ax.plot([recs[k]["learning_rate"] for k in ok], [recs[k][metric] for k in ok], marker="o", color=color,
                lw=1.8, label=label)  # fmt: skip
        ax.plot([recs[k]["learning_rate"] for k in bad], [top] * len(bad), ls="none", marker="x", ms=9, color=color)
    if (best := sens.best) is not None:
        ax.plot(recs[best]["learning_rate"], recs[best][metric], marker="*", ms=16, color="gold", mec="black", zorder=5)
        if on_edge(lrs, float(recs[best]["learning_rate"])):
            where = (recs[best]["learning_rate"], recs[best][metric])
            text = "best on the grid's edge:\nthe best may lie beyond it"
            ax.annotate(text, where, textcoords="offset points", xytext=(-10, 18), ha="center", fontsize=9)
    ax.set_xscale("log")
    if sens.log:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"{metric} (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, frameon=False)
    ax.set_title(f"{metric} against the learning rate, {len(recs)} runs", fontsize=13, loc="left")
    if heat:
        _lr_lambda_heatmap(fig, axes[1], recs, lam, lrs, metric)
    return fig


def _lr_lambda_heatmap(fig, ax, recs, lam, lrs, metric: str) -> None:
    lams = sorted(set(lam))
    grid = np.full((len(lams), len(lrs)), np.nan)
    for r, lam_r in zip(recs, lam, strict=True):
        if r["status"] == "FINISHED" and not missing(r[metric]) and float(r[metric]) > 0:
            grid[lams.index(lam_r), lrs.index(float(r["learning_rate"]))] = float(r[metric])
    from matplotlib.colors import LogNorm

    finite = grid[np.isfinite(grid)]
    norm = LogNorm(finite.min(), finite.max()) if finite.size and finite.min() < finite.max() else None
    image = ax.imshow(grid, cmap="viridis_r", norm=norm, aspect="auto", origin="lower")
    for (row, col), v in np.ndenumerate(grid):
        ax.text(col, row, "failed" if not np.isfinite(v) else f"{v:.3g}", ha="center", va="center", fontsize=8,
                color="white" if np.isfinite(v) and norm is not None and norm(v) > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
    ax.set_yticks(range(len(lams)), [f"{v:g}" for v in lams])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("lambda")
    ax.set_title(f"{metric}: learning rate x lambda", fontsize=13, loc="left")
    fig.colorbar(image, ax=ax, label=f"{metric} (log colour scale)")


def curve_of(table: Table, i: int, g):
    """(epochs, loss) of row i, ending with the final loss (the loss after the last epoch)."""
    x, y = np.asarray(g.epochs, dtype=float), np.asarray(g.loss, dtype=float)
    rec = table.frame.loc[i]
    final, last = rec["final_loss"], rec["epochs_run"]
    if not missing(final) and not missing(last) and (len(x) == 0 or last > x[-1]):
        x, y = np.append(x, float(last)), np.append(y, float(final))
    keep = np.isfinite(y) & (y > 0) & (y < ABSURD)  # a log scale shows positive losses only
    return x[keep], y[keep]


def _emptiest_corner(ax, points, size, ends=()) -> list[float]:
    """[x0, y0, w, h] in axes coordinates of the corner box holding the fewest points
    (an end point, which the reader looks for, weighs as much as a whole curve)."""
    if len(ends):
        points = np.vstack([points, np.repeat(np.asarray(ends, dtype=float), 100, axis=0)])
    w, h = size
    xy = ax.transAxes.inverted().transform(ax.transData.transform(points)) if len(points) else np.zeros((0, 2))
    # Room left and below for the inset's own tick labels.
    boxes = [[0.09, 0.1], [1 - w - 0.03, 0.1], [0.09, 1 - h - 0.06], [1 - w - 0.03, 1 - h - 0.06]]
    pad = 0.04

    def crowd(b):
        inside = (
            (xy[:, 0] > b[0] - pad)
            & (xy[:, 0] < b[0] + w + pad)
            & (xy[:, 1] > b[1] - pad)
            & (xy[:, 1] < b[1] + h + pad)
        )
        return int(inside.sum())

    best = min(boxes, key=crowd)
    return [best[0], best[1], w, h]


def _cluster(values: np.ndarray, close) -> list[int]:
    """Indices of the largest group of sorted ``values`` whose ends are ``close`` but not
    all equal (identical runs need no zoom to be told apart: they share a line)."""
    order = np.argsort(values, kind="stable")
    best: list[int] = []
    for a in range(len(order)):
        b = a
        while b + 1 < len(order) and close(values[order[a]], values[order[b + 1]]):
            b += 1
        group = [int(k) for k in order[a : b + 1]]
        if len({float(values[k]) for k in group}) >= 2 and len(group) > len(best):
            best = group
    return best


def loss_curves(table: Table, st: list[Style]):
    """The training loss per logged epoch of every run: each run labelled (up to MAX_LABELLED
    runs), else coloured by technique with the best few labelled."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 6.6), dpi=FIG_DPI, layout="constrained")
    ax = fig.add_subplot()
    curves = []
    for i, g in enumerate(table.gathered):
        if g.loss is not None:
            x, y = curve_of(table, i, g)
            if len(x):
                curves.append((i, x, y))
    n = len(curves)
    if n == 0:
        ax.text(0.5, 0.5, "No run logged a loss curve.", ha="center", va="center", fontsize=14, transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    ax.set_yscale("log")
    curves = _tame_failed(curves, st)
    labelled = n <= MAX_LABELLED
    if labelled:
        _each_curve_labelled(fig, ax, curves, table, st)
    else:
        _curves_by_technique(fig, ax, curves, table, st)
    done = [y for i, _, y in curves if not st[i].failed]
    if done and len(done) < n:  # y range of the finished runs (diverged curves run off the top)
        lo_y, hi_y = min(float(y.min()) for y in done), max(float(y.max()) for y in done)
        ax.set_ylim(lo_y / 1.5, hi_y * 3)
    _cut_dips(ax, curves, st)
    ax.set_xlabel("epoch")
    on_functions = all(g.params.get("dataset") in TEST_FUNCTIONS for g in table.gathered)
    ax.set_ylabel("f(x, y) (log scale)" if on_functions else f"training loss ({loss_names(table)}, log scale)")
    ax.grid(True, which="major", alpha=0.5)
    ax.grid(True, which="minor", alpha=0.15)
    ax.set_title(f"Training loss per epoch, {n} run{'s' * (n != 1)}", fontsize=14, loc="left")
    if sub := subtitle(table):
        ax.set_title(sub, fontsize=10, loc="right", color="0.35")
    if _draw_validation(ax, table, st, curves if labelled else curves[:5]):
        ax.set_title(
            f"Training loss per epoch (solid) and validation loss (dashed), {n} run{'s' * (n != 1)}",
            fontsize=14,
            loc="left",
        )
    if labelled:
        _zoom_loss_ends(ax, curves, st)
    return fig


def _cut_dips(ax, curves, st) -> None:
    """Keep the y axis on where the runs are: a brief dip far below everything else (Lion's sign
    steps can land one epoch on 1e-27) would stretch the log axis over twenty empty decades.
    The floor is the lowest of each run's 1st percentile and its final value; what dips below it
    is cut, and the title says so."""
    done = [(x, y) for i, x, y in curves if not st[i].failed and len(y)]
    if not done:
        return
    floor = min(min(float(np.percentile(y, 1)), float(y[-1])) for _, y in done)
    lowest = min(float(y.min()) for _, y in done)
    if lowest >= floor / 100:  # nothing far below: the axis as drawn
        return
    top = min(ax.get_ylim()[1], max(float(y.max()) for _, _, y in curves if len(y)) * 3)
    ax.set_ylim(floor / 3, top)
    x, y = min(done, key=lambda c: float(c[1].min()))
    epoch = float(x[int(np.argmin(y))])
    ax.text(0.99, 0.01, f"cut off: a dip to {lowest:.1e} at epoch {epoch:.0f}", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=8.5, color="0.35")  # fmt: skip


def _draw_validation(ax, table: Table, st: list[Style], curves) -> bool:
    """Each drawn run's validation loss per logged epoch (internals.csv), dashed in its colour: a
    network that overfits shows it as the two curves parting. Whether any was drawn."""
    drawn = False
    for i, _, _ in curves:
        internals = table.gathered[i].internals or {}
        if "val_loss" not in internals or st[i].failed:
            continue
        x, y = np.asarray(internals["epoch"], dtype=float), np.asarray(internals["val_loss"], dtype=float)
        keep = np.isfinite(y) & (y > 0)
        if keep.any():
            ax.plot(x[keep], y[keep], color=st[i].color, lw=1.6, ls=(0, (4, 2)), alpha=0.85)
            drawn = True
    return drawn


def loss_names(table: Table) -> str:
    """What the runs' loss is: MSE, log loss (``--model logistic``), or both."""
    logistic = {g.params.get("model", "relu") == "logistic" for g in table.gathered}
    if logistic == {True}:
        return "log loss"
    return "MSE; log loss for logistic runs" if True in logistic else "MSE"


def _each_curve_labelled(fig, ax, curves, table: Table, st: list[Style]) -> None:
    """One labelled line a run, with the value of the metric that orders the legend."""
    n = len(curves)
    for k, (i, x, y) in enumerate(curves):
        s = st[i]
        value = table.frame.loc[i, table.sort_metric]
        tail = f"   {table.sort_metric} {value:.4g}" if not missing(value) else ""
        # Each later curve a little thinner: one drawn over another that runs with it (NAdam over
        # Adam) leaves the first showing along both edges.
        lw = 3.4 - 1.6 * k / max(1, n - 1)
        ax.plot(x, y, color=s.color, lw=lw, ls="--" if s.failed else "-", label=s.label + tail, alpha=0.9)
        ax.plot(x[-1], y[-1], marker="X" if s.failed else "o", ms=8, color=s.color, mec="black", mew=0.8)
    fig.legend(
        loc="outside lower center",
        ncols=1 if len(curves) <= 4 else 2,
        fontsize=10.5,
        frameon=False,
        title=order_note(table),
        title_fontsize=10,
    )


def _curves_by_technique(fig, ax, curves, table: Table, st: list[Style]) -> None:
    """Many runs: thin lines coloured by kind (:func:`kind_of`), the best five drawn over them and labelled."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    groups: dict[str, list] = {}
    for i, x, y in curves:
        groups.setdefault(kind_of(table.frame.loc[i].to_dict()), []).append((i, np.column_stack([x, y])))
    handles = []
    for tech, members in groups.items():
        color = st[members[0][0]].color
        ax.add_collection(LineCollection([seg for _, seg in members], colors=[color], lw=0.7, alpha=0.3))
        handles.append(Line2D([], [], color=color, lw=2, label=f"{tech or '?'}: {len(members)} runs"))
    best = [c for c in curves if not st[c[0]].failed][:5]
    for rank, (i, x, y) in enumerate(best, 1):
        (h,) = ax.plot(x, y, color=st[i].color, lw=2.4, label=f"#{rank} by {table.sort_metric}: {st[i].label}")
        ax.plot(x[-1], y[-1], marker="o", ms=7, color=st[i].color, mec="black", mew=0.8)
        h.set_path_effects(_outline())
        handles.append(h)
    ax.autoscale_view()
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=10, frameon=False)


def _tame_failed(curves, st):
    """Cut a diverged run's curve where it leaves the finished runs' range (x1000): it still
    shows where the run took off, and the y axis keeps the finished runs readable."""
    done = [y for i, _, y in curves if not st[i].failed]
    if not done:
        return curves
    top = max(float(y.max()) for y in done) * 1e3
    out = []
    for i, x, y in curves:
        if st[i].failed and (y > top).any():
            k = int(np.argmax(y > top)) + 1
            x, y = x[:k], np.minimum(y[:k], top * 10)
        out.append((i, x, y))
    return out


def _zoom_loss_ends(ax, curves, st) -> None:
    """An inset on the last epochs when several runs end too close together to tell apart."""
    done = [(i, x, y) for i, x, y in curves if not st[i].failed]
    if len(done) < 2:
        return
    ends = np.array([y[-1] for _, _, y in done])
    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo)
    members = _cluster(ends, lambda a, b: math.log10(b / a) < 0.03 * decades)
    if not members:
        return
    group = [done[k] for k in members]
    x_end = max(x[-1] for _, x, _ in group)
    x_start = min(x[0] for _, x, _ in group)
    x0 = x_end - 0.2 * (x_end - x_start)
    window = np.concatenate([y[x >= x0] for _, x, y in group])
    if len(window) < 2:
        return
    ylo, yhi = window.min(), window.max()
    pad = 0.08 * (yhi - ylo) or 0.01 * yhi
    pts = np.vstack([np.column_stack([x, y]) for _, x, y in curves])
    inset = ax.inset_axes(_emptiest_corner(ax, pts, (0.36, 0.36), [(x[-1], y[-1]) for _, x, y in curves]))
    for i, x, y in group:
        inset.plot(x, y, color=st[i].color, lw=2)
        inset.plot(x[-1], y[-1], marker="o", ms=6, color=st[i].color, mec="black", mew=0.7)
    inset.set_xlim(x0, x_end + 0.03 * (x_end - x0))
    inset.set_ylim(ylo - pad, yhi + pad)
    inset.tick_params(labelsize=8)
    inset.grid(True, alpha=0.3)
    inset.set_title(f"zoom: last {x_end - x0:.0f} epochs (linear scale)", fontsize=8.5, color="0.3")
    # The box on the log axis: from the lowest loss shown, not from the inset's linear floor (which
    # may be below 0, where a log axis sends the box and its connector lines out through the legend).
    low = max(ylo - pad, ylo / 1.5) if ylo > 0 else lo
    ax.indicate_inset((x0, low, x_end - x0, yhi + pad - low), inset_ax=inset, edgecolor="0.35")


def _outline():
    from matplotlib import patheffects

    return [patheffects.Stroke(linewidth=4, foreground="white"), patheffects.Normal()]


# ---- trajectories on the loss surface


def _surface_key(p: dict) -> tuple:
    """Runs with equal keys share one loss surface (:meth:`core.config.TrainConfig.surface_key`);
    a run whose params do not describe a config has one of its own."""
    cfg = config_of(p)
    return cfg.surface_key() if cfg is not None else ("unreadable", *sorted(p.items()))


def _float(v, default: float = 0.0) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _panel_title(p: dict) -> str:
    ds = p.get("dataset", "seed")
    objective = _objective_of(config_of(p))
    if objective is not None:
        return f"{objective.function.title} function: f(x, y) = {objective.formula}"
    if ds == "seed":
        data = "the lesson's seed data"
    elif ds == "synthetic":
        noise = f", noise={p['noise']}" if "noise" in p else ""  # (a logistic teacher has none)
        data = f"synthetic data (n={p.get('n_samples')}{noise}, data_seed={p.get('data_seed')})"
    else:
        data = Path(ds).name
    vf = _float(p.get("validation_fraction"))
    extra = f", {1 - vf:.0%} train split" if vf else ""
    bias = ", with bias" if p.get("fit_intercept") == "true" else ""
    scaled = "standardized " if p.get("standardize") == "true" else ""
    return f"{p.get('model', 'relu')} neuron{bias} on {scaled}{data}{extra}"


def load_surface_data(cfg):
    """The training data of a run's config (X, y), as it trained on it; None if it cannot be read.
    Kept for the last few configs and files (:func:`~steps.report.problems.data_stamp`): a panel's
    surface is drawn three times (trajectories.png, the page, the GIF), and each read the data again.

    Seed and synthetic data are rebuilt exactly; a CSV is read only when it is a local file
    (no network fetches here).
    """
    return None if cfg is None else _load_surface_data(cfg, data_stamp(cfg))


@lru_cache(maxsize=MAX_PANELS)
def _load_surface_data(cfg, stamp):
    local = cfg.dataset.removeprefix("file://")
    if cfg.dataset not in BUILT_IN_DATASETS and ("://" in local or not Path(local).is_file()):
        return None
    try:
        data = load_data(cfg)
    except (DataError, ValueError, OSError):
        return None
    return data.X_train, data.y_train


def _objective_of(cfg) -> Objective | None:
    """The test function a run's config descends (:func:`core.training.components`), or None."""
    try:
        model = None if cfg is None else components(cfg, 2)[0]
    except ValueError:
        return None
    return model if isinstance(model, Objective) else None


def _penalty_of(cfg):
    """The penalty a run's config trains with (:func:`core.training.components`), or None."""
    try:
        return None if cfg is None else components(cfg, 2)[2]
    except ValueError:
        return None


def _penalty_text(pen, loss: str = "MSE") -> str:
    lam = f"{pen.lam:g}"
    return {
        "l1": f"{loss} + {lam}·Σ|w|",
        "l2": f"{loss} + {lam}·Σw²",
        "elasticnet": f"{loss} + {lam}·({pen.l1_ratio:g}·Σ|w| + {1 - pen.l1_ratio:g}·Σw²)",
    }[pen.kind]


@dataclass
class Panel:
    title: str
    runs: list  # (row index, Gathered, path incl. the final weights)
    params: dict


def panels_of(table: Table) -> tuple[list[Panel], int]:
    groups: dict[tuple, list] = {}
    for i, g in enumerate(table.gathered):
        if g.path is None or g.path.ndim != 2 or g.path.shape[1] != 2 or not len(g.path):
            continue
        path = g.path
        if g.weights is not None and len(g.weights) == 2 and not missing(table.frame.loc[i, "final_loss"]):
            path = np.vstack([path, g.weights])  # the trajectory holds the start of each epoch
        sane = np.all(np.isfinite(path) & (np.abs(path) < ABSURD), axis=1)
        if not sane.all():  # up to the first point that is not a number one could draw
            path = path[: int(np.argmin(sane))]
        if not len(path):
            continue
        elif g.loss is not None and len(g.loss) == len(path) and np.isfinite(g.loss[0]):
            off = np.flatnonzero(~(g.loss <= 1e3 * g.loss[0]))  # a diverged run: up to where it took off
            if len(off):
                path = path[: off[0] + 1]
        groups.setdefault(_surface_key(g.params), []).append((i, g, path))
    panels = [Panel(_panel_title(runs[0][1].params), runs, runs[0][1].params) for runs in groups.values()]
    return panels[:MAX_PANELS], max(0, len(panels) - MAX_PANELS)


def trajectories(table: Table, st: list[Style]):
    from matplotlib.figure import Figure

    panels, more = panels_of(table)
    if not panels:
        return None
    n = len(panels)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(10.5, 9.4) if n == 1 else (17, 8.4 * nrows), dpi=FIG_DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    single = n == 1 and not more
    equal = [_draw_panel(fig, ax, panel, table, st, single) for ax, panel in zip(axes, panels, strict=False)]
    fig.draw_without_rendering()  # runs the layout, so the axes know their size in pixels
    for ax, same_scale in zip(axes, equal, strict=False):
        if same_scale:
            _equal_scale(ax)
    if n > 1 or more:
        on_functions = all(p.params.get("dataset") in TEST_FUNCTIONS for p in panels)
        title = "Paths of the point (x, y) on test functions" if on_functions else "Weight paths on the loss surface"
        if sub := subtitle(table):
            title += f"   ({sub})"
        if more:
            title += f"   ({more} more data/model groups not drawn)"
        fig.suptitle(title, fontsize=15, x=0.01, ha="left")
    return fig


@dataclass
class PanelView:
    """What a panel shows, for the still picture and the interactive page alike: its runs' paths
    (clipped far outside the extent, so a diverged one stays drawable), the extent lo..hi and
    whether both axes get one scale, the run its bias is taken from, and its surface."""

    runs: list  # (row index, Gathered, path)
    lo: np.ndarray
    hi: np.ndarray
    equal: bool
    objective: Objective | None
    surface: Surface | None
    note: str


def panel_view(panel: Panel, table: Table, st: list[Style], grid: int = 360, reach: float = 0.35) -> PanelView:
    """The loss surface of the panel's data and model (``grid`` points a side, reaching ``reach``
    of the extent beyond it on every side) under the runs' paths, and the legend's note on it."""
    runs = panel.runs
    ref = min(runs, key=lambda r: _finite_or_inf(table.frame.loc[r[0], table.sort_metric]))
    bias = ref[1].bias if ref[1].bias is not None else 0.0
    cfg = config_of(panel.params)
    objective = _objective_of(cfg)  # a test function: its own contours and minima
    data = load_surface_data(cfg)
    if data is not None and data[0].shape[1] != 2:
        data = None
    regression = cfg is None or cfg.model != "logistic"  # least-squares weights mean nothing to a classifier
    lo, hi, equal = _extent(runs, st, data if regression else None, bias, objective)
    surface = surface_of(runs, cfg, data, bias, lo, hi, objective, grid, reach)
    note = "No loss surface: the run's data file is not readable here; paths only."
    if surface is not None:
        note = surface.note
    if data is not None and ref[1].bias is not None:
        note += f", at bias b = {bias:.4g} (the final bias of {st[ref[0]].label})"
    runs = [(i, g, np.clip(path, lo - 20 * (hi - lo), hi + 20 * (hi - lo))) for i, g, path in runs]
    return PanelView(runs, lo, hi, equal, objective, surface, note)


def _draw_panel(fig, ax, panel: Panel, table: Table, st: list[Style], single: bool) -> bool:
    """One panel: the loss surface of the panel's data and model, the runs' weight paths on it,
    the legend. Returns whether the axes should get one scale for both weights (:func:`_equal_scale`,
    which needs the laid-out figure)."""
    view = panel_view(panel, table, st)
    runs, lo, hi, objective = view.runs, view.lo, view.hi, view.objective
    contour = None if view.surface is None else _draw_surface(fig, ax, view.surface, lo, hi)
    labelled = len(runs) <= MAX_LABELLED
    _draw_paths(ax, runs, st, labelled)
    minima = _draw_minima(ax, objective)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("x" if objective else "w₀  (weight of feature 0)")
    ax.set_ylabel("y" if objective else "w₁  (weight of feature 1)")
    heading = "Paths of the point (x, y) on a test function" if objective else "Weight paths on the loss surface"
    title = f"{heading}\n{panel.title}" if single else panel.title
    ax.set_title(title, fontsize=13.5 if single else 12.5, loc="left")
    if single:  # (with several panels the figure's title carries it)
        sub = " · ".join(b for b in subtitle(table).split(" · ") if not b.endswith((" data", " model", " function")))
        ax.set_title(sub, fontsize=10, loc="right", color="0.35")
    ax.grid(True, alpha=0.2)
    _panel_legend(fig, ax, runs, table, st, contour, view.note, single, minima)
    if labelled:
        _zoom_path_ends(ax, runs, st, contour, lo, hi)
    return view.equal


def _extent(runs, st: list[Style], data, bias: float, objective: Objective | None = None):
    """The weights' range to show (lo, hi), and whether both axes get one scale: the finished
    runs' paths (a diverged path would zoom out to nothing), the least-squares weights when they
    are near, a margin, and a square extent unless that would squash the paths. A test function
    shows its own plot extent, widened to hold the paths (and their margin)."""
    fin = [path for i, _, path in runs if not st[i].failed] or [path for _, _, path in runs]
    pts = np.vstack(fin)
    pts = pts[np.isfinite(pts).all(axis=1)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if objective is not None:
        span = np.maximum(hi - lo, 0.1)
        (x0, x1), (y0, y1) = objective.function.extent
        lo, hi = np.minimum(lo - 0.12 * span, [x0, y0]), np.maximum(hi + 0.12 * span, [x1, y1])
        span = hi - lo
        return lo, hi, bool(1 / 3 < span[0] / span[1] < 3)
    if data is not None:
        try:  # the least-squares weights: take in the valley floor when it is near the paths
            w_star = np.linalg.lstsq(data[0], data[1] - bias, rcond=None)[0]
            span = max(float((hi - lo).max()), 0.1)
            if np.all(np.isfinite(w_star)) and np.all(np.abs(w_star - (lo + hi) / 2) < 2 * span):
                lo, hi = np.minimum(lo, w_star), np.maximum(hi, w_star)
        except np.linalg.LinAlgError:
            pass
    span = np.maximum(hi - lo, 0.1)
    lo, hi = lo - 0.12 * span, hi + 0.12 * span
    span = hi - lo
    equal = bool(1 / 3 < span[0] / span[1] < 3)
    if equal:  # a square extent; the axes then widen it to their own shape
        mid = (lo + hi) / 2
        lo, hi = mid - span.max() / 2, mid + span.max() / 2
    return lo, hi, equal


@dataclass
class Surface:
    """A loss surface on a grid: ``Z`` at (``W0``, ``W1``), the contour ``levels`` (None: flat),
    log- or evenly spaced, whether the lowest point gets a star (a model's; a test function marks
    its own minima), what it is (the loss, or the objective) and the legend's note on it."""

    W0: np.ndarray
    W1: np.ndarray
    Z: np.ndarray
    levels: np.ndarray | None
    log: bool
    star: bool
    what: str
    note: str


MODEL_LEVELS, MODEL_DECADES = 18, 3  # a model's contours: log-spaced over this many decades below the top


def surface_of(runs, cfg, data, bias: float, lo, hi, objective: Objective | None = None, n: int = 360,
               reach: float = 0.35):  # fmt: skip
    """The loss surface (the objective, or the loss alone when the runs' penalties differ) under the
    extent lo..hi on an ``n`` x ``n`` grid, or None without data. A test function's surface is the
    function itself (its penalty added when the runs share one), on the levels its shape needs."""
    if data is None:
        return None
    pens = {_penalty_of(config_of(g.params)) for _, g, _ in runs}
    pen = _penalty_of(cfg) if len(pens) == 1 else None
    pen = pen if pen is not None and pen.active else None
    loss = "f" if objective else components(cfg, 2)[0].loss_name  # f, MSE, or log loss
    what = _penalty_text(pen, loss) if pen is not None else loss
    # The surface covers more than the extent, so widening never shows an empty margin.
    glo, ghi = lo - reach * (hi - lo), hi + reach * (hi - lo)
    g0, g1 = np.linspace(glo[0], ghi[0], n), np.linspace(glo[1], ghi[1], n)
    W0, W1, Z = loss_surface(cfg, data[0], data[1], g0, g1, bias, penalized=pen is not None)
    if objective is None:  # levels from the still picture's reach, however far this grid reaches
        near = Z[_inside(W0, W1, lo - 0.35 * (hi - lo), hi + 0.35 * (hi - lo))]
        zmax = float(np.nanmax(near))
        zmin = max(float(np.nanmin(near)), zmax * 10.0**-MODEL_DECADES, 1e-12)
        levels = np.geomspace(zmin, zmax, MODEL_LEVELS) if zmax > zmin * 1.0001 else None
        log = True
    else:
        levels = _function_levels(Z, _inside(W0, W1, lo, hi), objective.function.levels)
        log = objective.function.levels == "log"
    note = f"Contours: {what}"
    if objective is not None:  # (the formula is in the title)
        note += f" ({objective.function.levels}-spaced levels)"
    if len(pens) > 1:
        note += f" (the runs' penalties differ, so the surface shows the {loss} alone)"
    return Surface(W0, W1, Z, levels, log, objective is None, what, note)


def _inside(W0, W1, lo, hi):
    """Which grid points lie in the drawn region lo..hi."""
    return (np.clip(W0, lo[0], hi[0]) == W0) & (np.clip(W1, lo[1], hi[1]) == W1)


FUNCTION_LEVELS = {"log": 30, "linear": 16}  # contour levels of a test function
FUNCTION_DECADES = 6  # ... spanning this many decades below the highest value drawn, when log-spaced


def _function_levels(Z, inside, kind: str) -> np.ndarray | None:
    """A test function's contour levels over the drawn region: log-spaced ("log": narrow valleys
    and flat plateaus, Rosenbrock, Beale) down to FUNCTION_DECADES below the highest value, or
    evenly spaced ("linear": Rastrigin's bumps); None for a flat surface."""
    z = Z[inside & np.isfinite(Z)]
    if not len(z):
        return None
    zmax = float(z.max())
    if kind == "log":
        zmin = max(float(z.min()), zmax * 10.0**-FUNCTION_DECADES, 1e-12)
        return np.geomspace(zmin, zmax, FUNCTION_LEVELS[kind]) if zmax > zmin * 1.0001 else None
    zmin = float(z.min())
    return np.linspace(zmin, zmax, FUNCTION_LEVELS[kind]) if zmax > zmin else None


def _draw_minima(ax, objective: Objective | None) -> int:
    """A test function's known global minima as white stars; returns how many (0 for a model)."""
    if objective is None:
        return 0
    xy = np.array(objective.function.minima)
    ax.plot(xy[:, 0], xy[:, 1], ls="none", marker="*", ms=19, mfc="white", mec="black", mew=1.1, zorder=8)
    return len(xy)


def _draw_paths(ax, runs, st: list[Style], labelled: bool) -> None:
    """Each run's path (a thin line a run when there are many), and the start points."""
    from matplotlib.collections import LineCollection

    if labelled:
        for i, _, path in runs:
            _draw_path(ax, path, st[i])
    else:
        ax.add_collection(
            LineCollection([path for _, _, path in runs], colors=[st[i].color for i, _, _ in runs], lw=0.8, alpha=0.4)
        )
        ends = np.array([path[-1] for _, _, path in runs])
        ax.scatter(ends[:, 0], ends[:, 1], s=18, c=[st[i].color for i, _, _ in runs], edgecolors="black",
                   linewidths=0.4, zorder=6)  # fmt: skip
    starts = {tuple(np.round(path[0], 12)) for _, _, path in runs}
    for sx, sy in starts:
        ax.plot(sx, sy, marker="o", ms=11, mfc="white", mec="black", mew=1.6, zorder=7, ls="none")


def _panel_legend(
    fig, ax, runs, table: Table, st: list[Style], contour, note: str, single: bool, minima: int = 0
) -> None:
    """A run's label each (or a technique each, for many runs), the start, the lowest point or a
    test function's ``minima`` (how many); below the figure for a single panel, in the axes otherwise."""
    from matplotlib.lines import Line2D

    if len(runs) <= MAX_LABELLED:
        handles = [
            Line2D([], [], color=st[i].color, lw=2.2, ls="--" if st[i].failed else "-", marker="o", ms=7,
                   mec="black", label=st[i].label)
            for i, _, _ in runs
        ]  # fmt: skip
        note = f"{order_note(table)}\n{note}"
    else:  # many runs: coloured by technique
        groups: dict[str, list] = {}
        for i, _, _ in runs:
            groups.setdefault(table.frame.loc[i, "technique"] or "?", []).append(i)
        handles = [
            Line2D([], [], color=st[m[0]].color, lw=2, marker="o", ms=6, mec="black", label=f"{t}: {len(m)} runs")
            for t, m in groups.items()
        ]
    handles.append(Line2D([], [], ls="none", marker="o", ms=9, mfc="white", mec="black", mew=1.5, label="start"))
    if contour is not None and contour[-1]:
        handles.append(
            Line2D([], [], ls="none", marker="*", ms=15, color="gold", mec="black", label="lowest point drawn")
        )
    if minima:
        label = "global minimum (f = 0)" if minima == 1 else f"the {minima} global minima (f = 0)"
        handles.append(Line2D([], [], ls="none", marker="*", ms=15, mfc="white", mec="black", label=label))
    if single:  # below the plot, where constrained layout makes room for it
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=10.5, frameon=False, title=note,
                   title_fontsize=10)  # fmt: skip
    else:
        ax.legend(handles=handles, loc="best", fontsize=9, framealpha=0.9, title=note, title_fontsize=8.5)


def _equal_scale(ax) -> None:
    """Widen the x or y range so one unit is as long on both axes.

    (``set_aspect("equal")`` would do it, but with constrained layout it either shrinks the
    axes off the figure's title and legend, or warns about the fixed limits.)
    """
    box = ax.get_window_extent()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    per_px_x, per_px_y = (x1 - x0) / box.width, (y1 - y0) / box.height
    if per_px_x < per_px_y:
        grow = (per_px_y * box.width - (x1 - x0)) / 2
        ax.set_xlim(x0 - grow, x1 + grow)
    else:
        grow = (per_px_x * box.height - (y1 - y0)) / 2
        ax.set_ylim(y0 - grow, y1 + grow)


def _draw_surface(fig, ax, surface: Surface, lo, hi):
    """Filled contours and their lines on the surface's levels, a colour bar and, for a model, the
    lowest point in [lo, hi]; None for a flat surface."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    W0, W1, Z, levels, log = surface.W0, surface.W1, surface.Z, surface.levels, surface.log
    star = surface.star and _draw_lowest(ax, W0, W1, Z, lo, hi)
    if levels is None:
        return None
    zmin, zmax = float(levels[0]), float(levels[-1])
    cf, Zc = fill_surface(ax, surface)
    cb = fig.colorbar(cf, ax=ax, shrink=0.8, pad=0.015, aspect=30)
    ticks = np.geomspace(zmin, zmax, 6) if log else np.linspace(zmin, zmax, 6)
    cb.ax.yaxis.set_major_locator(FixedLocator(ticks))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    cb.ax.yaxis.set_minor_locator(FixedLocator([]))
    cb.set_label(f"{surface.what}  ({'log' if log else 'linear'} colour scale)")
    return (W0, W1, Zc, levels, star)


def fill_surface(ax, surface: Surface, line: float = 0.6, line_alpha: float = 0.6):
    """The surface's filled contours (Blues_r at alpha 0.5, values below the lowest level drawn at
    it) and their lines (``line`` wide, ``line_alpha`` opaque) on its levels (not None); returns the
    filled contours and the clipped values. trajectories.png, the page's surface picture and the GIF
    draw it so."""
    from matplotlib.colors import LogNorm, Normalize

    zmin, zmax = float(surface.levels[0]), float(surface.levels[-1])
    norm = LogNorm(zmin, zmax) if surface.log else Normalize(zmin, zmax)
    Zc = np.clip(surface.Z, zmin, None)
    W0, W1, levels = surface.W0, surface.W1, surface.levels
    cf = ax.contourf(W0, W1, Zc, levels=levels, cmap="Blues_r", norm=norm, alpha=0.5, extend="max")
    ax.contour(W0, W1, Zc, levels=levels, colors="#5a7896", linewidths=line, alpha=line_alpha)
    return cf, Zc


def path_epochs(table: Table, i: int, g, path) -> np.ndarray:
    """The epoch of each point of row ``i``'s ``path`` (:func:`panels_of`): its trajectory's logged
    epochs, then its final weights after the last epoch (``epochs_run``)."""
    epochs = np.asarray(g.epochs, dtype=float) if g.epochs is not None else np.arange(len(path), dtype=float)
    final = table.frame.loc[i, "epochs_run"]
    end = float(final) if not missing(final) else (epochs[-1] + 1 if len(epochs) else 0.0)
    return np.append(epochs, end)[: len(path)]


def thin(steps, cap: int) -> list:
    """At most ``cap`` of the sorted ``steps``, evenly spread, with the first and the last."""
    if len(steps) <= cap:
        return list(steps)
    return [steps[j] for j in np.unique(np.linspace(0, len(steps) - 1, cap).round().astype(int))]


def _draw_lowest(ax, W0, W1, Z, lo, hi) -> bool:
    """A gold star on the lowest grid point in [lo, hi], unless it lies on the region's edge (the
    minimum is then beyond it); returns whether it was drawn."""
    k = np.unravel_index(np.nanargmin(np.where(_inside(W0, W1, lo, hi), Z, np.inf)), Z.shape)
    at = np.array([W0[k], W1[k]])
    step = np.array([W0[0, 1] - W0[0, 0], W1[1, 0] - W1[0, 0]])
    star = bool(np.all(at > lo + step) and np.all(at < hi - step))
    if star:
        ax.plot(*at, marker="*", ms=20, color="gold", mec="black", mew=0.9, zorder=7, ls="none")
    return star


def _draw_path(ax, path, s: Style, scale: float = 1.0) -> None:
    ax.plot(path[:, 0], path[:, 1], color=s.color, lw=2.2 * scale, ls="--" if s.failed else "-", alpha=0.95, zorder=4)
    ax.plot(path[:, 0], path[:, 1], ls="none", marker=".", ms=4 * scale, color=s.color, zorder=4)
    ax.plot(*path[-1], marker="X" if s.failed else "o", ms=11 * scale, color=s.color, mec="black", mew=1.0, zorder=6)


def _zoom_path_ends(ax, runs, st, contour, lo, hi) -> None:
    """An inset around end points that lie too close together to tell apart."""
    done = [(i, path) for i, _, path in runs if not st[i].failed and np.isfinite(path[-1]).all()]
    if len(done) < 2:
        return
    ends = np.array([path[-1] for _, path in done])
    diag = float(np.hypot(*(hi - lo)))
    # Cluster along the first axis, then check the full distance.
    members = _cluster(ends[:, 0], lambda a, b: abs(b - a) < 0.04 * diag)
    members = [k for k in members if np.hypot(*(ends[k] - ends[members[0]])) < 0.06 * diag]
    if len(members) < 2:
        return
    box_lo, box_hi = ends[members].min(axis=0), ends[members].max(axis=0)
    size = max(float((box_hi - box_lo).max()), 1e-9) * 1.6
    center = (box_lo + box_hi) / 2
    if size > 0.05 * diag:
        return
    pts = np.vstack([path for _, _, path in runs])
    inset = ax.inset_axes(_emptiest_corner(ax, pts, (0.34, 0.34), [path[-1] for _, _, path in runs]))
    if contour is not None and size > 4 * (contour[0][0, 1] - contour[0][0, 0]):  # (finer than the grid: no lines)
        W0, W1, Zc, levels, _ = contour
        spaced = np.geomspace if levels[0] > 0 else np.linspace
        inset.contour(W0, W1, Zc, levels=spaced(levels[0], levels[-1], 60), colors="#5a7896",
                      linewidths=0.5, alpha=0.6)  # fmt: skip
    for k in members:
        i, path = done[k]
        _draw_path(inset, path, st[i], scale=0.8)
    inset.set_xlim(center[0] - size / 2, center[0] + size / 2)
    inset.set_ylim(center[1] - size / 2, center[1] + size / 2)
    inset.set_aspect("equal", adjustable="box")
    inset.tick_params(labelsize=7.5)
    inset.set_facecolor("white")
    inset.set_title("zoom on the end points", fontsize=8.5, color="0.3")
    ax.indicate_inset_zoom(inset, edgecolor="0.35")


def _finite_or_inf(v) -> float:
    v = _float(v, math.inf)
    return v if math.isfinite(v) else math.inf
