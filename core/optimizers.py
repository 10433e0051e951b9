"""Optimizers as small pure pieces, in the manner of optax.

An :class:`Optimizer` is a pair of pure functions::

    state = opt.init(params)
    step, state = opt.update(grad, state, params, lr)
    params = params - step          # the minus sign lives here and only here

``update`` returns the step already scaled by the learning rate (some rules,
AdamW's decay and Adagrad's ``lr_decay``, need ``lr`` inside), and a new state;
it never changes its inputs. State is a NamedTuple: nothing is hidden.

L-BFGS evaluates the objective itself, several times a step, so it is an :class:`Lbfgs`
pair instead: ``params, state, loss = opt.step(closure, state, params, lr)``.

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

from .lbfgs import Closure, Lbfgs, LbfgsState, lbfgs  # noqa: F401  (torch keeps L-BFGS in a module of its own)
from .schema import keyword_defaults


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
        _, decay = _weight_decay(grad, params, lr, weight_decay, True, mask)
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


def _weight_decay(grad, params, lr: float, weight_decay: float, decoupled: bool, mask: slice | None):
    """torch's weight decay on the masked entries only (gdlab never decays the bias), as
    ``(gradient, extra step)``: coupled, ``grad + weight_decay * param`` and no extra step;
    decoupled, the gradient as it is and the step ``lr * weight_decay * param`` (torch's
    ``param.mul_(1 - lr * weight_decay)`` before the update)."""
    if not weight_decay:
        return grad, 0.0
    sel = slice(None) if mask is None else mask
    if decoupled:
        decay = np.zeros_like(params)
        decay[sel] = (lr * weight_decay) * params[sel]
        return grad, decay
    out = grad.copy()
    out[sel] += weight_decay * params[sel]
    return out, 0.0


class NadamState(NamedTuple):
    count: int
    mu_product: float
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray


def nadam(
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    mask: slice | None = None,
) -> Optimizer:
    r"""torch.optim.NAdam (Dozat): Adam with Nesterov momentum and a momentum schedule.

    .. math::
        \mu_t = \beta_1 (1 - \tfrac12 \cdot 0.96^{t \psi}), \qquad \Pi_t = \prod_{i \le t} \mu_i \\
        d_t = \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
        \text{step} = \gamma \frac{1 - \mu_t}{1 - \Pi_t} \frac{g_t}{d_t}
                    + \gamma \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} \frac{m_t}{d_t}

    with ``psi`` = momentum_decay; weight decay coupled (in the gradient) or decoupled (AdamW's).
    """
    _check_betas(beta1, beta2, epsilon)
    _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
    _check(momentum_decay >= 0.0, f"Invalid momentum_decay value: {momentum_decay}")

    def init(params: np.ndarray) -> NadamState:
        z = np.zeros_like(params)
        return NadamState(0, 1.0, z, z)

    def update(grad, state, params, lr):
        t = state.count + 1
        grad, decay = _weight_decay(grad, params, lr, weight_decay, decoupled_weight_decay, mask)
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = state.mu_product * mu
        m = state.exp_avg + (1.0 - beta1) * (grad - state.exp_avg)  # torch's lerp
        v = beta2 * state.exp_avg_sq + (1.0 - beta2) * (grad * grad)
        denom = np.sqrt(v / (1.0 - beta2**t)) + epsilon
        step = (lr * (1.0 - mu) / (1.0 - mu_product)) * grad / denom
        step = step + (lr * mu_next / (1.0 - mu_product * mu_next)) * m / denom
        return decay + step, NadamState(t, mu_product, m, v)

    return Optimizer(init, update)


class RadamState(NamedTuple):
    count: int
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray


def radam(
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    mask: slice | None = None,
) -> Optimizer:
    r"""torch.optim.RAdam (Liu et al.): Adam whose adaptive step is switched on, and rectified,
    once the variance of the adaptive learning rate is tractable.

    .. math::
        \rho_\infty = \frac{2}{1 - \beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t} \\
        \text{step} = \gamma \hat m_t \, r_t \frac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon}
        \text{ if } \rho_t > 5, \text{ else } \gamma \hat m_t, \qquad
        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}
    """
    _check_betas(beta1, beta2, epsilon)
    _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")

    def init(params: np.ndarray) -> RadamState:
        z = np.zeros_like(params)
        return RadamState(0, z, z)

    def update(grad, state, params, lr):
        t = state.count + 1
        grad, decay = _weight_decay(grad, params, lr, weight_decay, decoupled_weight_decay, mask)
        m = state.exp_avg + (1.0 - beta1) * (grad - state.exp_avg)
        v = beta2 * state.exp_avg_sq + (1.0 - beta2) * (grad * grad)
        bias_correction2 = 1.0 - beta2**t
        m_hat = m / (1.0 - beta1**t)
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho_t = rho_inf - 2.0 * t * (beta2**t) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = (bias_correction2**0.5) / (np.sqrt(v) + epsilon)
            step = m_hat * lr * adaptive * rect
        else:
            step = m_hat * lr
        return decay + step, RadamState(t, m, v)

    return Optimizer(init, update)


class AdamaxState(NamedTuple):
    count: int
    exp_avg: np.ndarray
    exp_inf: np.ndarray


def adamax(*, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> Optimizer:
    r"""torch.optim.Adamax (Kingma & Ba): Adam with the infinity norm.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \qquad
        \text{step} = \frac{\gamma}{1 - \beta_1^t} \frac{m_t}{u_t}
    """
    _check_betas(beta1, beta2, epsilon)

    def init(params: np.ndarray) -> AdamaxState:
        z = np.zeros_like(params)
        return AdamaxState(0, z, z)

    def update(grad, state, params, lr):
        t = state.count + 1
        m = state.exp_avg + (1.0 - beta1) * (grad - state.exp_avg)
        u = np.maximum(beta2 * state.exp_inf, np.abs(grad) + epsilon)
        return (lr / (1.0 - beta1**t)) * m / u, AdamaxState(t, m, u)

    return Optimizer(init, update)


class AdadeltaState(NamedTuple):
    square_avg: np.ndarray
    acc_delta: np.ndarray


def adadelta(*, rho: float = 0.9, epsilon: float = 1e-6) -> Optimizer:
    r"""torch.optim.Adadelta (Zeiler), with torch's learning rate in front of the step.

    .. math::
        v_t = \rho v_{t-1} + (1 - \rho) g_t^2, \qquad
        \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t, \qquad
        u_t = \rho u_{t-1} + (1 - \rho) \Delta_t^2, \qquad \text{step} = \gamma \Delta_t

    (torch's default learning rate for Adadelta is 1.0; gdlab's is the lesson's 0.01.)
    """
    _check(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
    _check(epsilon >= 0.0, f"Invalid epsilon value: {epsilon}")

    def init(params: np.ndarray) -> AdadeltaState:
        z = np.zeros_like(params)
        return AdadeltaState(z, z)

    def update(grad, state, params, lr):
        v = rho * state.square_avg + (1.0 - rho) * (grad * grad)
        delta = np.sqrt(state.acc_delta + epsilon) / np.sqrt(v + epsilon) * grad
        u = rho * state.acc_delta + (1.0 - rho) * (delta * delta)
        return lr * delta, AdadeltaState(v, u)

    return Optimizer(init, update)


class AsgdState(NamedTuple):
    count: int
    eta: float | None  # None until the first step: it starts at the learning rate
    mu: float
    ax: np.ndarray


def asgd(*, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6) -> Optimizer:
    r"""torch.optim.ASGD (Polyak & Juditsky averaging, as torch steps it).

    .. math::
        \theta_t = \theta_{t-1} (1 - \lambda \eta_{t-1}) - \eta_{t-1} g_t, \qquad
        \eta_t = \frac{\gamma}{(1 + \lambda \gamma t)^\alpha}, \quad \eta_0 = \gamma

    The average ``ax`` (from step ``t0`` on) is kept in the state, as torch keeps it; the
    trained parameters are the iterates, as torch's are.
    """

    def init(params: np.ndarray) -> AsgdState:
        return AsgdState(0, None, 1.0, np.zeros_like(params))

    def update(grad, state, params, lr):
        t = state.count + 1
        eta = lr if state.eta is None else state.eta
        new = params * (1.0 - lambd * eta) - eta * grad
        ax = state.ax + (new - state.ax) * state.mu if state.mu != 1 else new.copy()
        next_eta = lr / ((1.0 + lambd * lr * t) ** alpha)
        mu = 1.0 / max(1.0, t - t0)
        return params - new, AsgdState(t, next_eta, mu, ax)

    return Optimizer(init, update)


class RpropState(NamedTuple):
    prev: np.ndarray
    step_size: np.ndarray | None  # None until the first step: it starts at the learning rate


def rprop(
    *,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    step_size_min: float = 1e-6,
    step_size_max: float = 50.0,
) -> Optimizer:
    r"""torch.optim.Rprop (resilient backpropagation, full-batch by design).

    Each coordinate's step size grows by ``eta_plus`` while its gradient keeps its sign and
    shrinks by ``eta_minus`` when it flips (then that coordinate skips the step), clamped to
    [step_size_min, step_size_max]; the step is ``sign(g) * step_size``. The step sizes start
    at the learning rate.
    """
    _check(0.0 < eta_minus < 1.0 < eta_plus, f"Invalid eta values: {eta_minus}, {eta_plus}")
    # (torch takes a reversed pair; the clamp then pins every step size to step_size_max)
    _check(0.0 <= step_size_min <= step_size_max, f"Invalid step sizes: {step_size_min}, {step_size_max}")

    def init(params: np.ndarray) -> RpropState:
        return RpropState(np.zeros_like(params), None)

    def update(grad, state, params, lr):
        step_size = np.full_like(params, lr) if state.step_size is None else state.step_size
        sign = np.sign(grad * state.prev)
        factor = np.where(sign > 0, eta_plus, np.where(sign < 0, eta_minus, 1.0))
        step_size = np.clip(step_size * factor, step_size_min, step_size_max)
        grad = np.where(factor == eta_minus, 0.0, grad)
        return np.sign(grad) * step_size, RpropState(grad, step_size)

    return Optimizer(init, update)


class LionState(NamedTuple):
    exp_avg: np.ndarray


def lion(*, beta1: float = 0.9, beta2: float = 0.99, weight_decay: float = 0.0, mask: slice | None = None) -> Optimizer:
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2), with
    optax's defaults: the sign of an interpolated momentum, and decoupled weight decay.

    .. math::
        c_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        \text{step} = \gamma (\operatorname{sign}(c_t) + \lambda_{wd} \theta_{t-1}), \qquad
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t

    (torch.optim has no Lion; the reference is the paper's algorithm, as optax implements it.)
    """
    _check_betas(beta1, beta2, 0.0)
    _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")

    def init(params: np.ndarray) -> LionState:
        return LionState(np.zeros_like(params))

    def update(grad, state, params, lr):
        _, decay = _weight_decay(grad, params, lr, weight_decay, True, mask)
        direction = np.sign(beta1 * state.exp_avg + (1.0 - beta1) * grad)
        m = beta2 * state.exp_avg + (1.0 - beta2) * grad
        return lr * direction + decay, LionState(m)

    return Optimizer(init, update)


class AdafactorState(NamedTuple):
    count: int
    variance: np.ndarray  # v of every unfactored tensor, in place (0 where a tensor is factored)
    factored: tuple = ()  # (row, col) of each 2-D tensor, in the order of ``tensors``


Tensors = tuple[tuple[slice, tuple[int, ...]], ...]


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """torch's ``start.lerp_(end, weight)``, which computes from the nearer end: ``start + w (end - start)``
    for w < 0.5, else ``end - (1 - w) (end - start)``."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def _rms(x: np.ndarray) -> float:
    """The root mean square, as torch's ``x.norm(2) / x.numel() ** 0.5``."""
    return float(np.linalg.norm(x)) / x.size**0.5


def _tensors(params: np.ndarray, tensors: Tensors | None, mask: slice | None) -> Tensors:
    """The parameter tensors ``(slice, shape)``: as given, else the weights ``mask`` and the rest
    (the bias) as two vectors, else all of ``params`` as one."""
    if tensors is not None:
        return tensors
    if mask is None:
        return ((slice(None), params.shape),)
    rest = slice(mask.stop, None)
    return ((mask, params[mask].shape), (rest, params[rest].shape))


def _factored_variance(g: np.ndarray, rc: tuple[np.ndarray, np.ndarray], weight: float, eps: float):
    """torch's factored second moment of a matrix gradient ``g`` (out, in): the row and column
    means of g^2 (their running averages ``rc``), and v = R C / mean(R), mean(R) floored at eps1."""
    row = _lerp(rc[0], np.square(np.linalg.norm(g, axis=-1, keepdims=True)) / g.shape[-1], weight)
    col = _lerp(rc[1], np.square(np.linalg.norm(g, axis=-2, keepdims=True)) / g.shape[-2], weight)
    return (row @ col) / max(float(row.mean()), eps), (row, col)


def adafactor(
    *,
    beta2_decay: float = -0.8,
    eps1: float | None = None,
    eps2: float = 1e-3,
    d: float = 1.0,
    weight_decay: float = 0.0,
    mask: slice | None = None,
    tensors: Tensors | None = None,
) -> Optimizer:
    r"""torch.optim.Adafactor (Shazeer & Stern), tensor by tensor as torch runs it: ``tensors``
    gives each tensor's slice of the parameters and shape (default: the weights ``mask``, then the
    bias, as two vectors). Each tensor has its own RMS; a vector's second moment is kept whole, a
    matrix's (out, in) is factored into row and column means (their outer product over the mean
    row: torch's ``row_var @ col_var / row_var.mean()``).

    .. math::
        \hat\beta_{2,t} = 1 - t^{\tau}, \qquad \rho_t = \min(\gamma, 1 / \sqrt t), \qquad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1})) \, \rho_t \\
        v_t = \hat\beta_{2,t} v_{t-1} + (1 - \hat\beta_{2,t}) g_t^2, \qquad
        u_t = \frac{g_t}{\max(\sqrt{v_t}, \epsilon_1)} \\
        \text{step} = \gamma \lambda_{wd} \theta_{t-1} + \frac{\alpha_t u_t}{\max(1, \mathrm{RMS}(u_t) / d)}

    with ``tau`` = beta2_decay, ``epsilon_1`` None meaning the machine epsilon of the parameters'
    dtype (torch's), and the weight decay decoupled (torch's ``param.mul_(1 - lr * wd)``), on the
    weights only. The learning rate only caps the relative step ``rho_t`` and scales the decay.
    """
    _check(beta2_decay <= 0.0, f"beta2_decay should be <= 0 but is: {beta2_decay}")
    _check(eps1 is None or eps1 >= 0.0, f"epsilon1 should be >= 0 but is: {eps1}")
    _check(eps2 >= 0.0, f"epsilon2 should be >= 0 but is: {eps2}")
    _check(d >= 1.0, f"Clipping threshold d should be >= 1 but is: {d}")
    _check(weight_decay >= 0.0, f"weight_decay should be >= 0 but is: {weight_decay}")

    def init(params: np.ndarray) -> AdafactorState:
        matrices = [shape for _, shape in _tensors(params, tensors, mask) if len(shape) == 2]
        factored = tuple((np.zeros((o, 1), params.dtype), np.zeros((1, i), params.dtype)) for o, i in matrices)
        return AdafactorState(0, np.zeros_like(params), factored)

    def update(grad, state, params, lr):
        t = state.count + 1
        eps = float(np.finfo(params.dtype).eps) if eps1 is None else eps1
        rho = min(lr, 1.0 / t**0.5)
        _, decay = _weight_decay(grad, params, lr, weight_decay, True, mask)
        step = np.zeros_like(params) + decay  # decay: 0.0, or the decoupled decay of the weights
        variance, factored, k = state.variance.copy(), list(state.factored), 0
        for sel, shape in _tensors(params, tensors, mask):  # torch's separate tensors, in order
            p, g = params[sel], grad[sel].reshape(shape)
            if not p.size:
                continue
            alpha = max(eps2, _rms(p)) * rho
            if len(shape) == 2:  # the k-th matrix
                v, factored[k] = _factored_variance(g, state.factored[k], t**beta2_decay, eps)
                k += 1
            else:
                v = variance[sel] = _lerp(state.variance[sel], g * g, t**beta2_decay)
            u = ((1.0 / np.sqrt(np.maximum(v, eps * eps))) * g).reshape(-1)
            step[sel] += (alpha / max(1.0, _rms(u) / d)) * u
        return step, AdafactorState(t, variance, tuple(factored))

    return Optimizer(init, update)


BUILDERS: dict[str, Callable[..., Optimizer | Lbfgs]] = {
    "sgd": sgd,
    "adam": adam,
    "adamw": adamw,
    "rmsprop": rmsprop,
    "adagrad": adagrad,
    "nadam": nadam,
    "radam": radam,
    "adamax": adamax,
    "adadelta": adadelta,
    "asgd": asgd,
    "rprop": rprop,
    "lion": lion,
    "adafactor": adafactor,
    "lbfgs": lbfgs,
}
OPTIMIZERS = tuple(BUILDERS)
# The builders' arguments that describe the parameters' layout, not hyperparameters.
LAYOUT = ("mask", "tensors")
# torch.optim's defaults, per optimizer: read off the builders' own signatures (their one statement).
DEFAULTS: dict[str, dict[str, Any]] = keyword_defaults(BUILDERS, leave_out=LAYOUT)


def default(option: str) -> Any:
    """An optimizer option's default for the first optimizer (in OPTIMIZERS order) that reads it:
    the value the CLI shows (``epsilon`` 1e-8 for Adam; Adagrad's own is 1e-10)."""
    return next(d[option] for d in DEFAULTS.values() if option in d)


def create(
    name: str, hyper: dict[str, Any], mask: slice | None = None, tensors: Tensors | None = None
) -> Optimizer | Lbfgs:
    """The optimizer ``name`` with torch's defaults overridden by ``hyper``'s entries that apply
    (an :class:`Lbfgs` for "lbfgs", which evaluates the objective itself). ``mask`` selects the
    weights (decayed; the rest, biases, never are); ``tensors`` gives each parameter tensor's
    ``(slice, shape)`` to the optimizers that work tensor by tensor (Adafactor)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    kwargs = {k: hyper.get(k, v) for k, v in DEFAULTS[name].items()}
    layout = {"mask": mask, "tensors": tensors}
    kwargs.update({k: v for k, v in layout.items() if k in inspect.signature(BUILDERS[name]).parameters})
    return BUILDERS[name](**kwargs)
