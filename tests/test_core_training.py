"""The training loop: what is logged when, mini-batches, early stopping, divergence, timing."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from core import data, optimizers, training
from core.config import TrainConfig
from core.models import Model


def fit(callback=None, **overrides) -> training.TrainResult:
    cfg = TrainConfig(**overrides)
    return training.fit(cfg, training.load_data(cfg), callback)


class Recorder:
    def __init__(self):
        self.epochs, self.metrics, self.thetas = [], [], []

    def __call__(self, epoch, metrics, theta):
        self.epochs.append(epoch)
        self.metrics.append(dict(metrics))
        self.thetas.append(theta)


# --- what is reported ------------------------------------------------------------------------


def test_callback_gets_epoch_zero_with_the_initial_weights_and_their_loss():
    rec = Recorder()
    fit(rec)
    assert rec.epochs[0] == 0
    assert_array_equal(rec.thetas[0], [0.1, 0.2])
    assert rec.metrics[0]["loss"] == pytest.approx(0.32005, rel=1e-15)


def test_loss_logged_at_step_e_is_the_loss_at_the_start_of_epoch_e():
    # Replay plain SGD by hand: theta_e is the parameter vector after e steps.
    X, y, _ = data.seed_data()
    model = Model("relu", 2)
    theta, expected = model.init("seed"), []
    for _ in range(100):
        loss, grad = model.loss_and_grad(theta, X, y)
        expected.append((loss, theta))
        theta = theta - 0.01 * grad
    rec = Recorder()
    result = fit(rec)
    assert rec.epochs == list(range(100))
    for (loss, theta_e), metrics, seen in zip(expected, rec.metrics, rec.thetas, strict=True):
        assert metrics["loss"] == loss
        assert_array_equal(seen, theta_e)
    # the final loss is that of the weights after the last epoch, never reported as a step
    assert result.final["final_loss"] == model.loss(theta, X, y)
    assert result.final["final_loss"] < rec.metrics[-1]["loss"]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_takes_one_closure_step_an_epoch_reporting_the_loss_at_its_start(line_search_fn):
    # Replay by hand: each epoch is one step(closure) on the objective, MSE + lambda sum w^2 (the
    # bias unpenalized), at that epoch's learning rate (step schedule: 1, 1, 0.5, 0.5, 0.25).
    X, y, _, _ = data.synthetic(50, 3, 3, 0.1, 0, teacher="linear")
    model, opt = Model("linear", 3, True), optimizers.lbfgs(max_iter=3, line_search_fn=line_search_fn)

    def closure(th):
        loss, grad = model.loss_and_grad(th, X, y)
        return loss + 0.1 * th[:3] @ th[:3], grad + np.append(0.2 * th[:3], 0.0)

    theta, expected = model.init("seed"), []
    state = opt.init(theta)
    for lr in (1.0, 1.0, 0.5, 0.5, 0.25):
        expected.append((model.loss(theta, X, y), theta))
        theta, state, objective = opt.step(closure, state, theta, lr)
        assert objective == pytest.approx(expected[-1][0] + 0.1 * expected[-1][1][:3] @ expected[-1][1][:3])
    rec = Recorder()
    result = fit(
        rec, dataset="synthetic", n_samples=50, n_features=3, n_informative=3, model="linear", fit_intercept=True,
        epochs=5, optimizer="lbfgs", max_iter=3, line_search_fn=line_search_fn, learning_rate=1.0,
        lr_schedule="step", lr_step_size=2, lr_gamma=0.5, penalty="l2", lam=0.1,
    )  # fmt: skip
    assert result.steps == 5
    for (loss, theta_e), metrics, seen in zip(expected, rec.metrics, rec.thetas, strict=True):
        assert metrics["loss"] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(seen, theta_e, rtol=1e-12)
    np.testing.assert_allclose(result.theta, theta, rtol=1e-12)


def test_callback_theta_snapshots_are_not_changed_by_later_epochs():
    rec = Recorder()
    fit(rec, epochs=3, penalty="l1", lam=0.01)  # prox works in place: it must not touch what was handed out
    copies = [t.copy() for t in rec.thetas]
    assert not np.array_equal(copies[0], copies[1])
    for kept, copy in zip(rec.thetas, copies, strict=True):
        assert_array_equal(kept, copy)


@pytest.mark.parametrize(
    ("epochs", "log_every", "expected"),
    [
        (100, 30, [0, 30, 60, 90, 99]),
        (100, 25, [0, 25, 50, 75, 99]),
        (10, 5, [0, 5, 9]),
        (10, 1, list(range(10))),
        (10, 100, [0, 9]),
        (1, 7, [0]),
        (31, 30, [0, 30]),
    ],
)
def test_log_every_thins_the_reports_and_always_reports_the_last_epoch(epochs, log_every, expected):
    rec = Recorder()
    fit(rec, epochs=epochs, log_every=log_every)
    assert rec.epochs == expected


def test_log_every_does_not_change_the_training():
    assert fit(log_every=7).weights == fit().weights


@pytest.mark.parametrize("batch_size", [0, 1], ids=["full_batch", "mini_batch"])
def test_objective_is_loss_plus_penalty(batch_size):
    rec = Recorder()
    result = fit(rec, penalty="elasticnet", lam=0.05, l1_ratio=0.3, batch_size=batch_size, epochs=5)
    for metrics, theta in zip(rec.metrics, rec.thetas, strict=True):
        w = theta[:2]
        penalty = 0.05 * (0.3 * np.abs(w).sum() + 0.7 * (w @ w))
        assert metrics["objective"] == pytest.approx(metrics["loss"] + penalty, rel=1e-14)
    w = np.array(result.weights)
    expected = result.final["final_loss"] + 0.05 * (0.3 * np.abs(w).sum() + 0.7 * (w @ w))
    assert result.final["final_objective"] == pytest.approx(expected, rel=1e-14)


def test_without_penalty_objective_equals_loss():
    rec = Recorder()
    result = fit(rec, epochs=3)
    assert all(m["objective"] == m["loss"] for m in rec.metrics)
    assert set(rec.metrics[0]) == {"loss", "objective", "lr", "grad_norm", "update_norm"}
    assert result.final["final_objective"] == result.final["final_loss"]
    assert "final_val_loss" not in result.final


# --- optimizer internals: grad_norm, update_norm, zero_weights --------------------------------


def _full_gradient(cfg: TrainConfig, ds, theta: np.ndarray) -> np.ndarray:
    """The full-batch gradient of the objective's smooth part, spelled out (no loop code)."""
    model = Model(cfg.model, ds.n_features, cfg.fit_intercept)
    _, grad = model.loss_and_grad(theta, ds.X_train, ds.y_train)
    d = ds.n_features
    if cfg.penalty == "l2":
        grad[:d] += 2 * cfg.lam * theta[:d]
    return grad


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"optimizer": "adam", "penalty": "l2", "lam": 0.1, "fit_intercept": True},
        {"optimizer": "sgd", "momentum": 0.9, "clip_norm": 0.05, "learning_rate": 0.1},
        {"batch_size": 7, "optimizer": "adamw", "log_every": 3, "epochs": 10},
    ],
    ids=["lesson", "adam-l2-bias", "clipped", "minibatch"],
)
def test_grad_norm_is_the_full_gradients_norm_and_update_norm_the_epochs_step(options):
    rec = Recorder()
    cfg = TrainConfig(**{"dataset": "synthetic", "n_samples": 30, "n_features": 3, "epochs": 12, **options})
    ds = training.load_data(cfg)
    result = training.fit(cfg, ds, rec)
    ends = [*rec.thetas[1:], result.theta]  # where each reported epoch's update(s) led
    if cfg.log_every > 1:  # the update of a reported epoch, replayed from its start
        ends = [None] * len(rec.thetas)
    for metrics, start, end in zip(rec.metrics, rec.thetas, ends, strict=True):
        assert metrics["grad_norm"] == pytest.approx(np.linalg.norm(_full_gradient(cfg, ds, start)), rel=1e-12)
        if end is not None:
            assert metrics["update_norm"] == pytest.approx(np.linalg.norm(end - start), rel=1e-12, abs=1e-300)
        else:
            assert metrics["update_norm"] > 0
    if cfg.clip_norm:  # clipped: the norm before clipping is logged, the step is lr * momentum of clipped ones
        assert rec.metrics[0]["grad_norm"] > cfg.clip_norm
        assert rec.metrics[0]["update_norm"] == pytest.approx(cfg.learning_rate * cfg.clip_norm, rel=1e-5)


