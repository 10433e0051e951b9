"""The frozen configuration of one training run: every option, resolved.

Click builds it at the edge (``steps``); ``core`` only reads it. Field names are
the CLI option names with ``_`` for ``-`` (``lambda`` is ``lam`` here, since
``lambda`` is a Python keyword); :meth:`TrainConfig.params` gives them back under
their CLI names for logging.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, fields

from . import functions, models, optimizers, schedules
from .mlp import check_hidden
from .penalties import Penalty

# The options each optimizer reads (everything else is data, model or loop).
DTYPES = ("float64", "float32")
OPTIMIZER_OPTIONS = {name: tuple(d) for name, d in optimizers.DEFAULTS.items()}
SYNTHETIC_OPTIONS = ("n_samples", "n_features", "n_informative", "noise", "data_seed")
TEST_FUNCTIONS = functions.NAMES
BUILT_IN_DATASETS = ("seed", "synthetic", *TEST_FUNCTIONS)
# The options each test function reads besides the point (ill_conditioned's kappa).
FUNCTION_OPTIONS = {"ill_conditioned": ("condition_number",)}
# The options a test function never reads: it has no data, no model, no batches, no split. The
# data and model ones are refused when set (steps.runner), the loop ones by TrainConfig.
FUNCTION_IGNORES = (*SYNTHETIC_OPTIONS, "target", "model", "hidden")
FUNCTION_REFUSES = ("fit_intercept", "standardize", "batch_size", "validation_fraction", "patience")
# How a run without hidden layers logs --hidden (steps.options.as_param), or an empty list.
NO_LAYERS = ("", "none")
# The schedule options each schedule reads.
SCHEDULE_OPTIONS = {
    "step": ("lr_step_size", "lr_gamma"),
    "multistep": ("lr_milestones", "lr_gamma"),
    "exponential": ("lr_gamma",),
    "linear": ("lr_start_factor", "lr_end_factor", "lr_total_iters"),
    "polynomial": ("lr_total_iters", "lr_poly_power"),
    "cosine_restarts": ("lr_t0", "lr_t_mult", "lr_eta_min"),
    "onecycle": ("lr_pct_start", "lr_anneal_strategy", "lr_div_factor", "lr_final_div_factor", "lr_three_phase"),
    "cyclic": ("lr_max_lr", "lr_step_size_up", "lr_step_size_down", "lr_mode", "lr_cyclic_gamma"),
    "plateau": (
        "lr_factor",
        "lr_patience",
        "lr_threshold",
        "lr_threshold_mode",
        "lr_cooldown",
        "lr_min_lr",
        "lr_monitor",
    ),
    "invscaling": ("lr_power",),
}
# The losses the plateau schedule can monitor (the metrics the loop logs each epoch).
MONITORS = ("loss", "val_loss")
# The penalty options each penalty reads.
PENALTY_OPTIONS = {"l1": ("lambda", "l1_method"), "l2": ("lambda",), "elasticnet": ("lambda", "l1_ratio", "l1_method")}


# core.schedules.make's keywords (its options), each read from the TrainConfig field schedule_field names.
SCHEDULE_KEYWORDS = tuple(
    p.name
    for p in inspect.signature(schedules.make).parameters.values()
    if p.kind is p.KEYWORD_ONLY and p.name != "epochs"
)


def schedule_field(keyword: str) -> str:
    """The TrainConfig field of a keyword of :func:`core.schedules.make`: ``gamma`` is ``lr_gamma``,
    the warmup's keep their names."""
    return keyword if keyword.startswith("warmup_") else f"lr_{keyword}"


