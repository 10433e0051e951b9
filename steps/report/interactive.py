"""The interactive part of compare.html and of the benchmark's report: plotly.js figures drawn in
the browser from one JSON blob of the runs' numbers.

Why plotly (docs/design.md, "The interactive report"): Optuna's own interactive plots are plotly, so a
sweep's history and importances look as users know them; one ``plotly.min.js`` ships inside the
``plotly`` wheel on PyPI, so the page inlines it and needs no network at view time; hover, legend
toggling, zoom and pan come built in, and contours are one trace type.

The page is self-contained: plotly.js and :data:`SCRIPT` (``interactive.js``) are inlined, the data
is a ``<script type="application/json">`` block, and a Content-Security-Policy lets only those two
scripts run (by their SHA-256) and fetch nothing. Every text that comes from a run (names, params,
tags, experiment names from a shared server) reaches plotly HTML-escaped (plotly reads a few HTML
tags in its texts and shows ``&lt;`` as ``<``), and the JSON escapes ``<``, ``>`` and ``&`` so no text
can close its block.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from core.config import TEST_FUNCTIONS
from steps.report.compare_figures import (
    MAX_LABELLED,
    Style,
    curve_of,
    fill_surface,
    kind_of,
    loss_names,
    order_note,
    panel_view,
    panels_of,
    path_epochs,
    sensitivity_of,
    subtitle,
    thin,
)
from steps.report.compare_table import Table, missing

SCRIPT = Path(__file__).with_name("interactive.js")
GRID = 240  # surface grid points a side (the still picture has 360)
# ... reaching this much of the paths' extent beyond it on every side (the picture's 0.35 left white bands
# beside the paths once the page gave both axes one scale on a wide plot)
REACH = 1.5
POINT_BUDGET = 100_000  # run-epochs a page carries at most: each run's curve and path thinned to fit
MIN_POINTS = 20  # ... but never fewer than this a run
MAX_LEGEND = 60  # more runs than this: a legend entry a kind, which hides or shows all its runs
DIGITS = 7  # significant digits of each number on the page


def t(text) -> str:
    """A text from a run, as plotly must get it to show it as written: HTML-escaped, and with each
    ``%`` an entity (plotly fills ``%{x}`` in a legend's or a hover's text before it reads entities)."""
    return html.escape(str(text), quote=False).replace("%", "&#37;")


def hex_color(color) -> str:
    """Any matplotlib colour ("C0", "tab:red", an RGB tuple) as #rrggbb."""
    from matplotlib.colors import to_hex

    return to_hex(color)


def nums(values, digits: int = DIGITS) -> list:
    """Numbers for the page: ``digits`` significant digits, None for what is not finite."""
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in np.asarray(values, dtype=float).ravel()]


