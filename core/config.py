"""The frozen configuration of one training run: every option, resolved, and declared here once.

Each field of :class:`TrainConfig` is an option (:func:`core.schema.option`): its group, codec,
default, help and who reads it. Click builds the config at the edge (``steps``); ``core`` only
reads it. Field names are the CLI option names with ``_`` for ``-`` (``lambda`` is ``lam``
here, since ``lambda`` is a Python keyword); :meth:`TrainConfig.params` gives them back under
their CLI names for logging, :meth:`TrainConfig.from_params` reads them back.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, fields

from . import functions, models, optimizers, penalties, schedules, schema
from .mlp import check_hidden
from .penalties import Penalty
from .schema import (  # the codecs
    CSV,
    DATA,
    LOOP,
    MODEL,
    NONE_WORDS,
    OPTIMIZER,
    PENALTY,
    Choice,
    Flag,
    Init,
    Number,
    OrNone,
    Text,
    Whole,
    option,
    spec_of,
    spell,
)

DTYPES = ("float64", "float32")
TEST_FUNCTIONS = functions.NAMES
BUILT_IN_DATASETS = ("seed", "synthetic", *TEST_FUNCTIONS)
MONITORS = schedules.MONITORS
# The warmup's defaults: core.schedules.make's.
_WARMUP = {p.name: p.default for p in inspect.signature(schedules.make).parameters.values() if "warmup" in p.name}


def unused_options(settings: dict) -> set[str]:
    """The options (CLI names with ``_``) that a run with these settings does not read.

    ``settings`` maps option names to values, typed or as logged strings; only dataset, model,
    hidden, lr_schedule, lr_mode, penalty, optimizer, validation_fraction, init and batch_size are
    looked at, and a missing one rules nothing out. The one statement of which option acts when.
    A test function (``--dataset rosenbrock``, ...) reads no data, model, batch or split options,
    and draws nothing unless ``init`` is ``normal``.
    """

    def number(name: str) -> float | None:
        try:
            return float(settings[name])
        except (KeyError, TypeError, ValueError):
            return None

    unused: set[str] = set()
    dataset = settings.get("dataset")
    if dataset is not None:
        kind = dataset if dataset in BUILT_IN_DATASETS else CSV
        unused.update(o for o, readers in DATASET_OPTIONS.items() if kind not in readers)
        if dataset in TEST_FUNCTIONS:
            unused.update(FUNCTION_IGNORES + FUNCTION_REFUSES)
            if settings.get("init") not in (None, "normal"):
                unused.add("seed")  # nothing is drawn
    layers = settings.get("hidden")  # a tuple of widths, as logged ("16,8", "none"), or parsed (16)
    if layers is not None and spell(layers).strip().lower() in NONE_WORDS:
        unused.add("hidden")  # no hidden layers: the neuron
    network = layers is not None and "hidden" not in unused  # torch's init draws from --seed
    if settings.get("model") == "logistic":
        unused.add("noise")  # a logistic teacher draws labels: y ~ Bernoulli(σ(X w)), no added noise
    for table, chosen in (
        (SCHEDULE_OPTIONS, settings.get("lr_schedule")),
        (PENALTY_OPTIONS, settings.get("penalty")),
        (OPTIMIZER_OPTIONS, settings.get("optimizer")),
    ):
        if chosen is not None:  # the options of the others that the chosen one does not read
            own = table.get(chosen, ())
            unused.update(o for opts in table.values() for o in opts if o not in own)
    if settings.get("lr_mode") not in (None, "exp_range"):
        unused.add("lr_cyclic_gamma")  # cyclic reads its gamma in exp_range mode only
    split = number("validation_fraction")
    if split == 0:
        unused.add("patience")
    unused.update(o for o in ("clip_norm", "clip_value", "curvature_every") if o in settings and number(o) == 0)
    if settings.get("warmup_epochs") is not None and number("warmup_epochs") == 0:
        unused.add("warmup_start_factor")
    batch = number("batch_size")
    if split == 0 and batch == 0 and settings.get("init") not in (None, "normal") and not network:
        unused.add("seed")  # no split to draw, no batches to shuffle, no random start (a network's is)
    return unused


@dataclass(frozen=True)
class TrainConfig:
    # data
    dataset: str = option(
        DATA,
        "seed",
        Text(),
        "'seed' (the lesson's 2x2 set), 'synthetic', a CSV path/URI, or a 2-D test function: rosenbrock, "
        "beale, himmelblau, rastrigin, booth, ill_conditioned. synthetic draws X ~ N(0, 1) and y = f(X "
        "w) + noise, with --n-informative weights from U(0.5, 2), the rest 0, and f the --model's "
        "activation (a ReLU teacher for relu); for logistic, labels y ~ Bernoulli(sigmoid(X w)). A test "
        "function has no data and no model: the two parameters are the point (x, y), the loss is f(x, y) "
        "(docs/tutorials.md: Test functions).",
    )
    target: str = option(
        DATA,
        "y",
        Text(),
        "CSV column to predict; every other column is a feature. For --model logistic: two labels, "
        "numbers or text, taken as 0 and 1 in sorted order.",
        datasets=(CSV,),
    )
    n_samples: int = option(
        DATA,
        200,
        Number(whole=True, low=1),
        "Synthetic data: number of rows.",
        datasets=("synthetic",),
    )
    n_features: int = option(
        DATA,
        10,
        Number(whole=True, low=1),
        "Synthetic data: number of features.",
        datasets=("synthetic",),
    )
    n_informative: int = option(
        DATA,
        3,
        Number(whole=True, low=0),
        "Synthetic data: how many true weights are non-zero.",
        datasets=("synthetic",),
    )
    noise: float = option(
        DATA,
        0.1,
        Number(low=0.0),
        "Synthetic data: standard deviation of the target noise (a logistic teacher has none).",
        datasets=("synthetic",),
    )
    data_seed: int = option(
        DATA,
        0,
        Number(whole=True, low=0),
        "Synthetic data: random seed of the generator.",
        datasets=("synthetic",),
    )
    condition_number: float = option(
        DATA,
        functions.DEFAULT_CONDITION_NUMBER,
        Number(low=1.0),
        "--dataset ill_conditioned: kappa (>= 1) of f = (x^2 + kappa*y^2)/2, the ratio of its curvatures.",
        datasets=("ill_conditioned",),
    )
    validation_fraction: float = option(
        DATA,
        0.0,
        Number(low=0.0, high=1.0, high_open=True),
        "Share of rows held out (seeded split) for val_loss and early stopping.",
        test_function="refuses",
    )
    dtype: str = option(
        DATA,
        "float64",
        Choice(DTYPES),
        "Precision of data and weights; float32 halves the memory traffic of every step.",
    )
    standardize: bool = option(
        DATA,
        False,
        Flag(),
        "z-score the features with the training split's mean and population std (scikit-learn's "
        "StandardScaler; a constant column is only centred); validation rows use the same statistics. "
        "The logged model standardizes raw inputs itself; for the neuron, weights.json also gives the "
        "weights in the data's units ('original').",
        test_function="refuses",
    )
    # model
    model: str = option(
        MODEL,
        "relu",
        Choice(models.MODELS),
        "The lesson's ReLU neuron, a linear model (both on the MSE), or logistic: a sigmoid neuron on "
        "the log loss (binary cross-entropy) for a target of two labels; it logs accuracy too.",
        test_function="ignores",
    )
    hidden: tuple[int, ...] = option(
        MODEL,
        (),
        Whole(1),
        "ReLU hidden layers in front of the --model's unit, their widths: 16, or 16,8 (empty: none, the "
        "single neuron). --model linear --hidden 16 is a network for regression (MSE), --model logistic "
        "--hidden 16 a classifier (log loss). torch's nn.Linear layers and default init (drawn with "
        "--seed for --init seed; docs/tutorials.md: A small network).",
        test_function="ignores",
    )
    fit_intercept: bool = option(
        MODEL,
        False,
        Flag(),
        "Learn a bias (never penalized or decayed); starts at 0.",
        test_function="refuses",
    )
    init: str = option(
        MODEL,
        "seed",
        Init(models.INITS),
        "Initial weights: 'seed' is the lesson's w_i = 0.1*(i+1) (a test function's classic start); "
        "'zeros'; 'normal' draws N(0, 1/d) with --seed; or comma-separated numbers, one per parameter "
        "(the weights, then the bias with --fit-intercept true; a test function's x,y). With --hidden: "
        "'seed' is torch's default nn.Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) drawn with --seed; "
        "'normal' N(0, 1/fan_in) weights, biases 0; numbers: every weight (W1 row-major, W2, ...), then "
        "every bias; 'zeros' is refused.",
    )
    # loop
    epochs: int = option(
        LOOP,
        100,
        Number(whole=True, low=1),
        "Passes over the training data.",
    )
    batch_size: int = option(
        LOOP,
        0,
        Number(whole=True, low=0),
        "Mini-batch size; 0 means full batch (the lesson).",
        test_function="refuses",
    )
    learning_rate: float = option(
        LOOP,
        0.01,
        Number(low=0.0, low_open=True),
        "Step size (the base rate of the schedule).",
    )
    lr_schedule: str = option(
        LOOP,
        "constant",
        Choice(schedules.SCHEDULES),
        "Learning rate per epoch, as torch's lr_scheduler steps it: constant, step (x gamma every "
        "step-size epochs), multistep (x gamma at each milestone), exponential (x gamma each epoch), "
        "linear (start-factor to end-factor over total-iters epochs), polynomial (to 0 over total-iters "
        "epochs, power poly-power), cosine (to 0 over the epochs), cosine_restarts (to eta-min over T_0 "
        "epochs, then again over T_0*T_mult, ...), onecycle (OneCycleLR: up to the learning rate, the "
        "peak, then far below it), cyclic (CyclicLR: between the learning rate and max-lr), plateau "
        "(ReduceLROnPlateau: x factor when the monitored loss stops falling), invscaling (lr / "
        "(e+1)^power). onecycle and cyclic change the rate only, as torch's do with "
        "cycle_momentum=False: the optimizer's momentum/beta1 stays as set.",
    )
    lr_step_size: int = option(
        LOOP,
        schedules.default("step_size"),
        Number(whole=True, low=1),
        "Epochs between decays of the 'step' schedule.",
    )
    lr_gamma: float = option(
        LOOP,
        schedules.default("gamma"),
        Number(low=0.0, high=1.0, low_open=True),
        "Decay factor of the 'step', 'multistep' and 'exponential' schedules.",
    )
    lr_power: float = option(
        LOOP,
        schedules.default("power"),
        Number(low=0.0),
        "Exponent of the 'invscaling' schedule.",
    )
    lr_milestones: tuple[int, ...] = option(
        LOOP,
        schedules.default("milestones"),
        Whole(0, increasing=True),
        "Epochs (comma-separated) of the 'multistep' decays.",
    )
    lr_start_factor: float = option(
        LOOP,
        schedules.default("start_factor"),
        Number(low=0.0, high=1.0, low_open=True),
        "'linear': the first epoch's factor.",
    )
    lr_end_factor: float = option(
        LOOP,
        schedules.default("end_factor"),
        Number(low=0.0, high=1.0, low_open=True),
        "'linear': the factor from total-iters on.",
    )
    lr_total_iters: int = option(
        LOOP,
        schedules.default("total_iters"),
        Number(whole=True, low=1),
        "'linear': epochs from start to end factor; 'polynomial': epochs to 0.",
    )
    lr_t0: int = option(
        LOOP,
        schedules.default("t0"),
        Number(whole=True, low=1),
        "'cosine_restarts': epochs of the first cycle (T_0).",
    )
    lr_t_mult: int = option(
        LOOP,
        schedules.default("t_mult"),
        Number(whole=True, low=1),
        "'cosine_restarts': growth of each next cycle (T_mult).",
    )
    lr_eta_min: float = option(
        LOOP,
        schedules.default("eta_min"),
        Number(low=0.0),
        "'cosine' and 'cosine_restarts': the lowest rate (eta_min), at most --learning-rate.",
    )
    lr_poly_power: float = option(
        LOOP,
        schedules.default("poly_power"),
        Number(low=0.0),
        "'polynomial': the power of (1 - e/total-iters) (PolynomialLR's power; --lr-power is invscaling's).",
    )
    lr_pct_start: float = option(
        LOOP,
        schedules.default("pct_start"),
        Number(low=0.0, high=1.0),
        "'onecycle': share of the epochs spent rising to the peak (--learning-rate is OneCycleLR's max_lr).",
    )
    lr_anneal_strategy: str = option(
        LOOP,
        schedules.default("anneal_strategy"),
        Choice(schedules.ANNEAL_STRATEGIES),
        "'onecycle': the shape of each phase, cosine or straight.",
    )
    lr_div_factor: float = option(
        LOOP,
        schedules.default("div_factor"),
        Number(low=1.0),
        "'onecycle': the first epoch's rate is learning-rate / div-factor.",
    )
    lr_final_div_factor: float = option(
        LOOP,
        schedules.default("final_div_factor"),
        Number(low=1.0),
        "'onecycle': the last rate is the first one / final-div-factor.",
    )
    lr_three_phase: bool = option(
        LOOP,
        schedules.default("three_phase"),
        Flag(),
        "'onecycle': come back down to the first rate symmetrically, then anneal to the last (the "
        "paper's three phases).",
    )
    lr_max_lr: float = option(
        LOOP,
        schedules.default("max_lr"),
        Number(low=0.0, low_open=True),
        "'cyclic': the peak rate (CyclicLR's max_lr), >= --learning-rate, the base rate.",
    )
    lr_step_size_up: int = option(
        LOOP,
        schedules.default("step_size_up"),
        Number(whole=True, low=1),
        "'cyclic': epochs from the base rate up to max-lr (torch's 2000 counts batches; gdlab steps by epoch).",
    )
    lr_step_size_down: int = option(
        LOOP,
        schedules.default("step_size_down"),
        Number(whole=True, low=0),
        "'cyclic': epochs from max-lr back down; 0 = step-size-up (torch's None).",
    )
    lr_mode: str = option(
        LOOP,
        schedules.default("mode"),
        Choice(schedules.CYCLIC_MODES),
        "'cyclic': triangular (every cycle the same), triangular2 (each cycle half as high), exp_range "
        "(the height x cyclic-gamma^epoch).",
    )
    lr_cyclic_gamma: float = option(
        LOOP,
        schedules.default("cyclic_gamma"),
        Number(low=0.0, high=1.0, low_open=True),
        "'cyclic' with --lr-mode exp_range: the height's factor per epoch (CyclicLR's gamma; 1 = triangular).",
        needs="it acts in --lr-mode exp_range only",
    )
    lr_factor: float = option(
        LOOP,
        schedules.default("factor"),
        Number(low=0.0, high=1.0, low_open=True, high_open=True),
        "'plateau': the rate's factor at each reduction.",
    )
    lr_patience: int = option(
        LOOP,
        schedules.default("patience"),
        Number(whole=True, low=0),
        "'plateau': epochs without improvement tolerated before a reduction (not --patience, early stopping's).",
    )
    lr_threshold: float = option(
        LOOP,
        schedules.default("threshold"),
        Number(low=0.0),
        "'plateau': how much lower than the best the loss must be to count as an improvement.",
    )
    lr_threshold_mode: str = option(
        LOOP,
        schedules.default("threshold_mode"),
        Choice(schedules.THRESHOLD_MODES),
        "'plateau': rel (below best*(1-threshold)) or abs (below best-threshold).",
    )
    lr_cooldown: int = option(
        LOOP,
        schedules.default("cooldown"),
        Number(whole=True, low=0),
        "'plateau': epochs ignored after each reduction.",
    )
    lr_min_lr: float = option(
        LOOP,
        schedules.default("min_lr"),
        Number(low=0.0),
        "'plateau': the lowest rate, below --learning-rate (a cut smaller than 1e-8, torch's eps, is skipped).",
    )
    lr_monitor: str = option(
        LOOP,
        schedules.default("monitor"),
        Choice(schedules.MONITORS),
        "'plateau': the loss it watches, each epoch's as logged; val_loss needs --validation-fraction > 0.",
    )
    warmup_epochs: int = option(
        LOOP,
        _WARMUP["warmup_epochs"],
        Number(whole=True, low=0),
        "Linear warmup before the schedule (torch's SequentialLR of LinearLR then the schedule): from "
        "warmup-start-factor x lr to lr over this many epochs; 0 = none. Not with onecycle (its own "
        "warmup: --lr-pct-start) or plateau (SequentialLR cannot hold ReduceLROnPlateau).",
    )
    warmup_start_factor: float = option(
        LOOP,
        _WARMUP["warmup_start_factor"],
        Number(low=0.0, high=1.0, low_open=True),
        "The warmup's first factor (torch's LinearLR default 1/3).",
        needs="it is the warmup's first factor: give --warmup-epochs > 0",
    )
    patience: int = option(
        LOOP,
        0,
        Number(whole=True, low=0),
        "Early stopping: stop after this many epochs without a lower val_loss; 0 turns it off.",
        test_function="refuses",
    )
    clip_norm: float = option(
        LOOP,
        0.0,
        Number(low=0.0),
        "Clip the gradient's L2 norm (bias and penalty included) to this before each step, as torch's "
        "clip_grad_norm_; 0 = off.",
    )
    clip_value: float = option(
        LOOP,
        0.0,
        Number(low=0.0),
        "Clip each gradient entry into [-v, v] before each step (after --clip-norm), as torch's "
        "clip_grad_value_; 0 = off.",
    )
    log_every: int = option(
        LOOP,
        1,
        Number(whole=True, low=1),
        "Log metrics every N epochs (the last epoch always).",
    )
    curvature_every: int = option(
        LOOP,
        0,
        Number(whole=True, low=0),
        "Every N logged epochs, log the objective's curvature at that epoch's parameters: sharpness (the "
        "Hessian's largest eigenvalue), lr_sharpness (lr x sharpness: gradient descent on a quadratic is "
        "stable iff it is below 2) and, where the Hessian is exact (the neuron, test functions), "
        "condition_number; a network's sharpness by Lanczos on Hessian-vector products. "
        "0 = off.",
    )
    seed: int = option(
        LOOP,
        0,
        Number(whole=True, low=0),
        "Seed for shuffling, 'normal' initialization and the split.",
    )
    # optimizer
    optimizer: str = option(
        OPTIMIZER,
        "sgd",
        Choice(optimizers.OPTIMIZERS),
        "The update rule (torch.optim's).",
    )
    momentum: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "momentum factor.",
    )
    dampening: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "dampening of the momentum buffer.",
    )
    nesterov: bool | None = option(
        OPTIMIZER,
        None,
        Flag(),
        "Nesterov momentum (needs momentum > 0, dampening 0).",
    )
    beta1: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0, high=1.0, high_open=True),
        "decay rate of the first moment, in [0, 1).",
    )
    beta2: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0, high=1.0, high_open=True),
        "decay rate of the second moment (Adamax: of the infinity norm), in [0, 1).",
    )
    epsilon: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "term added to the denominator.",
    )
    amsgrad: bool | None = option(
        OPTIMIZER,
        None,
        Flag(),
        "AMSGrad (running max of the raw second moment).",
    )
    weight_decay: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "weight decay (AdamW: decoupled, default 0.01; NAdam/RAdam: in the gradient unless "
        "--decoupled-weight-decay, default 0; Lion, Adafactor: decoupled, default 0).",
    )
    alpha: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0, high=1.0),
        "RMSprop: smoothing constant of the squared-gradient average; ASGD: power of the step-size decay.",
    )
    centered: bool | None = option(
        OPTIMIZER,
        None,
        Flag(),
        "normalize by the gradient's estimated variance.",
    )
    lr_decay: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "learning-rate decay, lr / (1 + (t-1) * lr_decay).",
    )
    momentum_decay: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "psi of the momentum schedule.",
    )
    decoupled_weight_decay: bool | None = option(
        OPTIMIZER,
        None,
        Flag(),
        "apply --weight-decay as AdamW does (decoupled) instead of in the gradient.",
    )
    rho: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0, high=1.0),
        "decay rate of the squared-gradient and squared-step averages.",
    )
    lambd: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "decay term of the step size.",
    )
    t0: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "the step at which averaging starts.",
    )
    eta_minus: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0, high=1.0, low_open=True, high_open=True),
        "step-size factor on a sign flip.",
    )
    eta_plus: float | None = option(
        OPTIMIZER,
        None,
        Number(low=1.0, low_open=True),
        "step-size factor while the sign holds.",
    )
    step_size_min: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "smallest step size.",
    )
    step_size_max: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0, low_open=True),
        "largest step size (they start at the learning rate).",
    )
    beta2_decay: float | None = option(
        OPTIMIZER,
        None,
        Number(high=0.0),
        "the second moment's decay rate at step t is 1 - t^beta2_decay (<= 0).",
    )
    eps1: float | None = option(
        OPTIMIZER,
        None,
        OrNone(Number(low=0.0)),
        "the floor of the RMS denominator (>= 0); none = the dtype's machine epsilon.",
    )
    eps2: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "the floor of the parameter RMS in the step size.",
    )
    d: float | None = option(
        OPTIMIZER,
        None,
        Number(low=1.0),
        "clipping threshold (>= 1) of the update's RMS.",
    )
    max_iter: int | None = option(
        OPTIMIZER,
        None,
        Number(whole=True, low=1),
        "iterations per step (epoch).",
    )
    max_eval: int | None = option(
        OPTIMIZER,
        None,
        OrNone(Number(whole=True, low=1)),
        "objective evaluations per step (>= 1); none = max-iter * 5 // 4.",
    )
    tolerance_grad: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "a step stops once the gradient's largest entry is <= this.",
    )
    tolerance_change: float | None = option(
        OPTIMIZER,
        None,
        Number(low=0.0),
        "a step stops once the move or the objective's change is below this.",
    )
    history_size: int | None = option(
        OPTIMIZER,
        None,
        Number(whole=True, low=1),
        "how many (step, gradient change) pairs the inverse Hessian is built from.",
    )
    line_search_fn: str | None = option(
        OPTIMIZER,
        None,
        OrNone(Choice(("strong_wolfe",))),
        "none (a fixed step: the learning rate) or strong_wolfe (a line search from it).",
    )
    # penalty
    penalty: str = option(
        PENALTY,
        "none",
        Choice(penalties.PENALTIES),
        "Regularizer R(w): l1 = sum|w|, l2 = sum w^2, elasticnet = l1_ratio*sum|w| + (1-l1_ratio)*sum w^2.",
    )
    lam: float = option(
        PENALTY,
        0.0,
        Number(low=0.0),
        "Penalty strength: the objective is the loss (MSE; log loss for logistic) + lambda * R(w).",
        penalties=("l1", "l2", "elasticnet"),
        name="lambda",
    )
    l1_ratio: float = option(
        PENALTY,
        0.5,
        Number(low=0.0, high=1.0),
        "Elastic net: share of the L1 term.",
        penalties=("elasticnet",),
    )
    l1_method: str = option(
        PENALTY,
        "prox",
        Choice(penalties.L1_METHODS),
        "How the L1 term acts: 'prox' soft-thresholds after each step (exact zeros); 'subgradient' adds "
        "lambda*sign(w) to the gradient (for teaching).",
        penalties=("l1", "elasticnet"),
    )

    def __post_init__(self) -> None:
        for f in fields(self):  # every option's codec: its choices, its range, finite numbers
            value = getattr(self, f.name)
            if value is not None or f.default is not None:  # None: the optimizer's own default (torch's)
                spec_of(f).codec.check(value, option_name(f.name))
        self.schedule()  # the schedule's own checks: its options together, the warmup
        self._check_plateau()
        if self.patience and self.validation_fraction == 0 and self.dataset not in TEST_FUNCTIONS:
            raise ValueError("patience (early stopping) needs a validation split: set validation_fraction > 0")
        models.explicit_init(self.init)  # a named init, or finite numbers (counted once the data is known)
        check_hidden(self.hidden)
        if self.hidden and self.init == "zeros":
            raise ValueError("init zeros cannot train a network (every hidden unit stays the same); use seed or normal")
        if self.dataset in TEST_FUNCTIONS:
            self._check_test_function()
        if self.optimizer == "lbfgs":
            self._check_lbfgs()

    def _check_test_function(self) -> None:
        """A test function's parameters are the point (x, y) and it has no data: no bias, no
        mini-batches, no validation split, so no early stopping."""
        given = [
            f"{option} {str(value).lower() if isinstance(value, bool) else value}"
            for option in FUNCTION_REFUSES
            if (value := getattr(self, option)) != TrainConfig.__dataclass_fields__[option].default
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot apply to the test function {self.dataset}: its parameters are the "
                "point (x, y) (no bias) and it has no data (no mini-batches, no validation split, no early stopping)"
            )

    def _check_lbfgs(self) -> None:
        """L-BFGS evaluates the whole objective itself, a step at a time: full batch only, no
        clipping, and a penalty it can differentiate (the L1 prox acts outside the objective)."""
        if self.batch_size > 0:
            raise ValueError("lbfgs takes the full batch: leave batch_size at 0")
        if self.clip_norm or self.clip_value:
            raise ValueError("lbfgs does not clip gradients: leave clip_norm and clip_value at 0")
        if Penalty(self.penalty, self.lam, self.l1_ratio, self.l1_method).uses_prox:
            raise ValueError("lbfgs cannot apply the L1 prox: use l1_method subgradient (or another optimizer)")

    def schedule_options(self) -> dict:
        """The chosen schedule's own options, as its builder's keywords (``lr_gamma`` is ``gamma``):
        each --lr-<keyword> option is a keyword of one or more of :data:`core.schedules.BUILDERS`."""
        return {k: getattr(self, f"lr_{k}") for k in schedules.DEFAULTS[self.lr_schedule]}

    def schedule(self):
        """The learning rate as a function of the epoch (:func:`core.schedules.make`)."""
        return schedules.make(
            self.lr_schedule,
            self.learning_rate,
            epochs=self.epochs,
            warmup_epochs=self.warmup_epochs,
            warmup_start_factor=self.warmup_start_factor,
            **self.schedule_options(),
        )

    def plateau(self) -> schedules.Plateau | None:
        """The 'plateau' schedule's feedback piece (:func:`core.schedules.plateau`), None for any other
        schedule. The loop feeds it :attr:`lr_monitor` after each epoch's step (its contract is in
        :mod:`core.schedules`); :meth:`schedule` gives the base rate, epoch 0's."""
        if self.lr_schedule != "plateau":
            return None
        return schedules.plateau(self.learning_rate, **self.schedule_options())

    def _check_plateau(self) -> None:
        if self.lr_schedule != "plateau" or self.lr_monitor != "val_loss":
            return
        if self.dataset in TEST_FUNCTIONS:
            raise ValueError(f"lr_monitor val_loss needs a validation split; {self.dataset} has no data to split")
        if self.validation_fraction == 0:
            raise ValueError("lr_monitor val_loss needs a validation split: set validation_fraction > 0")

    # What core.training.load_data reads: configs with equal data keys load the same arrays (the
    # dtype and the layout that batch_size picks, the split that seed draws, a classifier's labels).
    DATA_FIELDS = (
        "dataset",
        "target",
        "n_samples",
        "n_features",
        "n_informative",
        "noise",
        "data_seed",
        "model",
        "dtype",
        "batch_size",
        "validation_fraction",
        "seed",
        "standardize",
    )
    # The data fields that set how the arrays are stored (precision, layout), not which rows they hold.
    LAYOUT_FIELDS = ("dtype", "batch_size")

    def data_key(self, layout: bool = True) -> tuple:
        """The identity of the data this config loads, the one the worker's cache, the report's
        surfaces and the reuse check go by: :data:`DATA_FIELDS`' values, None for those the run
        does not read (another dataset's options; the seed when there is no split to draw).
        Without ``layout`` the same rows in another dtype or layout have the same key."""
        unused = unused_options({option_name(f.name): getattr(self, f.name) for f in fields(self)})
        if self.validation_fraction == 0:
            unused.add("seed")  # load_data draws nothing else with it
        values = {f: None if f in unused else getattr(self, f) for f in self.DATA_FIELDS}
        if self.dataset != "synthetic" and values["model"] is not None:  # (synthetic: the teacher's kind)
            values["model"] = "labels" if self.model == "logistic" else "targets"  # what load_data reads of it
        return tuple(v for f, v in values.items() if layout or f not in self.LAYOUT_FIELDS)

    def problem_key(self) -> tuple:
        """What makes two runs' losses comparable: the rows they train on (:meth:`data_key` without
        the layout: a classifier's labels, so its log loss, are part of it) and a test function's
        kappa. Not what a comparison compares: optimizer, rate, penalty, relu or linear, width, bias."""
        kappa = self.condition_number if self.dataset in FUNCTION_OPTIONS else None
        return (*self.data_key(layout=False), kappa)

    def surface_key(self) -> tuple:
        """The identity of the loss surface a run moves on: its problem and its parameters (a bias)."""
        return (*self.problem_key(), self.fit_intercept)

    def optimizer_hyper(self) -> dict:
        """The chosen optimizer's hyperparameters, torch's defaults filled in."""
        defaults = optimizers.DEFAULTS[self.optimizer]
        return {k: (d if getattr(self, k) is None else getattr(self, k)) for k, d in defaults.items()}

    @classmethod
    def from_params(cls, params: dict) -> TrainConfig:
        """The config a run's logged params describe: the inverse of :meth:`params`.

        ``params`` maps CLI names (``_`` form, ``lambda``) to values as MLflow keeps them
        (strings: "0.01", "true"); an option that is not there takes its default, names that are
        not options are ignored. Raises ValueError for a value that does not parse or validate.
        """
        kwargs = {}
        for f in fields(cls):
            raw = params.get(option_name(f.name))
            optional = f.default is None  # an optimizer's option: a number, or absent (torch's default)
            if raw is None or raw == "None" or (optional and str(raw).lower() == "none"):
                continue
            kwargs[f.name] = spec_of(f).codec.parse(str(raw), f.name)
        return cls(**kwargs)

    def params(self) -> dict:
        """The options that act on this run, resolved, under their CLI names (with ``_``), for logging:
        the chosen optimizer's hyperparameters (torch's defaults filled in), the penalty's and the
        schedule's own options when there are any, the generator's for synthetic data, and the
        options every run reads. :func:`unused_options` says which are left out.
        """
        out = {option_name(k): v for k, v in asdict(self).items()}
        out.update(self.optimizer_hyper())
        unused = unused_options(out)
        return {k: v for k, v in out.items() if k not in unused}


