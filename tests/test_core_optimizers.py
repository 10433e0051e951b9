"""Optimizers: hand-computed single steps, torch-style validation, purity and convergence.

Conventions: ``step, state = opt.update(grad, state, params, lr)``; the caller does
``params - step``. Expected values below are worked out by hand (or with 40-digit
decimals where a square root is involved), never by running the code under test.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from core import data, optimizers, training
from core import lbfgs as core_lbfgs
from core.config import TrainConfig

G1 = np.array([0.5, -2.0])
G2 = np.array([1.0, 1.0])
PARAMS = np.array([1.0, 2.0])


def two_steps(opt, g1, g2, lr, params=PARAMS):
    state = opt.init(params)
    s1, state = opt.update(g1, state, params, lr)
    s2, state = opt.update(g2, state, params - s1, lr)
    return s1, s2, state


# --- SGD -------------------------------------------------------------------------------


def test_plain_sgd_step_is_lr_times_gradient():
    s1, s2, _ = two_steps(optimizers.sgd(), G1, G2, 0.1)
    assert_array_equal(s1, [0.05, -0.2])
    assert_array_equal(s2, [0.1, 0.1])


def test_momentum_first_step_is_the_raw_gradient_even_with_dampening():
    # torch: the first buffer is the gradient itself, not (1 - dampening) * g.
    s1, s2, state = two_steps(optimizers.sgd(momentum=0.9, dampening=0.5), G1, G2, 0.1)
    assert_allclose(s1, [0.05, -0.2], rtol=1e-15)
    # b2 = 0.9 * [0.5, -2] + (1 - 0.5) * [1, 1] = [0.95, -1.3]
    assert_allclose(state.momentum_buffer, [0.95, -1.3], rtol=1e-15)
    assert_allclose(s2, [0.095, -0.13], rtol=1e-15)


def test_momentum_second_step_accumulates_the_buffer():
    # b2 = 0.9 * [0.5, -2] + [1, 1] = [1.45, -0.8]
    s1, s2, state = two_steps(optimizers.sgd(momentum=0.9), G1, G2, 0.1)
    assert_allclose(s1, [0.05, -0.2], rtol=1e-15)
    assert_allclose(s2, [0.145, -0.08], rtol=1e-14)
    assert state.count == 2


def test_nesterov_steps_along_gradient_plus_momentum_times_buffer():
    # step 1: b = g, d = g + 0.9 g = [0.95, -3.8]
    # step 2: b = [1.45, -0.8], d = [1, 1] + 0.9 b = [2.305, 0.28]
    s1, s2, _ = two_steps(optimizers.sgd(momentum=0.9, nesterov=True), G1, G2, 0.1)
    assert_allclose(s1, [0.095, -0.38], rtol=1e-15)
    assert_allclose(s2, [0.2305, 0.028], rtol=1e-14)


# --- Adam / AdamW ------------------------------------------------------------------------


def test_adam_first_step_is_about_lr_times_sign_of_gradient():
    # m = 0.1 g, v = 0.001 g^2; after bias correction the step is lr * g / (|g| + eps).
    s1, s2, _ = two_steps(optimizers.adam(), G1, G2, 0.1)
    assert_allclose(s1, [0.1 * 0.5 / (0.5 + 1e-8), -0.1 * 2 / (2 + 1e-8)], rtol=1e-15)
    assert_allclose(s1, [0.09999999800000003, -0.0999999995], rtol=1e-15)
    # step 2: m = [0.145, -0.08], v = [0.00124975, 0.004996]; 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
    assert_allclose(s2, [0.09651820136149124, -0.02663370379756864], rtol=1e-14)


def test_adam_without_epsilon_first_step_is_exactly_lr_times_sign():
    s1, _, _ = two_steps(optimizers.adam(epsilon=0.0), np.array([0.003, -40.0, 7.0]), np.ones(3), 0.1, np.zeros(3))
    assert_allclose(s1, [0.1, -0.1, 0.1], rtol=1e-15)


def test_adam_zero_gradient_gives_zero_step():
    s1, _, _ = two_steps(optimizers.adam(), np.zeros(2), np.zeros(2), 0.1)
    assert_array_equal(s1, [0.0, 0.0])


def test_amsgrad_divides_by_the_running_maximum_of_the_raw_second_moment():
    # g = 2 then 0: v1 = 0.004, v2 = 0.003996 < v1; AMSGrad keeps 0.004. m2 = 0.18.
    g1, g2, p = np.array([2.0]), np.array([0.0]), np.array([0.0])
    _, ams, state = two_steps(optimizers.adam(amsgrad=True), g1, g2, 0.1, p)
    _, plain, _ = two_steps(optimizers.adam(), g1, g2, 0.1, p)
    assert_allclose(ams, [0.0669723136475815], rtol=1e-14)
    assert_allclose(plain, [0.06700582493973306], rtol=1e-14)
    assert_allclose(state.max_exp_avg_sq, [0.004], rtol=1e-15)


def test_adamw_decays_weights_but_not_the_bias_through_the_mask():
    # zero gradient: Adam's step is 0, so the step is the decay lr * wd * theta on the weights only.
    params = np.array([1.0, 2.0, 3.0])  # w0, w1, bias
    opt = optimizers.adamw(weight_decay=0.01, mask=slice(0, 2))
    step, _ = opt.update(np.zeros(3), opt.init(params), params, 0.1)
    assert_allclose(step[:2], [0.001, 0.002], rtol=1e-15)
    assert step[2] == 0.0


def test_adamw_without_mask_decays_every_entry():
    params = np.array([1.0, 2.0, 3.0])
    opt = optimizers.adamw()  # torch's default weight_decay 0.01
    step, _ = opt.update(np.zeros(3), opt.init(params), params, 0.1)
    assert_allclose(step, [0.001, 0.002, 0.003], rtol=1e-15)


def test_adamw_decay_is_decoupled_from_the_adam_moments():
    params = np.array([1.0, -2.0])
    adamw, adam = optimizers.adamw(weight_decay=0.1), optimizers.adam()
    step_w, state_w = adamw.update(G1, adamw.init(params), params, 0.1)
    step_a, state_a = adam.update(G1, adam.init(params), params, 0.1)
    assert_allclose(step_w, step_a + 0.1 * 0.1 * params, rtol=1e-15)
    # the moments saw the raw gradient only (coupled L2 would have fed 0.1 * params into them)
    assert_array_equal(state_w.inner.exp_avg, state_a.exp_avg)
    assert_array_equal(state_w.inner.exp_avg_sq, state_a.exp_avg_sq)


def test_adamw_with_zero_decay_equals_adam():
    a, b, _ = two_steps(optimizers.adamw(weight_decay=0.0), G1, G2, 0.1)
    c, d, _ = two_steps(optimizers.adam(), G1, G2, 0.1)
    assert_array_equal(a, c)
    assert_array_equal(b, d)


# --- RMSprop ------------------------------------------------------------------------------


def test_rmsprop_first_step_is_about_ten_times_lr_times_sign():
    # v = 0.01 g^2, avg = 0.1 |g| + eps: step = lr * g / (0.1 |g| + eps)
    s1, _, _ = two_steps(optimizers.rmsprop(), G1, G2, 0.01)
    assert_allclose(s1, [0.099999980000004, -0.09999999500000024], rtol=1e-14)


def test_centered_rmsprop_subtracts_the_squared_mean_gradient():
    # avg = sqrt(0.01 g^2 - (0.01 g)^2) + eps = sqrt(0.0099) |g| + eps
    s1, _, state = two_steps(optimizers.rmsprop(centered=True), G1, G2, 0.01)
    assert_allclose(s1, [0.10050376132390507, -0.10050377647541642], rtol=1e-14)
    assert_allclose(state.grad_avg, 0.01 * G1 + 0.01 * (G2 - 0.01 * G1), rtol=1e-15)


def test_rmsprop_momentum_accumulates_normalised_gradients():
    # b1 = g1 / avg1; b2 = 0.9 b1 + g2 / avg2, avg2 = sqrt(0.99 * 0.01 g1^2 + 0.01) + eps
    s1, s2, _ = two_steps(optimizers.rmsprop(momentum=0.9), G1, G2, 0.01)
    assert_allclose(s1, [0.099999980000004, -0.09999999500000024], rtol=1e-14)
    assert_allclose(s2, [0.1795322701911413, -0.045098672009435445], rtol=1e-14)


# --- Adagrad -------------------------------------------------------------------------------


def test_adagrad_accumulates_squares_and_decays_the_rate():
    # step 1: lr 0.1, sum = [9, 16]: 0.1 * [3, 4] / ([3, 4] + 1e-10)
    # step 2: lr 0.1 / (1 + 1 * 0.5), sum = [25, 25]: (0.1 / 1.5) * [4, 3] / (5 + 1e-10)
    s1, s2, state = two_steps(optimizers.adagrad(lr_decay=0.5), np.array([3.0, 4.0]), np.array([4.0, 3.0]), 0.1)
    assert_allclose(s1, [0.09999999999666667, 0.0999999999975], rtol=1e-14)
    assert_allclose(s2, [0.05333333333226667, 0.0399999999992], rtol=1e-14)
    assert_array_equal(state.sum, [25.0, 25.0])
    assert state.count == 2


def test_adagrad_without_decay_keeps_the_rate():
    _, s2, _ = two_steps(optimizers.adagrad(), np.array([3.0, 4.0]), np.array([4.0, 3.0]), 0.1)
    assert_allclose(s2, [0.1 * 4 / (5 + 1e-10), 0.1 * 3 / (5 + 1e-10)], rtol=1e-15)


# --- Adafactor ----------------------------------------------------------------------------


def test_adafactor_first_step_is_the_relative_step_times_the_sign_per_tensor():
    # t = 1: v = g^2, so u = sign(g) (RMS 1, no clipping); alpha = max(eps2, RMS(param)) * min(lr, 1).
    # Weights [1, 2]: RMS sqrt(2.5), alpha = 0.1 sqrt(2.5); the bias at 0: alpha = eps2 * 0.1 = 1e-4.
    params = np.array([1.0, 2.0, 0.0])
    opt = optimizers.adafactor(mask=slice(0, 2))
    step, state = opt.update(np.array([0.5, -2.0, 0.25]), opt.init(params), params, 0.1)
    w = 0.1581138830084189665999446772216359266860  # 0.1 sqrt(2.5), 40 digits
    assert_allclose(step, [w, -w, 1e-4], rtol=1e-15)
    assert_array_equal(state.variance, [0.25, 4.0, 0.0625])
    # one tensor (no mask): RMS([1, 2, 0]) = sqrt(5/3) for all three entries
    one = optimizers.adafactor()
    step, _ = one.update(np.array([0.5, -2.0, 0.25]), one.init(params), params, 0.1)
    assert_allclose(step, 0.1 * math.sqrt(5 / 3) * np.array([1.0, -1.0, 1.0]), rtol=1e-15)


def test_adafactor_clips_the_update_to_rms_d():
    # One entry, p = 3, g = 1 then 2, lr 0.1. Step 1: 0.1 * 3 * sign(1) = 0.3, p = 2.7.
    # Step 2: beta2 = 1 - 2^-0.8, v = lerp(1, 4, 2^-0.8) = 2.7230475324955525..., u = 2 / sqrt(v) = 1.2119993...
    # alpha = 0.1 * 2.7 = 0.27; d = 1 clips u to RMS 1 (the step is alpha); d = 2 does not.
    p = np.array([3.0])
    s1, s2, state = two_steps(optimizers.adafactor(), np.array([1.0]), np.array([2.0]), 0.1, p)
    assert_allclose(s1, [0.3], rtol=1e-15)
    assert_allclose(state.variance, [2.723047532495552510197940420166891384166], rtol=1e-15)
    assert_allclose(s2, [0.27], rtol=1e-15)
    _, s2, _ = two_steps(optimizers.adafactor(d=2.0), np.array([1.0]), np.array([2.0]), 0.1, p)
    assert_allclose(s2, [0.3272398226943886236529043908660699419722], rtol=1e-15)


def test_adafactor_eps1_none_is_the_dtypes_machine_epsilon():
    # g = 1e-20: v = 1e-40 < eps1^2, so u = g / eps1; float64's eps is 2^-52.
    params, g = np.array([1.0]), np.array([1e-20])
    none, given = optimizers.adafactor(), optimizers.adafactor(eps1=2.0**-52)
    assert_array_equal(
        none.update(g, none.init(params), params, 0.1)[0], given.update(g, given.init(params), params, 0.1)[0]
    )
    assert_allclose(none.update(g, none.init(params), params, 0.1)[0], [0.1 * 1e-20 / 2.0**-52], rtol=1e-15)
    # a zero gradient steps by 0 (not 0 / 0)
    step, _ = none.update(np.zeros(1), none.init(params), params, 0.1)
    assert_array_equal(step, [0.0])


def test_adafactor_weight_decay_is_decoupled_and_spares_the_bias():
    params, g = np.array([1.0, 2.0, 3.0]), np.array([0.5, -2.0, 1.0])
    decayed, plain = optimizers.adafactor(weight_decay=0.5, mask=slice(0, 2)), optimizers.adafactor(mask=slice(0, 2))
    step_d, state_d = decayed.update(g, decayed.init(params), params, 0.1)
    step_p, state_p = plain.update(g, plain.init(params), params, 0.1)
    assert_allclose(step_d, step_p + np.array([0.05 * 1.0, 0.05 * 2.0, 0.0]), rtol=1e-15)
    assert_array_equal(state_d.variance, state_p.variance)


# --- L-BFGS ---------------------------------------------------------------------------------


def quadratic(a, c, calls=None):
    """closure of f(x) = 0.5 sum a (x - c)^2, counting its calls in ``calls``."""

    def closure(x):
        if calls is not None:
            calls.append(x.copy())
        return float(0.5 * np.sum(a * (x - c) ** 2)), a * (x - c)

    return closure


def test_lbfgs_first_iteration_is_steepest_descent_of_length_lr_over_the_gradients_l1_norm():
    # x0 = 0: g = -a c = [-1, 4, -1.5], |g|_1 = 6.5, so x1 = -g * lr * min(1, 1 / 6.5). With max_iter 1
    # and no line search, torch evaluates once: at the start.
    a, c, calls = np.array([1.0, 2.0, 3.0]), np.array([1.0, -2.0, 0.5]), []
    opt = optimizers.lbfgs(max_iter=1)
    x, state, loss = opt.step(quadratic(a, c, calls), opt.init(np.zeros(3)), np.zeros(3), 1.0)
    assert_allclose(x, np.array([1.0, -4.0, 1.5]) / 6.5, rtol=1e-15)
    assert loss == 0.5 * (1 + 2 * 4 + 3 * 0.25)
    assert len(calls) == 1
    assert (state.n_iter, state.func_evals, len(state.old_dirs)) == (1, 1, 0)


def test_lbfgs_second_iteration_is_newtons_step_on_a_1d_quadratic():
    # f = 2 (x - 3)^2, x0 = 0: g0 = -12, t0 = 1/12, x1 = 1; then s = 1, y = 4 s, H = s y / y y = 1/4
    # and the two-loop recursion gives d = -g1 / 4 = 2: x2 = 3, the minimum (lr 1).
    a, c, calls = np.array([4.0]), np.array([3.0]), []
    opt = optimizers.lbfgs(max_iter=2, max_eval=3)
    x, state, _ = opt.step(quadratic(a, c, calls), opt.init(np.zeros(1)), np.zeros(1), 1.0)
    assert_allclose(x, [3.0], rtol=1e-15)
    assert_allclose([c[0] for c in calls], [0.0, 1.0], rtol=1e-15)  # no evaluation after the last iteration
    assert_allclose(state.H_diag, 0.25, rtol=1e-15)
    assert_allclose(state.ro, [0.25], rtol=1e-15)
    # max_eval None is max_iter * 5 // 4 = 2 evaluations: the step ends after the first iteration
    opt = optimizers.lbfgs(max_iter=2)
    x, state, _ = opt.step(quadratic(a, c), opt.init(np.zeros(1)), np.zeros(1), 1.0)
    assert_allclose(x, [1.0], rtol=1e-15)
    assert state.n_iter == 1


def test_lbfgs_at_an_optimum_evaluates_once_and_changes_nothing_else():
    a, c, calls = np.array([1.0, 2.0]), np.array([1.0, -1.0]), []
    opt = optimizers.lbfgs()
    state = opt.init(c)
    x, after, loss = opt.step(quadratic(a, c, calls), state, c.copy(), 1.0)
    assert_array_equal(x, c)
    assert loss == 0.0
    assert len(calls) == 1
    assert after == state._replace(func_evals=1)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_minimises_a_quadratic_within_its_budgets(line_search_fn):
    a, c, calls = np.array([1.0, 10.0, 100.0]), np.array([1.0, -2.0, 0.5]), []
    opt = optimizers.lbfgs(line_search_fn=line_search_fn, history_size=2, max_eval=15)
    x, state = np.zeros(3), opt.init(np.zeros(3))
    for _ in range(10):
        calls.clear()
        x, state, _ = opt.step(quadratic(a, c, calls), state, x, 1.0)
        # the line search's first trial comes before its budget check (torch's): one over at most
        assert len(calls) <= 15 + (line_search_fn is not None)
        assert len(state.old_dirs) <= 2
    # (it stops where the slope along its direction is below tolerance_change: near, not at, c)
    assert_allclose(x, c, atol=1e-5)


def test_lbfgs_step_is_pure():
    a, c = np.array([1.0, 2.0, 3.0]), np.array([1.0, -2.0, 0.5])
    opt = optimizers.lbfgs(line_search_fn="strong_wolfe", max_iter=3)
    x0 = np.zeros(3)
    x1, state, _ = opt.step(quadratic(a, c), opt.init(x0), x0, 1.0)
    snapshot = (x1.copy(), repr(state))
    first = opt.step(quadratic(a, c), state, x1, 1.0)
    second = opt.step(quadratic(a, c), state, x1, 1.0)
    assert_array_equal(first[0], second[0])
    assert repr(first[1]) == repr(second[1])
    assert_array_equal(x1, snapshot[0])
    assert repr(state) == snapshot[1]


def test_cubic_interpolation_finds_a_quadratics_minimum_and_bisects_without_one():
    # f = (x - 2)^2 through (0, 4, -4) and (3, 1, 2): the cubic is the parabola itself, minimum 2.
    assert core_lbfgs._cubic_interpolate(0.0, 4.0, -4.0, 3.0, 1.0, 2.0) == 2.0
    assert core_lbfgs._cubic_interpolate(3.0, 1.0, 2.0, 0.0, 4.0, -4.0) == 2.0
    # d1 = 8 - 3 (0 - 3) / (0 - 1) = -1, d1^2 - g1 g2 = 1 - 16 < 0: no minimum, the middle of the bounds
    assert core_lbfgs._cubic_interpolate(0.0, 0.0, 4.0, 1.0, 3.0, 4.0) == 0.5
    assert core_lbfgs._cubic_interpolate(0.0, 0.0, 4.0, 1.0, 3.0, 4.0, bounds=(0.2, 0.4)) == pytest.approx(0.3)
    # a minimum outside the bounds is clamped to them
    assert core_lbfgs._cubic_interpolate(0.0, 4.0, -4.0, 3.0, 1.0, 2.0, bounds=(0.0, 1.5)) == 1.5


def test_create_gives_lbfgs_its_own_closure_interface():
    opt = optimizers.create("lbfgs", {"history_size": 5, "beta1": 0.5})
    assert isinstance(opt, optimizers.Lbfgs)
    assert optimizers.DEFAULTS["lbfgs"] == {
        "max_iter": 20,
        "max_eval": None,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "history_size": 100,
        "line_search_fn": None,
    }


# --- purity, defaults, validation ----------------------------------------------------------

ALL = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {}),
    ("adam", {"amsgrad": True}),
    ("adamw", {}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("adagrad", {"lr_decay": 0.01}),
    ("nadam", {}),
    ("nadam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("radam", {}),
    ("adamax", {}),
    ("adadelta", {}),
    ("asgd", {"lambd": 0.0}),
    ("rprop", {}),
    ("lion", {}),
    ("lion", {"weight_decay": 0.1}),
    ("adafactor", {}),
    ("adafactor", {"weight_decay": 0.1, "eps1": 1e-3, "d": 2.0}),
]
IDS = [name + "".join(f"-{k}" for k in hyper) for name, hyper in ALL]


@pytest.mark.parametrize(("name", "hyper"), ALL, ids=IDS)
def test_update_is_pure_same_inputs_same_outputs_and_nothing_mutated(name, hyper):
    opt = optimizers.create(name, hyper)
    params, grad = np.array([0.3, -0.7]), np.array([1.5, -0.25])
    _, state = opt.update(grad, opt.init(params), params, 0.05)  # a non-trivial state
    snapshot = [np.copy(x) for x in (params, grad)]
    a, state_a = opt.update(grad, state, params, 0.05)
    b, state_b = opt.update(grad, state, params, 0.05)
    assert_array_equal(a, b)
    assert repr(state_a) == repr(state_b)
    assert_array_equal(snapshot[0], params)
    assert_array_equal(snapshot[1], grad)


def test_build_fills_torch_defaults_and_ignores_options_it_does_not_read():
    params = np.array([1.0, 2.0])
    built = optimizers.create("adagrad", {"beta1": 0.5, "momentum": 0.9})
    reference = optimizers.adagrad(lr_decay=0.0, epsilon=1e-10)
    assert_array_equal(
        built.update(G1, built.init(params), params, 0.1)[0],
        reference.update(G1, reference.init(params), params, 0.1)[0],
    )
    assert optimizers.DEFAULTS["adagrad"]["epsilon"] == 1e-10
    assert optimizers.DEFAULTS["adamw"]["weight_decay"] == 0.01
    assert optimizers.DEFAULTS["rmsprop"]["alpha"] == 0.99
    assert (optimizers.DEFAULTS["adam"]["beta1"], optimizers.DEFAULTS["adam"]["beta2"]) == (0.9, 0.999)


def test_build_passes_the_mask_to_adamw():
    params = np.array([1.0, 2.0, 3.0])
    opt = optimizers.create("adamw", {}, mask=slice(0, 2))
    step, _ = opt.update(np.zeros(3), opt.init(params), params, 0.1)
    assert step[2] == 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: optimizers.adam(beta1=1.0), "Invalid beta parameter at index 0: 1.0"),
        (lambda: optimizers.adam(beta1=-0.1), "Invalid beta parameter at index 0: -0.1"),
        (lambda: optimizers.adam(beta2=1.0), "Invalid beta parameter at index 1: 1.0"),
        (lambda: optimizers.adamw(beta1=1.0), "Invalid beta parameter at index 0: 1.0"),
        (lambda: optimizers.adam(epsilon=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda: optimizers.adamw(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
        (lambda: optimizers.sgd(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (
            lambda: optimizers.sgd(momentum=0.9, dampening=0.1, nesterov=True),
            "Nesterov momentum requires a momentum and zero dampening",
        ),
        (lambda: optimizers.sgd(momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda: optimizers.sgd(dampening=-0.5), "Invalid dampening value: -0.5"),
        (lambda: optimizers.rmsprop(alpha=-0.5), "Invalid alpha value: -0.5"),
        (lambda: optimizers.rmsprop(momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda: optimizers.rmsprop(epsilon=-1.0), "Invalid epsilon value: -1.0"),
        (lambda: optimizers.adagrad(lr_decay=-0.5), "Invalid lr_decay value: -0.5"),
        (lambda: optimizers.adagrad(epsilon=-1.0), "Invalid epsilon value: -1.0"),
        (lambda: optimizers.create("newton", {}), "unknown optimizer 'newton'"),
        (lambda: optimizers.adafactor(beta2_decay=0.1), "beta2_decay should be <= 0 but is: 0.1"),
        (lambda: optimizers.adafactor(eps1=-1.0), "epsilon1 should be >= 0 but is: -1.0"),
        (lambda: optimizers.adafactor(eps2=-1.0), "epsilon2 should be >= 0 but is: -1.0"),
        (lambda: optimizers.adafactor(d=0.5), "Clipping threshold d should be >= 1 but is: 0.5"),
        (lambda: optimizers.adafactor(weight_decay=-0.1), "weight_decay should be >= 0 but is: -0.1"),
        (lambda: optimizers.rprop(step_size_min=10.0, step_size_max=1.0), "Invalid step sizes: 10.0, 1.0"),
        (lambda: optimizers.lbfgs(max_iter=0), "Invalid max_iter value: 0"),
        (lambda: optimizers.lbfgs(max_eval=0), "Invalid max_eval value: 0"),
        (lambda: optimizers.lbfgs(history_size=0), "Invalid history_size value: 0"),
        (lambda: optimizers.lbfgs(tolerance_grad=-1.0), "Invalid tolerance_grad value: -1.0"),
        (lambda: optimizers.lbfgs(tolerance_change=-1.0), "Invalid tolerance_change value: -1.0"),
        (lambda: optimizers.lbfgs(line_search_fn="armijo"), "only 'strong_wolfe' is supported, got 'armijo'"),
    ],
)
def test_invalid_hyperparameters_are_refused_with_torchs_messages(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        make()


def test_a_hyperparameter_out_of_its_options_range_is_refused_by_the_config():
    with pytest.raises(ValueError, match=re.escape("beta1 must be in [0, 1), got 1.0")):
        TrainConfig(optimizer="adam", beta1=1.0)


def test_invalid_hyperparameters_together_are_refused_when_training_starts():
    cfg = TrainConfig(optimizer="rprop", step_size_min=10.0, step_size_max=1.0)  # each in range, not together
    with pytest.raises(ValueError, match=re.escape("Invalid step sizes: 10.0, 1.0")):
        training.fit(cfg, training.load_data(cfg))


# --- convergence -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "hyper"), ALL, ids=IDS)
def test_every_optimizer_minimises_a_parabola(name, hyper):
    # f(x) = 0.5 * sum(a * (x - c)^2), a well-conditioned diagonal quadratic; cosine-annealed lr.
    a, c = np.array([1.0, 2.0, 3.0]), np.array([1.0, -2.0, 0.5])
    opt = optimizers.create(
        name, {**hyper, "weight_decay": 0.0} if "weight_decay" in optimizers.DEFAULTS[name] else hyper
    )
    # Adagrad's rate only ever shrinks; Adadelta's step is its own ratio of averages (torch's lr is 1).
    base = 1.0 if name in ("adagrad", "adadelta") else 0.05
    x, n = np.zeros(3), 2000
    state = opt.init(x)
    for t in range(n):
        lr = base * (1 + math.cos(math.pi * t / n)) / 2
        step, state = opt.update(a * (x - c), state, x, lr)
        x = x - step
    assert_allclose(x, c, atol=1e-6)


CONVERGENCE = [
    ("sgd", {}, 0.1, 300, "constant"),
    ("sgd", {"momentum": 0.9}, 0.05, 400, "constant"),
    ("sgd", {"momentum": 0.9, "dampening": 0.5}, 0.05, 400, "constant"),
    ("sgd", {"momentum": 0.9, "nesterov": True}, 0.05, 300, "constant"),
    ("adam", {}, 0.05, 500, "constant"),
    ("adam", {"amsgrad": True}, 0.05, 500, "constant"),
    ("adamw", {"weight_decay": 0.0}, 0.05, 500, "constant"),
    ("rmsprop", {}, 0.01, 1000, "cosine"),
    ("rmsprop", {"centered": True, "momentum": 0.5}, 0.01, 1000, "cosine"),
    ("adagrad", {}, 0.5, 500, "constant"),
    ("adagrad", {"lr_decay": 0.001}, 0.5, 500, "constant"),
    ("nadam", {}, 0.05, 500, "constant"),
    ("radam", {}, 0.05, 500, "constant"),
    ("adamax", {}, 0.05, 500, "constant"),
    ("adadelta", {}, 1.0, 3000, "cosine"),
    ("asgd", {"lambd": 0.0}, 0.1, 300, "constant"),
    ("rprop", {}, 0.01, 300, "constant"),
    ("lion", {}, 0.01, 2000, "cosine"),
    ("adafactor", {}, 0.05, 2000, "cosine"),
    ("lbfgs", {}, 1.0, 10, "constant"),
    ("lbfgs", {"line_search_fn": "strong_wolfe"}, 1.0, 10, "constant"),
]


@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize(
    ("name", "hyper", "lr", "epochs", "schedule"),
    CONVERGENCE,
    ids=[name + "".join(f"-{k}" for k in hyper) for name, hyper, *_ in CONVERGENCE],
)
def test_every_optimizer_reaches_the_least_squares_solution(name, hyper, lr, epochs, schedule, fit_intercept):
    cfg = TrainConfig(
        dataset="synthetic",
        n_samples=100,
        n_features=4,
        n_informative=4,
        model="linear",
        fit_intercept=fit_intercept,
        optimizer=name,
        learning_rate=lr,
        epochs=epochs,
        lr_schedule=schedule,
        **hyper,
    )
    X, y, _, _ = data.synthetic(100, 4, 4, 0.1, 0)
    A = np.column_stack([X, np.ones(len(y))]) if fit_intercept else X
    expected = np.linalg.lstsq(A, y, rcond=None)[0]
    result = training.fit(cfg, training.load_data(cfg))
    assert_allclose(result.theta, expected, atol=1e-5)


def test_adamw_decay_shrinks_the_solution_below_least_squares():
    cfg = TrainConfig(
        dataset="synthetic",
        n_features=4,
        n_informative=4,
        model="linear",
        optimizer="adamw",
        weight_decay=0.5,
        learning_rate=0.05,
        epochs=500,
    )
    X, y, _, _ = data.synthetic(200, 4, 4, 0.1, 0)
    expected = np.linalg.lstsq(X, y, rcond=None)[0]
    result = training.fit(cfg, training.load_data(cfg))
    assert np.linalg.norm(result.theta) < np.linalg.norm(expected) - 0.01


# --- Lion against the paper's algorithm -------------------------------------------------------


def lion_reference(grad_of, theta0, lr, steps, beta1=0.9, beta2=0.99, wd=0.0, decayed=None):
    """Algorithm 2 of Chen et al. (2023), written out per coordinate in plain Python floats:
    c = b1 m + (1 - b1) g;  theta -= lr (sign(c) + wd theta);  m = b2 m + (1 - b2) g
    (``decayed``: which coordinates get the weight decay; gdlab never decays the bias)."""
    theta, m = [float(t) for t in theta0], [0.0] * len(theta0)
    decayed = decayed if decayed is not None else [True] * len(theta0)
    path = []
    for _ in range(steps):
        g = [float(x) for x in grad_of(np.array(theta))]
        for i in range(len(theta)):
            c = beta1 * m[i] + (1 - beta1) * g[i]
            sign = (c > 0) - (c < 0)
            theta[i] -= lr * (sign + (wd * theta[i] if decayed[i] else 0.0))
            m[i] = beta2 * m[i] + (1 - beta2) * g[i]
        path.append(list(theta))
    return np.array(path)


@pytest.mark.parametrize(("wd", "fit_intercept"), [(0.0, False), (0.1, False), (0.1, True)])
def test_lion_follows_the_papers_algorithm_step_for_step(wd, fit_intercept):
    cfg = TrainConfig(
        dataset="synthetic", n_samples=40, n_features=3, n_informative=3, model="linear",
        fit_intercept=fit_intercept, optimizer="lion", weight_decay=wd, learning_rate=0.01, epochs=200,
    )  # fmt: skip
    data_ = training.load_data(cfg)
    model = training.components(cfg, 3)[0]
    ws = model.workspace(len(data_.y_train))
    seen = []
    training.fit(cfg, data_, lambda epoch, metrics, theta: seen.append(theta.copy()))
    theta0 = model.init("seed")
    decayed = [True] * 3 + [False] * int(fit_intercept)
    ref = lion_reference(
        lambda th: model.loss_and_grad(th, data_.X_train, data_.y_train, ws)[1].copy(), theta0, 0.01, 200,
        wd=wd, decayed=decayed,
    )  # fmt: skip
    assert_allclose(np.array(seen[1:]), ref[:-1], rtol=0, atol=1e-12)
