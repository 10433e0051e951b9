"""The benchmark's plan: its problems (--suite lab), contenders, tuning points and phases, every
child it runs (:class:`Trial`), and what the runs came to (read back from MLflow): the domain
that the `benchmark` command (steps/benchmark.py) runs and the report (steps/report/benchmark_report.py)
reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import click

from core.config import option_name
from core.training import DIVERGED
from core.verdict import log_grid
from steps.cli.options import as_param
from steps.flow.launch import Child, make_child, runs_by_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class Problem:
    """One problem of the benchmark: the training options it sets over the command's defaults."""

    name: str
    options: dict
    about: str

    @property
    def epochs(self) -> int:
        return self.options["epochs"]


def _csv(name: str) -> str:
    return str(EXAMPLES / name)


# The built-in suite (`--suite lab`): six problems of every kind gdlab trains, each cheap enough
# that the default benchmark of all six takes a few minutes on two cores.
LAB = (
    Problem("lesson", {"dataset": "seed", "epochs": 100}, "the lesson: one ReLU neuron on its 2x2 set, 100 epochs"),
    Problem("rosenbrock", {"dataset": "rosenbrock", "epochs": 500}, "Rosenbrock's valley from (-1.5, 2), 500 epochs"),
    Problem(
        "ill_conditioned",
        {"dataset": "ill_conditioned", "condition_number": 100.0, "epochs": 100},
        "the quadratic (x² + 100·y²)/2 (κ = 100), 100 epochs",
    ),
    Problem(
        "diabetes",
        {
            "dataset": _csv("diabetes.csv"),
            "target": "target",
            "model": "linear",
            "fit_intercept": True,
            "standardize": True,
            "validation_fraction": 0.2,
            "epochs": 100,
        },
        "examples/diabetes.csv, linear, standardized, 20% validation, 100 epochs",
    ),
    Problem(
        "breast_cancer",
        {
            "dataset": _csv("breast_cancer.csv"),
            "target": "diagnosis",
            "model": "logistic",
            "fit_intercept": True,
            "standardize": True,
            "validation_fraction": 0.2,
            "epochs": 100,
        },
        "examples/breast_cancer.csv, logistic, standardized, 20% validation, 100 epochs",
    ),
    Problem(
        "diabetes_mlp",
        {
            "dataset": _csv("diabetes.csv"),
            "target": "target",
            "model": "linear",
            "hidden": (16,),
            "fit_intercept": True,
            "standardize": True,
            "validation_fraction": 0.2,
            "epochs": 200,
        },
        "a --hidden 16 network on diabetes (torch's init, drawn from the seed), 200 epochs",
    ),
)
SUITES = {"lab": LAB}
# The options a suite leaves to the command line (everything else is the problem's own).
SUITE_TAKES = ("learning_rate", "seed", "log_every", "dtype")

# `--space full`: each optimizer's main hyperparameters besides the learning rate, tuned on log
# scales as Choi et al. 2019 did: (option, transform, low, high), "1-" meaning 1 - value is
# log-uniform in [low, high]. An optimizer not listed tunes its learning rate only.
FULL_SPACE = {
    "sgd": (("momentum", "1-", 1e-3, 1.0),),
    "adam": (("beta1", "1-", 1e-3, 1.0), ("beta2", "1-", 1e-4, 1.0), ("epsilon", "", 1e-10, 1.0)),
    "adamw": (("beta1", "1-", 1e-3, 1.0), ("beta2", "1-", 1e-4, 1.0), ("epsilon", "", 1e-10, 1.0)),
    "nadam": (("beta1", "1-", 1e-3, 1.0), ("beta2", "1-", 1e-4, 1.0), ("epsilon", "", 1e-10, 1.0)),
    "radam": (("beta1", "1-", 1e-3, 1.0), ("beta2", "1-", 1e-4, 1.0), ("epsilon", "", 1e-10, 1.0)),
    "adamax": (("beta1", "1-", 1e-3, 1.0), ("beta2", "1-", 1e-4, 1.0), ("epsilon", "", 1e-10, 1.0)),
    "rmsprop": (("momentum", "1-", 1e-3, 1.0), ("alpha", "1-", 1e-4, 1.0), ("epsilon", "", 1e-10, 1.0)),
    "adagrad": (("epsilon", "", 1e-10, 1.0),),
    "lion": (("beta1", "1-", 1e-3, 1.0), ("beta2", "1-", 1e-4, 1.0)),
}
DEFAULT_CONTENDERS = "sgd,sgd:momentum=0.9,adam,rmsprop,adagrad,lion"
PHASES = ("tune", "default", "seed")
# A tuning trial (and the run at the shared learning rate) is scored by its final value only, so it
# logs its metrics every max(--log-every, epochs / TUNE_POINTS) epochs: the same training (the loop
# does not depend on --log-every), a fifth of the store writes of the lesson's 100 epochs. The seed
# reruns, whose curves and time-to-target the report reads, log at --log-every.
TUNE_POINTS = 20


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Contender:
    """An optimizer with torch's defaults, or with some hyperparameters fixed (``sgd:momentum=0.9``)."""

    optimizer: str
    fixed: tuple = ()  # (option, value) pairs

    @property
    def label(self) -> str:
        return self.optimizer + "".join(f":{option_name(k)}={as_param(v)}" for k, v in self.fixed)

    def tuned(self, space: str) -> tuple:
        """What `--space` tunes besides the learning rate: the optimizer's main hyperparameters it
        does not fix."""
        if space == "lr":
            return ()
        fixed = dict(self.fixed)
        return tuple(d for d in FULL_SPACE.get(self.optimizer, ()) if d[0] not in fixed)