# ----------------------------------------------------------------------- derived from the fields

# Every option under its CLI name ("_" form): its field (default, type) and spec (core.schema.Spec).
OPTIONS = {spec_of(f).name or f.name: f for f in fields(TrainConfig)}
SPECS = {name: spec_of(f) for name, f in OPTIONS.items()}
_OPTION_NAMES = {f.name: name for name, f in OPTIONS.items()}
GROUPS = {group: tuple(o for o, spec in SPECS.items() if spec.group == group) for group in schema.GROUPS}
# Who reads an option that not every run reads, by what reads it (the optimizers' and the
# schedules' read off their builders' signatures; the datasets' and penalties' from the specs).
OPTIMIZER_OPTIONS = {name: tuple(d) for name, d in optimizers.DEFAULTS.items()}
SCHEDULE_OPTIONS = {name: tuple(f"lr_{k}" for k in d) for name, d in schedules.DEFAULTS.items() if d}
PENALTY_OPTIONS = {
    p: own for p in penalties.PENALTIES if (own := tuple(o for o, spec in SPECS.items() if p in spec.penalties))
}
DATASET_OPTIONS = {o: spec.datasets for o, spec in SPECS.items() if spec.datasets}
SYNTHETIC_OPTIONS = tuple(o for o, readers in DATASET_OPTIONS.items() if "synthetic" in readers)
# The options each test function reads besides the point (ill_conditioned's kappa).
FUNCTION_OPTIONS = {
    fn: own for fn in TEST_FUNCTIONS if (own := tuple(o for o, r in DATASET_OPTIONS.items() if fn in r))
}
# The options a test function never reads (it has no data, no model, no batches, no split): the
# data and model ones are refused when set (steps.run.runner), the loop ones by TrainConfig.
FUNCTION_IGNORES = tuple(
    o
    for o, spec in SPECS.items()
    if spec.test_function == "ignores" or (spec.datasets and not set(spec.datasets) & set(TEST_FUNCTIONS))
)
FUNCTION_REFUSES = tuple(o for o, spec in SPECS.items() if spec.test_function == "refuses")
# Options that act only when another option has a value of its own, and what to say otherwise.
NEEDS = {o: spec.needs for o, spec in SPECS.items() if spec.needs}
# Which choice owns an option, for the message that refuses it (steps.run.runner).
OWNERS = (
    ("optimizer", OPTIMIZER_OPTIONS),
    ("penalty", PENALTY_OPTIONS),
    ("lr_schedule", SCHEDULE_OPTIONS),
    ("dataset", FUNCTION_OPTIONS),
)


def option_name(field: str) -> str:
    """The CLI name (``_`` form) of a :class:`TrainConfig` field: ``lam`` is ``lambda``, which is
    a Python keyword; every other field has its option's name."""
    return _OPTION_NAMES.get(field, field)
