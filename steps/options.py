"""Every CLI option of the training entry points, declared once.

The table :data:`OPTIONS` feeds three things: the Click options of each command,
the MLproject's parameters (``python -m steps.mlproject`` renders the file and a
test checks it is current), and the README's option table. MLproject parameter
names are the option names with ``_`` for ``-``; booleans are value options
(``--nesterov true``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import click

from core import models, optimizers, penalties, schedules
from core.config import DTYPES


def as_param(value) -> str:
    """A value as MLflow params and MLproject defaults spell it (booleans as the CLI takes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


class FiniteFloat(click.FloatRange):
    """A float in a range that also refuses ``nan`` and ``inf``."""

    name = "float"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


def fraction(min_open=False, max_open=False):
    return FiniteFloat(0.0, 1.0, min_open=min_open, max_open=max_open)


POSITIVE = FiniteFloat(0.0, min_open=True)
NON_NEGATIVE = FiniteFloat(0.0)


@dataclass(frozen=True)
class Opt:
    flag: str  # CLI name without the dashes
    type: Any
    default: Any
    help: str
    dest: str | None = None  # Python name when it differs (lambda -> lam)

    @property
    def param(self) -> str:
        """The MLproject / MLflow parameter name."""
        return self.flag.replace("-", "_")

    @property
    def mlproject_type(self) -> str:
        return "float" if isinstance(self.type, click.FloatRange) else "string"

    def click_option(self):
        names = [f"--{self.flag}"] + ([self.dest] if self.dest else [])
        return click.option(*names, type=self.type, default=self.default, show_default=True, help=self.help)


_opts = [
    # data
    Opt(
        "dataset",
        str,
        "seed",
        "'seed' (the lesson's 2x2 set), 'synthetic' or a CSV path/URI. synthetic draws X ~ N(0, 1) and "
        "y = f(X w) + noise, with --n-informative weights from U(0.5, 2), the rest 0, and f the --model's "
        "activation (a ReLU teacher for relu).",
    ),
    Opt("target", str, "y", "CSV column to predict; every other column is a feature."),
    Opt("n-samples", click.IntRange(1), 200, "Synthetic data: number of rows."),
    Opt("n-features", click.IntRange(1), 10, "Synthetic data: number of features."),
    Opt("n-informative", click.IntRange(0), 3, "Synthetic data: how many true weights are non-zero."),
    Opt("noise", NON_NEGATIVE, 0.1, "Synthetic data: standard deviation of the target noise."),
    Opt("data-seed", click.IntRange(0), 0, "Synthetic data: random seed of the generator."),
    Opt(
        "validation-fraction",
        fraction(max_open=True),
        0.0,
        "Share of rows held out (seeded split) for val_loss and early stopping.",
    ),
    Opt(
        "dtype",
        click.Choice(DTYPES),
        "float64",
        "Precision of data and weights; float32 halves the memory traffic of every step.",
    ),
    # model
    Opt("model", click.Choice(models.MODELS), "relu", "The lesson's ReLU neuron, or a linear model."),
    Opt("fit-intercept", click.BOOL, False, "Learn a bias (never penalized or decayed); starts at 0."),
    Opt(
        "init",
        click.Choice(models.INITS),
        "seed",
        "Initial weights: 'seed' is the lesson's w_i = 0.1*(i+1); 'normal' draws N(0, 1/d) with --seed.",
    ),
    # loop
    Opt("epochs", click.IntRange(1), 100, "Passes over the training data."),
    Opt("batch-size", click.IntRange(0), 0, "Mini-batch size; 0 means full batch (the lesson)."),
    Opt("learning-rate", POSITIVE, 0.01, "Step size (the base rate of the schedule)."),
    Opt(
        "lr-schedule",
        click.Choice(schedules.SCHEDULES),
        "constant",
        "Learning rate per epoch: constant, step (x gamma every step-size epochs), exponential "
        "(x gamma each epoch), cosine (to 0 over the epochs), invscaling (lr / (e+1)^power).",
    ),
    Opt("lr-step-size", click.IntRange(1), 30, "Epochs between decays of the 'step' schedule."),
    Opt("lr-gamma", fraction(min_open=True), 0.1, "Decay factor of the 'step' and 'exponential' schedules."),
    Opt("lr-power", NON_NEGATIVE, 0.25, "Exponent of the 'invscaling' schedule."),
    Opt(
        "patience",
        click.IntRange(0),
        0,
        "Early stopping: stop after this many epochs without a lower val_loss; 0 turns it off.",
    ),
    Opt("log-every", click.IntRange(1), 1, "Log metrics every N epochs (the last epoch always)."),
    Opt("seed", click.IntRange(0), 0, "Seed for shuffling, 'normal' initialization and the split."),
    # optimizer
    Opt("optimizer", click.Choice(optimizers.OPTIMIZERS), "sgd", "The update rule (torch.optim's)."),
    Opt("momentum", NON_NEGATIVE, 0.0, "SGD / RMSprop: momentum factor."),
    Opt("dampening", NON_NEGATIVE, 0.0, "SGD: dampening of the momentum buffer."),
    Opt("nesterov", click.BOOL, False, "SGD: Nesterov momentum (needs momentum > 0, dampening 0)."),
    Opt("beta1", fraction(max_open=True), 0.9, "Adam/AdamW: decay rate of the first moment, in [0, 1)."),
    Opt("beta2", fraction(max_open=True), 0.999, "Adam/AdamW: decay rate of the second moment, in [0, 1)."),
    Opt("epsilon", NON_NEGATIVE, 1e-8, "Adam/AdamW/RMSprop/Adagrad: term added to the denominator."),
    Opt("amsgrad", click.BOOL, False, "Adam/AdamW: AMSGrad (running max of the raw second moment)."),
    Opt("weight-decay", NON_NEGATIVE, 0.01, "AdamW: decoupled weight decay (torch's default 0.01)."),
    Opt("alpha", fraction(), 0.99, "RMSprop: smoothing constant of the squared-gradient average."),
    Opt("centered", click.BOOL, False, "RMSprop: normalize by the gradient's estimated variance."),
    Opt("lr-decay", NON_NEGATIVE, 0.0, "Adagrad: learning-rate decay, lr / (1 + (t-1) * lr_decay)."),
    # penalty
    Opt(
        "penalty",
        click.Choice(penalties.PENALTIES),
        "none",
        "Regularizer R(w): l1 = sum|w|, l2 = sum w^2, elasticnet = l1_ratio*sum|w| + (1-l1_ratio)*sum w^2.",
    ),
    Opt("lambda", NON_NEGATIVE, 0.0, "Penalty strength: the objective is MSE + lambda * R(w).", dest="lam"),
    Opt("l1-ratio", fraction(), 0.5, "Elastic net: share of the L1 term."),
    Opt(
        "l1-method",
        click.Choice(penalties.L1_METHODS),
        "prox",
        "How the L1 term acts: 'prox' soft-thresholds after each step (exact zeros); "
        "'subgradient' adds lambda*sign(w) to the gradient (for teaching).",
    ),
]
OPTIONS: dict[str, Opt] = {o.flag: o for o in _opts}

DATA = [
    "dataset",
    "target",
    "n-samples",
    "n-features",
    "n-informative",
    "noise",
    "data-seed",
    "validation-fraction",
    "dtype",
]
MODEL = ["model", "fit-intercept", "init"]
LOOP = [
    "epochs",
    "batch-size",
    "learning-rate",
    "lr-schedule",
    "lr-step-size",
    "lr-gamma",
    "lr-power",
    "patience",
    "log-every",
    "seed",
]
COMMON = DATA + MODEL + LOOP
OPTIMIZER = [
    "optimizer",
    "momentum",
    "dampening",
    "nesterov",
    "beta1",
    "beta2",
    "epsilon",
    "amsgrad",
    "weight-decay",
    "alpha",
    "centered",
    "lr-decay",
]
PENALTY = ["penalty", "lambda", "l1-ratio", "l1-method"]


def option(flag: str, **overrides):
    """One option of the table as a Click decorator, with ``overrides`` (e.g. another default)."""
    base = OPTIONS[flag]
    return Opt(**{**base.__dict__, **overrides}).click_option()


def apply(flags: list[str], overrides: dict[str, dict] | None = None):
    """Decorate a command with the options ``flags`` (in that order in --help)."""
    overrides = overrides or {}

    def deco(f):
        for flag in reversed(flags):
            f = option(flag, **overrides.get(flag, {}))(f)
        return f

    return deco


class Command(click.Command):
    """A gdlab entry point: refuses an option given twice, and ``--help`` under `mlflow run`.

    `mlflow run -P learning-rate=0.5` (a dash for the underscore) is passed on as a second
    ``--learning-rate 0.5`` after the declared ``--learning-rate 0.01``; Click would keep the
    last one while MLflow logged the first as the run's param. `-P help=1` becomes ``--help 1``:
    Click would print the help and exit 0, leaving a FINISHED run with nothing in it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--store-timeout"],
                type=NON_NEGATIVE,
                default=None,
                expose_value=False,
                callback=_store_timeout,
                help="Seconds to keep retrying a tracking store that does not answer before giving up on it; "
                "what was not written is then kept for `recover`. [default: GDLAB_STORE_TIMEOUT_S, else 120]",
            )
        )

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        words = [str(a) for a in args]  # (CliRunner passes objects such as paths as they are)
        for i, arg in enumerate(words):
            if not arg.startswith("--") or arg == "--":
                continue
            name, _, inline = arg.partition("=")
            value = inline or (words[i + 1] if i + 1 < len(words) else "")
            if name in seen and self._takes_value(name):
                under = name[2:].replace("-", "_")
                raise click.UsageError(
                    f"{name} is given twice ({seen[name]!r}, then {value!r}); under `mlflow run` a parameter "
                    f"is spelled with '_': -P {under}={value}",
                    ctx,
                )
            seen[name] = value
        if os.environ.get("MLFLOW_RUN_ID") and any(a in ("--help", "-h") for a in words):
            raise click.UsageError(
                f"help is not a parameter; read the options with `python -m steps.{self.name} --help`", ctx
            )
        return super().parse_args(ctx, args)

    def _takes_value(self, name: str) -> bool:
        return any(name in p.opts for p in self.params if isinstance(p, click.Option) and not p.is_flag)


def _store_timeout(ctx, param, value):
    if value is not None:
        os.environ["GDLAB_STORE_TIMEOUT_S"] = repr(value)  # read by steps.tracking, inherited by workers
    return value


def command():
    """``@click.command`` for a gdlab entry point (-h/--help, repeated options refused)."""
    return click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
