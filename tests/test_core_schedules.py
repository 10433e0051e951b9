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
    with pytest.raises(ValueError, match="unknown schedule 'bogus'"):
        schedules.make("bogus", 0.1, epochs=10)
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


# --------------------------------------------------------------------------- against torch.optim.lr_scheduler


def torch_rates(make_scheduler, lr: float, epochs: int) -> list[float]:
    """The rate each epoch steps with, as torch's scheduler sets it (stepped once per epoch)."""
    torch = pytest.importorskip("torch", exc_type=ImportError)
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    scheduler = make_scheduler(torch.optim.lr_scheduler, opt)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return rates


TORCH_SCHEDULES = [
    ("constant", {}, lambda S, o: S.ConstantLR(o, factor=1.0)),
    ("step", {"step_size": 7, "gamma": 0.5}, lambda S, o: S.StepLR(o, step_size=7, gamma=0.5)),
    ("multistep", {"milestones": (5, 12, 30), "gamma": 0.3}, lambda S, o: S.MultiStepLR(o, [5, 12, 30], gamma=0.3)),
    ("exponential", {"gamma": 0.93}, lambda S, o: S.ExponentialLR(o, gamma=0.93)),
    ("linear", {}, lambda S, o: S.LinearLR(o)),
    ("linear", {"start_factor": 0.1, "end_factor": 0.6, "total_iters": 17},
     lambda S, o: S.LinearLR(o, start_factor=0.1, end_factor=0.6, total_iters=17)),
    ("cosine", {}, lambda S, o: S.CosineAnnealingLR(o, T_max=40)),
    ("cosine_restarts", {"t0": 6}, lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=6)),
    ("cosine_restarts", {"t0": 3, "t_mult": 2, "eta_min": 0.01},
     lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01)),
    ("cosine", {"warmup_epochs": 5},
     lambda S, o: S.SequentialLR(o, [S.LinearLR(o, total_iters=5), S.CosineAnnealingLR(o, 35)], [5])),
    ("multistep", {"milestones": (10, 20), "warmup_epochs": 4, "warmup_start_factor": 0.01},
     lambda S, o: S.SequentialLR(
         o, [S.LinearLR(o, start_factor=0.01, total_iters=4), S.MultiStepLR(o, [10, 20], gamma=0.1)], [4])),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "options", "make_scheduler"),
    TORCH_SCHEDULES,
    ids=[f"{name}-{i}" for i, (name, *_) in enumerate(TORCH_SCHEDULES)],
)
def test_every_schedule_equals_torchs_for_every_epoch(name, options, make_scheduler):
    ours = values(name, lr=0.1, epochs=40, at=range(40), **options)
    assert ours == pytest.approx(torch_rates(make_scheduler, 0.1, 40), rel=1e-12, abs=1e-15)


def test_every_logged_epoch_reports_its_learning_rate():
    cfg = TrainConfig(epochs=12, lr_schedule="multistep", lr_milestones=(4, 8), lr_gamma=0.5, log_every=3)
    seen = {}
    training.fit(cfg, training.load_data(cfg), lambda epoch, metrics, theta: seen.update({epoch: metrics["lr"]}))
    assert seen == {0: 0.01, 3: 0.01, 6: 0.005, 9: 0.0025, 11: 0.0025}
