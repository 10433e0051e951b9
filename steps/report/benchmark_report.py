"""The benchmark's report: the verdict table, its pictures, and the files and MLflow entries.

Per problem and contender (one row): the tuned hyperparameters (flagged when the best
learning rate is an end of the range tried), the median final score over the seeds with its
95% percentile-bootstrap CI, the share of seeds that reached their target (the best final score on
that seed x (1 + --target-tol)) and stayed there, with the median epochs and seconds that took,
the rank, and the rank at the shared learning rate. Over
the problems: a performance profile of the median epochs-to-target and its area up to τ = 4
(:mod:`core.verdict`). Files: ``benchmark.csv`` (the table, full precision), ``trials.csv``
(every child: problem, contender, phase, seed, values, score, status, run id), ``benchmark.md``,
``benchmark.html`` (self-contained) and ``sensitivity.png``, ``curves.png``, ``profile.png``.
"""

from __future__ import annotations

import base64
import html
import math
import re
import tempfile
import textwrap
from pathlib import Path

import click
import numpy as np

from core import verdict
from steps.report.compare_table import CSS, md_escape
from steps.report.report_files import drawn

FIGURES = ("sensitivity.png", "curves.png", "profile.png")
FILES = ("benchmark.csv", "trials.csv", "benchmark.md", "benchmark.html", *FIGURES)
TAU_MAX = 4.0
CAPTIONS = {
    "sensitivity.png": "Learning-rate sensitivity: each tuning trial's final score against its learning rate "
    "(log-log), one line a contender, the run at the shared learning rate (dotted line) included; × marks a diverged "
    "trial (infinite score), drawn on the top edge with any score a million times the median one; a ring marks "
    "the winner.",
    "curves.png": "The winners rerun over the seeds: the median per-epoch score (validation loss with a split, "
    "else the objective) with its inter-quartile band; the dashed line is the median of the seeds' targets; "
    "values below the axis sit on its bottom edge. Seeds that diverged are left out of the curves and counted in "
    "the table.",
    "profile.png": "Performance profile (Dolan & Moré 2002; AlgoPerf): the share of problems on which a "
    "contender's median epochs-to-target (+ 1: the start counts) is within a factor τ of the best contender's; the "
    "legend gives the area "
    "up to τ = 4 (1 = fastest everywhere, 0 = never within 4x or never at the target).",
}


def _shown(values: dict) -> str:
    from core.config import option_name

    return " ".join(f"{'lr' if k == 'learning_rate' else option_name(k)}={v:.4g}" for k, v in values.items())


def _ranks(scores: list[float]) -> list[int]:
    """1 + the number of strictly better scores (equal scores share a rank; inf last)."""
    return [1 + sum(other < s for other in scores) for s in scores]


