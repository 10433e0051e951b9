"""Penalties: values, gradients, the L1 proximal step, and that the bias is never penalized."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from core import data, training
from core.config import TrainConfig
from core.penalties import Penalty

W = np.array([1.0, -2.0, 0.5])


def test_penalty_values_follow_the_objective_convention():
    # sum|w| = 3.5, sum w^2 = 5.25
    assert Penalty("l1", 0.1).value(W) == pytest.approx(0.35, rel=1e-15)
    assert Penalty("l2", 0.1).value(W) == pytest.approx(0.525, rel=1e-15)
    assert Penalty("none", 0.1).value(W) == 0.0
    assert Penalty("l2", 0.0).value(W) == 0.0


def test_elasticnet_value_is_ratio_l1_plus_complement_l2():
    # 0.1 * (0.25 * 3.5 + 0.75 * 5.25) = 0.1 * 4.8125
    assert Penalty("elasticnet", 0.1, l1_ratio=0.25).value(W) == pytest.approx(0.48125, rel=1e-15)
    assert Penalty("elasticnet", 0.1, l1_ratio=1.0).value(W) == Penalty("l1", 0.1).value(W)
    assert Penalty("elasticnet", 0.1, l1_ratio=0.0).value(W) == Penalty("l2", 0.1).value(W)


def test_coefficients_split_lambda_between_the_l1_and_l2_terms():
    p = Penalty("elasticnet", 0.2, l1_ratio=0.25)
    assert (p.l1_weight, p.l2_weight) == pytest.approx((0.05, 0.15), rel=1e-15)
    assert (Penalty("l1", 0.2).l1_weight, Penalty("l1", 0.2).l2_weight) == (0.2, 0.0)
    assert (Penalty("l2", 0.2).l1_weight, Penalty("l2", 0.2).l2_weight) == (0.0, 0.2)
    assert not Penalty("none", 0.2).active
    assert not Penalty("l1", 0.0).active
    assert Penalty("l1", 0.2).active


def test_l2_gradient_is_two_lambda_w():
    grad = np.array([1.0, 1.0, 1.0])
    Penalty("l2", 0.1).add_grad(grad, W)
    assert_allclose(grad, [1.2, 0.6, 1.1], rtol=1e-15)


def test_l1_subgradient_uses_sign_of_w_with_sign_of_zero_zero():
    grad = np.zeros(4)
    Penalty("l1", 0.1, l1_method="subgradient").add_grad(grad, np.array([0.0, 3.0, -0.001, -0.0]))
    assert_array_equal(grad, [0.0, 0.1, -0.1, 0.0])


def test_l1_prox_method_adds_nothing_to_the_gradient():
    grad = np.array([1.0, 2.0, 3.0])
    Penalty("l1", 0.1).add_grad(grad, W)
    assert_array_equal(grad, [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "penalty",
    [
        Penalty("l2", 0.3),
        Penalty("elasticnet", 0.3, l1_ratio=0.4, l1_method="subgradient"),
        Penalty("l1", 0.3, l1_method="subgradient"),
    ],
    ids=["l2", "elasticnet", "l1"],
)
def test_penalty_gradient_matches_central_finite_differences_away_from_zero(penalty):
    rng = np.random.default_rng(7)
    w = rng.uniform(0.2, 2.0, 6) * rng.choice([-1.0, 1.0], 6)
    grad = np.zeros_like(w)
    penalty.add_grad(grad, w)
    h = 1e-6
    numeric = [(penalty.value(w + h * e) - penalty.value(w - h * e)) / (2 * h) for e in np.eye(6)]
    assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


def test_l1_prox_soft_thresholds_and_gives_exact_zeros():
    w = np.array([0.5, -0.3, 0.05, -0.05, 0.0, 0.1])
    Penalty("l1", 0.5).prox(w, lr=0.2)  # threshold 0.1
    assert_allclose(w, [0.4, -0.2, 0.0, 0.0, 0.0, 0.0], atol=1e-16)
    assert np.count_nonzero(w) == 2
    assert_array_equal(w[2:] == 0.0, [True] * 4)


def test_elasticnet_prox_threshold_uses_only_the_l1_share():
    w = np.array([1.0, -1.0])
    Penalty("elasticnet", 1.0, l1_ratio=0.25).prox(w, lr=0.1)  # threshold 0.025
    assert_allclose(w, [0.975, -0.975], rtol=1e-15)


@pytest.mark.parametrize("penalty", [Penalty("l2", 1.0), Penalty("l1", 1.0, l1_method="subgradient"), Penalty()])
def test_prox_is_a_no_op_unless_l1_uses_the_proximal_method(penalty):
    w = np.array([0.5, -0.05])
    penalty.prox(w, lr=1.0)
    assert_array_equal(w, [0.5, -0.05])


def sparse_fit(method: str) -> np.ndarray:
    cfg = TrainConfig(
        dataset="synthetic",
        n_samples=200,
        n_features=10,
        n_informative=3,
        model="linear",
        penalty="l1",
        lam=0.1,
        l1_method=method,
        learning_rate=0.1,
        epochs=300,
    )
    return np.array(training.fit(cfg, training.load_data(cfg)).weights)


def test_l1_prox_gives_exact_zeros_on_the_uninformative_weights():
    w = sparse_fit("prox")
    assert np.all(w[:3] > 0.5)  # the informative weights survive
    assert_array_equal(w[3:], np.zeros(7))  # the other seven are exactly zero


def test_l1_subgradient_hovers_near_zero_without_reaching_it():
    w = sparse_fit("subgradient")
    assert np.all(w[:3] > 0.5)
    assert np.count_nonzero(w) == 10
    assert np.all(np.abs(w[3:]) < 0.02)  # within a few lr * lambda of zero


@pytest.mark.parametrize(("penalty", "l1_ratio"), [("l1", 0.5), ("elasticnet", 0.99)])
def test_bias_is_never_penalized_so_it_equals_the_mean_when_weights_are_zeroed(penalty, l1_ratio):
    # A huge L1 penalty zeroes every weight; the unpenalized bias then fits mean(y).
    X, y, names, _ = data.synthetic(200, 10, 3, 0.1, 0)
    y = y + 5.0
    ds = data.Dataset(X, y, None, None, names)
    cfg = TrainConfig(
        model="linear", fit_intercept=True, penalty=penalty, lam=100.0, l1_ratio=l1_ratio, learning_rate=0.1, epochs=300
    )
    result = training.fit(cfg, ds)
    assert_array_equal(result.weights, np.zeros(10))
    assert result.bias == pytest.approx(y.mean(), rel=1e-12)


def test_bias_is_not_in_the_penalty_term_of_the_objective():
    X, y, names, _ = data.synthetic(50, 3, 3, 0.1, 0)
    ds = data.Dataset(X, y + 10.0, None, None, names)
    cfg = TrainConfig(model="linear", fit_intercept=True, penalty="l2", lam=0.5, epochs=5)
    seen = []
    training.fit(cfg, ds, callback=lambda e, m, theta: seen.append((m, theta.copy())))
    for metrics, theta in seen[1:]:
        assert theta[3] != 0.0
        assert metrics["objective"] - metrics["loss"] == pytest.approx(0.5 * float(theta[:3] @ theta[:3]), rel=1e-9)


def test_l2_gradient_in_training_leaves_the_bias_alone():
    # With a zero data gradient on the bias (y centred, X columns centred) an L2 penalty must not move it.
    X = np.asfortranarray(np.array([[1.0, -1.0], [-1.0, 1.0], [2.0, 0.0], [-2.0, 0.0]]))
    y = np.array([1.0, -1.0, 2.0, -2.0])
    ds = data.Dataset(X, y, None, None, ("a", "b"))
    cfg = TrainConfig(model="linear", fit_intercept=True, penalty="l2", lam=10.0, learning_rate=0.01, epochs=20)
    assert training.fit(cfg, ds).bias == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "l3"}, "unknown penalty 'l3'"),
        ({"kind": "l1", "l1_method": "ista"}, "unknown l1 method 'ista'"),
        ({"kind": "l1", "lam": -0.1}, "lambda must be a finite number >= 0"),
        ({"kind": "l1", "lam": float("nan")}, "lambda must be a finite number >= 0"),
        ({"kind": "l1", "lam": float("inf")}, "lambda must be a finite number >= 0"),
        ({"kind": "elasticnet", "l1_ratio": 1.5}, r"l1_ratio must be in \[0, 1\]"),
    ],
)
def test_invalid_penalties_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Penalty(**kwargs)