def test_zero_weights_is_logged_each_epoch_with_an_l1_term_only():
    rec = Recorder()
    options = {"n_samples": 60, "n_features": 8, "penalty": "l1", "lam": 0.2, "learning_rate": 0.1}
    fit(rec, dataset="synthetic", epochs=200, log_every=20, **options)
    counts = [m["zero_weights"] for m in rec.metrics]
    assert counts == [int(np.sum(t[:8] == 0.0)) for t in rec.thetas]
    assert counts[0] == 0
    assert counts[-1] >= 4  # the prox zeroes the uninformative weights
    rec2 = Recorder()
    fit(rec2, penalty="l2", lam=0.1, epochs=3)
    assert all("zero_weights" not in m for m in rec2.metrics)


def test_the_epoch_training_stops_at_has_no_update():
    rec = Recorder()
    fit(rec, dataset="synthetic", validation_fraction=0.3, patience=2, epochs=500, learning_rate=0.5, seed=1)
    assert rec.epochs[-1] < 499
    assert "update_norm" not in rec.metrics[-1]
    assert all("update_norm" in m for m in rec.metrics[:-1])


def test_validation_split_reports_val_loss_each_step_and_at_the_end():
    rec = Recorder()
    cfg = TrainConfig(dataset="synthetic", n_samples=40, n_features=3, validation_fraction=0.25, epochs=4)
    ds = training.load_data(cfg)
    assert (len(ds.y_train), len(ds.y_val)) == (30, 10)
    result = training.fit(cfg, ds, rec)
    model = Model("relu", 3)
    for metrics, theta in zip(rec.metrics, rec.thetas, strict=True):
        assert metrics["val_loss"] == model.loss(theta, ds.X_val, ds.y_val)
    assert result.final["final_val_loss"] == model.loss(result.theta, ds.X_val, ds.y_val)


