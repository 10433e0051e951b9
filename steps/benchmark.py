"""`benchmark`: a fair verdict — every optimizer tuned with the same budget, rerun over seeds.

A single run at one shared learning rate ranks optimizers by how well that rate suits each of
them, and the ranking flips once each gets its own (the README's "A fair comparison", docs/tuning.md). The
protocol, in three phases, each a set of child runs nested under the benchmark's run and
trained in the workflow's worker processes (:mod:`steps.flow.launch`):

1. **tune** (DeepOBS, Schneider et al. 2019; AlgoPerf's equal budgets, Dahl et al. 2023): for
   every problem and every contender, ``--budget`` trials — a log grid of learning rates over
   ``--lr-range`` (``--space lr``), or scrambled Halton points over the learning rate and the
   optimizer's own main hyperparameters on log scales (``--space full``, as Choi et al. 2019).
   A trial's score is its final validation loss (the final objective without a split; f for a
   test function); a diverged trial scores infinity and is counted, never dropped.
   **default**: each contender once at the shared ``--learning-rate`` (the trap, shown beside).
2. **seed**: each (problem, contender) winner rerun with ``--seeds`` seeds, which vary what is
   random in the problem (the split, the shuffling, a random initialization, synthetic noise).
   Only the first of them (the tuning seed) logs a model.
3. **report** (:mod:`steps.report.benchmark_report`): per problem the median score over the seeds with
   a 95% bootstrap CI, epochs- and time-to-target (until a run's score reaches its seed's target —
   the best final score on that seed × (1 + ``--target-tol``), or ``--target-loss`` — and stays
   there), the rank, and the rank at the shared learning rate; a learning-rate
   sensitivity plot, median loss curves with inter-quartile bands, a performance profile over
   the problems and its area up to τ = 4 (:mod:`core.verdict`).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from core import optimizers
from core.config import OPTIMIZER_OPTIONS, TEST_FUNCTIONS, option_name
from core.verdict import log_grid
from steps.cli.options import COMMON, POSITIVE, FiniteFloat, apply, as_param, command
from steps.flow.launch import Child, make_child, report_dir, run_children, with_workers
from steps.main import Workflow, workflow_options
from steps.run.errors import StoreGone
from steps.run.lifecycle import tracked_run
from steps.run.runner import load_checked

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REPORTS = "benchmark_output"


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


class Contenders(click.ParamType):
    """Comma-separated contenders: an optimizer name, optionally with fixed hyperparameters
    ``NAME:OPTION=VALUE[:OPTION=VALUE...]`` (train's options of that optimizer, '-' or '_')."""

    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from steps.train import train

        types = {p.name: p for p in train.params if isinstance(p, click.Option)}
        out = []
        for text in str(value).split(","):
            text = text.strip()
            if not text:
                self.fail(f"{value!r}: an empty name (give e.g. {DEFAULT_CONTENDERS})", param, ctx)
            name, *settings = [part.strip() for part in text.split(":")]
            name = name.lower()
            if name not in optimizers.OPTIMIZERS:
                self.fail(f"{name!r} is not an optimizer (choose from {', '.join(optimizers.OPTIMIZERS)})", param, ctx)
            fixed = {}
            for setting in settings:
                key, eq, raw = setting.partition("=")
                key = key.strip().replace("-", "_").lower()
                if not eq or not key:
                    self.fail(f"{text!r}: write fixed hyperparameters as {name}:OPTION=VALUE", param, ctx)
                if key not in OPTIMIZER_OPTIONS[name]:
                    own = ", ".join(o.replace("_", "-") for o in OPTIMIZER_OPTIONS[name]) or "none"
                    self.fail(f"{text!r}: {key.replace('_', '-')} is not an option of {name} ({own})", param, ctx)
                if key in fixed:
                    self.fail(f"{text!r}: {key.replace('_', '-')} is given twice", param, ctx)
                try:
                    fixed[key] = types[key].type.convert(raw.strip(), param, ctx)
                except click.BadParameter as exc:
                    self.fail(f"{text!r}: {key.replace('_', '-')}: {exc.message}", param, ctx)
                if fixed[key] == optimizers.DEFAULTS[name][key]:
                    self.fail(
                        f"{text!r} is {name} itself: {as_param(fixed[key])} is {key.replace('_', '-')}'s default",
                        param,
                        ctx,
                    )
            out.append(Contender(name, tuple(fixed.items())))
        labels = [c.label for c in out]
        if twice := sorted({label for label in labels if labels.count(label) > 1}):
            self.fail(f"{', '.join(twice)} named twice", param, ctx)
        return tuple(out)


class LogRange(click.ParamType):
    """``LOW:HIGH``, 0 < LOW < HIGH, finite."""

    name = "range"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        low, colon, high = str(value).partition(":")
        try:
            pair = (POSITIVE.convert(low.strip(), param, ctx), POSITIVE.convert(high.strip(), param, ctx))
        except click.BadParameter:
            pair = None
        if not colon or pair is None or not pair[0] < pair[1]:
            self.fail(f"{value!r}: give LOW:HIGH with 0 < LOW < HIGH, e.g. 1e-5:1e2", param, ctx)
        return pair


class OptionalLoss(click.ParamType):
    """A loss >= 0, or ``none``."""

    name = "loss|none"

    def convert(self, value, param, ctx):
        if value is None or str(value).strip().lower() == "none":
            return None
        return FiniteFloat(0.0).convert(value, param, ctx)


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


def _values_label(values: dict) -> str:
    return " ".join(f"{'lr' if k == 'learning_rate' else option_name(k)}={v:.3g}" for k, v in values.items())


def _child(plan: Plan, problem: Problem, contender: Contender, phase: str, index: int, values: dict, seed: int):
    options = {**plan.base[problem.name], **dict(contender.fixed), **values, "seed": seed}
    if phase != "seed":  # only the final score counts: a tuning trial logs about TUNE_POINTS epochs
        options["log_every"] = max(options["log_every"], math.ceil(problem.epochs / TUNE_POINTS))
    if options.get("dataset") == "synthetic":  # the noise of synthetic data varies with the seed too
        options["data_seed"] = plan.base[problem.name].get("data_seed", 0) + (seed - plan.base[problem.name]["seed"])
    what = {"tune": f"tune {index}: {_values_label(values)}", "default": f"default {_values_label(values)}"}
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
                    plan.trials.append(_child(plan, problem, contender, phase, i, values, seed))
                except click.UsageError as exc:  # say which trial: the value may come from --lr-range
                    where = f"{problem.name}, {contender.label}, {phase} at {_values_label(values)}"
                    raise click.UsageError(f"{where}: {exc.format_message()}") from None


def is_default(values: dict, shared_lr: float) -> bool:
    """Whether a tuning point is the contender at the shared learning rate (nothing else tuned)."""
    return set(values) == {"learning_rate"} and math.isclose(values["learning_rate"], shared_lr, rel_tol=1e-9)


# --------------------------------------------------------------------------- running


def _read_results(parent, trials: list[Trial], outcomes: dict, metric: dict, history: bool) -> None:
    """Each trial's run, status, score (inf unless FINISHED with a finite final metric) and, for
    the seed phase, its per-epoch history of the scored metric, read back from MLflow in pages of
    100 runs. Several trials may share one run (--reuse: the seeds of a problem with nothing random
    are one configuration)."""
    client = parent.client
    by_label = {t.child.label: t for t in trials}
    run_ids = sorted({o.run_id for o in outcomes.values()})
    runs, histories = {}, {}
    for i in range(0, len(run_ids), 100):
        chunk = ", ".join(f"'{r}'" for r in run_ids[i : i + 100])
        for run in client.search_runs([parent.experiment_id], f"attributes.run_id IN ({chunk})", max_results=100):
            runs[run.info.run_id] = run
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
    return trial.reason.startswith("training diverged")


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


@command()
@click.option(
    "--suite",
    type=click.Choice(("none", *SUITES)),
    default="none",
    show_default=True,
    help="lab: the built-in six problems — "
    + "; ".join(f"{p.name} ({p.about})" for p in LAB)
    + ". none: the one problem the data, model and loop options describe. A suite fixes its problems' "
    "options: only --learning-rate, --seed, --log-every and --dtype are taken from the command line.",
)
@click.option(
    "--optimizers",
    "contenders",
    type=Contenders(),
    default=DEFAULT_CONTENDERS,
    show_default=True,
    help="The contenders, comma-separated: optimizer names (torch's defaults), or NAME:OPTION=VALUE[:...] for "
    "one with fixed hyperparameters, a contender of its own (sgd:momentum=0.9).",
)
@click.option(
    "--budget",
    type=click.IntRange(1, 1000),
    default=15,
    show_default=True,
    help="Tuning trials for every (problem, contender), the same for each: the fair part. 15 points on the "
    "default range is a point every half decade.",
)
@click.option(
    "--space",
    type=click.Choice(("lr", "full")),
    default="lr",
    show_default=True,
    help="lr: a log grid of --budget learning rates over --lr-range (DeepOBS). full: --budget scrambled Halton "
    "points over the learning rate and each optimizer's own main hyperparameters on log scales (1-momentum and "
    "1-beta1 in [1e-3, 1], 1-beta2 and 1-alpha in [1e-4, 1], epsilon in [1e-10, 1]: SGD's momentum, Adam's "
    "family, RMSprop, Adagrad, Lion; Choi et al. 2019), the same learning rates for every contender; a "
    "contender's fixed hyperparameters stay fixed (sgd:momentum=0.9 tunes its learning rate only).",
)
@click.option(
    "--lr-range",
    type=LogRange(),
    default="1e-5:1e2",
    show_default=True,
    help="The learning rates tuned over, LOW:HIGH (DeepOBS's 1e-5..1e2). A winner at either end is flagged.",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Reruns of each winner, with seeds --seed, --seed+1, ...: the split, the shuffling, a random "
    "initialization and synthetic noise vary; a problem with nothing random gives K equal runs.",
)
@click.option(
    "--target-tol",
    type=FiniteFloat(0.0),
    default=0.05,
    show_default=True,
    help="The target of a seed is the best final score any contender reached with that seed (the same split and "
    "initialization for all) x (1 + this); epochs- and time-to-target count until a run's score reaches its "
    "seed's target and stays there to the end (never: infinity).",
)
@click.option(
    "--target-loss",
    type=OptionalLoss(),
    default="none",
    show_default=True,
    help="One target for every problem instead of --target-tol's; none: from --target-tol.",
)
@apply(
    COMMON,
    {
        "learning-rate": {
            "help": "The shared learning rate of the untuned comparison shown beside the tuned ranking (what main "
            "runs every optimizer at)."
        }
    },
)
@workflow_options(
    register=False,
    output_help="Folder where the report goes (also logged to the benchmark's run); by default one of this "
    "run's own, benchmark_output/benchmark-<first 8 characters of the run id>.",
)
def benchmark(suite, contenders, budget, space, lr_range, seeds, target_tol, target_loss, flow: Workflow, **shared):
    """Rank optimizers fairly: tune every contender with the same budget on every problem, rerun each
    winner over seeds, and report medians with 95% bootstrap CIs, time-to-target, a learning-rate
    sensitivity plot and a performance profile — beside the ranking at one shared learning rate."""
    problems = _problems(suite, shared)
    base_seed = shared["seed"]
    plan = Plan(problems, contenders, space, budget, lr_range, shared["learning_rate"], seeds, {})
    for problem in problems:
        plan.base[problem.name] = {**shared, **problem.options}
    plan_benchmark(plan, base_seed)  # every child's options checked; a bad one is a usage error here
    datasets = {}
    for problem in problems:
        first = next(t for t in plan.trials if t.problem == problem.name)
        data = datasets[problem.name, base_seed] = load_checked(first.child.config)
        plan.metric[problem.name] = "final_val_loss" if data.X_val is not None else "final_objective"
    _check_output_dir(flow.output_dir)
    n_tune = sum(t.phase == "tune" for t in plan.trials)
    n_default = sum(t.phase == "default" for t in plan.trials)
    total = n_tune + n_default + len(problems) * len(contenders) * seeds
    shared_runs = (
        f"{_n(n_default, 'run')} at the shared learning rate {plan.shared_lr:g}"
        if n_default
        else f"the shared learning rate {plan.shared_lr:g} among them"
    )
    click.echo(
        f"benchmark: {_n(len(problems), 'problem')} x {_n(len(contenders), 'contender')}: "
        f"{_n(n_tune, 'tuning trial')} ({budget} each), {shared_runs}, then {_n(seeds, 'seed')} of each "
        f"winner (at most {_n(total, 'run')} in all)",
        err=True,
    )
    params = {
        "suite": suite,
        "optimizers": ",".join(c.label for c in contenders),
        "budget": budget,
        "space": space,
        "lr_range": f"{lr_range[0]!r}:{lr_range[1]!r}",
        "seeds": seeds,
        "target_tol": target_tol,
        "target_loss": as_param(target_loss),
        "problems": ",".join(p.name for p in problems),
        **(shared if suite == "none" else {k: shared[k] for k in SUITE_TAKES}),
        **flow.params,
    }

    def data_of(child: Child):
        """A child's data, for --reuse's fingerprint: its problem's, split by its own seed."""
        key = (dict(child.extra_tags)["problem"], child.config.seed)
        if key not in datasets:
            datasets[key] = load_checked(child.config)
        return datasets[key]

    def body(pool):
        from steps.report import benchmark_report

        with tracked_run(name="benchmark", tags={"technique": "benchmark"}) as parent:
            parent.log_params({option_name(k): as_param(v) for k, v in params.items()})
            first = list(plan.trials)
            outcomes = run_children(
                parent,
                [t.child for t in first],
                launch=flow.launch,
                reuse=flow.reuse,
                data=data_of,
                pool=pool,
                counted=(0, len(first)),
                announce=False,
            )
            _read_results(parent, first, outcomes, plan.metric, history=False)
            reruns = []
            for (problem_name, label), best in winners(plan).items():
                if best is None:
                    continue
                problem = next(p for p in problems if p.name == problem_name)
                contender = next(c for c in contenders if c.label == label)
                for k in range(seeds):
                    reruns.append(_child(plan, problem, contender, "seed", 0, best.values, base_seed + k))
            plan.trials.extend(reruns)
            outcomes = run_children(
                parent,
                [t.child for t in reruns],
                launch=flow.launch,
                reuse=flow.reuse,
                data=data_of,
                pool=pool,
                counted=(len(first), len(first) + len(reruns)),
                announce=False,
            )
            _read_results(parent, reruns, outcomes, plan.metric, history=True)
            run = parent.client.get_run(parent.id)
            out = report_dir(run, flow.output_dir, REPORTS)
            try:
                verdict = benchmark_report.report(parent, plan, target_tol, target_loss, out and Path(out))
            except StoreGone:
                raise  # the lifecycle says where what was not written is kept, and how to recover it
            except Exception as exc:  # the runs are all there; say so rather than print a traceback
                reason = f"the report could not be written ({type(exc).__name__}: {exc}); the runs are complete"
                parent.fail(reason)
                return None, reason
            broken = [t for t in plan.trials if t.status != "FINISHED" and not diverged(t)]
            if broken:
                reason = (
                    f"{_n(len(broken), 'run')} ended {broken[0].status} for a reason other than divergence, e.g. "
                    f"{broken[0].child.label}: {broken[0].reason or 'no reason recorded'} (trials.csv lists them)"
                )
                parent.fail(reason)
                return verdict, reason
        return verdict, None

    _verdict, reason = with_workers(body, flow.launch, total)
    if reason:
        click.echo(f"Error: {reason}", err=True)
        sys.exit(1)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _check_output_dir(output_dir: str) -> None:
    """A given --output-dir must be a folder this process can write, before anything trains."""
    if not output_dir:
        return
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        ok = path.is_dir() and os.access(path, os.W_OK)
    except OSError as exc:
        raise click.BadParameter(f"{output_dir}: {exc.strerror or exc}", param_hint="'--output-dir'") from None
    if not ok:
        raise click.BadParameter(f"{output_dir}: not a folder this process can write", param_hint="'--output-dir'")


def _problems(suite: str, shared: dict) -> list[Problem]:
    """The problems: the suite's (the options it fixes must be left at their defaults), or the one
    the options describe."""
    if suite == "none":
        dataset = shared["dataset"]
        name = {"seed": "lesson"}.get(dataset, Path(dataset).stem if dataset not in TEST_FUNCTIONS else dataset)
        about = f"--dataset {dataset}, {shared['epochs']} epochs"
        return [Problem(name or "problem", {"dataset": dataset, "epochs": shared["epochs"]}, about)]
    ctx = click.get_current_context()
    given = []
    for p in ctx.command.params:
        if p.name in shared and p.name not in SUITE_TAKES:
            default = p.type_cast_value(ctx, p.get_default(ctx))
            if shared[p.name] != default:
                given.append(p.opts[0])
    if given:
        raise click.UsageError(
            f"--suite {suite} sets its problems' data, model and loop options: leave {', '.join(given)} at "
            "the default, or give no --suite to benchmark the one problem those options describe"
        )
    return list(SUITES[suite])


if __name__ == "__main__":
    benchmark()
