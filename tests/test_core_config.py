"""TrainConfig: refusing bad values, torch defaults per optimizer, and the params it logs."""

from __future__ import annotations

import dataclasses
import math

import pytest

from core import optimizers, training
from core.config import OPTIMIZER_OPTIONS, TrainConfig

ALL_OPTIMIZER_OPTIONS = {k for opts in OPTIMIZER_OPTIONS.values() for k in opts}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", math.nan),
        ("learning_rate", math.inf),
        ("lam", math.inf),
        ("lam", math.nan),
        ("noise", -math.inf),
        ("momentum", math.nan),
        ("epsilon", math.inf),
        ("weight_decay", math.nan),
        ("lr_gamma", math.nan),
        ("validation_fraction", math.nan),
    ],
)
def test_config_refuses_nan_and_inf_naming_the_field(field, value):
    name = "lambda" if field == "lam" else field  # the option's name
    with pytest.raises(ValueError, match=f"^{name} must be a finite number, got {value}$"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "newton"}, "optimizer must be one of sgd, adam, .*, got 'newton'"),
        ({"optimizer": "SGD"}, "optimizer must be one of sgd, .*, got 'SGD'"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"learning_rate": -0.01}, "learning_rate must be > 0"),
        ({"log_every": 0}, "log_every must be >= 1"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \[0, 1\)"),
        ({"validation_fraction": -0.1}, r"validation_fraction must be in \[0, 1\)"),
        ({"patience": 5}, "patience .* needs a validation split"),
        ({"lr_schedule": "plateau", "lr_monitor": "val_loss"}, "lr_monitor val_loss needs a validation split"),
        (  # (it advised a validation split, which a test function refuses)
            {"lr_schedule": "plateau", "lr_monitor": "val_loss", "dataset": "rastrigin"},
            "lr_monitor val_loss needs a validation split; rastrigin has no data to split",
        ),
        ({"lr_schedule": "plateau", "lr_monitor": "objective"}, "lr_monitor must be one of loss, val_loss"),
        ({"lr_schedule": "plateau", "lr_factor": 1.0}, r"factor must be in \(0, 1\)"),
        ({"lr_schedule": "plateau", "warmup_epochs": 2}, "plateau schedule cannot follow a warmup"),
        ({"lr_schedule": "onecycle", "warmup_epochs": 2}, "onecycle schedule has a warmup of its own"),
        ({"lr_schedule": "onecycle", "epochs": 10, "lr_pct_start": 0.1}, "phase of the cycle 0 epochs long"),
        ({"lr_schedule": "cyclic", "learning_rate": 0.5}, r"max_lr \(0.1\) must be >= the base learning rate"),
        ({"lr_schedule": "polynomial", "lr_poly_power": -2.0}, "power must be >= 0"),
        ({"init": "0.1,inf"}, "every number must be finite"),
        ({"init": "0.1,,0.2"}, "unknown init '0.1,,0.2'"),
        ({"condition_number": 0.5}, "condition_number must be >= 1"),
        ({"dataset": "beale", "batch_size": 2}, "^batch_size 2 cannot apply to the test function beale"),
        ({"dataset": "booth", "fit_intercept": True}, "^fit_intercept true cannot apply"),
        ({"dataset": "rosenbrock", "standardize": True}, "^standardize true cannot apply"),
        ({"optimizer": "lbfgs", "batch_size": 10}, "lbfgs takes the full batch"),
        ({"optimizer": "lbfgs", "clip_norm": 1.0}, "lbfgs does not clip gradients"),
        ({"optimizer": "lbfgs", "clip_value": 0.5}, "lbfgs does not clip gradients"),
        ({"optimizer": "lbfgs", "penalty": "l1", "lam": 0.1}, "lbfgs cannot apply the L1 prox"),
        ({"optimizer": "lbfgs", "penalty": "elasticnet", "lam": 0.1}, "lbfgs cannot apply the L1 prox"),
    ],
)
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"penalty": "l1", "lam": 0.1, "l1_method": "subgradient"},
        {"penalty": "elasticnet", "lam": 0.1, "l1_ratio": 0.0},  # no L1 part: nothing to prox
        {"penalty": "l2", "lam": 0.1},
        {"penalty": "l1", "lam": 0.0},  # inactive
        {"batch_size": 0, "lr_schedule": "step", "warmup_epochs": 2, "validation_fraction": 0.2, "patience": 3},
    ],
)
def test_lbfgs_takes_what_its_closure_can_express(kwargs):
    TrainConfig(optimizer="lbfgs", **kwargs)