def test_result_carries_weights_as_floats_and_the_bias():
    result = fit(model="linear", fit_intercept=True, epochs=3)
    assert len(result.weights) == 2
    assert all(type(w) is float for w in result.weights)
    assert isinstance(result.bias, float)
    assert result.bias != 0.0
    assert_array_equal(result.theta, [*result.weights, result.bias])


# --- mini-batches, steps, timing ---------------------------------------------------------------

SYNTH = {"dataset": "synthetic", "n_samples": 50, "n_features": 4, "model": "linear", "epochs": 10}


def test_mini_batch_training_is_reproducible_for_a_seed():
    assert fit(**SYNTH, batch_size=8, seed=3).weights == fit(**SYNTH, batch_size=8, seed=3).weights


def test_mini_batch_training_differs_by_seed_and_from_full_batch():
    a = fit(**SYNTH, batch_size=8, seed=3).weights
    assert a != fit(**SYNTH, batch_size=8, seed=4).weights
    assert a != fit(**SYNTH, seed=3).weights


def test_full_batch_training_does_not_depend_on_the_seed():
    assert fit(**SYNTH, seed=1).weights == fit(**SYNTH, seed=2).weights


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [(0, 1), (8, 7), (10, 5), (1, 50), (49, 2), (50, 1)])
def test_steps_are_epochs_times_batches_per_epoch(batch_size, steps_per_epoch):
    # n = 50: ceil(50 / batch) optimizer steps per epoch; full batch (0) is one.
    result = fit(**SYNTH, batch_size=batch_size)
    assert steps_per_epoch == (1 if batch_size == 0 else math.ceil(50 / batch_size))
    assert result.steps == 10 * steps_per_epoch
    assert result.epochs_run == 10


