"""Every CLI option of the training entry points, declared once.

The table :data:`OPTIONS` feeds the Click options of each command and the MLproject's
parameters (``python -m steps.cli.mlproject`` renders the file; ``tests/test_cli.py`` checks it
is current). MLproject parameter names are the option names with ``_`` for ``-``; booleans
are value options (``--nesterov true``). The optimizer options' defaults are torch's, read
from :data:`core.optimizers.DEFAULTS`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any

import click

from core import functions, models, optimizers, penalties, schedules
from core.config import DTYPES, MONITORS, TrainConfig


def as_param(value) -> str:
    """A value as MLflow params and MLproject defaults spell it (booleans and None as the CLI takes them)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "none"  # an empty list (no hidden layers) is "none"
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


class IntList(click.ParamType):
    """Comma-separated whole numbers >= 0, in increasing order (epochs)."""

    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        if str(value).strip().lower() == "none":
            return ()
        try:
            out = tuple(int(part) for part in str(value).split(",") if part.strip())
        except ValueError:
            self.fail(f"{value!r}: give whole numbers separated by commas, e.g. 30,60,90", param, ctx)
        if any(v < 0 for v in out) or list(out) != sorted(set(out)):
            self.fail(f"{value!r}: give increasing epochs >= 0", param, ctx)
        return out


class NameList(click.ParamType):
    """Comma-separated names, each one of ``choices`` and none twice (``what`` names one in the
    messages, "a technique"); ``empty`` lets the value name none."""

    name = "list"

    def __init__(self, choices, what: str, choose_from: str, *, empty: bool = False):
        self.choices, self.what, self.choose_from, self.empty = tuple(choices), what, choose_from, empty

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        names = [part for part in parts if part]
        if names and len(names) < len(parts):  # "adam,,sgd": a name left out, or a stray comma
            self.fail(f"{value!r}: an empty name (two commas in a row, or one at an end)", param, ctx)
        unknown = [n for n in names if n not in self.choices]
        if unknown or not (names or self.empty):
            problem = f"unknown {', '.join(unknown)}" if unknown else "name at least one"
            self.fail(f"{value!r}: {problem}; choose from {self.choose_from}", param, ctx)
        if len(set(names)) < len(names):
            self.fail(f"{value!r}: {self.what} is named twice", param, ctx)
        return tuple(names)


class Widths(click.ParamType):
    """Hidden layer widths: comma-separated whole numbers >= 1 ("16" or "16,8"), in any order;
    "none" (the default) or empty for no hidden layer."""

    name = "widths"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        if parts == [""] or str(value).strip().lower() == "none":
            return ()
        try:
            out = tuple(int(part) for part in parts)
        except ValueError:
            self.fail(f"{value!r}: give layer widths as whole numbers separated by commas, e.g. 16,8", param, ctx)
        if any(v < 1 for v in out):
            self.fail(f"{value!r}: every hidden layer needs at least 1 unit", param, ctx)
        return out


class Init(click.ParamType):
    """A named initialization (:data:`core.models.INITS`) or comma-separated numbers, one per
    parameter ("-1.5,2"), which it spells as Python does ("-1.5,2.0"); the count is checked
    once the data (the number of weights) is known."""

    name = "init"

    def convert(self, value, param, ctx):
        try:
            numbers = models.explicit_init(str(value).strip())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value).strip() if numbers is None else ",".join(map(repr, numbers))


