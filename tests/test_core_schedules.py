"""Learning-rate schedules: values at a few epochs, and that the loop uses them once per epoch."""

from __future__ import annotations

import inspect
import math

import numpy as np
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
    ("cosine", {"eta_min": 0.02}, lambda S, o: S.CosineAnnealingLR(o, T_max=40, eta_min=0.02)),
    ("cosine_restarts", {"t0": 6}, lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=6)),
    ("cosine_restarts", {"t0": 3, "t_mult": 2, "eta_min": 0.01},
     lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01)),
    ("cosine", {"warmup_epochs": 5},
     lambda S, o: S.SequentialLR(o, [S.LinearLR(o, total_iters=5), S.CosineAnnealingLR(o, 35)], [5])),
    ("multistep", {"milestones": (10, 20), "warmup_epochs": 4, "warmup_start_factor": 0.01},
     lambda S, o: S.SequentialLR(
         o, [S.LinearLR(o, start_factor=0.01, total_iters=4), S.MultiStepLR(o, [10, 20], gamma=0.1)], [4])),
    ("polynomial", {}, lambda S, o: S.PolynomialLR(o)),
    ("polynomial", {"total_iters": 30, "poly_power": 0.9}, lambda S, o: S.PolynomialLR(o, total_iters=30, power=0.9)),
    ("polynomial", {"total_iters": 12, "poly_power": 2.0, "warmup_epochs": 5},
     lambda S, o: S.SequentialLR(o, [S.LinearLR(o, total_iters=5), S.PolynomialLR(o, 12, power=2.0)], [5])),
    # OneCycleLR and CyclicLR with cycle_momentum=False: gdlab's schedules change the rate only.
    ("onecycle", {}, lambda S, o: S.OneCycleLR(o, max_lr=0.1, total_steps=40, cycle_momentum=False)),
    ("onecycle", {"three_phase": True},
     lambda S, o: S.OneCycleLR(o, max_lr=0.1, total_steps=40, three_phase=True, cycle_momentum=False)),
    ("onecycle", {"pct_start": 0.25, "anneal_strategy": "linear", "div_factor": 10.0, "final_div_factor": 100.0},
     lambda S, o: S.OneCycleLR(o, max_lr=0.1, total_steps=40, pct_start=0.25, anneal_strategy="linear",
                               div_factor=10.0, final_div_factor=100.0, cycle_momentum=False)),
    ("onecycle", {"pct_start": 0.0, "three_phase": True, "anneal_strategy": "linear"},
     lambda S, o: S.OneCycleLR(o, max_lr=0.1, total_steps=40, pct_start=0.0, three_phase=True,
                               anneal_strategy="linear", cycle_momentum=False)),
    ("cyclic", {"max_lr": 0.5, "step_size_up": 4},
     lambda S, o: S.CyclicLR(o, base_lr=0.1, max_lr=0.5, step_size_up=4, cycle_momentum=False)),
    ("cyclic", {"max_lr": 0.5, "step_size_up": 3, "step_size_down": 7, "mode": "triangular2"},
     lambda S, o: S.CyclicLR(o, 0.1, 0.5, step_size_up=3, step_size_down=7, mode="triangular2", cycle_momentum=False)),
    ("cyclic", {"max_lr": 0.3, "step_size_up": 5, "mode": "exp_range", "cyclic_gamma": 0.95},
     lambda S, o: S.CyclicLR(o, 0.1, 0.3, step_size_up=5, mode="exp_range", gamma=0.95, cycle_momentum=False)),
    ("cyclic", {"max_lr": 0.5},  # gdlab's default step_size_up, 10 epochs (torch's is 2000 batches)
     lambda S, o: S.CyclicLR(o, 0.1, 0.5, step_size_up=10, cycle_momentum=False)),
    ("cyclic", {"max_lr": 0.5, "step_size_up": 4, "warmup_epochs": 3},
     lambda S, o: S.SequentialLR(
         o, [S.LinearLR(o, total_iters=3), S.CyclicLR(o, 0.1, 0.5, step_size_up=4, cycle_momentum=False)], [3])),
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