def option_name(field: str) -> str:
    """The CLI name (``_`` form) of a :class:`TrainConfig` field: ``lam`` is ``lambda``, which is
    a Python keyword; every other field has its option's name."""
    return "lambda" if field == "lam" else field


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
        unused.update(o for o in SYNTHETIC_OPTIONS if dataset != "synthetic")
        if dataset in BUILT_IN_DATASETS:
            unused.add("target")
        own = FUNCTION_OPTIONS.get(dataset, ())
        unused.update(o for opts in FUNCTION_OPTIONS.values() for o in opts if o not in own)
        if dataset in TEST_FUNCTIONS:
            unused.update(FUNCTION_IGNORES + FUNCTION_REFUSES)
            if settings.get("init") not in (None, "normal"):
                unused.add("seed")  # nothing is drawn
    layers = settings.get("hidden")  # a tuple of widths, as logged ("16,8", "none"), or parsed (16)
    if layers is not None and _spelled(layers).strip().lower() in NO_LAYERS:
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
    unused.update(o for o in ("clip_norm", "clip_value") if o in settings and number(o) == 0)
    if settings.get("warmup_epochs") is not None and number("warmup_epochs") == 0:
        unused.add("warmup_start_factor")
    batch = number("batch_size")
    if split == 0 and batch == 0 and settings.get("init") not in (None, "normal") and not network:
        unused.add("seed")  # no split to draw, no batches to shuffle, no random start (a network's is)
    return unused


def _spelled(value) -> str:
    """A list option's value as logged: "16,8" for (16, 8), "16" for 16, the string itself."""
    if isinstance(value, str):
        return value
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