class NoneOr(click.ParamType):
    """``none`` (torch's None: the optimizer works the value out, e.g. Adafactor's eps1 from the
    dtype), or a value of ``inner``. Its option's default is the word "none", so the MLproject
    declares it (a string parameter) and `-P eps1=none` says the same."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = f"{inner.name} or none"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param, ctx) -> str:
        if isinstance(self.inner, click.Choice):
            return "[" + "|".join(["none", *map(str, self.inner.choices)]) + "]"
        return f"{self.inner.name.split()[0].upper()}|none"  # FLOAT|none, INTEGER|none


POSITIVE = FiniteFloat(0.0, min_open=True)
NON_NEGATIVE = FiniteFloat(0.0)


@dataclass(frozen=True)
class Opt:
    flag: str  # CLI name without the dashes
    type: Any
    default: Any
    help: str
    dest: str | None = None  # Python name when it differs (lambda -> lam)

    def click_option(self):
        names = [f"--{self.flag}"] + ([self.dest] if self.dest else [])
        return click.option(*names, type=self.type, default=self.default, show_default=True, help=self.help)


NAMES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "nadam": "NAdam",
    "radam": "RAdam",
    "adamax": "Adamax",
    "adadelta": "Adadelta",
    "asgd": "ASGD",
    "rprop": "Rprop",
    "lion": "Lion",
    "adafactor": "Adafactor",
    "lbfgs": "LBFGS",
}


def readers(option: str, text: str) -> str:
    """An optimizer option's help: which optimizers read it (from core.optimizers.DEFAULTS), then ``text``."""
    who = [NAMES[name] for name, d in optimizers.DEFAULTS.items() if option in d]
    return f"{'/'.join(who)}: {text}" if not text.startswith(tuple(who)) else text


# Optimizer options whose torch default depends on the optimizer (`train` leaves them to it).
PER_OPTIMIZER = sorted(
    {
        o
        for d in optimizers.DEFAULTS.values()
        for o in d
        if len({repr(x.get(o)) for x in optimizers.DEFAULTS.values() if o in x}) > 1
    }
)

# Every option's default is the config's (core.config.TrainConfig); the optimizer options',
# torch.optim's, as core.optimizers states them (the config leaves them to the optimizer).
CONFIG = {f.name: f.default for f in fields(TrainConfig)}
TORCH = {name: optimizers.default(name) for opts in optimizers.DEFAULTS.values() for name in opts}