def test_onecycle_is_refused_exactly_where_torchs_loop_divides_by_zero():
    # A phase of the cycle 0 epochs long (pct_start * epochs = 1, or a last phase of length 0,
    # which torch reaches at the step after the last epoch): torch raises ZeroDivisionError; gdlab
    # refuses the options up front, and everywhere else gives torch's rate for every epoch.
    refused = 0
    for epochs in range(1, 13):
        for pct_start in (0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0):
            for three_phase in (False, True):
                options = {"pct_start": pct_start, "three_phase": three_phase}

                def scheduler(S, o, epochs=epochs, options=options):
                    return S.OneCycleLR(o, max_lr=0.1, total_steps=epochs, cycle_momentum=False, **options)

                try:
                    expected = torch_rates(scheduler, 0.1, epochs)
                except ZeroDivisionError:
                    with pytest.raises(ValueError, match="0 epochs long"):
                        schedules.make("onecycle", 0.1, epochs=epochs, **options)
                    refused += 1
                    continue
                ours = values("onecycle", lr=0.1, epochs=epochs, at=range(epochs), **options)
                assert ours == pytest.approx(expected, rel=1e-12, abs=1e-15), (epochs, options)
    assert 0 < refused < 100  # both kinds of case were met


def test_the_new_schedules_defaults_are_torchs():
    torch = pytest.importorskip("torch", exc_type=ImportError)
    S = torch.optim.lr_scheduler

    def defaults(cls):
        return {k: p.default for k, p in inspect.signature(cls).parameters.items()}

    def ours(*fields):
        return tuple(getattr(cfg, f"lr_{f}") for f in fields)

    def torchs(cls, *names):
        return tuple(defaults(cls)[n] for n in names)

    cfg = TrainConfig()
    assert ours("total_iters", "poly_power") == torchs(S.PolynomialLR, "total_iters", "power")
    names = ("pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase")
    assert ours(*names) == torchs(S.OneCycleLR, *names)
    assert ours("mode", "cyclic_gamma") == torchs(S.CyclicLR, "mode", "gamma")
    # Documented differences: torch's step_size_up is 2000 batches, gdlab steps once an epoch
    # (10); torch's step_size_down None is gdlab's 0 (both: the same as step_size_up).
    assert torchs(S.CyclicLR, "step_size_up", "step_size_down") == (2000, None)
    assert ours("step_size_up", "step_size_down") == (10, 0)
    names = ("factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr")
    assert ours(*names) == torchs(S.ReduceLROnPlateau, *names)
    assert defaults(schedules.plateau)["eps"] == defaults(S.ReduceLROnPlateau)["eps"]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("onecycle", {"warmup_epochs": 3}, "onecycle schedule has a warmup of its own"),
        ("plateau", {"warmup_epochs": 1}, "plateau schedule cannot follow a warmup"),
        ("cyclic", {"max_lr": 0.05}, r"max_lr \(0.05\) must be >= the base learning rate \(0.1\)"),
        ("cyclic", {"max_lr": 0.5, "mode": "sine"}, "mode must be one of triangular, triangular2, exp_range"),
        ("cyclic", {"max_lr": 0.5, "step_size_up": 0}, "step_size_up must be >= 1"),
        ("cyclic", {"max_lr": 0.5, "cyclic_gamma": 1.5}, r"gamma must be in \(0, 1\]"),
        ("onecycle", {"pct_start": 1.5}, r"pct_start must be in \[0, 1\]"),
        ("onecycle", {"anneal_strategy": "cosine"}, "anneal_strategy must be one of cos, linear"),
        ("onecycle", {"div_factor": 0.5}, "div_factor and final_div_factor must be >= 1"),
        ("polynomial", {"poly_power": -1.0}, "power must be >= 0"),
        # (each of these ran: a "lowest" rate 50x the base, a warmup the schedule never followed)
        ("cosine_restarts", {"eta_min": 5.0}, r"eta_min must be >= 0 and at most the learning rate \(0.1\)"),
        ("cosine", {"eta_min": 0.2}, r"eta_min must be >= 0 and at most the learning rate \(0.1\)"),
        ("cosine", {"warmup_epochs": 40}, r"warmup_epochs \(40\) must be fewer than the epochs \(40\)"),
        ("constant", {"warmup_epochs": 100}, "the constant schedule never starts"),
    ],
)
def test_the_new_schedules_refuse_what_they_cannot_use(name, options, message):
    with pytest.raises(ValueError, match=message):
        schedules.make(name, 0.1, epochs=40, **options)