# --------------------------------------------------------------------------- the plan


@dataclass
class Trial:
    """One planned child: what it is in the benchmark, and the run it became."""

    problem: str
    contender: str
    phase: str  # tune, default or seed
    index: int  # the tuning trial's number, or the seed
    values: dict  # what this child sets besides the problem: learning_rate and the tuned hyperparameters
    child: Child
    seed: int
    run_id: str | None = None
    status: str = "planned"
    reason: str = ""
    score: float = math.inf
    train_time_s: float = math.nan
    epochs_run: int = 0
    history: tuple = ((), ())  # (epochs, values) of the score's per-epoch metric (seed phase)
    target: float = math.nan  # the seed's target (seed phase; set by the report)


@dataclass
class Plan:
    problems: list  # Problem
    contenders: tuple  # Contender
    space: str
    budget: int
    lr_range: tuple
    shared_lr: float
    seeds: int
    base: dict  # problem name -> its options
    metric: dict = field(default_factory=dict)  # problem name -> final metric scored
    trials: list = field(default_factory=list)
    curvature: dict = field(default_factory=dict)  # problem name -> "; at the start, sharpness ..." (the report's)


def values_label(values: dict) -> str:
    return " ".join(f"{'lr' if k == 'learning_rate' else option_name(k)}={v:.3g}" for k, v in values.items())


def plan_child(plan: Plan, problem: Problem, contender: Contender, phase: str, index: int, values: dict, seed: int):
    options = {**plan.base[problem.name], **dict(contender.fixed), **values, "seed": seed}
    if phase != "seed":  # only the final score counts: a tuning trial logs about TUNE_POINTS epochs
        options["log_every"] = max(options["log_every"], math.ceil(problem.epochs / TUNE_POINTS))
    if options.get("dataset") == "synthetic":  # the noise of synthetic data varies with the seed too
        options["data_seed"] = plan.base[problem.name].get("data_seed", 0) + (seed - plan.base[problem.name]["seed"])
    what = {"tune": f"tune {index}: {values_label(values)}", "default": f"default {values_label(values)}"}
    label = f"{problem.name} {contender.label} " + what.get(phase, f"seed={seed}")
    tags = (("problem", problem.name), ("contender", contender.label), ("phase", phase), ("seed", str(seed)))
    child = make_child(
        label,
        "train",
        options,
        optimizer=contender.optimizer,
        extra_tags=tags,
        log_model=phase == "seed" and seed == plan.base[problem.name]["seed"],
    )
    return Trial(problem.name, contender.label, phase, index, values, child, seed)