def test_batch_size_at_least_n_is_full_batch():
    assert fit(**SYNTH, batch_size=50).weights == fit(**SYNTH).weights
    assert fit(**SYNTH, batch_size=500).weights == fit(**SYNTH).weights


def test_train_time_is_positive_and_steps_per_s_follows():
    result = fit()
    assert result.train_time_s > 0
    assert result.steps_per_s == pytest.approx(result.steps / result.train_time_s)


def test_train_time_excludes_the_callbacks():
    start = time.perf_counter()
    result = fit(lambda *_: time.sleep(0.02), epochs=5)
    assert time.perf_counter() - start >= 0.1
    assert result.train_time_s < 0.05


# --- early stopping ----------------------------------------------------------------------------


def opposed_data() -> data.Dataset:
    """Training wants w = +1, validation wants w = -1: every training step makes val_loss worse."""
    X = np.asfortranarray(np.array([[1.0], [2.0], [3.0]]))
    return data.Dataset(X, X[:, 0].copy(), X.copy(order="F"), -X[:, 0], ("x",))


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    cfg = TrainConfig(model="linear", validation_fraction=0.5, patience=3, epochs=50, learning_rate=0.01)
    rec = Recorder()
    result = training.fit(cfg, opposed_data(), rec)
    # epoch 0 sets the best val_loss; epochs 1, 2, 3 are worse: stop at the start of epoch 3.
    assert result.stopped_early
    assert result.epochs_run == 3
    assert result.steps == 3
    assert rec.epochs == [0, 1, 2, 3]
    vals = [m["val_loss"] for m in rec.metrics]
    assert vals == sorted(vals)
    assert "final_val_loss" in result.final


def test_early_stopping_uses_val_loss_even_on_epochs_that_are_not_logged():
    cfg = TrainConfig(model="linear", validation_fraction=0.5, patience=3, epochs=50, log_every=10)
    rec = Recorder()
    result = training.fit(cfg, opposed_data(), rec)
    assert (result.stopped_early, result.epochs_run) == (True, 3)
    assert rec.epochs == [0, 3]  # the epoch it stops at is reported, like the last epoch


def test_patience_does_not_stop_while_val_loss_improves():
    X = np.asfortranarray(np.array([[1.0], [2.0], [3.0]]))
    ds = data.Dataset(X, X[:, 0].copy(), X.copy(order="F"), X[:, 0].copy(), ("x",))
    cfg = TrainConfig(model="linear", validation_fraction=0.5, patience=2, epochs=20)
    result = training.fit(cfg, ds)
    assert not result.stopped_early
    assert (result.epochs_run, result.steps) == (20, 20)


# --- divergence ----------------------------------------------------------------------------------


def test_huge_learning_rate_raises_divergence_error_naming_the_first_bad_epoch():
    # Epoch 0 starts from finite weights; one step of lr 1e300 makes the loss at the start of epoch 1 overflow.
    rec = Recorder()
    with pytest.raises(training.DivergenceError, match=r"diverged at epoch 1: the training loss") as info:
        fit(rec, model="linear", learning_rate=1e300)
    assert info.value.epoch == 1
    assert rec.epochs == [0]
    assert isinstance(info.value, ArithmeticError)
    assert "smaller learning rate" in str(info.value)


def test_gradual_divergence_is_reported_at_the_epoch_it_happens():
    rec = Recorder()
    with pytest.raises(training.DivergenceError) as info:
        fit(rec, model="linear", learning_rate=1000.0)
    assert 1 < info.value.epoch < 100
    assert f"epoch {info.value.epoch}" in str(info.value)
    assert rec.epochs == list(range(info.value.epoch))
    assert all(math.isfinite(m["loss"]) for m in rec.metrics)


def test_mini_batch_divergence_is_caught_on_the_parameters():
    with pytest.raises(training.DivergenceError, match=r"diverged at epoch 0: a parameter") as info:
        fit(model="linear", learning_rate=1e300, batch_size=1)
    assert info.value.epoch == 0