def test_plateau_schedule_function_is_the_base_rate_and_the_config_gives_the_feedback_piece():
    cfg = TrainConfig(lr_schedule="plateau", learning_rate=0.2)
    assert [cfg.schedule()(e) for e in (0, 5, 99)] == [0.2] * 3
    rate, state = cfg.plateau().update(1.0, cfg.plateau().init())
    assert (rate, state.best) == (0.2, 1.0)
    assert TrainConfig(lr_schedule="cosine").plateau() is None


# --------------------------------------------------------------------------- plateau against ReduceLROnPlateau


def torch_plateau_rates(metrics, lr: float, **options) -> list[float]:
    """The rate after each ``scheduler.step(metric)`` of torch's ReduceLROnPlateau (after opt.step())."""
    torch = pytest.importorskip("torch", exc_type=ImportError)
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **options)
    rates = []
    for m in metrics:
        opt.step()
        scheduler.step(m)
        rates.append(opt.param_groups[0]["lr"])
    return rates


def plateau_rates(metrics, lr: float, **options) -> list[float]:
    p = schedules.plateau(lr, **options)
    state, rates = p.init(), []
    for m in metrics:
        rate, state = p.update(m, state)
        rates.append(rate)
    return rates


def _metric_sequences():
    rng = np.random.default_rng(7)
    e = np.arange(120)
    noisy = 1.0 / (1.0 + 0.1 * e) + 0.02 * rng.standard_normal(120)
    walk = 5.0 + np.cumsum(rng.standard_normal(120)) * 0.05
    steps = [1.0] * 5 + [0.5] * 15 + [0.49999] * 10 + [0.3] * 30 + [0.29] * 20 + [0.1] * 40
    bumpy = [0.9, 0.8, 0.85, 0.79, 0.8, 0.8, 0.78, 0.781, 0.7, 0.75, 0.76, 0.77, 0.69] * 9
    return {
        "noisy_decay": [float(v) for v in noisy],
        "random_walk": [float(v) for v in walk],
        "plateaus": steps,
        "bumpy": bumpy,
        "rising": [0.1 * k for k in range(60)],
    }


PLATEAU_OPTIONS = [
    {},
    {"patience": 0},
    {"patience": 2, "cooldown": 3},
    {"patience": 1, "factor": 0.5, "min_lr": 0.003},
    {"patience": 3, "threshold_mode": "abs", "threshold": 0.01},
    {"patience": 2, "threshold": 0.1, "cooldown": 1, "factor": 0.3},
    {"patience": 0, "threshold_mode": "abs", "threshold": 0.0, "min_lr": 1e-4},
]


@pytest.mark.parametrize("sequence", sorted(_metric_sequences()))
@pytest.mark.parametrize("options", PLATEAU_OPTIONS, ids=[str(i) for i in range(len(PLATEAU_OPTIONS))])
def test_plateau_equals_torchs_reduce_lr_on_plateau_after_every_step(sequence, options):
    metrics = _metric_sequences()[sequence]
    expected = torch_plateau_rates(metrics, 0.1, **options)
    assert plateau_rates(metrics, 0.1, **options) == pytest.approx(expected, rel=1e-12, abs=0.0)
    assert len(set(expected)) > 1  # the rate did move


