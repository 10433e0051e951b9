"""Learning-rate schedules: the rate for epoch e (0-based), given the base rate.

The rate is set once per epoch, as torch's ``lr_scheduler`` classes are stepped
once per epoch:

    constant     lr
    step         lr * gamma ** (e // step_size)               (torch StepLR)
    exponential  lr * gamma ** e                               (torch ExponentialLR)
    cosine       lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2 (torch CosineAnnealingLR,
                                                                T_max = E epochs, eta_min = 0)
    invscaling   lr / (e + 1) ** power                          (scikit-learn's invscaling)
"""

from __future__ import annotations

import math
from collections.abc import Callable

SCHEDULES = ("constant", "step", "exponential", "cosine", "invscaling")


def make(
    name: str, lr: float, *, epochs: int, step_size: int = 30, gamma: float = 0.1, power: float = 0.25
) -> Callable[[int], float]:
    """The schedule ``name`` as a function of the epoch; refuses what no schedule could use."""
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if name == "constant":
        return lambda e: lr
    if name == "step":
        return lambda e: lr * gamma ** (e // step_size)
    if name == "exponential":
        return lambda e: lr * gamma**e
    if name == "cosine":
        return lambda e: lr * (1.0 + math.cos(math.pi * e / epochs)) / 2.0
    if name == "invscaling":
        return lambda e: lr / (e + 1) ** power
    raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