def test_config_is_frozen():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.learning_rate = 1.0  # type: ignore[misc]


def test_defaults_are_the_lessons():
    cfg = TrainConfig()
    assert (cfg.dataset, cfg.model, cfg.init, cfg.fit_intercept) == ("seed", "relu", "seed", False)
    assert (cfg.optimizer, cfg.learning_rate, cfg.epochs, cfg.batch_size) == ("sgd", 0.01, 100, 0)
    assert (cfg.penalty, cfg.lam, cfg.l1_method, cfg.log_every) == ("none", 0.0, "prox", 1)


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        ("sgd", {"momentum": 0.0, "dampening": 0.0, "nesterov": False}),
        ("adam", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "amsgrad": False}),
        ("adamw", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "amsgrad": False, "weight_decay": 0.01}),
        ("rmsprop", {"alpha": 0.99, "epsilon": 1e-8, "momentum": 0.0, "centered": False}),
        ("adagrad", {"lr_decay": 0.0, "epsilon": 1e-10}),
        ("adafactor", {"beta2_decay": -0.8, "eps1": None, "eps2": 1e-3, "d": 1.0, "weight_decay": 0.0}),
        (
            "lbfgs",
            {
                "max_iter": 20,
                "max_eval": None,
                "tolerance_grad": 1e-7,
                "tolerance_change": 1e-9,
                "history_size": 100,
                "line_search_fn": None,
            },
        ),
    ],
)
def test_optimizer_hyper_fills_torchs_defaults(optimizer, expected):
    assert TrainConfig(optimizer=optimizer).optimizer_hyper() == expected


def test_optimizer_hyper_keeps_what_the_user_set_and_ignores_other_optimizers_options():
    cfg = TrainConfig(optimizer="adagrad", epsilon=1e-6, beta1=0.5, momentum=0.9)
    assert cfg.optimizer_hyper() == {"lr_decay": 0.0, "epsilon": 1e-6}
    cfg = TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True)
    assert cfg.optimizer_hyper() == {"momentum": 0.9, "dampening": 0.0, "nesterov": True}


def test_params_use_lambda_not_lam():
    params = TrainConfig(penalty="l2", lam=0.01).params()
    assert params["lambda"] == 0.01
    assert "lam" not in params


@pytest.mark.parametrize("optimizer", optimizers.OPTIMIZERS)
def test_params_keep_only_the_options_the_optimizer_reads_resolved(optimizer):
    params = TrainConfig(optimizer=optimizer).params()
    read = set(OPTIMIZER_OPTIONS[optimizer])
    assert set(params) & ALL_OPTIMIZER_OPTIONS == read
    # None only where torch's default is None (Adafactor's eps1, LBFGS's max_eval and line_search_fn)
    assert all(params[k] is not None or optimizers.DEFAULTS[optimizer][k] is None for k in read)
    assert params["optimizer"] == optimizer


SHARED = {
    "dataset", "validation_fraction", "dtype", "standardize", "model", "fit_intercept", "init", "epochs", "batch_size",
    "learning_rate", "lr_schedule", "warmup_epochs", "log_every", "optimizer", "penalty",
}  # fmt: skip


def test_params_are_the_options_that_act_on_the_run_under_their_cli_names():
    cfg = TrainConfig(optimizer="adam", beta2=0.99)
    params = cfg.params()
    # The lesson's data, no penalty, a constant rate, no split and the fixed start: nothing else acts.
    assert set(params) == SHARED | set(OPTIMIZER_OPTIONS["adam"])
    assert params["beta2"] == 0.99
    assert params["epsilon"] == 1e-8
    assert params["learning_rate"] == 0.01


