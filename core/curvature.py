"""The curvature of the training objective at a point: why a learning rate is stable or crawls.

The objective is what the optimizer descends: the loss (MSE or log loss) plus the penalty's
smooth part, lambda * (L2 share) * sum w^2 (the L1 part has no curvature off w = 0). Its Hessian H
at theta says how the loss bends there. On a quadratic, gradient descent with learning rate eta
is stable iff eta * lambda_max(H) < 2, and the direction of the smallest eigenvalue shrinks by
|1 - eta * lambda_min| a step (Goh, "Why Momentum Really Works", Distill 2017; d2l.ai 12.3);
full-batch GD on a network drives lambda_max up to about 2 / eta and holds it there (Cohen et
al. 2021, "the edge of stability").

* Exact, where the Hessian has a closed form (:func:`hessian`): the neuron models, with X_a = [X, 1]
  with an intercept and z = X w + b,

      linear    H = 2/n X_aᵀ X_a
      relu      H = 2/n X_aᵀ D X_a,   D = diag(z > 0)  (ReLU'' = 0 off z = 0, as autograd has it)
      logistic  H = 1/n X_aᵀ S X_a,   S = diag(p (1 - p)),  p = sigmoid(z)

  plus 2 * lambda * (L2 share) on the weights' diagonal; and the six test functions, by hand.
  ``eigvalsh`` then gives every eigenvalue: the sharpness, the smallest, the condition number.
* A network (:class:`core.mlp.MLP`): its Hessian is never formed. Hessian-vector products are
  exact, forward-over-reverse by hand (:func:`hvp`, Pearlmutter's R-operator, each ReLU's pattern
  held; a difference of gradients straddles kinks and was off by orders of magnitude mid-training),
  and Lanczos (``scipy.sparse.linalg.eigsh``, largest
  algebraic eigenvalue, relative tolerance :data:`LANCZOS_TOL`, at most :data:`LANCZOS_MAXITER`
  iterations) finds the sharpness alone. Measured against torch's autograd Hessian in
  tests/test_core_curvature.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .functions import Objective
from .models import Model
from .neuron import sigmoid
from .penalties import Penalty

HVP_STEP = 1e-5  # relative step of hvp_by_difference (error O(h²) in H v; rounding O(eps / h))
LANCZOS_TOL = 1e-6  # eigsh's relative tolerance on the sharpness of a network
LANCZOS_MAXITER = 300


@dataclass(frozen=True)
class Curvature:
    """The objective's curvature at one point: its largest eigenvalue (sharpness) and, where the
    Hessian is formed, its smallest and the condition number (None otherwise, or where the
    smallest is not positive)."""

    sharpness: float
    smallest: float | None = None
    exact: bool = True

    @property
    def condition(self) -> float | None:
        if self.smallest is None or not self.smallest > 0:
            return None
        return self.sharpness / self.smallest

    def metrics(self, lr: float) -> dict[str, float]:
        """As a run logs them: sharpness, lr_sharpness (eta * lambda_max: a quadratic is stable under GD
        iff it is below 2) and, where known, condition_number (the smallest eigenvalue is
        sharpness / condition_number: not logged, each value a logged epoch costs the run ~0.15 ms)."""
        out = {"sharpness": self.sharpness, "lr_sharpness": lr * self.sharpness}
        if self.condition is not None:
            out["condition_number"] = self.condition
        return out


def _function_hessian(name: str, x: float, y: float, kappa: float) -> np.ndarray:
    if name == "rosenbrock":
        return np.array([[2.0 - 400.0 * y + 1200.0 * x * x, -400.0 * x], [-400.0 * x, 200.0]])
    if name == "beale":
        h = np.zeros((2, 2))
        for i, c in enumerate((1.5, 2.25, 2.625), start=1):
            t = c - x + x * y**i
            g = np.array([y**i - 1.0, i * x * y ** (i - 1)])
            yy = i * (i - 1) * x * y ** (i - 2) if i > 1 else 0.0  # (i = 1: no y² term; 0.0 ** -1 raised)
            second = np.array([[0.0, i * y ** (i - 1)], [i * y ** (i - 1), yy]])
            h += 2.0 * (np.outer(g, g) + t * second)
        return h
    if name == "himmelblau":
        a, b = x * x + y - 11.0, x + y * y - 7.0
        return np.array([[8.0 * x * x + 4.0 * a + 2.0, 4.0 * (x + y)], [4.0 * (x + y), 2.0 + 8.0 * y * y + 4.0 * b]])
    if name == "rastrigin":
        k = 2.0 * np.pi
        return np.diag([2.0 + 10.0 * k * k * np.cos(k * x), 2.0 + 10.0 * k * k * np.cos(k * y)])
    if name == "booth":
        return np.array([[10.0, 8.0], [8.0, 10.0]])
    if name == "ill_conditioned":
        return np.diag([1.0, kappa])
    raise ValueError(f"no Hessian for {name!r}")


def hessian(model, theta: np.ndarray, X=None, y=None, penalty: Penalty | None = None, gram=None) -> np.ndarray | None:
    """The objective's Hessian at ``theta`` (n_params, n_params), or None for a network (see
    :func:`curvature`). ``gram``: a linear model's X_aᵀ X_a, which does not change, computed once."""
    if isinstance(model, Objective):
        h = _function_hessian(model.name, float(theta[0]), float(theta[1]), model.condition_number)
    elif isinstance(model, Model) and not getattr(model, "hidden", ()):  # (an MLP is a Model too)
        h = _neuron_hessian(model, theta, X, gram)
    else:
        return None
    if penalty is not None and penalty.active and penalty.l2_weight:
        d = model.n_weights
        h[np.arange(d), np.arange(d)] += 2.0 * penalty.l2_weight
    return h


