"""Learning-rate schedules: the rate for epoch e (0-based), given the base rate.

The rate is set once per epoch, as torch's ``lr_scheduler`` classes are stepped once per
epoch, and each schedule equals its torch class epoch for epoch (``tests/test_core_schedules.py``
checks whole sequences against torch):

    constant         lr
    step             lr * gamma ** (e // step_size)                  (StepLR)
    multistep        lr * gamma ** (number of milestones <= e)       (MultiStepLR)
    exponential      lr * gamma ** e                                  (ExponentialLR)
    linear           lr * (start + (end - start) * min(e, T) / T)     (LinearLR, T = total_iters)
    cosine           lr (1 + cos(pi e / E)) / 2                       (CosineAnnealingLR, T_max = E
                                                                       epochs, eta_min = 0)
    cosine_restarts  eta_min + (lr - eta_min) (1 + cos(pi T_cur / T_i)) / 2, restarting after
                     T_0, T_0 T_mult, T_0 T_mult^2, ... epochs       (CosineAnnealingWarmRestarts)
    invscaling       lr / (e + 1) ** power                            (scikit-learn's invscaling)

``warmup_epochs`` W > 0 puts a linear warmup in front, as ``SequentialLR([LinearLR(start_factor=
warmup_start_factor, total_iters=W), schedule], milestones=[W])`` does: the rate climbs from
``warmup_start_factor * lr`` to ``lr`` over W epochs, then the schedule starts from its epoch 0
(a cosine then anneals over the E - W epochs left).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

SCHEDULES = ("constant", "step", "multistep", "exponential", "linear", "cosine", "cosine_restarts", "invscaling")


def make(
    name: str,
    lr: float,
    *,
    epochs: int,
    step_size: int = 30,
    gamma: float = 0.1,
    power: float = 0.25,
    milestones: tuple[int, ...] = (),
    start_factor: float = 1 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
    t0: int = 10,
    t_mult: int = 1,
    eta_min: float = 0.0,
    warmup_epochs: int = 0,
    warmup_start_factor: float = 1 / 3,
) -> Callable[[int], float]:
    """The schedule ``name`` as a function of the epoch; refuses what no schedule could use."""
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    for factor, what in ((start_factor, "start_factor"), (end_factor, "end_factor"), (warmup_start_factor, "warmup")):
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"{what} must be in (0, 1], got {factor}")
    if total_iters < 1 or t0 < 1 or t_mult < 1 or warmup_epochs < 0:
        raise ValueError("total_iters, T_0 and T_mult must be >= 1, warmup_epochs >= 0")
    if any(m < 0 for m in milestones):
        raise ValueError(f"milestones must be epochs >= 0, got {list(milestones)}")
    main = _schedule(name, lr, epochs - warmup_epochs, step_size, gamma, power, sorted(milestones),
                     start_factor, end_factor, total_iters, t0, t_mult, eta_min)  # fmt: skip
    if not warmup_epochs:
        return main
    rise = (1.0 - warmup_start_factor) / warmup_epochs
    return lambda e: lr * (warmup_start_factor + rise * e) if e < warmup_epochs else main(e - warmup_epochs)


def _schedule(name, lr, epochs, step_size, gamma, power, milestones, start, end, total, t0, t_mult, eta_min):
    if name == "constant":
        return lambda e: lr
    if name == "step":
        return lambda e: lr * gamma ** (e // step_size)
    if name == "multistep":
        return lambda e: lr * gamma ** bisect.bisect_right(milestones, e)
    if name == "exponential":
        return lambda e: lr * gamma**e
    if name == "linear":
        return lambda e: lr * (start + (end - start) * min(e, total) / total)
    if name == "cosine":
        return lambda e: lr * (1.0 + math.cos(math.pi * e / epochs)) / 2.0
    if name == "cosine_restarts":
        return lambda e: eta_min + (lr - eta_min) * (1.0 + math.cos(math.pi * _restart(e, t0, t_mult))) / 2.0
    if name == "invscaling":
        return lambda e: lr / (e + 1) ** power
    raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")


def _restart(e: int, t0: int, t_mult: int) -> float:
    """T_cur / T_i of CosineAnnealingWarmRestarts at epoch e (integer arithmetic, as torch steps it)."""
    t_i, t_cur = t0, e
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= t_mult
    return t_cur / t_i
