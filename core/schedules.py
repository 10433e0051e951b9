"""Learning-rate schedules: the rate for epoch e (0-based), given the base rate.

The rate is set once per epoch, as torch's ``lr_scheduler`` classes are stepped once per
epoch, and each schedule equals its torch class epoch for epoch (``tests/test_core_schedules.py``
checks whole sequences against torch):

    constant         lr
    step             lr * gamma ** (e // step_size)                  (StepLR)
    multistep        lr * gamma ** (number of milestones <= e)       (MultiStepLR)
    exponential      lr * gamma ** e                                  (ExponentialLR)
    linear           lr * (start + (end - start) * min(e, T) / T)     (LinearLR, T = total_iters)
    polynomial       lr * (1 - min(e, T) / T) ** power                (PolynomialLR, T = total_iters)
    cosine           eta_min + (lr - eta_min) (1 + cos(pi e / E)) / 2 (CosineAnnealingLR, T_max = E
                                                                       epochs)
    cosine_restarts  eta_min + (lr - eta_min) (1 + cos(pi T_cur / T_i)) / 2, restarting after
                     T_0, T_0 T_mult, T_0 T_mult^2, ... epochs       (CosineAnnealingWarmRestarts)
    onecycle         lr / div_factor up to lr (the peak) over pct_start E epochs, then down to
                     lr / div_factor / final_div_factor              (OneCycleLR, total_steps = E,
                                                                       cycle_momentum=False)
    cyclic           between lr (the base) and max_lr, up in step_size_up epochs, down in
                     step_size_down                                  (CyclicLR, cycle_momentum=False)
    plateau          lr, times factor whenever the monitored loss stops falling: see plateau()
                                                                     (ReduceLROnPlateau)
    invscaling       lr / (e + 1) ** power                            (scikit-learn's invscaling)

``warmup_epochs`` W > 0 puts a linear warmup in front, as ``SequentialLR([LinearLR(start_factor=
warmup_start_factor, total_iters=W), schedule], milestones=[W])`` does: the rate climbs from
``warmup_start_factor * lr`` to ``lr`` over W epochs, then the schedule starts from its epoch 0
(a cosine then anneals over the E - W epochs left). ``onecycle`` has a warmup of its own
(``pct_start``) and ``plateau`` cannot follow one (torch's SequentialLR refuses ReduceLROnPlateau):
both refuse ``warmup_epochs``.

OneCycleLR and CyclicLR also cycle the optimizer's momentum (or Adam's beta1) by default.
gdlab's optimizers take their momentum as a fixed hyperparameter, so ``onecycle`` and ``cyclic``
change the learning rate only: they equal torch's classes built with ``cycle_momentum=False``.

``plateau`` needs feedback, so it is not a function of the epoch: :func:`plateau` is a small
optax-style pair ``init() -> state``, ``update(metric, state) -> (lr, state)``, equal to torch's
``ReduceLROnPlateau`` (mode 'min') fed the same metrics. The training loop's contract: after
epoch e's step, the monitored loss measured at the start of epoch e (the value logged for
epoch e) is fed to ``update``; the rate it returns is the rate of epoch e + 1. That is torch's
``loss = f(theta); loss.backward(); opt.step(); scheduler.step(loss.item())``. :func:`make`
gives ``plateau``'s rate before any feedback: the constant base rate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from .schema import keyword_defaults

ANNEAL_STRATEGIES = ("cos", "linear")
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")
THRESHOLD_MODES = ("rel", "abs")
# The losses the plateau schedule can monitor (the metrics the loop logs each epoch).
MONITORS = ("loss", "val_loss")
# Schedules with a warmup of their own (onecycle), or that torch's SequentialLR cannot hold (plateau).
NO_WARMUP = ("onecycle", "plateau")

Schedule = Callable[[int], float]


def _at_least(value, low, name: str) -> None:
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _factor(value: float, name: str) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def _lowest(eta_min: float, lr: float) -> None:
    if not 0.0 <= eta_min <= lr:
        raise ValueError(f"eta_min must be >= 0 and at most the learning rate ({lr}): it is the lowest rate")


def constant(lr: float, *, epochs: int) -> Schedule:
    """The rate never changes."""
    return lambda e: lr


def step(lr: float, *, epochs: int, step_size: int = 30, gamma: float = 0.1) -> Schedule:
    """torch's ``StepLR``: times ``gamma`` every ``step_size`` epochs."""
    _at_least(step_size, 1, "step_size")
    _factor(gamma, "gamma")
    return lambda e: lr * gamma ** (e // step_size)


def multistep(lr: float, *, epochs: int, milestones: tuple[int, ...] = (30, 60, 90), gamma: float = 0.1) -> Schedule:
    """torch's ``MultiStepLR``: times ``gamma`` at each milestone (an epoch)."""
    if any(m < 0 for m in milestones):
        raise ValueError(f"milestones must be epochs >= 0, got {list(milestones)}")
    _factor(gamma, "gamma")
    marks = sorted(milestones)
    return lambda e: lr * gamma ** bisect.bisect_right(marks, e)


def exponential(lr: float, *, epochs: int, gamma: float = 0.1) -> Schedule:
    """torch's ``ExponentialLR``: times ``gamma`` each epoch."""
    _factor(gamma, "gamma")
    return lambda e: lr * gamma**e


def linear(
    lr: float, *, epochs: int, start_factor: float = 1 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> Schedule:
    """torch's ``LinearLR``: the factor goes from ``start_factor`` to ``end_factor`` over ``total_iters`` epochs."""
    _factor(start_factor, "start_factor")
    _factor(end_factor, "end_factor")
    _at_least(total_iters, 1, "total_iters")
    return lambda e: lr * (start_factor + (end_factor - start_factor) * min(e, total_iters) / total_iters)


def cosine(lr: float, *, epochs: int, eta_min: float = 0.0) -> Schedule:
    """torch's ``CosineAnnealingLR`` with T_max = the epochs: from ``lr`` down to ``eta_min``."""
    _lowest(eta_min, lr)
    return lambda e: eta_min + (lr - eta_min) * (1.0 + math.cos(math.pi * e / epochs)) / 2.0


def cosine_restarts(lr: float, *, epochs: int, t0: int = 10, t_mult: int = 1, eta_min: float = 0.0) -> Schedule:
    """torch's ``CosineAnnealingWarmRestarts``: to ``eta_min`` over ``t0`` epochs, then over
    ``t0 * t_mult``, and so on."""
    _at_least(t0, 1, "T_0")
    _at_least(t_mult, 1, "T_mult")
    _lowest(eta_min, lr)
    return lambda e: eta_min + (lr - eta_min) * (1.0 + math.cos(math.pi * _restart(e, t0, t_mult))) / 2.0


def invscaling(lr: float, *, epochs: int, power: float = 0.25) -> Schedule:
    """scikit-learn's ``invscaling``: lr / (e + 1) ** power."""
    _at_least(power, 0.0, "power")
    return lambda e: lr / (e + 1) ** power


def _restart(e: int, t0: int, t_mult: int) -> float:
    """T_cur / T_i of CosineAnnealingWarmRestarts at epoch e (integer arithmetic, as torch steps it)."""
    t_i, t_cur = t0, e
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= t_mult
    return t_cur / t_i


# --------------------------------------------------------------------------- polynomial, onecycle, cyclic


def polynomial(lr: float, *, epochs: int, total_iters: int = 5, poly_power: float = 1.0) -> Schedule:
    r"""torch's ``PolynomialLR``: the rate falls from ``lr`` to 0 over ``total_iters`` epochs,

    .. math:: \eta_e = \eta \, (1 - \min(e, T) / T)^{p}, \qquad T = \text{total\_iters},\ p = \text{poly\_power}

    and stays 0 from epoch T on (power 1, torch's default, is a straight line). ``poly_power`` is
    torch's ``power`` (gdlab's ``power`` is :func:`invscaling`'s).
    """
    _at_least(total_iters, 1, "total_iters")
    if not poly_power >= 0.0:
        raise ValueError(f"power must be >= 0, got {poly_power}")
    return lambda e: lr * (1.0 - min(e, total_iters) / total_iters) ** poly_power


def onecycle(
    lr: float,
    *,
    epochs: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    r"""torch's ``OneCycleLR`` with ``cycle_momentum=False`` (the rate only; momentum stays as set);
    ``lr`` is its ``max_lr`` and ``epochs`` its ``total_steps``.

    From :math:`\eta_0 = \eta_{max} / \text{div\_factor}` the rate anneals (``cos``:
    :math:`b + (a - b)(1 + \cos \pi t) / 2`, or ``linear``: :math:`a + (b - a) t`, t in [0, 1]
    the position within the phase) up to :math:`\eta_{max}` until step
    :math:`s = \text{pct\_start} \cdot T - 1`, then down to
    :math:`\eta_{min} = \eta_0 / \text{final\_div\_factor}` at step T - 1. With ``three_phase`` it
    comes back to :math:`\eta_0` at step 2 s, symmetrically, and only then anneals to
    :math:`\eta_{min}`. A step is an epoch here, so T (``total_steps``) is the number of epochs.
    """
    max_lr, total_steps = lr, epochs
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= pct_start <= 1.0:
        raise ValueError(f"pct_start must be in [0, 1], got {pct_start}")
    if anneal_strategy not in ANNEAL_STRATEGIES:
        raise ValueError(f"anneal_strategy must be one of {', '.join(ANNEAL_STRATEGIES)}, got {anneal_strategy!r}")
    if not (div_factor >= 1.0 and final_div_factor >= 1.0):
        raise ValueError(f"div_factor and final_div_factor must be >= 1, got {div_factor}, {final_div_factor}")
    initial = max_lr / div_factor
    low = initial / final_div_factor
    peak = float(pct_start * total_steps) - 1  # torch's phase ends, in its order of operations
    phases = [(peak, initial, max_lr), (total_steps - 1, max_lr, low)]
    if three_phase:
        phases[1:] = [(float(2 * pct_start * total_steps) - 2, max_lr, initial), (total_steps - 1, initial, low)]
    anneal = _anneal_cos if anneal_strategy == "cos" else _anneal_linear

    def rate(e: int) -> float:
        start = 0.0
        for i, (end, a, b) in enumerate(phases):
            if e <= end or i == len(phases) - 1:
                return anneal(a, b, (e - start) / (end - start))
            start = end
        raise AssertionError("unreachable")

    # A phase of length 0 is reached only at step 0 (the first phase) or at step T (the last phase,
    # which torch's loop computes after the last epoch): torch divides by zero there; refuse it here.
    for e in (0, total_steps):
        try:
            rate(e)
        except ZeroDivisionError:
            raise ValueError(
                f"onecycle: pct_start {pct_start} over {total_steps} epochs makes a phase of the cycle 0 epochs "
                f"long (torch's OneCycleLR divides by zero at step {e}); choose another pct_start"
            ) from None
    return rate


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


def cyclic(
    lr: float,
    *,
    epochs: int,
    max_lr: float = 0.1,
    step_size_up: int = 10,
    step_size_down: int = 0,
    mode: str = "triangular",
    cyclic_gamma: float = 1.0,
) -> Schedule:
    r"""torch's ``CyclicLR`` with ``cycle_momentum=False`` (the rate only; momentum stays as set);
    ``lr`` is its ``base_lr`` and ``cyclic_gamma`` its ``gamma`` (gdlab's ``gamma`` is :func:`step`'s).

    With :math:`u` = ``step_size_up``, :math:`d` = ``step_size_down`` (0: the same as u) and the
    cycle :math:`c = \lfloor 1 + e / (u + d) \rfloor`, :math:`x = 1 + e / (u + d) - c`:

    .. math::
        \eta_e = \eta_{base} + (\eta_{max} - \eta_{base}) \, h(x) \, s, \qquad
        h(x) = \begin{cases} x (u + d) / u & x \le u / (u + d) \\ (1 - x) (u + d) / d & \text{else} \end{cases}

    with s = 1 (``triangular``), :math:`2^{1 - c}` (``triangular2``: each cycle half as high) or
    :math:`\gamma^e` (``exp_range``). torch's default step_size_up is 2000 *batches*; gdlab steps
    once an epoch, and its default is 10 epochs.
    """
    base_lr, gamma = lr, cyclic_gamma
    if max_lr < base_lr:
        raise ValueError(f"max_lr ({max_lr}) must be >= the base learning rate ({base_lr})")
    if step_size_up < 1 or step_size_down < 0:
        raise ValueError(f"step_size_up must be >= 1 and step_size_down >= 0, got {step_size_up}, {step_size_down}")
    if mode not in CYCLIC_MODES:
        raise ValueError(f"mode must be one of {', '.join(CYCLIC_MODES)}, got {mode!r}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    up = float(step_size_up)
    total = up + (float(step_size_down) if step_size_down else up)
    ratio = up / total

    def rate(e: int) -> float:  # torch's get_lr, term for term
        cycle = math.floor(1 + e / total)
        x = 1.0 + e / total - cycle
        height = (max_lr - base_lr) * (x / ratio if x <= ratio else (x - 1) / (ratio - 1))
        if mode == "triangular":
            return base_lr + height * 1.0
        if mode == "triangular2":
            return base_lr + height * (1 / (2.0 ** (cycle - 1)))
        return base_lr + height * gamma**e

    return rate


# --------------------------------------------------------------------------- plateau (feedback)


class PlateauState(NamedTuple):
    lr: float  # the rate of the next epoch
    best: float  # the lowest metric so far (inf before the first)
    num_bad_epochs: int  # metrics in a row that were not better than best (by threshold)
    cooldown_counter: int  # epochs left in which bad epochs are not counted


class Plateau(NamedTuple):
    """``init() -> state`` and ``update(metric, state) -> (lr, state)`` (see :func:`plateau`)."""

    init: Callable[[], PlateauState]
    update: Callable[[float, PlateauState], tuple[float, PlateauState]]


def plateau(
    lr: float,
    *,
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    monitor: str = "loss",
    eps: float = 1e-8,
) -> Plateau:
    r"""torch's ``ReduceLROnPlateau`` in mode 'min', as a pure pair: the rate falls when the metric
    stops falling.

    Each ``update(m, state)``: m is better when :math:`m < \text{best}\,(1 - \text{threshold})`
    (``rel``) or :math:`m < \text{best} - \text{threshold}` (``abs``); then best = m and the bad
    count restarts, else it grows by one. During a cooldown (``cooldown`` updates after each
    reduction) bad epochs are not counted. When the count exceeds ``patience``:

    .. math:: \eta \leftarrow \max(\eta \cdot \text{factor}, \text{min\_lr})
              \quad \text{if the rate falls by more than eps}

    and the cooldown starts. ``init()`` starts at ``lr`` with best = inf. The caller feeds each
    epoch's ``monitor`` loss (one of :data:`MONITORS`, as the loop logs it; Keras's
    ReduceLROnPlateau names it so) after that epoch's step; the rate returned is the next epoch's.
    """
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    if patience < 0 or cooldown < 0:
        raise ValueError(f"patience and cooldown must be >= 0, got {patience}, {cooldown}")
    if not threshold >= 0.0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if threshold_mode not in THRESHOLD_MODES:
        raise ValueError(f"threshold_mode must be one of {', '.join(THRESHOLD_MODES)}, got {threshold_mode!r}")
    if not 0.0 <= min_lr < lr:
        raise ValueError(f"min_lr must be >= 0 and below the learning rate ({lr}), else the rate never falls")
    if not eps >= 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if monitor not in MONITORS:
        raise ValueError(f"lr_monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
    rel = threshold_mode == "rel"

    def init() -> PlateauState:
        return PlateauState(lr=lr, best=math.inf, num_bad_epochs=0, cooldown_counter=0)

    def update(metric: float, state: PlateauState) -> tuple[float, PlateauState]:
        current = float(metric)
        rate, best, bad, cool = state
        if current < (best * (1.0 - threshold) if rel else best - threshold):
            best, bad = current, 0
        else:
            bad += 1
        if cool > 0:  # in cooldown: bad epochs do not count
            cool, bad = cool - 1, 0
        if bad > patience:
            new = max(rate * factor, min_lr)
            if rate - new > eps:
                rate = new
            cool, bad = cooldown, 0
        return rate, PlateauState(rate, best, bad, cool)

    return Plateau(init, update)


# --------------------------------------------------------------------------- the schedules by name


def _plateau_rate(lr: float, *, epochs: int, **options) -> Schedule:
    """plateau's rate before any feedback, the constant base rate (its feedback piece is
    :func:`plateau`, which checks ``options``)."""
    plateau(lr, **options)
    return lambda e: lr


# Each schedule's builder: ``builder(lr, *, epochs, **its options)``. Its keyword-only arguments
# after ``epochs`` are the options the schedule reads (gdlab's --lr-<name> options), with their
# defaults: the one statement of both, as core.optimizers' builders are for the optimizers.
BUILDERS: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step": step,
    "multistep": multistep,
    "exponential": exponential,
    "linear": linear,
    "polynomial": polynomial,
    "cosine": cosine,
    "cosine_restarts": cosine_restarts,
    "onecycle": onecycle,
    "cyclic": cyclic,
    "plateau": plateau,
    "invscaling": invscaling,
}
SCHEDULES = tuple(BUILDERS)
# The options each schedule reads and their defaults; not options: the run's length, plateau's eps (torch's).
DEFAULTS: dict[str, dict[str, Any]] = keyword_defaults(BUILDERS, leave_out=("epochs", "eps"))


def default(option: str) -> Any:
    """A schedule option's default, the same in every builder that reads it (tests check they agree)."""
    return next(d[option] for d in DEFAULTS.values() if option in d)


def make(
    name: str, lr: float, *, epochs: int, warmup_epochs: int = 0, warmup_start_factor: float = 1 / 3, **options
) -> Schedule:
    """The schedule ``name`` as a function of the epoch, with its own ``options`` (its builder's
    keywords; an option of another schedule is a TypeError) and an optional linear warmup."""
    if name not in BUILDERS:
        raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    _at_least(warmup_epochs, 0, "warmup_epochs")
    _factor(warmup_start_factor, "warmup")
    if warmup_epochs and name in NO_WARMUP:
        why = "has a warmup of its own (pct_start)" if name == "onecycle" else "cannot follow a warmup"
        raise ValueError(f"the {name} schedule {why}: leave warmup_epochs at 0")
    if warmup_epochs >= epochs > 0:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) must be fewer than the epochs ({epochs}), else the "
                         f"{name} schedule never starts and the rate never reaches {lr}")  # fmt: skip
    builder = _plateau_rate if name == "plateau" else BUILDERS[name]
    main = builder(lr, epochs=epochs - warmup_epochs, **options)
    if not warmup_epochs:
        return main
    rise = (1.0 - warmup_start_factor) / warmup_epochs
    return lambda e: lr * (warmup_start_factor + rise * e) if e < warmup_epochs else main(e - warmup_epochs)