def gram_of(model, X) -> np.ndarray | None:
    """X_aᵀ X_a of a linear model (its Hessian is 2/n of it, wherever theta is), else None."""
    if not isinstance(model, Model) or getattr(model, "hidden", ()) or model.kind != "linear":
        return None
    Xa = _with_ones(X, model.fit_intercept)
    return Xa.T @ Xa


def _with_ones(X, fit_intercept: bool) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return np.column_stack([X, np.ones(len(X))]) if fit_intercept else X


def _neuron_hessian(model: Model, theta, X, gram=None) -> np.ndarray:
    n = len(X)
    if model.kind == "linear":
        return 2.0 / n * (gram if gram is not None else gram_of(model, X)).copy()
    z = model.logits(theta, X)
    if model.kind == "relu":
        active = z > 0.0
        Xa = _with_ones(X[active], model.fit_intercept)
        return 2.0 / n * (Xa.T @ Xa)
    p = sigmoid(z)
    Xa = _with_ones(X, model.fit_intercept)
    return (Xa.T * (p * (1.0 - p) / n)) @ Xa


class Tracker:
    """:func:`curvature` along a run, reusing what has not changed: a linear model's Hessian is the
    same everywhere (its eigenvalues are computed once), a ReLU neuron's changes only with the set
    of rows where z > 0 (computed again when that set changes)."""

    def __init__(self, model, X, y, penalty: Penalty | None):
        self.model, self.X, self.y, self.penalty = model, X, y, penalty
        self.gram = gram_of(model, X)
        self.key, self.found = None, None

    def __call__(self, theta) -> Curvature:
        model = self.model
        if self.gram is not None:
            key = "linear"
        elif isinstance(model, Model) and not getattr(model, "hidden", ()) and model.kind == "relu":
            key = np.packbits(model.logits(theta, self.X) > 0.0).tobytes()
        else:
            key = None
        if key is not None and key == self.key:
            return self.found
        found = curvature(model, theta, self.X, self.y, self.penalty, self.gram)
        self.key, self.found = key, found
        return found


def curvature(model, theta, X=None, y=None, penalty: Penalty | None = None, gram=None) -> Curvature:
    """The objective's sharpness at ``theta`` (and, where the Hessian is formed, its smallest
    eigenvalue); exact for the neuron models and the test functions, Lanczos over Hessian-vector
    products for a network."""
    h = hessian(model, theta, X, y, penalty, gram)
    if h is not None:
        eigenvalues = np.linalg.eigvalsh(h)
        return Curvature(float(eigenvalues[-1]), float(eigenvalues[0]))
    return Curvature(network_sharpness(model, theta, X, y, penalty), None, exact=False)