def verdict_rows(plan, target_tol: float, target_loss: float | None, bootstrap_seed: int = 0):
    """The table's rows (dicts), the targets by problem, and the profile's score matrix."""
    from steps.flow.benchmark_plan import diverged, is_default, winners

    best = winners(plan)
    rows, targets = [], {}
    for problem in plan.problems:
        name = problem.name
        pr_rows = []
        for contender in plan.contenders:
            label = contender.label
            tune = [t for t in plan.trials if (t.problem, t.contender, t.phase) == (name, label, "tune")]
            seeds = [t for t in plan.trials if (t.problem, t.contender, t.phase) == (name, label, "seed")]
            default = [t for t in plan.trials if (t.problem, t.contender, t.phase) == (name, label, "default")]
            default += [t for t in tune if is_default(t.values, plan.shared_lr)]
            winner = best.get((name, label))
            row = {"problem": name, "contender": label, "tuned": _shown(winner.values) if winner else "-"}
            row["edge"] = _edge(plan, contender, tune, winner) if winner else _no_winner(tune + default)
            row["tune_diverged"] = f"{sum(diverged(t) for t in tune)}/{len(tune)}"
            scores = [t.score for t in seeds] or [math.inf]
            row["median"] = float(np.median(scores))
            low, high = verdict.bootstrap_ci(scores, seed=bootstrap_seed) if seeds else (math.inf, math.inf)
            row["ci_low"], row["ci_high"] = low, high
            row["seeds"] = len(seeds)
            row["default_score"] = default[0].score if default else math.nan
            row["_seeds"] = seeds
            pr_rows.append(row)
        # The target on seed k: the best final score any contender reached on seed k, x (1 + tol). The
        # seeds are shared (the same split, initialization and noise for every contender), so a split
        # that is harder for everyone is not counted as slowness; where the seed changes nothing, this
        # is the best median x (1 + tol). --target-loss: one target for every seed and problem.
        best_at = {}
        for row in pr_rows:
            for t in row["_seeds"]:
                best_at[t.seed] = min(best_at.get(t.seed, math.inf), t.score)
        at = {
            k: target_loss if target_loss is not None else verdict.target_of([b], target_tol)
            for k, b in best_at.items()
        }
        target = float(np.median(list(at.values()))) if at else (target_loss if target_loss is not None else math.inf)
        targets[name] = target
        for row in pr_rows:
            epochs, times = [], []
            for t in row.pop("_seeds"):
                t.target = at[t.seed]
                e = verdict.epochs_to_target(*t.history, t.target, stay=True) if t.history[0] else math.inf
                epochs.append(e)
                if math.isfinite(e) and t.epochs_run > 0 and math.isfinite(t.train_time_s):
                    times.append(t.train_time_s * e / t.epochs_run)
                else:
                    times.append(math.inf)
            row["target"] = target
            row["reached"] = f"{sum(map(math.isfinite, epochs))}/{len(epochs)}"
            row["epochs_to_target"] = float(np.median(epochs)) if epochs else math.inf
            row["time_to_target_s"] = float(np.median(times)) if times else math.inf
        for row, rank in zip(pr_rows, _ranks([r["median"] for r in pr_rows]), strict=True):
            row["rank"] = rank
        defaults = [r["default_score"] if not math.isnan(r["default_score"]) else math.inf for r in pr_rows]
        for row, rank in zip(pr_rows, _ranks(defaults), strict=True):
            row["rank_at_shared_lr"] = rank
        rows += sorted(pr_rows, key=lambda r: (r["rank"], r["contender"]))
    # The profile compares epochs-to-target + 1, the evaluations up to the target (the start counts):
    # a run at the target from epoch 0 is then 1, not a 0 that would make every other ratio infinite.
    scores = 1 + np.array(
        [
            [
                next(r["epochs_to_target"] for r in rows if (r["problem"], r["contender"]) == (p.name, c.label))
                for c in plan.contenders
            ]
            for p in plan.problems
        ],
        dtype=float,
    )
    return rows, targets, scores


def _no_winner(trials: list) -> str:
    from steps.flow.benchmark_plan import diverged

    if all(diverged(t) for t in trials):
        return "every trial diverged"
    return "no trial ended with a finite score (see trials.csv: " + trials[0].status + ")"


def _edge(plan, contender, tune: list, winner) -> str:
    """Why the winner may not be the optimum: it is the run at the shared learning rate (no tuning
    trial beat it), or a value at an end of the range: the grid's end (--space lr), or within
    1/budget of the range's end on its log scale (--space full, whose points are scattered)."""
    from steps.flow.benchmark_plan import FULL_SPACE

    if winner.phase == "default":
        return "the shared learning rate beat every tuning trial: widen --lr-range or raise --budget"
    flagged = []
    ranges = {"learning_rate": (*plan.lr_range, "")}
    ranges.update({name: (low, high, how) for name, how, low, high in FULL_SPACE.get(contender.optimizer, ())})
    for key, value in winner.values.items():
        name = "lr" if key == "learning_rate" else key
        if plan.space == "lr":
            tried = [t.values[key] for t in tune if key in t.values]
            if len(set(tried)) > 1 and verdict.on_edge(tried, value):
                flagged.append(f"{name} at the {'top' if value >= max(tried) else 'bottom'} of the range")
            continue
        low, high, how = ranges[key]
        x = 1.0 - value if how == "1-" else value
        where = (math.log(max(x, low)) - math.log(low)) / (math.log(high) - math.log(low))
        if where <= 1 / plan.budget or where >= 1 - 1 / plan.budget:
            end = ("bottom" if where <= 0.5 else "top") if how != "1-" else ("top" if where <= 0.5 else "bottom")
            flagged.append(f"{name} at the {end} of the range")
    return "; ".join(flagged)


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}"


