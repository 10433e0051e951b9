"""Optimizers as small pure pieces, in the manner of optax.

An :class:`Optimizer` is a pair of pure functions::

    state = opt.init(params)
    step, state = opt.update(grad, state, params, lr)
    params = params - step          # the minus sign lives here and only here

``update`` returns the step already scaled by the learning rate (some rules,
AdamW's decay and Adagrad's ``lr_decay``, need ``lr`` inside), and a new state;
it never changes its inputs. State is a NamedTuple: nothing is hidden.

The update rules, defaults and validation follow ``torch.optim`` exactly (its
``_single_tensor_*`` functions are the reference); the only default that differs
is the learning rate, the lesson's 0.01, which the caller passes in.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class Optimizer(NamedTuple):
    init: Callable[[np.ndarray], Any]
    update: Callable[[np.ndarray, Any, np.ndarray, float], tuple[np.ndarray, Any]]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class SgdState(NamedTuple):
    count: int
    momentum_buffer: np.ndarray


def sgd(*, momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False) -> Optimizer:
    r"""Stochastic gradient descent with torch's momentum, dampening and Nesterov.

    .. math::
        b_1 = g_1, \quad b_t = \mu b_{t-1} + (1 - \tau) g_t \\
        d_t = g_t + \mu b_t \text{ (nesterov) or } b_t \text{ (momentum) or } g_t \text{ (}\mu = 0) \\
        \text{step} = \gamma d_t

    The first buffer is the raw gradient (no dampening), as in torch.
    """
    _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
    _check(dampening >= 0.0, f"Invalid dampening value: {dampening}")
    _check(
        not nesterov or (momentum > 0 and dampening == 0),
        "Nesterov momentum requires a momentum and zero dampening",
    )

    def init(params: np.ndarray) -> SgdState:
        return SgdState(0, np.zeros_like(params))

    def update(grad, state, params, lr):
        if momentum == 0.0:
            return lr * grad, SgdState(state.count + 1, state.momentum_buffer)
        if state.count == 0:
            buf = grad.copy()
        else:
            buf = momentum * state.momentum_buffer + (1.0 - dampening) * grad
        direction = grad + momentum * buf if nesterov else buf
        return lr * direction, SgdState(state.count + 1, buf)

    return Optimizer(init, update)


class AdamState(NamedTuple):
    count: int
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    max_exp_avg_sq: np.ndarray


def _check_betas(beta1: float, beta2: float, eps: float) -> None:
    _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
    _check(0.0 <= beta1 < 1.0, f"Invalid beta parameter at index 0: {beta1}")
    _check(0.0 <= beta2 < 1.0, f"Invalid beta parameter at index 1: {beta2}")


def adam(*, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, amsgrad: bool = False) -> Optimizer:
    r"""torch.optim.Adam (Kingma & Ba), torch's form: epsilon is added *after* the bias-corrected
    sqrt. An L2 penalty, if any, enters through the gradient.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t = \max(\hat v_{t-1}, v_t) \text{ with AMSGrad (on the raw } v\text{), else } v_t \\
        \text{step} = \frac{\gamma}{1 - \beta_1^t} \cdot \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    (optax's ``scale_by_adam`` puts eps in the same place but applies the bias correction to
    m and v before dividing, and leaves the learning rate to ``scale_by_learning_rate``; the
    values agree to rounding.)
    """
    _check_betas(beta1, beta2, epsilon)

    def init(params: np.ndarray) -> AdamState:
        z = np.zeros_like(params)
        return AdamState(0, z, z, z)

    def update(grad, state, params, lr):
        t = state.count + 1
        m = state.exp_avg + (1.0 - beta1) * (grad - state.exp_avg)  # torch's lerp
        v = beta2 * state.exp_avg_sq + (1.0 - beta2) * (grad * grad)
        vmax = np.maximum(state.max_exp_avg_sq, v) if amsgrad else state.max_exp_avg_sq
        bias_correction1 = 1.0 - beta1**t
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**t)
        denom = np.sqrt(vmax if amsgrad else v) / bias_correction2_sqrt + epsilon
        step = (lr / bias_correction1) * m / denom
        return step, AdamState(t, m, v, vmax)

    return Optimizer(init, update)


class DecayState(NamedTuple):
    inner: Any


def add_decayed_weights(inner: Optimizer, weight_decay: float, mask: slice | None = None) -> Optimizer:
    r"""Decoupled weight decay around another optimizer (AdamW, Loshchilov & Hutter).

    .. math::
        \text{step} = \gamma \lambda_{wd} \theta_{t-1} + \text{inner step}

    i.e. torch's ``param.mul_(1 - lr * weight_decay)`` before the inner update.
    The decay does not go through the inner optimizer's moments (that would be
    coupled L2). ``mask`` selects the decayed entries; the bias never is.
    """
    _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")

    def init(params):
        return DecayState(inner.init(params))

    def update(grad, state, params, lr):
        step, inner_state = inner.update(grad, state.inner, params, lr)
        decay = np.zeros_like(params)
        sel = slice(None) if mask is None else mask
        decay[sel] = (lr * weight_decay) * params[sel]
        return decay + step, DecayState(inner_state)

    return Optimizer(init, update)


def adamw(
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    amsgrad: bool = False,
    weight_decay: float = 1e-2,
    mask: slice | None = None,
) -> Optimizer:
    """torch.optim.AdamW: Adam plus decoupled weight decay (torch's default 0.01)."""
    return add_decayed_weights(adam(beta1=beta1, beta2=beta2, epsilon=epsilon, amsgrad=amsgrad), weight_decay, mask)


class RmspropState(NamedTuple):
    square_avg: np.ndarray
    grad_avg: np.ndarray
    momentum_buffer: np.ndarray


def rmsprop(*, alpha: float = 0.99, epsilon: float = 1e-8, momentum: float = 0.0, centered: bool = False) -> Optimizer:
    r"""RMSprop as torch implements it (eps outside the sqrt; optional centering and momentum).

    .. math::
        v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2, \qquad
        \bar g_t = \alpha \bar g_{t-1} + (1 - \alpha) g_t \text{ (centered)} \\
        a_t = \sqrt{v_t - \bar g_t^2} + \epsilon \text{ (centered) or } \sqrt{v_t} + \epsilon \\
        b_t = \mu b_{t-1} + g_t / a_t, \quad \text{step} = \gamma b_t
        \text{ (momentum) or } \gamma g_t / a_t
    """
    _check(epsilon >= 0.0, f"Invalid epsilon value: {epsilon}")
    _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
    _check(alpha >= 0.0, f"Invalid alpha value: {alpha}")

    def init(params):
        z = np.zeros_like(params)
        return RmspropState(z, z, z)

    def update(grad, state, params, lr):
        square_avg = alpha * state.square_avg + (1.0 - alpha) * (grad * grad)
        grad_avg = state.grad_avg
        if centered:
            grad_avg = grad_avg + (1.0 - alpha) * (grad - grad_avg)  # torch's lerp
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + epsilon
        else:
            avg = np.sqrt(square_avg) + epsilon
        buf = state.momentum_buffer
        if momentum > 0:
            buf = momentum * buf + grad / avg
            step = lr * buf
        else:
            step = lr * grad / avg
        return step, RmspropState(square_avg, grad_avg, buf)

    return Optimizer(init, update)


class AdagradState(NamedTuple):
    count: int
    sum: np.ndarray


def adagrad(*, lr_decay: float = 0.0, epsilon: float = 1e-10) -> Optimizer:
    r"""Adagrad as torch implements it.

    .. math::
        \tilde\gamma_t = \gamma / (1 + (t - 1) \eta), \qquad s_t = s_{t-1} + g_t^2 \\
        \text{step} = \tilde\gamma_t \, g_t / (\sqrt{s_t} + \epsilon)
    """
    _check(lr_decay >= 0.0, f"Invalid lr_decay value: {lr_decay}")
    _check(epsilon >= 0.0, f"Invalid epsilon value: {epsilon}")

    def init(params):
        return AdagradState(0, np.zeros_like(params))

    def update(grad, state, params, lr):
        t = state.count + 1
        clr = lr / (1.0 + (t - 1) * lr_decay)
        s = state.sum + grad * grad
        return clr * grad / (np.sqrt(s) + epsilon), AdagradState(t, s)

    return Optimizer(init, update)


BUILDERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd,
    "adam": adam,
    "adamw": adamw,
    "rmsprop": rmsprop,
    "adagrad": adagrad,
}
OPTIMIZERS = tuple(BUILDERS)
# torch.optim's defaults, per optimizer: read off the builders' own signatures (their one statement).
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.name != "mask"}
    for name, fn in BUILDERS.items()
}


def default(option: str) -> Any:
    """An optimizer option's default for the first optimizer (in OPTIMIZERS order) that reads it:
    the value the CLI shows (``epsilon`` 1e-8 for Adam; Adagrad's own is 1e-10)."""
    return next(d[option] for d in DEFAULTS.values() if option in d)


def create(name: str, hyper: dict[str, Any], mask: slice | None = None) -> Optimizer:
    """The optimizer ``name`` with torch's defaults overridden by ``hyper``'s entries that apply."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    kwargs = {k: hyper.get(k, v) for k, v in DEFAULTS[name].items()}
    if name == "adamw":
        kwargs["mask"] = mask
    return BUILDERS[name](**kwargs)
