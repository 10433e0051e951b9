"""The files of compare's report, each named once: its file name, its title and its caption.

`compare` writes the tables and the pictures it draws; a workflow adds pictures of its own
(a sweep's search: its Optuna study's). Everything that lists, removes, embeds or captions
a report file reads it here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ReportFile:
    name: str
    title: str
    caption: str = ""


TABLES = (
    ReportFile("compare.csv", "The table, full precision"),
    ReportFile("compare.md", "The report in Markdown"),
    ReportFile("compare.html", "The report, one self-contained page"),
)
# The pictures compare draws (compare_figures.figures), in the report's order.
DRAWN = (
    ReportFile(
        "loss_curves.png",
        "Loss curves",
        "Training loss (MSE; log loss for logistic runs) at the start of each epoch, log scale. "
        "A marker shows each run's last logged loss; dashed lines are failed runs, or with a "
        "validation split each run's validation loss. A dip far below every run is cut and named.",
    ),
    ReportFile(
        "trajectories.png",
        "Weight paths",
        "Each run's weights epoch by epoch (one dot an epoch) on the contours of the loss; "
        "open circle: start, filled circle: final weights, star: the lowest point of the drawn surface.",
    ),
    ReportFile(
        "internals.png",
        "Inside the optimizer",
        "Per logged epoch, from each run's internals.csv: the learning rate, the norm of the full-batch "
        "gradient before clipping and the norm of the update the epoch made (log scales), and with an L1 "
        "term the count of weights at exactly 0.",
    ),
    ReportFile(
        "rates.png",
        "Rates theory predicts",
        "On a quadratic (ill_conditioned; a linear model's least squares): the rate at which the error "
        "shrinks an epoch under SGD with heavy-ball momentum, for every learning rate and momentum "
        "(Goh's phase diagram, from the Hessian's eigenvalues); white diverges, the dashed line is the "
        "stability edge, and each SGD run is marked where it ran.",
    ),
    ReportFile(
        "sensitivity.png",
        "Sensitivity to the learning rate",
        "The ranking metric of each run against its learning rate (log scales), one line per optimizer "
        "(and lambda); a cross marks a run that failed. With lambdas as well, the learning rate x lambda "
        "grid of the metric. A star marks the best; on the grid's edge, the best may lie beyond it.",
    ),
)
# The animation compare writes (steps.report.animation); compare.html has the same, live.
ANIMATED = (
    ReportFile(
        "trajectories.gif",
        "Weight paths, moving",
        "The runs (the best few) moving along their paths on the loss surface, epoch by epoch: the first "
        "panel of trajectories.png.",
    ),
)
# Pictures a workflow adds (a sweep's search: steps.flow.search.study_figures), written and embedded as they are.
ADDED = (
    ReportFile(
        "optimization_history.png",
        "Optimization history",
        "Optuna's optimization history of the sweep's study: each complete trial's value "
        "(the metric the sweep minimizes) by trial number, and the best value so far.",
    ),
    ReportFile(
        "param_importances.png",
        "Parameter importances",
        "Optuna's parameter importances (PED-ANOVA) over the study's complete trials: how much "
        "each searched value decides whether a trial lands among the best.",
    ),
    ReportFile(
        "study.json",
        "The sweep's study",
        "Each complete trial's number and value, and the parameter importances: compare.html draws the "
        "optimization history and the importances from it, live.",
    ),
)
ALL = {f.name: f for f in (*TABLES, *DRAWN, *ANIMATED, *ADDED)}
OUTPUT_FILES = tuple(f.name for f in (*TABLES, *DRAWN, *ANIMATED))
EXTRA_FILES = tuple(f.name for f in ADDED)


def drawn(draw: dict[str, Callable], *, dpi: int, rc: dict | None = None) -> dict[str, bytes]:
    """The PNG bytes of each picture ``draw[name]()`` makes (a matplotlib Figure), in ``rc``'s
    style and with warnings quiet; one that cannot be drawn is left out with a note (the report
    goes on without it), and every figure is closed."""
    import io
    import warnings

    import click
    import matplotlib.pyplot as plt
    import numpy as np

    from steps.run.tracking import first_line

    out = {}
    for name, make in draw.items():
        fig = None
        try:
            # (rc_context: a plot that switches matplotlib's style for good, as Optuna's do, switches it here only)
            with plt.rc_context(rc or {}), np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nan medians, zero-width axes, Optuna's "experimental"
                fig = make()
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
            out[name] = buf.getvalue()
        except Exception as exc:
            click.echo(f"note: {name} not drawn ({first_line(exc)})", err=True)
        finally:
            if fig is not None:
                plt.close(fig)
    return out