# (key, header): the headers short, so that a problem's table fits a terminal; benchmark.csv has the keys.
COLUMNS = (
    ("rank", "rank"),
    ("contender", "contender"),
    ("tuned", "tuned"),
    ("median", "median"),
    ("ci", "95% CI"),
    ("reached", "reached"),
    ("epochs_to_target", "epochs"),
    ("time_to_target_s", "seconds"),
    ("rank_at_shared_lr", "rank@lr"),
    ("default_score", "score@lr"),
    ("tune_diverged", "diverged"),
    ("edge", "note"),
)
LEGEND = (
    "median: the final score's median over the seeds, with its 95% percentile-bootstrap CI. target: on each seed, "
    "the best final score any contender reached with it (the same split and initialization for all) x "
    "(1 + --target-tol), or --target-loss; the median over the seeds is shown. reached: the seeds that reached "
    "their target and stayed there to the end, with the median epochs and seconds that took (inf: the median seed "
    "did not). rank@lr, score@lr: one run at the shared learning rate. diverged: tuning trials that diverged."
)


def _cells(row: dict) -> list[str]:
    values = dict(row, ci=f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]")
    return [_fmt(values[key]) for key, _ in COLUMNS]


def text_report(rows, targets, plan, areas) -> str:
    lines = []
    for problem in plan.problems:
        pr = [r for r in rows if r["problem"] == problem.name]
        header = [h for _, h in COLUMNS]
        body = [_cells(r) for r in pr]
        widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
        lines.append(
            f"\n{problem.name}: {problem.about}{plan.curvature.get(problem.name, '')}; "
            f"score {plan.metric[problem.name]}, target {_fmt(targets[problem.name])}"
        )
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in body]
    lines.append("")
    lines.append(textwrap.fill(LEGEND, 110))
    lines.append("")
    lines.append(
        f"Performance profile over {len(plan.problems)} problem{'s' * (len(plan.problems) != 1)}, area up to "
        f"τ = {TAU_MAX:g} (median epochs-to-target; 1 = fastest on every problem):"
    )
    for c, a in _by_area(plan, areas):
        lines.append(f"  {c}: {a:.3f}")
    return "\n".join(lines)


def curvature_at_start(plan, problem: str) -> str:
    """ "; at the start, sharpness S (gradient descent stable below lr 2/S), condition number C" of a
    problem (core.curvature at its initial parameters: why one learning rate suits it and another
    not); '' if it cannot be worked out."""
    from core.curvature import curvature
    from core.training import components, load_data

    trial = next((t for t in plan.trials if t.problem == problem), None)
    if trial is None:
        return ""
    cfg = trial.child.config
    try:
        data = load_data(cfg)
        model, _, penalty = components(cfg, data.n_features)
        found = curvature(model, model.init(cfg.init, cfg.seed), data.X_train, data.y_train, penalty)
    except Exception:  # (a dataset gone since the plan was made): the report goes on without it
        return ""
    if not (math.isfinite(found.sharpness) and found.sharpness > 0):
        return ""
    cond = f", condition number {found.condition:.3g}" if found.condition is not None else ""
    edge = 2 / found.sharpness
    return f"; at the start, sharpness {found.sharpness:.3g} (gradient descent stable below lr {edge:.3g}){cond}"


def winners_of(plan, rows) -> dict[str, str]:
    """{problem: its winner}: the contenders of rank 1 with a finite median (equal medians share
    the title, comma-separated); none for a problem where every median is infinite."""
    winners = {}
    for p in plan.problems:
        best = [
            r["contender"] for r in rows if r["problem"] == p.name and r["rank"] == 1 and math.isfinite(r["median"])
        ]
        if best:
            winners[p.name] = ", ".join(best)
    return winners


def _by_area(plan, areas) -> list[tuple[str, float]]:
    """(contender, profile area), the largest area first (stable for equal areas)."""
    return sorted(zip([c.label for c in plan.contenders], map(float, areas), strict=True), key=lambda x: -x[1])


