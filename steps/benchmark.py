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

import os
import sys
from pathlib import Path

import click

from core.config import TEST_FUNCTIONS, option_name
from steps.cli.benchmark_options import Contenders, LogRange, OptionalLoss
from steps.cli.options import COMMON, FiniteFloat, apply, as_param, command, command_defaults
from steps.cli.workflow import Workflow, workflow_options
from steps.flow.benchmark_plan import (
    DEFAULT_CONTENDERS,
    LAB,
    SUITE_TAKES,
    SUITES,
    Plan,
    Problem,
    diverged,
    plan_benchmark,
    plan_child,
    read_results,
    winners,
)
from steps.flow.launch import Child, report_dir, run_children, with_workers
from steps.run.errors import StoreGone
from steps.run.lifecycle import tracked_run
from steps.run.runner import load_checked

REPORTS = "benchmark_output"


@command(
    examples=(
        "python -m steps.benchmark",
        "python -m steps.benchmark --suite lab",
        "python -m steps.benchmark --optimizers sgd,adam,lion --dataset rosenbrock --epochs 500 --space full",
    )
)
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
            read_results(parent, first, outcomes, plan.metric, history=False)
            reruns = []
            for (problem_name, label), best in winners(plan).items():
                if best is None:
                    continue
                problem = next(p for p in problems if p.name == problem_name)
                contender = next(c for c in contenders if c.label == label)
                for k in range(seeds):
                    reruns.append(plan_child(plan, problem, contender, "seed", 0, best.values, base_seed + k))
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
            read_results(parent, reruns, outcomes, plan.metric, history=True)
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
    defaults = command_defaults(ctx.command)
    given = [
        p.opts[0]
        for p in ctx.command.params
        if p.name in shared and p.name not in SUITE_TAKES and shared[p.name] != defaults[p.name]
    ]
    if given:
        raise click.UsageError(
            f"--suite {suite} sets its problems' data, model and loop options: leave {', '.join(given)} at "
            "the default, or give no --suite to benchmark the one problem those options describe"
        )
    return list(SUITES[suite])


if __name__ == "__main__":
    benchmark()
