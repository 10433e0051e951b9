"""Models: forward values, initialisation, and the analytic gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from core.models import Model


def central_differences(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        out[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return out


def random_problem(seed: int, kind: str, fit_intercept: bool, n: int = 9, d: int = 4):
    """A random point whose ReLU pre-activations all stay at least 0.05 away from the kink."""
    rng = np.random.default_rng(seed)
    model = Model(kind, d, fit_intercept)
    while True:
        X = np.asfortranarray(rng.standard_normal((n, d)))
        y = rng.standard_normal(n)
        theta = rng.standard_normal(model.n_params)
        z = X @ theta[:d] + (theta[d] if fit_intercept else 0.0)
        if np.abs(z).min() > 0.05 and (kind == "linear" or (z > 0).any()):
            return model, X, y, theta


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("kind", ["relu", "linear", "logistic"])
def test_gradient_matches_central_finite_differences(kind, fit_intercept, seed):
    model, X, y, theta = random_problem(seed, kind, fit_intercept)
    loss, grad = model.loss_and_grad(theta, X, y)
    assert grad.shape == (model.n_params,)
    assert loss == pytest.approx(model.loss(theta, X, y), rel=1e-15)
    numeric = central_differences(lambda t: model.loss(t, X, y), theta)
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_loss_and_grad_does_not_modify_its_inputs():
    model, X, y, theta = random_problem(0, "relu", True)
    copies = X.copy(), y.copy(), theta.copy()
    model.loss_and_grad(theta, X, y)
    for before, after in zip(copies, (X, y, theta), strict=True):
        assert_array_equal(before, after)


def test_relu_derivative_at_zero_is_zero_like_torch():
    # z = 0 exactly for both rows: relu'(0) = 0, so no gradient flows.
    model = Model("relu", 2)
    X = np.array([[1.0, -1.0], [2.0, -2.0]])
    loss, grad = model.loss_and_grad(np.array([0.5, 0.5]), X, np.array([1.0, 3.0]))
    assert loss == 5.0  # mean((0 - [1, 3])^2)
    assert_array_equal(grad, [0.0, 0.0])


def test_dead_relu_predicts_zero_and_linear_predicts_negative():
    X = np.array([[1.0, 1.0]])
    theta = np.array([-1.0, -2.0])
    assert_array_equal(Model("relu", 2).predict(theta, X), [0.0])
    assert_array_equal(Model("linear", 2).predict(theta, X), [-3.0])


def test_linear_gradient_on_a_hand_computed_example():
    # X = I, y = 0, theta = [1, 2, bias 3]: residuals [4, 5]; dL/dw = (2/2) X^T r = [4, 5]; dL/db = 9
    model = Model("linear", 2, fit_intercept=True)
    loss, grad = model.loss_and_grad(np.array([1.0, 2.0, 3.0]), np.eye(2), np.zeros(2))
    assert loss == (16 + 25) / 2
    assert_array_equal(grad, [4.0, 5.0, 9.0])


def test_seed_init_is_the_lessons_and_the_bias_starts_at_zero():
    assert_allclose(Model("relu", 3).init("seed"), [0.1, 0.2, 0.30000000000000004], rtol=0)
    assert_array_equal(Model("relu", 2, fit_intercept=True).init("seed"), [0.1, 0.2, 0.0])
    assert_array_equal(Model("linear", 3, fit_intercept=True).init("zeros"), np.zeros(4))


def test_normal_init_is_seeded_and_leaves_the_bias_at_zero():
    model = Model("relu", 5, fit_intercept=True)
    a, b, c = model.init("normal", 1), model.init("normal", 1), model.init("normal", 2)
    assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a[-1] == 0.0
    assert np.all(a[:-1] != 0.0)


def test_split_returns_weights_and_bias_or_none():
    w, b = Model("relu", 2, fit_intercept=True).split(np.array([1.0, 2.0, 3.0]))
    assert_array_equal(w, [1.0, 2.0])
    assert b == 3.0
    assert isinstance(b, float)
    assert Model("relu", 2).split(np.array([1.0, 2.0]))[1] is None


def test_unknown_model_and_init_are_refused():
    with pytest.raises(ValueError, match="unknown model 'sigmoid'"):
        Model("sigmoid")
    with pytest.raises(ValueError, match="unknown init 'ones'"):
        Model().init("ones")


@pytest.mark.parametrize("kind", ["relu", "linear", "logistic"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_losses_of_many_parameter_vectors_equal_the_loss_of_each(kind, fit_intercept):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    model = Model(kind, 3, fit_intercept)
    thetas = rng.standard_normal((7, model.n_params))
    np.testing.assert_allclose(model.losses(thetas, X, y), [model.loss(t, X, y) for t in thetas], rtol=1e-14)


def test_penalty_values_of_many_weight_vectors_equal_the_value_of_each():
    from core.penalties import Penalty

    W = np.random.default_rng(1).standard_normal((5, 4))
    for pen in (Penalty("l1", 0.1), Penalty("l2", 0.2), Penalty("elasticnet", 0.3, 0.25), Penalty()):
        np.testing.assert_allclose(pen.values(W), [pen.value(w) for w in W], rtol=1e-14)