def hvp(model, theta, X, y, v, penalty: Penalty | None = None) -> np.ndarray:
    """A network's H v, exact: forward-over-reverse by hand (Pearlmutter's R-operator) through
    :meth:`core.mlp.MLP.loss_and_grad`'s passes, with every ReLU's on/off pattern that of ``theta``
    (ReLU'' = 0 off its kink, as autograd has it; a difference of gradients would straddle kinks).
    The penalty's smooth part is included."""
    layers, dirs = model.layers(np.asarray(theta, dtype=np.float64)), model.layers(np.asarray(v, dtype=np.float64))
    n = len(y)
    acts, racts, masks = [np.asarray(X, dtype=np.float64)], [np.zeros_like(X, dtype=np.float64)], []
    for (W, b), (dW, db) in zip(layers[:-1], dirs[:-1], strict=True):  # forward, and its derivative along v
        Z = acts[-1] @ W.T + (0.0 if b is None else b)
        RZ = racts[-1] @ W.T + acts[-1] @ dW.T + (0.0 if db is None else db)
        mask = Z > 0.0
        masks.append(mask)
        acts.append(Z * mask)
        racts.append(RZ * mask)
    (w_out, b_out), (dw_out, db_out) = layers[-1], dirs[-1]
    z = acts[-1] @ w_out[0] + (0.0 if b_out is None else b_out[0])
    rz = racts[-1] @ w_out[0] + acts[-1] @ dw_out[0] + (0.0 if db_out is None else db_out[0])
    if model.kind == "logistic":
        p = sigmoid(z)
        r, rr = (p - y) / n, p * (1.0 - p) / n * rz
    else:
        on = (z > 0.0) if model.kind == "relu" else np.ones_like(z, dtype=bool)
        r, rr = 2.0 / n * (np.maximum(z, 0.0) if model.kind == "relu" else z) - 2.0 / n * y, 2.0 / n * rz
        r, rr = r * on, rr * on
    out = np.zeros(model.n_params)
    grads = model.layers(out)
    gw, gb = grads[-1]
    gw[0] = racts[-1].T @ r + acts[-1].T @ rr
    if gb is not None:
        gb[0] = rr.sum()
    delta = np.outer(r, w_out[0]) * masks[-1]  # dL/dZ_L
    rdelta = (np.outer(rr, w_out[0]) + np.outer(r, dw_out[0])) * masks[-1]
    for k in range(len(layers) - 2, -1, -1):
        gW, gb = grads[k]
        gW[...] = rdelta.T @ acts[k] + delta.T @ racts[k]
        if gb is not None:
            gb[...] = rdelta.sum(axis=0)
        if k:
            W, dW = layers[k][0], dirs[k][0]
            delta, rdelta = (delta @ W) * masks[k - 1], (rdelta @ W + delta @ dW) * masks[k - 1]
    if penalty is not None and penalty.active and penalty.l2_weight:
        d = model.n_weights
        out[:d] += 2.0 * penalty.l2_weight * np.asarray(v)[:d]
    return out


def hvp_by_difference(model, theta, X, y, v, penalty: Penalty | None = None, step: float = HVP_STEP) -> np.ndarray:
    """H v by a central difference of the analytic gradient (penalty's smooth part included): a
    check on :func:`hvp` away from kinks, O(h²) off."""
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        return np.zeros_like(theta)
    h = step * (1.0 + float(np.linalg.norm(theta))) / norm
    d = model.n_weights
    grads = []
    for sign in (1.0, -1.0):
        point = theta + sign * h * v
        _, g = model.loss_and_grad(point, X, y)
        g = np.array(g, dtype=np.float64)
        if penalty is not None and penalty.active and penalty.l2_weight:
            g[:d] += 2.0 * penalty.l2_weight * point[:d]
        grads.append(g)
    return (grads[0] - grads[1]) / (2.0 * h)