@pytest.mark.parametrize(
    ("kwargs", "extra"),
    [
        ({"dataset": "synthetic"}, {"n_samples", "n_features", "n_informative", "noise", "data_seed"}),
        ({"dataset": "data.csv"}, {"target"}),
        ({"penalty": "l2", "lam": 0.1}, {"lambda"}),
        ({"penalty": "l1", "lam": 0.1}, {"lambda", "l1_method"}),
        ({"penalty": "elasticnet", "lam": 0.1}, {"lambda", "l1_ratio", "l1_method"}),
        ({"lr_schedule": "step"}, {"lr_step_size", "lr_gamma"}),
        ({"lr_schedule": "exponential"}, {"lr_gamma"}),
        ({"lr_schedule": "invscaling"}, {"lr_power"}),
        ({"lr_schedule": "cosine"}, {"lr_eta_min"}),
        ({"lr_schedule": "multistep"}, {"lr_milestones", "lr_gamma"}),
        (
            {"lr_schedule": "cosine_restarts", "warmup_epochs": 3},
            {"lr_t0", "lr_t_mult", "lr_eta_min", "warmup_start_factor"},
        ),
        ({"lr_schedule": "polynomial"}, {"lr_total_iters", "lr_poly_power"}),
        (
            {"lr_schedule": "onecycle"},
            {"lr_pct_start", "lr_anneal_strategy", "lr_div_factor", "lr_final_div_factor", "lr_three_phase"},
        ),
        ({"lr_schedule": "cyclic"}, {"lr_max_lr", "lr_step_size_up", "lr_step_size_down", "lr_mode"}),
        (
            {"lr_schedule": "cyclic", "lr_mode": "exp_range", "lr_cyclic_gamma": 0.9},
            {"lr_max_lr", "lr_step_size_up", "lr_step_size_down", "lr_mode", "lr_cyclic_gamma"},
        ),
        (
            {"lr_schedule": "plateau"},
            {"lr_factor", "lr_patience", "lr_threshold", "lr_threshold_mode", "lr_cooldown", "lr_min_lr", "lr_monitor"},
        ),
        ({"validation_fraction": 0.2}, {"patience", "seed"}),  # the split is drawn with the seed
        ({"batch_size": 4}, {"seed"}),  # the batches are shuffled with it
        ({"init": "normal"}, {"seed"}),
        ({"init": "0.5,-0.25"}, set()),  # a given start draws nothing
        ({"clip_norm": 1.0, "clip_value": 0.5}, {"clip_norm", "clip_value"}),
    ],
)
def test_an_option_is_logged_when_it_acts(kwargs, extra):
    params = TrainConfig(**kwargs).params()
    assert set(params) == SHARED | set(OPTIMIZER_OPTIONS["sgd"]) | extra