def test_huge_learning_rate_kills_the_relu_neuron_instead_of_diverging():
    # Not a divergence: the step sends both weights far negative, the ReLU outputs 0 from then on
    # and the loss settles at mean(y^2) = (0.09 + 0.81) / 2.
    result = fit(learning_rate=1000.0)
    assert result.final["final_loss"] == pytest.approx(0.45, rel=1e-15)
    assert all(w < -1e4 for w in result.weights)


@pytest.mark.parametrize("batch_size", [0, 1], ids=["full_batch", "mini_batch"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
def test_divergence_raises_divergence_error_not_a_numpy_warning(optimizer, batch_size):
    # pytest turns warnings into errors here: an overflow RuntimeWarning escaping fit would fail this.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(training.DivergenceError):
            fit(model="linear", optimizer=optimizer, learning_rate=1e300, batch_size=batch_size)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_divergence_raises_divergence_error_not_a_numpy_warning(line_search_fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(training.DivergenceError):
            fit(model="linear", optimizer="lbfgs", line_search_fn=line_search_fn, learning_rate=1e300)


def test_full_batch_relu_with_infinite_weights_is_reported_as_divergence():
    # One step of lr 1e307 overflows both weights to -inf; the dead ReLU's loss stays finite (100).
    X = np.asfortranarray(np.full((2, 2), 10.0))
    ds = data.Dataset(X, np.array([-10.0, -10.0]), None, None, ("a", "b"))
    with pytest.raises(training.DivergenceError):
        training.fit(TrainConfig(learning_rate=1e307), ds)


@pytest.mark.parametrize("model", ["relu", "linear"])
def test_the_readme_synthetic_example_fits_its_data_down_to_the_noise(model):
    # `train -P optimizer=rmsprop -P centered=true -P dataset=synthetic`: the data is drawn by the model
    # it trains, so the loss reaches the noise floor (noise 0.1: variance 0.01), not a plateau near 2.
    cfg = TrainConfig(dataset="synthetic", optimizer="rmsprop", centered=True, model=model)
    result = training.fit(cfg, training.load_data(cfg))
    assert result.final["final_loss"] < 0.02


DIABETES = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "diabetes.csv")
README_DIABETES = {"dataset": DIABETES, "target": "target", "model": "linear", "fit_intercept": True}


def test_the_readme_diabetes_example_diverges_raw_and_converges_standardized():
    """docs/tutorials.md, "Real data": the numbers it shows (the same config as its `mlflow run` commands)."""
    from sklearn.linear_model import LinearRegression

    from core.neuron import original_units

    with pytest.raises(training.DivergenceError, match="diverged at epoch 48: the training loss"):
        fit(**README_DIABETES)
    slow = fit(**README_DIABETES, standardize=True)  # the default rate: stable, not yet converged
    assert slow.final["final_loss"] == pytest.approx(3315.118, abs=1e-3)
    cfg = TrainConfig(**README_DIABETES, standardize=True, learning_rate=0.2, epochs=2000)
    ds = training.load_data(cfg)
    result = training.fit(cfg, ds)
    X, y = data.load_csv(DIABETES, "target")[:2]
    ols = LinearRegression().fit(X, y)
    residual = ols.predict(X) - y
    assert result.final["final_loss"] == pytest.approx(residual @ residual / len(y), rel=1e-7)
    assert result.bias == pytest.approx(y.mean(), rel=1e-12)  # centred features: the bias is the mean
    w, b = original_units(result.weights, result.bias, ds.mean, ds.scale)
    np.testing.assert_allclose(w, ols.coef_, atol=0.03)  # s5's is the farthest: 0.027 (README's table)
    assert b == pytest.approx(ols.intercept_, abs=0.2)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"model": "linear", "penalty": "l2", "lam": 0.1},
        {"model": "logistic", "dataset": "synthetic", "fit_intercept": True},
        {"dataset": "rosenbrock", "learning_rate": 0.001},
        {"hidden": (3,), "dataset": "synthetic", "model": "linear", "epochs": 5},
    ],
    ids=["lesson", "linear+l2", "logistic", "rosenbrock", "network"],
)
def test_curvature_every_logs_the_objectives_curvature_at_each_logged_epochs_parameters(options):
    from core.curvature import curvature
    from core.penalties import Penalty

    cfg = TrainConfig(**{"epochs": 30, "log_every": 3, "curvature_every": 2, **options})
    data = training.load_data(cfg)
    model, _, _ = training.components(cfg, data.n_features)
    penalty = Penalty(cfg.penalty, cfg.lam, cfg.l1_ratio, cfg.l1_method)
    seen = []
    training.fit(cfg, data, lambda epoch, metrics, theta: seen.append((epoch, dict(metrics), theta.copy())))
    logged = [(e, m, t) for e, m, t in seen if "sharpness" in m]
    assert [e for e, _, _ in logged] == [e for e, _, _ in seen][::2]  # every 2nd logged epoch
    for _, metrics, theta in logged:
        direct = curvature(model, theta, data.X_train, data.y_train, penalty)
        assert metrics["sharpness"] == pytest.approx(direct.sharpness, rel=1e-12)
        assert metrics["lr_sharpness"] == pytest.approx(metrics["lr"] * direct.sharpness, rel=1e-12)
        if direct.condition is not None:
            assert metrics["condition_number"] == pytest.approx(direct.condition, rel=1e-12)
    plain = []
    training.fit(TrainConfig(**{**cfg.__dict__, "curvature_every": 0}), data, lambda e, m, t: plain.append(m))
    assert not any("sharpness" in m for m in plain)


