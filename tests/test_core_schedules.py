"""Learning-rate schedules: values at a few epochs, and that the loop uses them once per epoch."""

from __future__ import annotations

import math

import pytest

from core import schedules, training
from core.config import TrainConfig


def values(name, lr=0.1, epochs=100, at=(), **kw):
    f = schedules.make(name, lr, epochs=epochs, **kw)
    return [f(e) for e in at]


def test_constant_schedule_never_changes():
    assert values("constant", at=(0, 1, 50, 99)) == [0.1] * 4


def test_step_schedule_multiplies_by_gamma_every_step_size_epochs():
    got = values("step", at=(0, 29, 30, 59, 60, 99), step_size=30, gamma=0.1)
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.0001], rel=1e-15)


def test_step_schedule_defaults_are_torch_steplr_like_30_and_0_1():
    assert values("step", at=(29, 30)) == pytest.approx([0.1, 0.01], rel=1e-15)


def test_exponential_schedule_is_gamma_to_the_epoch():
    assert values("exponential", lr=0.8, at=(0, 1, 3), gamma=0.5) == [0.8, 0.4, 0.1]


def test_cosine_schedule_goes_from_lr_to_zero_over_the_run():
    got = values("cosine", lr=0.1, epochs=100, at=(0, 25, 50, 75, 100))
    half_sqrt2 = math.sqrt(2) / 2
    expected = [0.1, 0.05 * (1 + half_sqrt2), 0.05, 0.05 * (1 - half_sqrt2), 0.0]
    assert got == pytest.approx(expected, rel=1e-14, abs=1e-17)


def test_invscaling_divides_by_epoch_plus_one_to_the_power():
    assert values("invscaling", lr=0.6, at=(0, 15, 80)) == pytest.approx([0.6, 0.3, 0.2], rel=1e-15)  # power 0.25
    assert values("invscaling", lr=0.6, at=(0, 3, 8), power=0.5) == pytest.approx([0.6, 0.3, 0.2], rel=1e-15)


def test_unknown_schedule_and_bad_step_size_are_refused():
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        schedules.make("linear", 0.1, epochs=10)
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        schedules.make("step", 0.1, epochs=10, step_size=0)


def test_training_uses_the_schedules_rate_for_each_epoch():
    # gamma 1e-300 makes the step schedule's rate ~1e-302 from epoch 5 on, far below one ulp of
    # the weights: training 20 epochs must then end exactly where 5 constant-rate epochs end.
    def weights(**kw):
        cfg = TrainConfig(**kw)
        return training.fit(cfg, training.load_data(cfg)).weights

    assert weights(lr_schedule="step", lr_step_size=5, lr_gamma=1e-300, epochs=20) == weights(epochs=5)
    assert weights(lr_schedule="cosine") != weights()
