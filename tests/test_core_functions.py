"""The 2-D test functions (core/functions.py): values and gradients against torch's autograd,
their minima, and whole runs of `core.training.fit` against torch.optim step for step; then
what a test function accepts, refuses and logs.

The torch side is written here from the formulas, independently of ``core``: each function in
torch, differentiated by autograd, stepped by torch.optim (``foreach=False``, float64).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from core import functions
from core.config import TrainConfig, unused_options
from core.functions import FUNCTIONS, Objective
from core.training import fit, load_data, loss_surface

KAPPAS = {"ill_conditioned": 25.0}  # a kappa other than the default, so that it is really used


def torch_function(name: str, x, y, kappa: float = functions.DEFAULT_CONDITION_NUMBER):
    """f(x, y) in torch, from the formulas (docs/tutorials.md: Test functions)."""
    import torch

    pi = math.pi
    return {
        "rosenbrock": lambda: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        "beale": lambda: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2,
        "himmelblau": lambda: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
        "rastrigin": lambda: 20 + x**2 - 10 * torch.cos(2 * pi * x) + y**2 - 10 * torch.cos(2 * pi * y),
        "booth": lambda: (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2,
        "ill_conditioned": lambda: (x**2 + kappa * y**2) / 2,
    }[name]()


@pytest.fixture
def torch64():
    """torch, computing in float64 by default for this test (then as it was)."""
    torch = pytest.importorskip("torch", exc_type=ImportError)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(before)


def sample_points(name: str) -> np.ndarray:
    """The start, the minima, and seeded points spread over the plot extent."""
    fn = FUNCTIONS[name]
    (x0, x1), (y0, y1) = fn.extent
    rng = np.random.default_rng(7)
    spread = np.column_stack([rng.uniform(x0, x1, 6), rng.uniform(y0, y1, 6)])
    return np.vstack([fn.start, *fn.minima, spread])


# --------------------------------------------------------------------------- values and gradients


@pytest.mark.parametrize("name", functions.NAMES)
def test_value_and_gradient_equal_torch_autograd(torch64, name):
    torch = torch64
    kappa = KAPPAS.get(name, functions.DEFAULT_CONDITION_NUMBER)
    objective = Objective(name, kappa)
    for point in sample_points(name):
        p = torch.tensor(point, requires_grad=True)
        f = torch_function(name, p[0], p[1], kappa)
        f.backward()
        expected_grad = p.grad.numpy()
        value, grad = objective.loss_and_grad(point.copy())
        scale = max(1.0, abs(f.item()))  # (a gradient entry that passes through 0 is compared absolutely)
        assert value == pytest.approx(f.item(), rel=1e-12, abs=1e-12), point
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12 * scale, err_msg=str(point))


@pytest.mark.parametrize("name", functions.NAMES)
def test_every_listed_minimum_is_a_zero_of_the_function_and_of_its_gradient(name):
    objective = Objective(name)
    for x, y in FUNCTIONS[name].minima:
        assert objective.value(x, y) < 1e-25
        assert np.abs(objective.grad(x, y)).max() < 1e-12
    # ... and global: nothing on a fine grid over the plot extent lies below 0.
    (x0, x1), (y0, y1) = FUNCTIONS[name].extent
    X, Y = np.meshgrid(np.linspace(x0, x1, 301), np.linspace(y0, y1, 301))
    assert objective.value(X, Y).min() >= 0.0


def test_himmelblau_has_its_four_minima_and_each_attracts_gradient_descent():
    minima = np.array(FUNCTIONS["himmelblau"].minima)
    assert len(minima) == 4
    for m in minima:  # from a point near each, plain gradient descent ends on that one
        cfg = TrainConfig(
            dataset="himmelblau", init=",".join(str(float(v)) for v in m + 0.3), learning_rate=0.005, epochs=400
        )
        np.testing.assert_allclose(fit(cfg, load_data(cfg)).theta, m, atol=1e-9)


@pytest.mark.parametrize("name", functions.NAMES)
def test_values_are_vectorized_for_contours(name):
    objective = Objective(name, KAPPAS.get(name, functions.DEFAULT_CONDITION_NUMBER))
    points = sample_points(name)
    together = objective.value(points[:, 0], points[:, 1])
    one_by_one = [objective.loss(p) for p in points]
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_array_equal(objective.losses(points), one_by_one)


# --------------------------------------------------------------------------- training against torch.optim

EPOCHS = 200
# Learning rates at which every optimizer below makes steady progress on that function from its
# start (none oscillates chaotically: moving the start by 1e-13 moves torch's path by < 1e-12).
RATES = {
    "rosenbrock": {"sgd": 5e-4, "momentum": 1e-4, "adaptive": 0.01, "adagrad": 0.1, "rprop": 1e-3},
    "beale": {"sgd": 0.01, "momentum": 2e-3, "adaptive": 0.02, "adagrad": 0.2, "rprop": 0.01},
    "himmelblau": {"sgd": 5e-3, "momentum": 1e-3, "adaptive": 0.05, "adagrad": 0.3, "rprop": 0.01},
    "rastrigin": {"sgd": 1e-3, "momentum": 5e-4, "adaptive": 0.01, "adagrad": 0.1, "rprop": 0.01},
    "booth": {"sgd": 0.02, "momentum": 5e-3, "adaptive": 0.1, "adagrad": 1.0, "rprop": 0.01},
    "ill_conditioned": {"sgd": 0.05, "momentum": 0.02, "adaptive": 0.05, "adagrad": 0.5, "rprop": 0.01},
}
OPTIMIZERS = {  # id: (optimizer, its options, which rate)
    "sgd": ("sgd", {}, "sgd"),
    "momentum": ("sgd", {"momentum": 0.9}, "momentum"),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}, "momentum"),
    "adam": ("adam", {}, "adaptive"),
    "adamw": ("adamw", {}, "adaptive"),
    "rmsprop": ("rmsprop", {}, "adaptive"),
    "adagrad": ("adagrad", {}, "adagrad"),
    "nadam": ("nadam", {}, "adaptive"),
    "rprop": ("rprop", {}, "rprop"),
}
# Every optimizer on Rosenbrock, three on each other function (in turn); the rest with -m slow.
_IN_TURN = list(OPTIMIZERS)
DEFAULT_CASES = {("rosenbrock", o) for o in OPTIMIZERS} | {
    (name, _IN_TURN[(3 * k + j) % len(_IN_TURN)]) for k, name in enumerate(functions.NAMES[1:]) for j in range(3)
}
CASES = [
    pytest.param(name, o, id=f"{name}-{o}", marks=() if (name, o) in DEFAULT_CASES else pytest.mark.slow)
    for name in functions.NAMES
    for o in OPTIMIZERS
]
TORCH_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
TORCH_NAMES.update({"nadam": "NAdam", "rprop": "Rprop"})
PAIRS = {
    "betas": ("beta1", "beta2"),
    "etas": ("eta_minus", "eta_plus"),
    "step_sizes": ("step_size_min", "step_size_max"),
}


def torch_path(torch, cfg: TrainConfig, start) -> np.ndarray:
    """The point before each step and after the last, as torch.optim takes them on the function."""
    hyper = dict(cfg.optimizer_hyper())
    kwargs = {"lr": cfg.learning_rate, "foreach": False}
    for pair, (first, second) in PAIRS.items():
        if first in hyper:
            kwargs[pair] = (hyper.pop(first), hyper.pop(second))
    if "epsilon" in hyper:
        kwargs["eps"] = hyper.pop("epsilon")
    p = torch.tensor(start, requires_grad=True)
    opt = getattr(torch.optim, TORCH_NAMES[cfg.optimizer])([p], **kwargs, **hyper)
    path = [p.detach().numpy().copy()]
    for _ in range(cfg.epochs):
        opt.zero_grad()
        torch_function(cfg.dataset, p[0], p[1], cfg.condition_number).backward()
        opt.step()
        path.append(p.detach().numpy().copy())
    return np.array(path)


def core_path(cfg: TrainConfig) -> np.ndarray:
    """The point at the start of every epoch (log_every=1), then the final one, from fit."""
    seen = []
    result = fit(cfg, load_data(cfg), lambda epoch, metrics, theta: seen.append(theta.copy()))
    assert result.epochs_run == cfg.epochs
    return np.array([*seen, result.theta])


@pytest.mark.parametrize(("name", "optimizer"), CASES)
def test_training_follows_torch_optim_step_for_step(torch64, name, optimizer):
    kind, options, rate = OPTIMIZERS[optimizer]
    kappa = KAPPAS.get(name, functions.DEFAULT_CONDITION_NUMBER)
    cfg = TrainConfig(
        dataset=name, condition_number=kappa, optimizer=kind, learning_rate=RATES[name][rate], epochs=EPOCHS, **options
    )
    ours, theirs = core_path(cfg), torch_path(torch64, cfg, FUNCTIONS[name].start)
    np.testing.assert_array_equal(ours[0], FUNCTIONS[name].start)
    assert ours.shape == theirs.shape == (EPOCHS + 1, 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    # Not a path that stands still: every run moves, and lowers f.
    objective = Objective(name, kappa)
    assert objective.loss(ours[-1]) < objective.loss(ours[0])


def test_a_penalty_and_a_given_start_act_on_the_point_as_on_weights(torch64):
    """L2 adds lambda * (x^2 + y^2) to f; --init x,y starts there."""
    torch = torch64
    cfg = TrainConfig(dataset="rosenbrock", init="-1.5,2.0", optimizer="adam", learning_rate=0.02, epochs=EPOCHS,
                      penalty="l2", lam=0.1)  # fmt: skip
    ours = core_path(cfg)
    p = torch.tensor([-1.5, 2.0], requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.02, foreach=False)
    theirs = [p.detach().numpy().copy()]
    for _ in range(EPOCHS):
        opt.zero_grad()
        (torch_function("rosenbrock", p[0], p[1]) + 0.1 * (p**2).sum()).backward()
        opt.step()
        theirs.append(p.detach().numpy().copy())
    np.testing.assert_allclose(ours, np.array(theirs), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- the objective and the config


def test_starts_are_the_classic_ones_and_init_picks_them():
    assert FUNCTIONS["rosenbrock"].start == (-1.2, 1.0)
    assert FUNCTIONS["beale"].start == (1.0, 1.0)
    for name in functions.NAMES:
        objective = Objective(name)
        np.testing.assert_array_equal(objective.init("seed"), FUNCTIONS[name].start)
        np.testing.assert_array_equal(objective.init("zeros"), [0.0, 0.0])
        np.testing.assert_array_equal(objective.init("-1.5,2.0"), [-1.5, 2.0])
        np.testing.assert_array_equal(objective.init("normal", 3), objective.init("normal", 3))
        assert not np.array_equal(objective.init("normal", 3), objective.init("normal", 4))
    with pytest.raises(ValueError, match="init gives 3 numbers; a test function's point has 2"):
        Objective("booth").init("1,2,3")


def test_loss_and_grad_writes_into_the_workspace_like_a_model():
    objective = Objective("booth")
    ws = objective.workspace(1, np.float64)
    loss, grad = objective.loss_and_grad(np.array([0.0, 0.0]), None, None, ws)
    assert grad is ws
    assert loss == 49.0 + 25.0
    np.testing.assert_array_equal(grad, [2 * -7 + 4 * -5, 4 * -7 + 2 * -5])


def test_float32_training_stays_float32():
    cfg = TrainConfig(dataset="himmelblau", dtype="float32", learning_rate=0.005, epochs=100)
    result = fit(cfg, load_data(cfg))
    assert result.theta.dtype == np.float32
    np.testing.assert_allclose(result.theta, [3.0, 2.0], atol=1e-5)


def test_the_condition_number_is_kappa():
    objective = Objective("ill_conditioned", 100.0)
    assert objective.value(1.0, 1.0) == 50.5
    assert objective.grad(2.0, 3.0) == (2.0, 300.0)
    with pytest.raises(ValueError, match="condition_number must be >= 1"):
        TrainConfig(dataset="ill_conditioned", condition_number=0.5)


@pytest.mark.parametrize(
    ("kwargs", "refused"),
    [
        ({"fit_intercept": True}, "fit_intercept true"),
        ({"batch_size": 4}, "batch_size 4"),
        ({"validation_fraction": 0.2, "patience": 3}, "validation_fraction 0.2, patience 3"),
        ({"patience": 3}, "patience 3"),
    ],
)
def test_what_cannot_apply_to_a_point_is_refused(kwargs, refused):
    with pytest.raises(ValueError, match=f"^{refused} cannot apply to the test function rosenbrock"):
        TrainConfig(dataset="rosenbrock", **kwargs)


def test_a_test_function_run_logs_only_the_options_it_reads():
    params = TrainConfig(dataset="rosenbrock", optimizer="adam").params()
    assert set(params) == {
        "dataset", "dtype", "init", "epochs", "learning_rate", "lr_schedule", "warmup_epochs", "log_every",
        "optimizer", "beta1", "beta2", "epsilon", "amsgrad", "penalty",
    }  # fmt: skip
    params = TrainConfig(dataset="ill_conditioned", condition_number=50.0, init="normal", seed=3).params()
    assert (params["condition_number"], params["seed"]) == (50.0, 3)
    unused = unused_options({"dataset": "beale"})
    assert {"model", "target", "n_samples", "fit_intercept", "batch_size", "validation_fraction", "patience"} <= unused
    assert "condition_number" in unused
    assert "condition_number" in unused_options({"dataset": "seed"})
    assert "condition_number" not in unused_options({"dataset": "ill_conditioned"})


def test_the_loss_surface_is_the_function_itself():
    cfg = TrainConfig(dataset="rastrigin", penalty="l1", lam=0.5)
    data = load_data(cfg)
    assert data.X_train.shape == (1, 2)
    x, y = np.array([-1.0, 0.25, 2.0]), np.array([0.5, 3.0])
    X, Y, Z = loss_surface(cfg, data.X_train, data.y_train, x, y, penalized=False)
    np.testing.assert_array_equal(Z, functions.rastrigin(X, Y))
    *_, Zp = loss_surface(cfg, data.X_train, data.y_train, x, y)
    np.testing.assert_allclose(Zp, functions.rastrigin(X, Y) + 0.5 * (np.abs(X) + np.abs(Y)), rtol=1e-15)


# --------------------------------------------------------------------------- the CLI


def test_a_cli_run_on_rosenbrock_logs_the_point_and_no_model(tracking):
    from steps.train import train

    args = ["--dataset", "rosenbrock", "--optimizer", "adam", "--learning-rate", "0.05", "--epochs", "50"]
    result = CliRunner().invoke(train, [*args, "--init", "-1.5,2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["init"] == "-1.5,2.0"
    assert not {"model", "fit_intercept", "batch_size", "validation_fraction", "seed"} & set(run.data.params)
    cfg = TrainConfig(dataset="rosenbrock", optimizer="adam", learning_rate=0.05, epochs=50, init="-1.5,2.0")
    expected = fit(cfg, load_data(cfg))
    artifacts = {a.path for a in tracking.client.list_artifacts(run.info.run_id)}
    assert artifacts == {"weights.json", "trajectory.csv", "internals.csv"}  # a point predicts nothing: no model
    local = tracking.client.download_artifacts(run.info.run_id, "weights.json", str(tracking.root))
    assert json.loads(Path(local).read_text()) == {"weights": expected.weights, "bias": None}
    assert run.data.metrics["final_loss"] == expected.final["final_loss"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "linear"], "--model linear does not apply to --dataset rosenbrock"),
        (["--n-samples", "50"], "--n-samples 50 does not apply to --dataset rosenbrock"),
        (["--fit-intercept", "true"], "fit_intercept true cannot apply to the test function rosenbrock"),
        (["--batch-size", "2"], "batch_size 2 cannot apply"),
        (["--condition-number", "5"], "--condition-number 5.0 does not apply to --dataset rosenbrock"),
        (["--init", "1,2,3"], "init gives 3 numbers; a test function's point has 2"),
        (["--init", "1,x"], "unknown init '1,x'"),
    ],
)
def test_cli_refuses_what_cannot_apply_before_a_run_starts(tracking, args, needle):
    from steps.train import train

    result = CliRunner().invoke(train, ["--dataset", "rosenbrock", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_init_numbers_work_for_a_model_too_and_are_counted(tracking):
    from steps.train import train

    ok = CliRunner().invoke(train, ["--init", "0.5,-0.25", "--epochs", "3"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(train, ["--init", "0.5,-0.25", "--fit-intercept", "true"])
    assert bad.exit_code == 2
    assert "init gives 2 numbers; the model has 3 parameters (2 weights and the bias)" in bad.output


@pytest.mark.parametrize(
    "args",
    [["--dataset", "rosenbrock", "--init", "1e200,1e200"], ["--init", "1e300,1e300"]],
    ids=["function", "neuron"],
)
def test_a_starting_point_whose_loss_overflows_is_refused_before_any_run(tracking, args):
    # (It ran, and failed as "diverged at epoch 0 ... try a smaller learning rate".)
    from steps.train import train

    result = CliRunner().invoke(train, [*args, "--epochs", "3"])
    assert result.exit_code == 2, result.output
    assert "the loss at this starting point is not finite in float64" in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_a_loss_that_overflows_after_the_last_update_names_the_last_epoch():
    # (It named epoch 5 of a run of epochs 0..4.)
    cfg = TrainConfig(dataset="rosenbrock", init="1,2", epochs=5)
    with pytest.raises(ArithmeticError, match=r"diverged at epoch 4: the training loss after its update") as info:
        fit(cfg, load_data(cfg))
    assert info.value.epoch == 4


def test_a_workflow_refuses_to_register_the_model_a_test_function_run_does_not_log(tracking):
    from steps.main import main

    result = CliRunner().invoke(main, ["--dataset", "rosenbrock", "--learning-rate", "0.0001", "--register-model", "x"])
    assert result.exit_code == 2, result.output
    assert "a run on the test function rosenbrock logs no model to register" in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_a_file_named_like_a_test_function_does_not_replace_it(tmp_path, monkeypatch):
    """A workflow makes a dataset that is a local file absolute for its children: never a built-in name."""
    from steps.flow.launch import make_child

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rosenbrock").write_text("x0,y\n1,2\n")
    child = make_child("sgd", "sgd", {"dataset": "rosenbrock", "learning_rate": 1e-4})
    assert child.options["dataset"] == child.config.dataset == "rosenbrock"