@dataclass(frozen=True)
class TrainConfig:
    # data
    dataset: str = "seed"
    target: str = "y"
    n_samples: int = 200
    n_features: int = 10
    n_informative: int = 3
    noise: float = 0.1
    data_seed: int = 0
    condition_number: float = functions.DEFAULT_CONDITION_NUMBER
    validation_fraction: float = 0.0
    dtype: str = "float64"
    standardize: bool = False
    # model
    model: str = "relu"
    hidden: tuple[int, ...] = ()  # ReLU hidden layers' widths in front of the model's unit: () none
    fit_intercept: bool = False
    init: str = "seed"
    # loop
    epochs: int = 100
    batch_size: int = 0
    learning_rate: float = 0.01
    lr_schedule: str = "constant"
    lr_step_size: int = 30
    lr_gamma: float = 0.1
    lr_power: float = 0.25
    lr_milestones: tuple[int, ...] = (30, 60, 90)
    lr_start_factor: float = 1 / 3
    lr_end_factor: float = 1.0
    lr_total_iters: int = 5
    lr_t0: int = 10
    lr_t_mult: int = 1
    lr_eta_min: float = 0.0
    lr_poly_power: float = 1.0
    lr_pct_start: float = 0.3
    lr_anneal_strategy: str = "cos"
    lr_div_factor: float = 25.0
    lr_final_div_factor: float = 1e4
    lr_three_phase: bool = False
    lr_max_lr: float = 0.1
    lr_step_size_up: int = 10
    lr_step_size_down: int = 0
    lr_mode: str = "triangular"
    lr_cyclic_gamma: float = 1.0
    lr_factor: float = 0.1
    lr_patience: int = 10
    lr_threshold: float = 1e-4
    lr_threshold_mode: str = "rel"
    lr_cooldown: int = 0
    lr_min_lr: float = 0.0
    lr_monitor: str = "loss"
    warmup_epochs: int = 0
    warmup_start_factor: float = 1 / 3
    patience: int = 0
    clip_norm: float = 0.0
    clip_value: float = 0.0
    log_every: int = 1
    seed: int = 0
    # optimizer (None: torch.optim's default for the chosen optimizer)
    optimizer: str = "sgd"
    momentum: float | None = None
    dampening: float | None = None
    nesterov: bool | None = None
    beta1: float | None = None
    beta2: float | None = None
    epsilon: float | None = None
    amsgrad: bool | None = None
    weight_decay: float | None = None
    alpha: float | None = None
    centered: bool | None = None
    lr_decay: float | None = None
    momentum_decay: float | None = None
    decoupled_weight_decay: bool | None = None
    rho: float | None = None
    lambd: float | None = None
    t0: float | None = None
    eta_minus: float | None = None
    eta_plus: float | None = None
    step_size_min: float | None = None
    step_size_max: float | None = None
    beta2_decay: float | None = None
    eps1: float | None = None  # None here and in torch: the dtype's machine epsilon
    eps2: float | None = None
    d: float | None = None
    max_iter: int | None = None
    max_eval: int | None = None  # None here and in torch: max_iter * 5 // 4
    tolerance_grad: float | None = None
    tolerance_change: float | None = None
    history_size: int | None = None
    line_search_fn: str | None = None  # None here and in torch: a fixed step
    # penalty
    penalty: str = "none"
    lam: float = 0.0
    l1_ratio: float = 0.5
    l1_method: str = "prox"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{f.name} must be a finite number, got {v}")
        if self.optimizer not in optimizers.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")
        if self.batch_size < 0:
            raise ValueError("batch_size must be >= 0 (0 = full batch)")
        if self.clip_norm < 0 or self.clip_value < 0:
            raise ValueError("clip_norm and clip_value must be >= 0 (0 = no clipping)")
        if self.patience < 0:
            raise ValueError("patience must be >= 0 (0 = no early stopping)")
        self.schedule()  # the schedule's own checks: its name, step size and gamma
        self._check_plateau()
        if self.log_every < 1:
            raise ValueError("log_every must be >= 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.patience and self.validation_fraction == 0 and self.dataset not in TEST_FUNCTIONS:
            raise ValueError("patience (early stopping) needs a validation split: set validation_fraction > 0")
        models.explicit_init(self.init)  # a named init, or finite numbers (counted once the data is known)
        check_hidden(self.hidden)
        if self.hidden and self.init == "zeros":
            raise ValueError("init zeros cannot train a network (every hidden unit stays the same); use seed or normal")
        if self.condition_number < 1:
            raise ValueError(f"condition_number must be >= 1, got {self.condition_number}")
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

    def schedule(self):
        """The learning rate as a function of the epoch (:func:`core.schedules.make`), each of
        ``make``'s keywords taken from the field of the same name with ``lr_`` in front (the
        warmup's as they are): a schedule option is a keyword of ``make`` and a field here, and
        nothing maps one onto the other by hand."""
        kwargs = {name: getattr(self, schedule_field(name)) for name in SCHEDULE_KEYWORDS}
        return schedules.make(self.lr_schedule, self.learning_rate, epochs=self.epochs, **kwargs)

    def plateau(self) -> schedules.Plateau | None:
        """The 'plateau' schedule's feedback piece (:func:`core.schedules.plateau`), None for any other
        schedule. The loop feeds it :attr:`lr_monitor` after each epoch's step (its contract is in
        :mod:`core.schedules`); :meth:`schedule` gives the base rate, epoch 0's."""
        if self.lr_schedule != "plateau":
            return None
        return schedules.plateau(
            self.learning_rate,
            factor=self.lr_factor,
            patience=self.lr_patience,
            threshold=self.lr_threshold,
            threshold_mode=self.lr_threshold_mode,
            cooldown=self.lr_cooldown,
            min_lr=self.lr_min_lr,
        )

    def _check_plateau(self) -> None:
        if self.plateau() is None:  # (building it checks its hyperparameters)
            return
        if self.lr_monitor not in MONITORS:
            raise ValueError(f"lr_monitor must be one of {', '.join(MONITORS)}, got {self.lr_monitor!r}")
        if self.lr_monitor == "val_loss" and self.dataset in TEST_FUNCTIONS:
            raise ValueError(f"lr_monitor val_loss needs a validation split; {self.dataset} has no data to split")
        if self.lr_monitor == "val_loss" and self.validation_fraction == 0:
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

    def data_key(self) -> tuple:
        """The identity of the data this config trains on (:data:`DATA_FIELDS`' values)."""
        return tuple(getattr(self, f) for f in self.DATA_FIELDS)

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
            optional = str(f.type).endswith("| None")  # "float | None": a float, or absent
            if raw is None or raw == "None" or (optional and str(raw).lower() == "none"):
                continue
            kind = str(f.type).split(" | ")[0]
            kwargs[f.name] = _parse(str(raw), kind, f.name)
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


def _parse(raw: str, kind: str, name: str):
    """A logged param's string as the field's type (``kind``: "str", "int", "float", "bool" or a
    tuple of ints, logged comma-separated)."""
    if kind.startswith("tuple"):
        if raw.strip().lower() in NO_LAYERS:  # an empty list
            return ()
        return tuple(_parse(part.strip(), "int", name) for part in raw.split(",") if part.strip())
    if kind == "bool":
        if raw.lower() not in ("true", "false"):
            raise ValueError(f"{name} must be true or false, got {raw!r}")
        return raw.lower() == "true"
    if kind == "int":
        number = float(raw)
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {raw!r}")
        return int(number)
    return float(raw) if kind == "float" else raw