def _safe(name: str) -> str:
    """A name as an MLflow metric or tag key allows it."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def report(parent, plan, target_tol: float, target_loss: float | None, out: Path | None) -> dict:
    """Write and log the report; print the verdict. Returns {problem: winner label}."""
    import mlflow
    import pandas as pd

    from steps.report.interactive import live_benchmark
    from steps.run.tracking import upload

    for problem in plan.problems:
        plan.curvature[problem.name] = curvature_at_start(plan, problem.name)
    rows, targets, scores = verdict_rows(plan, target_tol, target_loss)
    rat = verdict.ratios(scores)
    areas = np.atleast_1d(verdict.profile_area(rat, TAU_MAX))
    click.echo(text_report(rows, targets, plan, areas))
    winners = winners_of(plan, rows)
    trials = pd.DataFrame(
        [
            {
                "problem": t.problem,
                "contender": t.contender,
                "phase": t.phase,
                "seed": t.seed,
                **{("lr" if k == "learning_rate" else k): v for k, v in t.values.items()},
                "score": t.score,
                "status": t.status,
                "failure_reason": t.reason,
                "run_id": t.run_id,
            }
            for t in plan.trials
        ]
    )
    images = figures(plan, rows, targets, scores, areas)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pd.DataFrame(rows).to_csv(folder / "benchmark.csv", index=False)
        trials.to_csv(folder / "trials.csv", index=False)
        for name, data in images.items():
            (folder / name).write_bytes(data)
        (folder / "benchmark.md").write_text(markdown(rows, targets, plan, areas, list(images)))
        live = live_benchmark(plan, targets, scores, areas, TAU_MAX)
        (folder / "benchmark.html").write_text(html_report(rows, targets, plan, areas, images, live), encoding="utf-8")
        with parent.held():
            upload(lambda: mlflow.log_artifacts(str(folder)), "the benchmark's report")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for name in FILES:
                stale = out / name
                if (folder / name).exists():
                    stale.write_bytes((folder / name).read_bytes())
                elif stale.exists():
                    stale.unlink()
    parent.log_metrics(
        {f"profile_area_{_safe(c.label)}": float(a) for c, a in zip(plan.contenders, areas, strict=True)}
    )
    parent.set_tags({f"winner.{_safe(p)}": w for p, w in winners.items()})
    where = f"{out}/" if out is not None else f"the artifacts of benchmark run {parent.id}"
    click.echo(f"\nWrote {', '.join(FILES)} to {where} (and to benchmark run {parent.id}).")
    return winners


def markdown(rows, targets, plan, areas, images: list[str]) -> str:
    parts = ["# Benchmark: every contender tuned with the same budget, rerun over seeds", ""]
    parts.append(md_escape(_protocol(plan)))
    parts += ["", md_escape(LEGEND)]
    for problem in plan.problems:
        pr = [r for r in rows if r["problem"] == problem.name]
        parts += [
            "",
            f"## {md_escape(problem.name)}",
            "",
            md_escape(
                f"{problem.about}{plan.curvature.get(problem.name, '')}; score {plan.metric[problem.name]}; "
                f"target {_fmt(targets[problem.name])}"
            ),
            "",
        ]
        parts.append("| " + " | ".join(h for _, h in COLUMNS) + " |")
        parts.append("|" + "|".join("---" for _ in COLUMNS) + "|")
        parts += ["| " + " | ".join(md_escape(c) for c in _cells(r)) + " |" for r in pr]
    parts += ["", "## Performance profile", ""]
    parts += [f"- {md_escape(c)}: {a:.3f}" for c, a in _by_area(plan, areas)]
    parts += ["", "Full precision: `benchmark.csv`; every run: `trials.csv`.", ""]
    for name in images:
        parts += [f"![{name}]({name})", "", md_escape(CAPTIONS[name]), ""]
    return "\n".join(parts)


def _protocol(plan) -> str:
    space = (
        "a log grid of learning rates" if plan.space == "lr" else "scrambled Halton points (lr + own hyperparameters)"
    )
    return (
        f"{len(plan.contenders)} contenders x {len(plan.problems)} problems; {plan.budget} tuning trials each "
        f"({space} over lr {plan.lr_range[0]:g}..{plan.lr_range[1]:g}); each winner rerun with {plan.seeds} seeds; "
        f"median with a 95% percentile-bootstrap CI; rank at the shared learning rate {plan.shared_lr:g} beside it."
    )


def html_report(rows, targets, plan, areas, images: dict[str, bytes], live=None) -> str:
    """The self-contained page: the verdict tables, the profile's areas, and the pictures, or with
    ``live`` (:func:`steps.report.interactive.live_benchmark`) its plots in their place."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        live.head if live else "",
        f"<title>gdlab benchmark</title><style>{CSS}{live.css if live else ''}</style></head><body>",
        "<h1>Benchmark: every contender tuned with the same budget, rerun over seeds</h1>",
        f"<p class='meta'>{e(_protocol(plan))}</p>",
        f"<p class='meta'>{e(LEGEND)}</p>",
    ]
    for problem in plan.problems:
        pr = [r for r in rows if r["problem"] == problem.name]
        parts.append(
            f"<h2>{e(problem.name)}</h2>"
            f"<p class='meta'>{e(problem.about + plan.curvature.get(problem.name, ''))}; score "
            f"{e(plan.metric[problem.name])}; target {e(_fmt(targets[problem.name]))}</p>"
        )
        parts.append("<div class='scroll'><table><thead><tr>")
        parts += [f"<th>{e(h)}</th>" for _, h in COLUMNS]
        parts.append("</tr></thead><tbody>")
        for r in pr:
            css = " class='best'" if r["rank"] == 1 and math.isfinite(r["median"]) else ""
            css = " class='failed'" if not math.isfinite(r["median"]) else css
            parts.append(f"<tr{css}>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)) + "</tr>")
        parts.append("</tbody></table></div>")
    parts.append("<h2>Performance profile</h2><ul class='notes'>")
    parts += [f"<li>{e(c)}: {a:.3f}</li>" for c, a in _by_area(plan, areas)]
    parts.append("</ul>")
    if live:
        parts.append(live.body)
    for name, data in images.items():
        if live and name in live.covered:
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(f'<figure><img src="{uri}" alt="{e(name)}"><figcaption>{e(CAPTIONS[name])}</figcaption></figure>')
    if live:
        parts.append(live.scripts)
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- pictures


def _panels(n: int):
    import matplotlib.pyplot as plt

    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


# Log axes are kept inside what matplotlib can place ticks on (a quadratic's loss reaches 1e-274,
# a diverging one overflows; matplotlib 3.11.2 fails on an axis from 1e-250 to 1e250): values are drawn
# clamped to [LOW, HIGH].
LOW, HIGH = 1e-200, 1e200


def figures(plan, rows, targets, scores, areas) -> dict[str, bytes]:
    """The report's pictures by file name; one that cannot be drawn is left out with a note (the
    table is the verdict, and is written whatever a picture does)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10")
    color = {c.label: colors(i % 10) for i, c in enumerate(plan.contenders)}
    draw = {
        "sensitivity.png": lambda: _sensitivity(plan, color),
        "curves.png": lambda: _curves(plan, targets, color),
        "profile.png": lambda: _profile(plan, scores, areas, color),
    }
    return drawn(draw, dpi=90, rc={"font.size": 9})


def _clamped(values, floor: float = LOW):
    return np.clip(np.asarray(values, dtype=float), floor, HIGH)


def _floor(values) -> float:
    """The lowest value a log axis shows: the data's, but at most 180 decades below its top (a
    quadratic's 1e-274 beside a start of 1e1 would leave matplotlib no room for ticks)."""
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x) and x > 0], dtype=float)
    if v.size == 0:
        return LOW
    return float(max(v.min(), min(v.max(), HIGH) * 1e-180, 1e-300))