def network_sharpness(model, theta, X, y, penalty: Penalty | None = None) -> float:
    """The largest eigenvalue of a network's objective Hessian: Lanczos on :func:`hvp`."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    theta = np.asarray(theta, dtype=np.float64)
    p = len(theta)
    if p <= 2:  # (eigsh needs k < p: form it instead)
        h = np.column_stack([hvp(model, theta, X, y, e, penalty) for e in np.eye(p)])
        return float(np.linalg.eigvalsh((h + h.T) / 2.0)[-1])
    op = LinearOperator((p, p), matvec=lambda v: hvp(model, theta, X, y, np.ravel(v), penalty), dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(p)
    try:
        values = eigsh(op, k=1, which="LA", tol=LANCZOS_TOL, maxiter=LANCZOS_MAXITER, v0=v0, return_eigenvectors=False)
    except ArpackNoConvergence as exc:
        values = exc.eigenvalues
        if len(values) == 0:
            return math.nan
    return float(np.max(values))


# --------------------------------------------------------------------------- what theory predicts on a quadratic
#
# On f(θ) = ½ (θ - θ*)ᵀ H (θ - θ*) + f*, each eigencomponent of the error e = θ - θ* (eigenvalue λ)
# evolves on its own (Goh 2017): gradient descent multiplies it by 1 - ηλ a step; heavy ball
# (torch's SGD momentum μ: v ← μ v + g, θ ← θ - η v) and Nesterov (θ ← θ - η (g + μ v)) carry
# (e, v) through a 2x2 matrix whose spectral radius is the rate. The error then shrinks by the
# largest rate over the eigenvalues, and f - f* (quadratic in e) by its square.


def iteration_matrix(lam: float, lr: float, momentum: float = 0.0, nesterov: bool = False) -> np.ndarray:
    """The map (e, v) ↦ (e', v') of one step on an eigencomponent with eigenvalue ``lam``."""
    if nesterov:  # g = λe, v' = μv + g, e' = e - η(g + μv')
        return np.array([[1.0 - lr * lam * (1.0 + momentum), -lr * momentum * momentum], [lam, momentum]])
    return np.array([[1.0 - lr * lam, -lr * momentum], [lam, momentum]])  # v' = μv + λe, e' = e - ηv'


def predicted_rate(eigenvalues, lr: float, momentum: float = 0.0, nesterov: bool = False) -> float:
    """The factor by which the error shrinks a step, asymptotically: max over the Hessian's
    eigenvalues of |1 - ηλ| (gradient descent) or of the iteration matrix's spectral radius."""
    rates = []
    for lam in np.atleast_1d(eigenvalues):
        if momentum == 0.0 and not nesterov:
            rates.append(abs(1.0 - lr * lam))
        else:
            rates.append(float(np.max(np.abs(np.linalg.eigvals(iteration_matrix(lam, lr, momentum, nesterov))))))
    return max(rates)


def stability_edge(sharpness: float, momentum: float = 0.0, nesterov: bool = False) -> float:
    """The learning rate above which the sharpest direction grows: 2/λ for gradient descent,
    2(1 + μ)/λ for heavy ball, 2(1 + μ)/((1 + 2μ) λ) for Nesterov (where the iteration matrix's
    eigenvalue reaches -1)."""
    if nesterov:
        return 2.0 * (1.0 + momentum) / ((1.0 + 2.0 * momentum) * sharpness)
    return 2.0 * (1.0 + momentum) / sharpness


def measured_rate(losses, f_star: float = 0.0, epochs=None, floor: float = 0.0) -> float:
    """The factor by which the error shrank an epoch over the last half of ``losses`` (logged at
    ``epochs``, default one an epoch): exp(slope / 2) of the least-squares line through log(f - f*)
    against the epoch (f - f* is quadratic in the error). Points whose f - f* is below ``floor``
    (rounding, once a run has converged) are left out. NaN with fewer than 3 points left."""
    losses = np.asarray(losses, dtype=np.float64)
    epochs = np.arange(len(losses), dtype=np.float64) if epochs is None else np.asarray(epochs, dtype=np.float64)
    half = len(losses) // 2
    gap, at = losses[half:] - f_star, epochs[half:]
    keep = np.isfinite(gap) & (gap > floor)
    if np.count_nonzero(keep) < 3:
        return math.nan
    slope = np.polyfit(at[keep] - at[keep][0], np.log(gap[keep]), 1)[0]
    return float(np.exp(slope / 2.0))


def rate_map(eigenvalues, lrs, momenta, nesterov: bool = False) -> np.ndarray:
    """Goh's phase diagram: :func:`predicted_rate` at each (momentum, lr), shape (len(momenta),
    len(lrs)); the 2x2 matrices' eigenvalues in closed form, (T ± sqrt(T² - 4D)) / 2, all at once."""
    lr, mu = np.meshgrid(np.asarray(lrs, dtype=np.float64), np.asarray(momenta, dtype=np.float64))
    worst = np.zeros_like(lr)
    for lam in np.atleast_1d(eigenvalues):
        if nesterov:
            trace, det = 1.0 + mu - lr * lam * (1.0 + mu), mu - lr * mu * lam
        else:
            trace, det = 1.0 - lr * lam + mu, mu
        root = np.sqrt(trace.astype(complex) ** 2 - 4.0 * det)
        radius = np.maximum(np.abs((trace + root) / 2.0), np.abs((trace - root) / 2.0))
        worst = np.maximum(worst, radius)
    return worst