def test_options_table_matches_the_optimizer_defaults():
    assert set(OPTIMIZER_OPTIONS) == set(optimizers.OPTIMIZERS)
    for name, opts in OPTIMIZER_OPTIONS.items():
        assert opts == tuple(optimizers.DEFAULTS[name])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "sigmoid"}, "model must be one of relu, linear, logistic, got 'sigmoid'"),
        ({"init": "ones"}, "unknown init 'ones'"),
        ({"penalty": "l3", "lam": 0.1}, "penalty must be one of none, l1, l2, elasticnet, got 'l3'"),
        ({"penalty": "l1", "lam": -0.1}, "lambda must be >= 0, got -0.1"),
        ({"penalty": "l1", "lam": 0.1, "l1_method": "ista"}, "l1_method must be one of prox, subgradient, got 'ista'"),
        ({"lr_schedule": "bogus"}, "lr_schedule must be one of constant, step, .*, got 'bogus'"),
        ({"optimizer": "adam", "beta1": 1.0}, r"beta1 must be in \[0, 1\), got 1.0"),
    ],
)
def test_unknown_names_and_bad_hyperparameters_are_refused_before_any_step(kwargs, message):
    # Each option's codec (core.schema) refuses these when the config is made, before any step.
    steps = []

    def start():
        cfg = TrainConfig(**kwargs)
        training.fit(cfg, training.load_data(cfg), callback=lambda *a: steps.append(a))

    with pytest.raises(ValueError, match=message):
        start()
    assert steps == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"optimizer": "adam", "beta2": 0.99, "amsgrad": True},
        {"dataset": "synthetic", "n_samples": 50, "noise": 0.5, "penalty": "elasticnet", "lam": 0.1, "l1_ratio": 0.3},
        {"dataset": "data.csv", "target": "price", "validation_fraction": 0.2, "patience": 5, "seed": 3},
        {"dataset": "data.csv", "target": "price", "standardize": True, "dtype": "float32"},
        {"lr_schedule": "step", "lr_step_size": 10, "lr_gamma": 0.5, "fit_intercept": True, "model": "linear"},
        {"lr_schedule": "multistep", "lr_milestones": (3, 9), "warmup_epochs": 2, "warmup_start_factor": 0.1},
        {"optimizer": "rprop", "eta_minus": 0.4, "step_size_max": 2.0, "lr_schedule": "cosine_restarts", "lr_t0": 4},
        {"lr_schedule": "polynomial", "lr_total_iters": 40, "lr_poly_power": 0.9, "warmup_epochs": 3},
        {"lr_schedule": "onecycle", "lr_pct_start": 0.25, "lr_anneal_strategy": "linear", "lr_three_phase": True},
        {"lr_schedule": "onecycle", "lr_div_factor": 10.0, "lr_final_div_factor": 1e3, "learning_rate": 0.5},
        {"lr_schedule": "cyclic", "lr_max_lr": 0.2, "lr_step_size_up": 4, "lr_step_size_down": 6},
        {"lr_schedule": "cyclic", "lr_max_lr": 0.2, "lr_mode": "exp_range", "lr_cyclic_gamma": 0.97},
        {"lr_schedule": "plateau", "lr_factor": 0.5, "lr_patience": 3, "lr_threshold_mode": "abs", "lr_cooldown": 2},
        {"lr_schedule": "plateau", "lr_min_lr": 1e-4, "lr_monitor": "val_loss", "validation_fraction": 0.25},
        {"init": "0.5,-0.25", "model": "linear"},
        {"dataset": "ill_conditioned", "condition_number": 50.0, "init": "-4.0,1.0", "optimizer": "adam"},
        {"dataset": "himmelblau", "init": "normal", "seed": 3, "penalty": "l2", "lam": 0.1},
        {"optimizer": "adafactor"},  # eps1 None, logged "none"
        {"optimizer": "adafactor", "eps1": 1e-30, "d": 2.0, "beta2_decay": -0.5, "weight_decay": 0.1},
        {"optimizer": "lbfgs"},  # max_eval and line_search_fn None
        {"optimizer": "lbfgs", "line_search_fn": "strong_wolfe", "max_eval": 30, "history_size": 5},
    ],
)
def test_from_params_is_the_inverse_of_params(kwargs):
    from steps.cli.options import as_param

    cfg = TrainConfig(**kwargs)
    logged = {k: as_param(v) for k, v in cfg.params().items()}  # as MLflow keeps them: strings
    again = TrainConfig.from_params(logged)
    assert again.params() == cfg.params()
    assert TrainConfig.from_params({**logged, "not_an_option": "x"}).params() == cfg.params()


@pytest.mark.parametrize(
    ("params", "message"),
    [({"epochs": "2.5"}, "whole number"), ({"fit_intercept": "yes"}, "true or false"), ({"noise": "a"}, "float")],
)
def test_from_params_refuses_what_does_not_parse(params, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_params(params)


def test_one_data_identity_ignores_what_the_data_does_not_read_and_the_surface_ignores_the_layout():
    base = TrainConfig()
    assert TrainConfig(seed=3).data_key() == base.data_key()  # no split: the seed draws no rows
    assert TrainConfig(n_samples=50).data_key() == base.data_key()  # not synthetic: not read
    split = TrainConfig(validation_fraction=0.2)
    assert TrainConfig(validation_fraction=0.2, seed=3).data_key() != split.data_key()
    assert TrainConfig(model="linear").data_key() == base.data_key()  # the same targets: relu or linear
    assert TrainConfig(model="logistic").data_key() != base.data_key()  # labels as 0/1
    synthetic = TrainConfig(dataset="synthetic")
    assert TrainConfig(dataset="synthetic", model="linear").data_key() != synthetic.data_key()  # another teacher
    assert TrainConfig(dtype="float32").data_key() != base.data_key()  # another array for the cache ...
    assert TrainConfig(dtype="float32", batch_size=1).surface_key() == base.surface_key()  # ... the same surface
    assert TrainConfig(fit_intercept=True).surface_key() != base.surface_key()  # another parameter
    kappa = [TrainConfig(dataset="ill_conditioned", condition_number=k).surface_key() for k in (10.0, 100.0)]
    assert kappa[0] != kappa[1]
    assert TrainConfig(dataset="rosenbrock", condition_number=5.0).surface_key() == (
        TrainConfig(dataset="rosenbrock").surface_key()
    )