def tuning_points(contender: Contender, space: str, budget: int, lr_range: tuple, seed: int) -> list[dict]:
    """The ``budget`` settings a contender is tried at: a log grid of learning rates (--space lr),
    or scrambled Halton points (scipy.stats.qmc, seeded) over the log learning rate and each
    tuned hyperparameter's log scale (--space full; for every contender, those with nothing to tune
    but the learning rate too: a scrambled Halton sequence's first coordinate does not depend on its
    dimension, so every contender tries the same learning rates)."""
    dims = contender.tuned(space)
    if space == "lr":
        # (12 digits: 1e-2 rather than geomspace's 0.010000000000000002, as a param and a label)
        return [{"learning_rate": float(f"{lr:.12g}")} for lr in log_grid(*lr_range, budget)]
    from scipy.stats import qmc

    unit = qmc.Halton(d=1 + len(dims), scramble=True, seed=seed).random(budget)
    out = []
    for row in unit:
        lo, hi = math.log10(lr_range[0]), math.log10(lr_range[1])
        point = {"learning_rate": float(10 ** (lo + row[0] * (hi - lo)))}
        for u, (name, how, low, high) in zip(row[1:], dims, strict=True):
            x = 10 ** (math.log10(low) + u * (math.log10(high) - math.log10(low)))
            point[name] = float(1.0 - x if how == "1-" else x)
        out.append(point)
    return out


def plan_benchmark(plan: Plan, seed: int) -> None:
    """Every tuning and default child, checked before anything starts."""
    for problem in plan.problems:
        for contender in plan.contenders:
            points = tuning_points(contender, plan.space, plan.budget, plan.lr_range, seed)
            planned = [("tune", i, values) for i, values in enumerate(points)]
            if not any(is_default(p, plan.shared_lr) for p in points):  # the grid holds it: no second run
                planned.append(("default", 0, {"learning_rate": plan.shared_lr}))
            for phase, i, values in planned:
                try:
                    plan.trials.append(plan_child(plan, problem, contender, phase, i, values, seed))
                except click.UsageError as exc:  # say which trial: the value may come from --lr-range
                    where = f"{problem.name}, {contender.label}, {phase} at {values_label(values)}"
                    raise click.UsageError(f"{where}: {exc.format_message()}") from None


def is_default(values: dict, shared_lr: float) -> bool:
    """Whether a tuning point is the contender at the shared learning rate (nothing else tuned)."""
    return set(values) == {"learning_rate"} and math.isclose(values["learning_rate"], shared_lr, rel_tol=1e-9)


# --------------------------------------------------------------------------- running


def read_results(parent, trials: list[Trial], outcomes: dict, metric: dict, history: bool) -> None:
    """Each trial's run, status, score (inf unless FINISHED with a finite final metric) and, for
    the seed phase, its per-epoch history of the scored metric, read back from MLflow in pages of
    100 runs. Several trials may share one run (--reuse: the seeds of a problem with nothing random
    are one configuration)."""
    client = parent.client
    by_label = {t.child.label: t for t in trials}
    runs = runs_by_id(client, parent.experiment_id, sorted({o.run_id for o in outcomes.values()}))
    histories = {}
    for label, outcome in outcomes.items():
        trial, run = by_label[label], runs.get(outcome.run_id)
        trial.run_id = outcome.run_id
        if run is None:
            trial.status, trial.reason = "MISSING", "its run could not be read back"
            continue
        trial.status = run.info.status
        trial.reason = run.data.tags.get("failure_reason", "")
        final = run.data.metrics.get(metric[trial.problem])
        if trial.status == "FINISHED" and final is not None and math.isfinite(final):
            trial.score = final
        trial.train_time_s = run.data.metrics.get("train_time_s", math.nan)
        trial.epochs_run = int(run.data.metrics.get("epochs_run", 0))
        if history and trial.status == "FINISHED":
            if outcome.run_id not in histories:
                per_epoch = metric[trial.problem].removeprefix("final_")
                points = sorted((m.step, m.value) for m in client.get_metric_history(outcome.run_id, per_epoch))
                if final is not None:  # the value after the last update, at the epoch count
                    points.append((trial.epochs_run, final))
                histories[outcome.run_id] = (tuple(p[0] for p in points), tuple(p[1] for p in points))
            trial.history = histories[outcome.run_id]


def diverged(trial: Trial) -> bool:
    """Whether the trial's run failed by diverging (its failure reason is the loop's DivergenceError)."""
    return trial.reason.startswith(DIVERGED)


def winners(plan: Plan) -> dict:
    """(problem, contender) -> the trial with the lowest score among its tuning trials and its run at
    the shared learning rate (so tuning never ends worse than not tuning; the first of equals, so
    the smaller learning rate on a grid); None where every one diverged."""
    out = {}
    for t in plan.trials:
        if t.phase not in ("tune", "default"):
            continue
        key = (t.problem, t.contender)
        best = out.get(key)
        if math.isfinite(t.score) and (best is None or t.score < best.score):
            out[key] = t
        else:
            out.setdefault(key, None)
    return out