@pytest.mark.parametrize(
    ("momentum", "nesterov", "lr", "epochs"),
    [(0.0, False, 0.015, 300), (0.5, False, 0.01, 300), (0.5, True, 0.01, 300), (0.0, False, 0.0199, 3000)],
    ids=["gd", "heavy ball", "nesterov", "gd near its edge"],
)
def test_the_rate_theory_predicts_on_a_quadratic_is_the_rate_a_run_measures(momentum, nesterov, lr, epochs):
    """ill_conditioned (κ = 100): Hessian diag(1, 100). The slope of log f over the last half of the
    run is the predicted rate squared (issue 25: to 1e-6). Near the edge the two directions shrink
    at 0.99 and 0.9801 a step: the slower one takes 3,000 epochs to stand alone."""
    from core.curvature import measured_rate, predicted_rate

    cfg = TrainConfig(dataset="ill_conditioned", condition_number=100.0, learning_rate=lr, epochs=epochs,
                      momentum=momentum, nesterov=nesterov)  # fmt: skip
    losses = []
    training.fit(cfg, training.load_data(cfg), lambda e, m, t: losses.append(m["loss"]))
    predicted = predicted_rate([1.0, 100.0], lr, momentum, nesterov)
    assert measured_rate(losses) == pytest.approx(predicted, rel=1e-6)


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.9, False), (0.9, True)])
def test_runs_start_to_diverge_at_the_predicted_stability_edge(momentum, nesterov):
    from core.curvature import stability_edge

    edge = stability_edge(100.0, momentum, nesterov)
    for lr, grows in ((edge * 0.99, False), (edge * 1.01, True)):
        cfg = TrainConfig(dataset="ill_conditioned", condition_number=100.0, learning_rate=lr, epochs=400,
                          momentum=momentum, nesterov=nesterov, init="0.0,1.0")  # fmt: skip
        losses = []
        try:
            training.fit(cfg, training.load_data(cfg), lambda e, m, t, seen=losses: seen.append(m["loss"]))
        except training.DivergenceError:
            assert grows, f"lr {lr:g} diverged below the edge {edge:g}"
            continue
        assert (losses[-1] > losses[0]) == grows, (lr, edge, losses[0], losses[-1])


def test_the_rate_map_is_the_predicted_rate_at_every_point():
    from core.curvature import predicted_rate, rate_map

    lrs, momenta = np.geomspace(1e-4, 0.05, 7), np.linspace(0.0, 0.95, 5)
    for nesterov in (False, True):
        grid = rate_map([1.0, 37.0, 100.0], lrs, momenta, nesterov)
        for i, m in enumerate(momenta):
            for j, lr in enumerate(lrs):
                assert grid[i, j] == pytest.approx(predicted_rate([1.0, 37.0, 100.0], lr, m, nesterov), rel=1e-12)