def test_plateau_skips_a_reduction_smaller_than_eps_as_torch_does():
    # From 1e-7 the first cut (to 1e-8) is larger than eps = 1e-8, the next (to 1e-9) is not.
    metrics = [1.0] * 30
    expected = torch_plateau_rates(metrics, 1e-7, patience=2)
    assert plateau_rates(metrics, 1e-7, patience=2) == pytest.approx(expected, rel=1e-12, abs=0.0)
    assert min(expected) == pytest.approx(1e-8, rel=1e-12)


def test_plateau_update_is_pure():
    p = schedules.plateau(0.1, patience=0)
    state = p.init()
    rate, after = p.update(1.0, state)
    assert p.update(1.0, state) == (rate, after)  # the same input, the same output
    assert state == p.init()  # nothing changed in place
    rate2, _ = p.update(2.0, after)
    assert rate2 == pytest.approx(0.01, rel=1e-15)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"factor": 1.0}, r"factor must be in \(0, 1\)"),
        ({"factor": 0.0}, r"factor must be in \(0, 1\)"),
        ({"patience": -1}, "patience and cooldown must be >= 0"),
        ({"threshold_mode": "relative"}, "threshold_mode must be one of rel, abs"),
        ({"min_lr": 0.1}, "min_lr must be >= 0 and below the learning rate"),
        ({"threshold": -0.1}, "threshold must be >= 0"),
    ],
)
def test_plateau_refuses_bad_hyperparameters(options, message):
    with pytest.raises(ValueError, match=message):
        schedules.plateau(0.1, **options)


# --------------------------------------------------------------------------- plateau in the loop


def test_plateau_in_the_loop_equals_torchs_loop_with_reduce_lr_on_plateau():
    """torch's loop: loss = f(theta); loss.backward(); opt.step(); sched.step(loss.item()). The
    weights and every epoch's rate equal gdlab's, reductions included."""
    torch = pytest.importorskip("torch")
    cfg = TrainConfig(
        dataset="synthetic", n_samples=30, n_features=3, model="linear", optimizer="sgd", momentum=0.9,
        learning_rate=0.05, epochs=120, lr_schedule="plateau", lr_patience=3, lr_factor=0.5, lr_threshold=1e-2,
        lr_cooldown=2,
    )  # fmt: skip
    ds = training.load_data(cfg)
    seen = []
    result = training.fit(cfg, ds, lambda e, m, theta: seen.append((m["lr"], theta.copy())))
    X, y = torch.tensor(ds.X_train, dtype=torch.float64), torch.tensor(ds.y_train, dtype=torch.float64)
    w = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.05, momentum=0.9, foreach=False)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3, threshold=1e-2, cooldown=2)
    for lr, theta in seen:
        assert opt.param_groups[0]["lr"] == lr
        np.testing.assert_allclose(theta, w.detach().numpy(), rtol=0, atol=1e-12)
        loss = ((X @ w - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step(loss.item())
    np.testing.assert_allclose(result.theta, w.detach().numpy(), rtol=0, atol=1e-12)
    assert len({lr for lr, _ in seen}) >= 3  # it did reduce, more than once


def test_plateau_on_the_validation_loss_is_fed_each_epochs_val_loss():
    cfg = TrainConfig(
        dataset="synthetic", validation_fraction=0.3, batch_size=8, optimizer="adam", learning_rate=0.1,
        epochs=80, lr_schedule="plateau", lr_monitor="val_loss", lr_patience=2, log_every=1,
    )  # fmt: skip
    seen = []
    training.fit(cfg, training.load_data(cfg), lambda e, m, theta: seen.append((m["lr"], m["val_loss"])))
    expected = torch_plateau_rates([v for _, v in seen], 0.1, patience=2)
    assert [lr for lr, _ in seen] == [0.1, *expected[:-1]]
    assert seen[-1][0] < 0.1