def sensitivity_lines(plan, problem: str):
    """The sensitivity plot of one problem: its ceiling, and per contender the tuning trials by
    learning rate (lr, score clamped to the axis; NaN for a diverged one), the diverged trials'
    learning rates, and the winner's (lr, score) or None."""
    from steps.flow.benchmark_plan import winners

    best = winners(plan)
    tune = [t for t in plan.trials if t.problem == problem and t.phase in ("tune", "default")]
    top = _top(tune)
    floor = _floor([t.score for t in tune if t.score <= top])
    lines = []
    for c in plan.contenders:
        mine = sorted((t for t in tune if t.contender == c.label), key=lambda t: t.values["learning_rate"])
        lr = [t.values["learning_rate"] for t in mine]
        y = [min(float(_clamped(t.score, floor)), top) if math.isfinite(t.score) else np.nan for t in mine]
        bad = [x for x, t in zip(lr, mine, strict=True) if not math.isfinite(t.score)]
        w = best.get((problem, c.label))
        won = None if w is None else (w.values["learning_rate"], float(_clamped(w.score, floor)))
        lines.append((c.label, lr, y, bad, won))
    return top, lines


def _sensitivity(plan, color):
    fig, axes = _panels(len(plan.problems))
    for ax, problem in zip(axes, plan.problems, strict=True):
        top, lines = sensitivity_lines(plan, problem.name)
        for label, lr, y, bad, won in lines:
            ax.plot(lr, y, "-o" if plan.space == "lr" else "o", ms=3, lw=1.2, color=color[label], label=label)
            ax.plot(bad, [top] * len(bad), "x", ms=5, color=color[label])
            if won is not None:
                ax.plot([won[0]], [won[1]], "o", ms=10, mfc="none", mec=color[label])
        ax.axvline(plan.shared_lr, ls=":", color="0.4", lw=1)
        ax.set(xscale="log", yscale="log", title=problem.name, xlabel="learning rate", ylabel=plan.metric[problem.name])
        ax.grid(alpha=0.3, which="both", lw=0.4)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _top(tune: list) -> float:
    """The sensitivity plot's ceiling: 10x the largest finite score within a million times the median
    one, so that a run blowing up to 1e200 does not flatten the useful band; a diverged trial (×)
    and anything above are drawn on it."""
    finite = sorted(t.score for t in tune if math.isfinite(t.score) and t.score > 0)
    if not finite:
        return 1.0
    median = finite[len(finite) // 2]
    kept = [v for v in finite if v <= median * 1e6]
    return float(min(HIGH, 10 * kept[-1]))


def seed_curves(plan, targets, problem: str):
    """The winners rerun over the seeds, on one problem: per contender (label, epochs, median, q1,
    q3), clamped to the axis, and the target (clamped; None when there is none to draw)."""
    curves = []
    for c in plan.contenders:
        key = (problem, c.label, "seed")
        seeds = [t for t in plan.trials if (t.problem, t.contender, t.phase) == key and t.history[0]]
        if not seeds:
            continue
        epochs = sorted({e for t in seeds for e in t.history[0]})
        index = {e: i for i, e in enumerate(epochs)}
        grid = np.full((len(seeds), len(epochs)), np.nan)
        for k, t in enumerate(seeds):
            for e, v in zip(*t.history, strict=True):
                grid[k, index[e]] = v if math.isfinite(v) else np.nan
        curves.append((c.label, epochs, *np.nanpercentile(grid, [50, 25, 75], axis=0)))
    floor = _floor(np.concatenate([m for _, _, m, _, _ in curves] + [[targets[problem]]]))
    curves = [(label, e, *(_clamped(v, floor) for v in (med, q1, q3))) for label, e, med, q1, q3 in curves]
    target = targets[problem]
    return curves, float(_clamped(target, floor)) if math.isfinite(target) and target > 0 else None


def _curves(plan, targets, color):
    fig, axes = _panels(len(plan.problems))
    for ax, problem in zip(axes, plan.problems, strict=True):
        curves, target = seed_curves(plan, targets, problem.name)
        for label, epochs, med, q1, q3 in curves:
            ax.plot(epochs, med, color=color[label], lw=1.3, label=label)
            ax.fill_between(epochs, q1, q3, color=color[label], alpha=0.2, lw=0)
        if target is not None:
            ax.axhline(target, ls="--", color="0.3", lw=1)
        ylabel = plan.metric[problem.name].removeprefix("final_")
        ax.set(yscale="log", title=problem.name, xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3, which="both", lw=0.4)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def profile_steps(scores):
    """The performance profile: τ from 1 up (log-spaced) and each contender's share of problems
    within τ (:func:`core.verdict.performance_profile`)."""
    rat = verdict.ratios(scores)
    finite = rat[np.isfinite(rat)]
    hi = min(1e6, max(TAU_MAX * 2.5, float(finite.max()) * 1.2 if finite.size else 1.0))
    taus = np.geomspace(1.0, hi, 400)
    return taus, verdict.performance_profile(scores, taus)


def _profile(plan, scores, areas, color):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    taus, rho = profile_steps(scores)
    for j, c in enumerate(plan.contenders):
        label = f"{c.label} (area {areas[j]:.2f})"
        ax.step(taus, rho[:, j], where="post", color=color[c.label], lw=1.4, label=label)
    ax.axvline(TAU_MAX, ls=":", color="0.4", lw=1)
    ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel="τ (ratio to the best median epochs-to-target)")
    ax.set_ylabel("share of problems within τ")
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