@cache
def plotly_js() -> str:
    """plotly.min.js as the ``plotly`` wheel ships it."""
    from importlib.resources import files

    return (files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def blob(data: dict) -> str:
    """``data`` as JSON that can sit inside a script block: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(a, b)
    return text


def _sha(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


@cache
def own_js() -> str:
    """interactive.js."""
    return SCRIPT.read_text(encoding="utf-8")


def head() -> str:
    """The page's Content-Security-Policy: only plotly.js and interactive.js run; nothing is fetched."""
    scripts = f"{_sha(plotly_js())} {_sha(own_js())}"
    policy = f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
    return f'<meta http-equiv="Content-Security-Policy" content="{policy}">'


def scripts(data: dict) -> str:
    """The data block and the two scripts, for the end of the page's body."""
    return (
        f'<script type="application/json" id="gdlab-data">{blob(data)}</script>\n'
        f"<script>{plotly_js()}</script>\n<script>{own_js()}</script>"
    )


# --------------------------------------------------------------------------- compare


def compare_data(table: Table, st: list[Style], study: dict | None = None) -> dict:
    """Everything compare.html draws, as plain numbers and escaped texts."""
    n = len(table.gathered)
    cap = max(MIN_POINTS, POINT_BUDGET // max(n, 1))
    curves = {}
    for i, g in enumerate(table.gathered):
        if g.loss is not None:
            x, y = curve_of(table, i, g)
            if len(x):
                curves[i] = (x, y)
    panels, more = panels_of(table)
    views = [panel_view(p, table, st, GRID, REACH) for p in panels]
    paths: dict[int, tuple] = {}
    for k, view in enumerate(views):
        for i, g, path in view.runs:
            pe = path_epochs(table, i, g, path)
            paths[i] = (k, pe, path[: len(pe)])  # (a path longer than its epochs and the end: no epoch to show)
    steps = sorted(
        {float(e) for x, _ in curves.values() for e in x} | {float(e) for _, pe, _ in paths.values() for e in pe}
    )
    shown = np.array(thin(steps, cap))
    kinds = [kind_of(r) for r in table.frame.to_dict("records")]
    colors = run_colors(st, n)
    runs = []
    for i, g in enumerate(table.gathered):
        rec = table.frame.loc[i]
        run = {
            "id": t(g.run_id),
            "label": t(st[i].label),
            "kind": t(kinds[i]),
            "color": colors[i],
            "failed": st[i].failed,
            "metric": nums([rec[table.sort_metric]])[0] if not missing(rec[table.sort_metric]) else None,
        }
        if i in curves:
            x, y = curves[i]
            keep = _kept(x, shown)
            run["e"], run["l"] = nums(x[keep]), nums(y[keep])
        if i in paths:
            k, pe, path = paths[i]
            keep = _kept(pe, shown)
            run["panel"], run["pe"] = k, nums(pe[keep])
            run["px"], run["py"] = nums(path[keep, 0]), nums(path[keep, 1])
            if run.get("e") == run["pe"]:
                del run["pe"]  # the same epochs as the curve's: said once
        runs.append(run)
    done = [y for i, (_, y) in curves.items() if not st[i].failed]
    on_functions = all(g.params.get("dataset") in TEST_FUNCTIONS for g in table.gathered)
    data = {
        "kind": "compare",
        "metric": t(table.sort_metric),
        "order": t(order_note(table)),
        "subtitle": t(subtitle(table)),
        "yLabel": t("f(x, y)" if on_functions else f"training loss ({loss_names(table)})"),
        "lossRange": _range(done),
        "legend": "run" if n <= MAX_LEGEND else "kind",
        "labelled": n <= MAX_LABELLED,
        "epochs": nums(shown),
        "runs": runs,
        "panels": [_panel(p, view) for p, view in zip(panels, views, strict=True)],
        "morePanels": more,
        "sensitivity": _sensitivity(table, st),
        "study": study,
    }
    return data


def run_colors(st: list[Style], n: int) -> list[str]:
    """Each run's colour on the page: the table's (a colour a run up to 20 runs; a kind's beyond, and
    those are the legend's entries past MAX_LEGEND runs); from 21 runs to MAX_LEGEND, where the legend
    names every run, viridis by rank instead, best darkest: 24 runs of one sweep were one blue."""
    if n <= 20 or n > MAX_LEGEND:
        return [hex_color(s.color) for s in st]
    from matplotlib import colormaps

    return [hex_color(colormaps["viridis"](0.9 * k / (n - 1))) for k in range(n)]


def _range(done: list) -> list | None:
    """The loss axis (log10): the finished runs' range (a diverged curve runs off the top)."""
    if not done:
        return None
    return [math.log10(min(float(y.min()) for y in done) / 1.5), math.log10(max(float(y.max()) for y in done) * 3)]


def _kept(epochs, shown: np.ndarray) -> np.ndarray:
    """Which of a run's points are on the page: at each shown epoch (sorted), the run's last point at
    or before it, and its last point. A run logged more sparsely than the others keeps what it has:
    its marker at any shown epoch is the run's own last logged point (thinning by the shown epochs
    alone left a run logged every 10th epoch a hole of 5,000 epochs)."""
    epochs = np.asarray(epochs, dtype=float)
    keep = np.zeros(len(epochs), dtype=bool)
    if len(epochs):
        at = np.searchsorted(epochs, shown, side="right") - 1
        keep[at[at >= 0]] = True
        keep[-1] = True
    return keep


def _panel(panel, view) -> dict:
    obj = view.objective
    out = {
        "title": t(panel.title),
        "heading": "Paths of the point (x, y) on a test function" if obj else "Weight paths on the loss surface",
        "xLabel": "x" if obj else "w₀ (weight of feature 0)",
        "yLabel": "y" if obj else "w₁ (weight of feature 1)",
        "lo": nums(view.lo),
        "hi": nums(view.hi),
        "equal": view.equal,
        "note": t(view.note),
        "minima": [nums(m) for m in obj.function.minima] if obj else [],
        "starts": [nums(s) for s in {tuple(np.round(path[0], 12)) for _, _, path in view.runs}],
        "surface": None,
    }
    s = view.surface
    if s is not None and s.levels is not None:
        lo, hi = float(s.levels[0]), float(s.levels[-1])
        x0, x1, y0, y1 = (float(v) for v in (s.W0[0, 0], s.W0[0, -1], s.W1[0, 0], s.W1[-1, 0]))
        ticks = np.geomspace(lo, hi, 6) if s.log else np.linspace(lo, hi, 6)
        out["surface"] = {
            "image": surface_png(s),
            "x0": x0,
            "x1": x1,
            "y0": y0,
            "y1": y1,
            "colorscale": surface_colorscale(),
            "ticks": [float(v) for v in (np.log10(ticks) if s.log else ticks)],
            "tickText": [f"{v:.2g}" for v in ticks],
            "range": [math.log10(lo), math.log10(hi)] if s.log else [lo, hi],
            "log": s.log,
            "what": t(s.what),
        }
    return out


SURFACE_PIXELS = 960  # the surface picture's side (it reaches past the paths: REACH)


@cache
def surface_colorscale() -> list:
    """Blues_r at alpha 0.5 over white, as the pictures draw the surface, at 11 points: the colour
    bar's scale. (Made when first needed: matplotlib stays out of compare's import.)"""
    from matplotlib import colormaps

    return [[k / 10, hex_color(tuple(0.5 * c + 0.5 for c in colormaps["Blues_r"](k / 10)[:3]))] for k in range(11)]


def surface_png(s) -> str:
    """The loss surface's filled contours and their lines, as the still picture draws them, as a
    data: URI of a PNG covering the grid exactly. The page lays it under the paths as a picture:
    plotly.js drops a contour trace's layer when Plotly.animate moves the markers (Chromium 156)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(SURFACE_PIXELS / 100, SURFACE_PIXELS / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    fill_surface(ax, s)
    ax.set_xlim(s.W0[0, 0], s.W0[0, -1])
    ax.set_ylim(s.W1[0, 0], s.W1[-1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _sensitivity(table: Table, st: list[Style]) -> dict | None:
    sens = sensitivity_of(table, st)
    if sens is None:
        return None
    metric, recs = table.sort_metric, sens.recs
    lines = []
    shared = len({hex_color(c) for _, c, _, _ in sens.lines}) < len(sens.lines)
    for j, (label, color, ok, bad) in enumerate(sens.lines):
        color = tab10()[j % 10] if shared else color  # (the lines of one kind's lambdas shared its colour)
        lines.append(
            {
                "label": t(label),
                "color": hex_color(color),
                "x": nums([recs[k]["learning_rate"] for k in ok]),
                "y": nums([recs[k][metric] for k in ok]),
                "runs": [t(st[k].label) for k in ok],
                "bad": nums([recs[k]["learning_rate"] for k in bad]),
                "badRuns": [t(st[k].label) for k in bad],
            }
        )
    best = sens.best
    return {
        "heat": sens.heat,
        "log": sens.log,
        "metric": t(metric),
        "lines": lines,
        "top": nums([sens.top])[0],
        "best": None if best is None else nums([recs[best]["learning_rate"], recs[best][metric]]),
        "bestRun": None if best is None else t(st[best].label),
    }


def study_json(trials: list, importances: dict[str, float] | None) -> bytes:
    """study.json, a sweep's study as its report draws it: each complete trial's number and value,
    and the parameter importances (name -> share; {} when they cannot be computed)."""
    import optuna

    complete = optuna.trial.TrialState.COMPLETE  # (a pruned trial has a value too: its last report)
    done = sorted((tr.number, float(tr.value)) for tr in trials if tr.state == complete and math.isfinite(tr.value))
    importances = {k: float(v) for k, v in (importances or {}).items() if math.isfinite(v)}
    out = {"number": [n for n, _ in done], "value": [v for _, v in done], "importances": importances}
    return json.dumps(out, indent=1).encode("utf-8")


def _study(raw: bytes | None) -> dict | None:
    """study.json for the page: the best value so far added, the names escaped; None if unreadable."""
    try:
        spec = json.loads(raw) if raw else None
        number, value = [int(n) for n in spec["number"]], [float(v) for v in spec["value"]]
        importances = {t(k): float(v) for k, v in dict(spec.get("importances") or {}).items()}
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError, OverflowError):
        return None
    importances = {k: v for k, v in importances.items() if math.isfinite(v)}
    if len(number) != len(value):
        return None
    best, so_far = [], math.inf
    for v in value:
        so_far = min(so_far, v)
        best.append(so_far)
    return {"number": number, "value": nums(value), "best": nums(best), "importances": importances}


# --------------------------------------------------------------------------- the page


CSS = """
.player { position: sticky; top: 0; z-index: 10; background: #fff; padding: 8px 0; border-bottom: 1px solid #e3e7ec;
  display: flex; align-items: center; gap: 12px; }
.player input[type=range] { flex: 1; max-width: 640px; }
.player button { font: inherit; padding: 3px 12px; border: 1px solid #b8c2cc; border-radius: 4px; background: #f3f5f8;
  cursor: pointer; }
#gd-epoch-label { font-variant-numeric: tabular-nums; min-width: 8em; }
.player[hidden] { display: none; }
.gd-plot { width: 100%; min-height: 300px; }
"""
PLAYER = (
    '<div id="gd-player" class="player"><button id="gd-play" type="button">▶ play</button>'
    '<input id="gd-epoch" type="range" min="0" max="0" step="1" value="0" aria-label="epoch">'
    '<span id="gd-epoch-label"></span></div>'
)
HOW = (
    "Hover a line or a point for its run, epoch and value. Click a legend entry to hide that run in the loss "
    "and path plots (double-click: that run alone); drag to zoom, double-click to zoom back out. The slider "
    "and ▶ play move every run's marker along its loss curve and its path, epoch by epoch. The address keeps "
    "the epoch and the hidden runs: a link to it opens on the same view."
)


@dataclass(frozen=True)
class Live:
    """The interactive part of a report page: what goes in its head (the policy), its style, its
    body (the player and the plots' place), the scripts at its end, and the pictures it replaces."""

    head: str
    css: str
    body: str
    scripts: str
    covered: frozenset


def live_compare(table: Table, st: list[Style], study: bytes | None = None) -> Live:
    """compare.html's interactive plots; ``study``: a sweep's study.json."""
    data = compare_data(table, st, _study(study))
    covered = set()
    if any("e" in run for run in data["runs"]):
        covered.add("loss_curves.png")
    if data["panels"]:
        covered.add("trajectories.png")
    if data["sensitivity"] is not None and not data["sensitivity"]["heat"]:
        covered.add("sensitivity.png")  # (the lr x lambda grid is in the picture only)
    if data["study"] is not None:
        covered |= {"optimization_history.png", "param_importances.png"}
    stills = f" The same as pictures: {', '.join(sorted(covered))}." if covered else ""
    body = f'<h2>Interactive plots</h2><p class="meta">{html.escape(HOW)}{stills}</p>{PLAYER}<div id="gd-plots"></div>'
    return Live(head(), CSS, body, scripts(data), frozenset(covered))


# --------------------------------------------------------------------------- the benchmark's report


@cache
def tab10() -> tuple:
    """matplotlib's tab10, as #rrggbb: the benchmark's pictures colour its contenders so."""
    from matplotlib import colormaps

    return tuple(hex_color(c) for c in colormaps["tab10"].colors)


def benchmark_data(plan, targets, scores, areas, tau_max: float) -> dict:
    """The benchmark's plots as plotly figures (traces and layouts) of escaped texts: per problem the
    learning-rate sensitivity and the winners' seed curves, then the performance profile."""
    from steps.report.benchmark_report import profile_steps, seed_curves, sensitivity_lines

    color = {c.label: tab10()[i % 10] for i, c in enumerate(plan.contenders)}
    figures = []
    for k, problem in enumerate(plan.problems):
        name, metric = t(problem.name), t(plan.metric[problem.name])
        top, lines = sensitivity_lines(plan, problem.name)
        traces = []
        for label, lr, y, bad, won in lines:
            c, lab = color[label], t(label)
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers" if plan.space == "lr" else "markers",
                    "name": lab,
                    "legendgroup": lab,
                    "x": nums(lr),
                    "y": nums(y),
                    "line": {"color": c, "width": 1.4},
                    "marker": {"color": c, "size": 6},
                    "hovertemplate": f"{lab}<br>lr %{{x:.4g}}<br>{metric} %{{y:.6g}}<extra></extra>",
                }
            )
            if bad:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": f"{lab} (diverged)",
                        "legendgroup": lab,
                        "showlegend": False,
                        "x": nums(bad),
                        "y": nums([top] * len(bad)),
                        "marker": {"symbol": "x", "color": c, "size": 9},
                        "hovertemplate": f"{lab}<br>lr %{{x:.4g}}<br>diverged<extra></extra>",
                    }
                )
            if won is not None:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": f"{lab} (winner)",
                        "legendgroup": lab,
                        "showlegend": False,
                        "x": nums([won[0]]),
                        "y": nums([won[1]]),
                        "marker": {"symbol": "circle-open", "color": c, "size": 16, "line": {"width": 2}},
                        "hovertemplate": f"{lab}: the winner<br>lr %{{x:.4g}}<br>{metric} %{{y:.6g}}<extra></extra>",
                    }
                )
        shared = {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": plan.shared_lr,
            "x1": plan.shared_lr,
            "y0": 0,
            "y1": 1,
            "line": {"color": "#666", "width": 1, "dash": "dot"},
        }
        figures.append(
            {
                "id": f"gd-sensitivity-{k}",
                "title": f"{problem.name}: learning-rate sensitivity",  # (a heading's text: set as text)
                "traces": traces,
                "layout": {
                    "title": {"text": f"{name}: each tuning trial's {metric}"},
                    "height": 440,
                    "xaxis": {"type": "log", "title": {"text": "learning rate"}},
                    "yaxis": {"type": "log", "title": {"text": metric}},
                    "shapes": [shared],
                },
            }
        )
        curves, target = seed_curves(plan, targets, problem.name)
        traces = []
        for label, epochs, med, q1, q3 in curves:
            c, lab = color[label], t(label)
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": nums(epochs),
                    "y": nums(q3),
                    "legendgroup": lab,
                    "showlegend": False,
                    "line": {"width": 0, "color": c},
                    "hoverinfo": "skip",
                    "name": lab,
                }
            )
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": nums(epochs),
                    "y": nums(q1),
                    "legendgroup": lab,
                    "showlegend": False,
                    "line": {"width": 0, "color": c},
                    "fill": "tonexty",
                    "fillcolor": c + "33",
                    "hoverinfo": "skip",
                    "name": lab,
                }
            )
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": lab,
                    "legendgroup": lab,
                    "x": nums(epochs),
                    "y": nums(med),
                    "line": {"color": c, "width": 1.8},
                    "hovertemplate": f"{lab}<br>epoch %{{x}}<br>median %{{y:.6g}}<extra></extra>",
                }
            )
        shapes = []
        if target is not None:
            shapes.append(
                {
                    "type": "line",
                    "xref": "paper",
                    "yref": "y",
                    "x0": 0,
                    "x1": 1,
                    "y0": target,
                    "y1": target,
                    "line": {"color": "#444", "width": 1, "dash": "dash"},
                }
            )
        ylabel = t(plan.metric[problem.name].removeprefix("final_"))
        figures.append(
            {
                "id": f"gd-curves-{k}",
                "title": f"{problem.name}: the winners over the seeds",
                "traces": traces,
                "layout": {
                    "title": {"text": f"{name}: median {ylabel} over the seeds, inter-quartile band"},
                    "height": 440,
                    "xaxis": {"title": {"text": "epoch"}},
                    "yaxis": {"type": "log", "title": {"text": ylabel}},
                    "shapes": shapes,
                },
            }
        )
    taus, rho = profile_steps(scores)
    traces = [
        {
            "type": "scatter",
            "mode": "lines",
            "line": {"shape": "hv", "color": color[c.label], "width": 1.8},
            "name": f"{t(c.label)} (area {areas[j]:.2f})",
            "x": nums(taus),
            "y": nums(rho[:, j]),
            "hovertemplate": f"{t(c.label)}<br>τ %{{x:.3g}}<br>share %{{y:.2f}}<extra></extra>",
        }
        for j, c in enumerate(plan.contenders)
    ]
    tau = {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": tau_max,
        "x1": tau_max,
        "y0": 0,
        "y1": 1,
        "line": {"color": "#666", "width": 1, "dash": "dot"},
    }
    figures.append(
        {
            "id": "gd-profile",
            "title": "Performance profile",
            "traces": traces,
            "layout": {
                "title": {"text": "Share of problems within τ of the best median epochs-to-target"},
                "height": 440,
                "xaxis": {"type": "log", "title": {"text": "τ"}},
                "yaxis": {"range": [-0.03, 1.03], "title": {"text": "share of problems"}},
                "shapes": [tau],
            },
        }
    )
    return {"kind": "benchmark", "figures": figures}


def live_benchmark(plan, targets, scores, areas, tau_max: float) -> Live:
    """benchmark.html's interactive plots, in place of its three pictures."""
    body = (
        '<h2>Interactive plots</h2><p class="meta">Hover a point for its contender and value; click a legend '
        "entry to hide a contender, double-click for it alone; drag to zoom, double-click to zoom back out. The "
        "same as pictures: sensitivity.png, curves.png, profile.png.</p>"
        '<div id="gd-plots"></div>'
    )
    data = benchmark_data(plan, targets, scores, areas, tau_max)
    covered = frozenset({"sensitivity.png", "curves.png", "profile.png"})
    return Live(head(), CSS, body, scripts(data), covered)