_opts = [
    # data
    Opt(
        "dataset",
        str,
        CONFIG["dataset"],
        "'seed' (the lesson's 2x2 set), 'synthetic', a CSV path/URI, or a 2-D test function: "
        f"{', '.join(functions.NAMES)}. synthetic draws X ~ N(0, 1) and "
        "y = f(X w) + noise, with --n-informative weights from U(0.5, 2), the rest 0, and f the --model's "
        "activation (a ReLU teacher for relu); for logistic, labels y ~ Bernoulli(sigmoid(X w)). A test "
        "function has no data and no model: the two parameters are the point (x, y), the loss is f(x, y) "
        "(docs/tutorials.md: Test functions).",
    ),
    Opt(
        "target",
        str,
        CONFIG["target"],
        "CSV column to predict; every other column is a feature. For --model logistic: two labels, numbers "
        "or text, taken as 0 and 1 in sorted order.",
    ),
    Opt("n-samples", click.IntRange(1), CONFIG["n_samples"], "Synthetic data: number of rows."),
    Opt("n-features", click.IntRange(1), CONFIG["n_features"], "Synthetic data: number of features."),
    Opt(
        "n-informative",
        click.IntRange(0),
        CONFIG["n_informative"],
        "Synthetic data: how many true weights are non-zero.",
    ),
    Opt(
        "noise",
        NON_NEGATIVE,
        CONFIG["noise"],
        "Synthetic data: standard deviation of the target noise (a logistic teacher has none).",
    ),
    Opt("data-seed", click.IntRange(0), CONFIG["data_seed"], "Synthetic data: random seed of the generator."),
    Opt(
        "condition-number",
        FiniteFloat(1.0),
        CONFIG["condition_number"],
        "--dataset ill_conditioned: kappa (>= 1) of f = (x^2 + kappa*y^2)/2, the ratio of its curvatures.",
    ),
    Opt(
        "validation-fraction",
        fraction(max_open=True),
        CONFIG["validation_fraction"],
        "Share of rows held out (seeded split) for val_loss and early stopping.",
    ),
    Opt(
        "dtype",
        click.Choice(DTYPES),
        CONFIG["dtype"],
        "Precision of data and weights; float32 halves the memory traffic of every step.",
    ),
    Opt(
        "standardize",
        click.BOOL,
        CONFIG["standardize"],
        "z-score the features with the training split's mean and population std (scikit-learn's "
        "StandardScaler; a constant column is only centred); validation rows use the same statistics. "
        "The logged model standardizes raw inputs itself; for the neuron, weights.json also gives the weights in the "
        "data's units ('original').",
    ),
    # model
    Opt(
        "model",
        click.Choice(models.MODELS),
        CONFIG["model"],
        "The lesson's ReLU neuron, a linear model (both on the MSE), or logistic: a sigmoid neuron on the "
        "log loss (binary cross-entropy) for a target of two labels; it logs accuracy too.",
    ),
    Opt(
        "hidden",
        Widths(),
        CONFIG["hidden"],
        "ReLU hidden layers in front of the --model's unit, their widths: 16, or 16,8 (empty: none, the "
        "single neuron). --model linear --hidden 16 is a network for regression (MSE), --model logistic "
        "--hidden 16 a classifier (log loss). torch's nn.Linear layers and default init (drawn with --seed "
        "for --init seed; docs/tutorials.md: A small network).",
    ),
    Opt(
        "fit-intercept",
        click.BOOL,
        CONFIG["fit_intercept"],
        "Learn a bias (never penalized or decayed); starts at 0.",
    ),
    Opt(
        "init",
        Init(),
        CONFIG["init"],
        "Initial weights: 'seed' is the lesson's w_i = 0.1*(i+1) (a test function's classic start); "
        "'zeros'; 'normal' draws N(0, 1/d) with --seed; or comma-separated numbers, one per parameter "
        "(the weights, then the bias with --fit-intercept true; a test function's x,y). With --hidden: "
        "'seed' is torch's default nn.Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) drawn with --seed; "
        "'normal' N(0, 1/fan_in) weights, biases 0; numbers: every weight (W1 row-major, W2, ...), then "
        "every bias; 'zeros' is refused.",
    ),
    # loop
    Opt("epochs", click.IntRange(1), CONFIG["epochs"], "Passes over the training data."),
    Opt("batch-size", click.IntRange(0), CONFIG["batch_size"], "Mini-batch size; 0 means full batch (the lesson)."),
    Opt("learning-rate", POSITIVE, CONFIG["learning_rate"], "Step size (the base rate of the schedule)."),
    Opt(
        "lr-schedule",
        click.Choice(schedules.SCHEDULES),
        CONFIG["lr_schedule"],
        "Learning rate per epoch, as torch's lr_scheduler steps it: constant, step (x gamma every "
        "step-size epochs), multistep (x gamma at each milestone), exponential (x gamma each epoch), "
        "linear (start-factor to end-factor over total-iters epochs), polynomial (to 0 over total-iters "
        "epochs, power poly-power), cosine (to 0 over the epochs), "
        "cosine_restarts (to eta-min over T_0 epochs, then again over T_0*T_mult, ...), "
        "onecycle (OneCycleLR: up to the learning rate, the peak, then far below it), "
        "cyclic (CyclicLR: between the learning rate and max-lr), "
        "plateau (ReduceLROnPlateau: x factor when the monitored loss stops falling), "
        "invscaling (lr / (e+1)^power). onecycle and cyclic change the rate only, as torch's do with "
        "cycle_momentum=False: the optimizer's momentum/beta1 stays as set.",
    ),
    Opt("lr-step-size", click.IntRange(1), CONFIG["lr_step_size"], "Epochs between decays of the 'step' schedule."),
    Opt(
        "lr-gamma",
        fraction(min_open=True),
        CONFIG["lr_gamma"],
        "Decay factor of the 'step', 'multistep' and 'exponential' schedules.",
    ),
    Opt("lr-power", NON_NEGATIVE, CONFIG["lr_power"], "Exponent of the 'invscaling' schedule."),
    Opt("lr-milestones", IntList(), CONFIG["lr_milestones"], "Epochs (comma-separated) of the 'multistep' decays."),
    Opt("lr-start-factor", fraction(min_open=True), CONFIG["lr_start_factor"], "'linear': the first epoch's factor."),
    Opt("lr-end-factor", fraction(min_open=True), CONFIG["lr_end_factor"], "'linear': the factor from total-iters on."),
    Opt(
        "lr-total-iters",
        click.IntRange(1),
        CONFIG["lr_total_iters"],
        "'linear': epochs from start to end factor; 'polynomial': epochs to 0.",
    ),
    Opt(
        "lr-poly-power",
        NON_NEGATIVE,
        CONFIG["lr_poly_power"],
        "'polynomial': the power of (1 - e/total-iters) (PolynomialLR's power; --lr-power is invscaling's).",
    ),
    Opt("lr-t0", click.IntRange(1), CONFIG["lr_t0"], "'cosine_restarts': epochs of the first cycle (T_0)."),
    Opt("lr-t-mult", click.IntRange(1), CONFIG["lr_t_mult"], "'cosine_restarts': growth of each next cycle (T_mult)."),
    Opt("lr-eta-min", NON_NEGATIVE, CONFIG["lr_eta_min"], "'cosine_restarts': the lowest rate (eta_min)."),
    Opt(
        "lr-pct-start",
        fraction(),
        CONFIG["lr_pct_start"],
        "'onecycle': share of the epochs spent rising to the peak (--learning-rate is OneCycleLR's max_lr).",
    ),
    Opt(
        "lr-anneal-strategy",
        click.Choice(schedules.ANNEAL_STRATEGIES),
        CONFIG["lr_anneal_strategy"],
        "'onecycle': the shape of each phase, cosine or straight.",
    ),
    Opt(
        "lr-div-factor",
        FiniteFloat(1.0),
        CONFIG["lr_div_factor"],
        "'onecycle': the first epoch's rate is learning-rate / div-factor.",
    ),
    Opt(
        "lr-final-div-factor",
        FiniteFloat(1.0),
        CONFIG["lr_final_div_factor"],
        "'onecycle': the last rate is the first one / final-div-factor.",
    ),
    Opt(
        "lr-three-phase",
        click.BOOL,
        CONFIG["lr_three_phase"],
        "'onecycle': come back down to the first rate symmetrically, then anneal to the last (the paper's "
        "three phases).",
    ),
    Opt(
        "lr-max-lr",
        POSITIVE,
        CONFIG["lr_max_lr"],
        "'cyclic': the peak rate (CyclicLR's max_lr), >= --learning-rate, the base rate.",
    ),
    Opt(
        "lr-step-size-up",
        click.IntRange(1),
        CONFIG["lr_step_size_up"],
        "'cyclic': epochs from the base rate up to max-lr (torch's 2000 counts batches; gdlab steps by epoch).",
    ),
    Opt(
        "lr-step-size-down",
        click.IntRange(0),
        CONFIG["lr_step_size_down"],
        "'cyclic': epochs from max-lr back down; 0 = step-size-up (torch's None).",
    ),
    Opt(
        "lr-mode",
        click.Choice(schedules.CYCLIC_MODES),
        CONFIG["lr_mode"],
        "'cyclic': triangular (every cycle the same), triangular2 (each cycle half as high), "
        "exp_range (the height x cyclic-gamma^epoch).",
    ),
    Opt(
        "lr-cyclic-gamma",
        fraction(min_open=True),
        CONFIG["lr_cyclic_gamma"],
        "'cyclic' with --lr-mode exp_range: the height's factor per epoch (CyclicLR's gamma; 1 = triangular).",
    ),
    Opt(
        "lr-factor",
        fraction(min_open=True, max_open=True),
        CONFIG["lr_factor"],
        "'plateau': the rate's factor at each reduction.",
    ),
    Opt(
        "lr-patience",
        click.IntRange(0),
        CONFIG["lr_patience"],
        "'plateau': epochs without improvement tolerated before a reduction (not --patience, early stopping's).",
    ),
    Opt(
        "lr-threshold",
        NON_NEGATIVE,
        CONFIG["lr_threshold"],
        "'plateau': how much lower than the best the loss must be to count as an improvement.",
    ),
    Opt(
        "lr-threshold-mode",
        click.Choice(schedules.THRESHOLD_MODES),
        CONFIG["lr_threshold_mode"],
        "'plateau': rel (below best*(1-threshold)) or abs (below best-threshold).",
    ),
    Opt("lr-cooldown", click.IntRange(0), CONFIG["lr_cooldown"], "'plateau': epochs ignored after each reduction."),
    Opt(
        "lr-min-lr",
        NON_NEGATIVE,
        CONFIG["lr_min_lr"],
        "'plateau': the lowest rate, below --learning-rate (a cut smaller than 1e-8, torch's eps, is skipped).",
    ),
    Opt(
        "lr-monitor",
        click.Choice(MONITORS),
        CONFIG["lr_monitor"],
        "'plateau': the loss it watches, each epoch's as logged; val_loss needs --validation-fraction > 0.",
    ),
    Opt(
        "warmup-epochs",
        click.IntRange(0),
        CONFIG["warmup_epochs"],
        "Linear warmup before the schedule (torch's SequentialLR of LinearLR then the schedule): "
        "from warmup-start-factor x lr to lr over this many epochs; 0 = none. Not with onecycle (its own "
        "warmup: --lr-pct-start) or plateau (SequentialLR cannot hold ReduceLROnPlateau).",
    ),
    Opt(
        "warmup-start-factor",
        fraction(min_open=True),
        CONFIG["warmup_start_factor"],
        "The warmup's first factor (torch's LinearLR default 1/3).",
    ),
    Opt(
        "patience",
        click.IntRange(0),
        CONFIG["patience"],
        "Early stopping: stop after this many epochs without a lower val_loss; 0 turns it off.",
    ),
    Opt(
        "clip-norm",
        NON_NEGATIVE,
        CONFIG["clip_norm"],
        "Clip the gradient's L2 norm (bias and penalty included) to this before each step, as torch's "
        "clip_grad_norm_; 0 = off.",
    ),
    Opt(
        "clip-value",
        NON_NEGATIVE,
        CONFIG["clip_value"],
        "Clip each gradient entry into [-v, v] before each step (after --clip-norm), as torch's "
        "clip_grad_value_; 0 = off.",
    ),
    Opt("log-every", click.IntRange(1), CONFIG["log_every"], "Log metrics every N epochs (the last epoch always)."),
    Opt("seed", click.IntRange(0), CONFIG["seed"], "Seed for shuffling, 'normal' initialization and the split."),
    # optimizer
    Opt("optimizer", click.Choice(optimizers.OPTIMIZERS), CONFIG["optimizer"], "The update rule (torch.optim's)."),
    Opt("momentum", NON_NEGATIVE, TORCH["momentum"], readers("momentum", "momentum factor.")),
    Opt("dampening", NON_NEGATIVE, TORCH["dampening"], readers("dampening", "dampening of the momentum buffer.")),
    Opt(
        "nesterov",
        click.BOOL,
        TORCH["nesterov"],
        readers("nesterov", "Nesterov momentum (needs momentum > 0, dampening 0)."),
    ),
    Opt(
        "beta1", fraction(max_open=True), TORCH["beta1"], readers("beta1", "decay rate of the first moment, in [0, 1).")
    ),
    Opt(
        "beta2",
        fraction(max_open=True),
        TORCH["beta2"],
        readers("beta2", "decay rate of the second moment (Adamax: of the infinity norm), in [0, 1)."),
    ),
    Opt("epsilon", NON_NEGATIVE, TORCH["epsilon"], readers("epsilon", "term added to the denominator.")),
    Opt("amsgrad", click.BOOL, TORCH["amsgrad"], readers("amsgrad", "AMSGrad (running max of the raw second moment).")),
    Opt(
        "weight-decay",
        NON_NEGATIVE,
        TORCH["weight_decay"],
        readers(
            "weight_decay",
            "weight decay (AdamW: decoupled, default 0.01; NAdam/RAdam: in the gradient unless "
            "--decoupled-weight-decay, default 0; Lion, Adafactor: decoupled, default 0).",
        ),
    ),
    Opt(
        "alpha",
        fraction(),
        TORCH["alpha"],
        readers(
            "alpha", "RMSprop: smoothing constant of the squared-gradient average; ASGD: power of the step-size decay."
        ),
    ),
    Opt(
        "centered",
        click.BOOL,
        TORCH["centered"],
        readers("centered", "normalize by the gradient's estimated variance."),
    ),
    Opt(
        "lr-decay",
        NON_NEGATIVE,
        TORCH["lr_decay"],
        readers("lr_decay", "learning-rate decay, lr / (1 + (t-1) * lr_decay)."),
    ),
    Opt(
        "momentum-decay",
        NON_NEGATIVE,
        TORCH["momentum_decay"],
        readers("momentum_decay", "psi of the momentum schedule."),
    ),
    Opt(
        "decoupled-weight-decay",
        click.BOOL,
        TORCH["decoupled_weight_decay"],
        readers("decoupled_weight_decay", "apply --weight-decay as AdamW does (decoupled) instead of in the gradient."),
    ),
    Opt(
        "rho", fraction(), TORCH["rho"], readers("rho", "decay rate of the squared-gradient and squared-step averages.")
    ),
    Opt("lambd", NON_NEGATIVE, TORCH["lambd"], readers("lambd", "decay term of the step size.")),
    Opt("t0", NON_NEGATIVE, TORCH["t0"], readers("t0", "the step at which averaging starts.")),
    Opt(
        "eta-minus",
        fraction(min_open=True, max_open=True),
        TORCH["eta_minus"],
        readers("eta_minus", "step-size factor on a sign flip."),
    ),
    Opt(
        "eta-plus",
        FiniteFloat(1.0, min_open=True),
        TORCH["eta_plus"],
        readers("eta_plus", "step-size factor while the sign holds."),
    ),
    Opt("step-size-min", NON_NEGATIVE, TORCH["step_size_min"], readers("step_size_min", "smallest step size.")),
    Opt(
        "step-size-max",
        POSITIVE,
        TORCH["step_size_max"],
        readers("step_size_max", "largest step size (they start at the learning rate)."),
    ),
    Opt(
        "beta2-decay",
        FiniteFloat(max=0.0),
        TORCH["beta2_decay"],
        readers("beta2_decay", "the second moment's decay rate at step t is 1 - t^beta2_decay (<= 0)."),
    ),
    Opt(
        "eps1",
        NoneOr(NON_NEGATIVE),
        as_param(TORCH["eps1"]),
        readers("eps1", "the floor of the RMS denominator (>= 0); none = the dtype's machine epsilon."),
    ),
    Opt("eps2", NON_NEGATIVE, TORCH["eps2"], readers("eps2", "the floor of the parameter RMS in the step size.")),
    Opt("d", FiniteFloat(1.0), TORCH["d"], readers("d", "clipping threshold (>= 1) of the update's RMS.")),
    Opt("max-iter", click.IntRange(1), TORCH["max_iter"], readers("max_iter", "iterations per step (epoch).")),
    Opt(
        "max-eval",
        NoneOr(click.IntRange(1)),
        as_param(TORCH["max_eval"]),
        readers("max_eval", "objective evaluations per step (>= 1); none = max-iter * 5 // 4."),
    ),
    Opt(
        "tolerance-grad",
        NON_NEGATIVE,
        TORCH["tolerance_grad"],
        readers("tolerance_grad", "a step stops once the gradient's largest entry is <= this."),
    ),
    Opt(
        "tolerance-change",
        NON_NEGATIVE,
        TORCH["tolerance_change"],
        readers("tolerance_change", "a step stops once the move or the objective's change is below this."),
    ),
    Opt(
        "history-size",
        click.IntRange(1),
        TORCH["history_size"],
        readers("history_size", "how many (step, gradient change) pairs the inverse Hessian is built from."),
    ),
    Opt(
        "line-search-fn",
        NoneOr(click.Choice(["strong_wolfe"])),
        as_param(TORCH["line_search_fn"]),
        readers("line_search_fn", "none (a fixed step: the learning rate) or strong_wolfe (a line search from it)."),
    ),
    # penalty
    Opt(
        "penalty",
        click.Choice(penalties.PENALTIES),
        CONFIG["penalty"],
        "Regularizer R(w): l1 = sum|w|, l2 = sum w^2, elasticnet = l1_ratio*sum|w| + (1-l1_ratio)*sum w^2.",
    ),
    Opt(
        "lambda",
        NON_NEGATIVE,
        CONFIG["lam"],
        "Penalty strength: the objective is the loss (MSE; log loss for logistic) + lambda * R(w).",
        dest="lam",
    ),
    Opt("l1-ratio", fraction(), CONFIG["l1_ratio"], "Elastic net: share of the L1 term."),
    Opt(
        "l1-method",
        click.Choice(penalties.L1_METHODS),
        CONFIG["l1_method"],
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
    "condition-number",
    "validation-fraction",
    "dtype",
    "standardize",
]
MODEL = ["model", "hidden", "fit-intercept", "init"]
LOOP = [
    "epochs",
    "batch-size",
    "learning-rate",
    "lr-schedule",
    "lr-step-size",
    "lr-gamma",
    "lr-power",
    "lr-milestones",
    "lr-start-factor",
    "lr-end-factor",
    "lr-total-iters",
    "lr-t0",
    "lr-t-mult",
    "lr-eta-min",
    "lr-poly-power",
    "lr-pct-start",
    "lr-anneal-strategy",
    "lr-div-factor",
    "lr-final-div-factor",
    "lr-three-phase",
    "lr-max-lr",
    "lr-step-size-up",
    "lr-step-size-down",
    "lr-mode",
    "lr-cyclic-gamma",
    "lr-factor",
    "lr-patience",
    "lr-threshold",
    "lr-threshold-mode",
    "lr-cooldown",
    "lr-min-lr",
    "lr-monitor",
    "warmup-epochs",
    "warmup-start-factor",
    "patience",
    "clip-norm",
    "clip-value",
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
    "momentum-decay",
    "decoupled-weight-decay",
    "rho",
    "lambd",
    "t0",
    "eta-minus",
    "eta-plus",
    "step-size-min",
    "step-size-max",
    "beta2-decay",
    "eps1",
    "eps2",
    "d",
    "max-iter",
    "max-eval",
    "tolerance-grad",
    "tolerance-change",
    "history-size",
    "line-search-fn",
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
        words = [self._dashed(str(a)) for a in args]  # (CliRunner passes objects such as paths as they are)
        args = words
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

    def _dashed(self, word: str) -> str:
        """``--weight_decay`` as ``--weight-decay``: `mlflow run` passes a parameter the MLproject
        does not declare (`train`'s options whose default depends on the optimizer) as
        ``--<name> value``, with the name's underscores."""
        name, eq, value = word.partition("=")
        if not name.startswith("--") or "_" not in name:
            return word
        dashed = "--" + name[2:].replace("_", "-")
        known = any(dashed in p.opts for p in self.params if isinstance(p, click.Option))
        return dashed + eq + value if known else word

    def _takes_value(self, name: str) -> bool:
        return any(name in p.opts for p in self.params if isinstance(p, click.Option) and not p.is_flag)


def _store_timeout(ctx, param, value):
    if value is not None:
        os.environ["GDLAB_STORE_TIMEOUT_S"] = repr(value)  # read by steps.run.tracking, inherited by workers
    return value


def command_defaults(command: click.Command) -> dict:
    """Each option's default as the command itself sees it: converted by the option's type (an
    optional number's default is the word "none", which its type turns into None)."""
    ctx = click.Context(command)
    defaults = {p.name: p.type_cast_value(ctx, p.get_default(ctx)) for p in command.params if p.expose_value}
    defaults.pop("help", None)
    return defaults


def command():
    """``@click.command`` for a gdlab entry point (-h/--help, repeated options refused)."""
    return click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
