"""Models: the lesson's ReLU neuron, a linear model and logistic regression, with an optional bias.

Parameters travel as one 1-D vector ``theta``: the weights ``w`` (d values),
then the bias ``b`` when ``fit_intercept`` is set. Only ``theta[:n_weights]`` (here d) is ever
penalized or decayed. ``core.mlp.MLP`` puts ReLU hidden layers in front of this neuron.

Forward and backward sit side by side (micrograd style). With
``z = X w + b`` and ``f(z)`` the activation, the loss and its gradient are

    L(theta) = mean((f(z) - y)^2)
    dL/dw    = (2/n) X^T (f'(z) * (f(z) - y))
    dL/db    = (2/n) sum(f'(z) * (f(z) - y))

For ReLU we take f'(0) = 0, as torch does.

``logistic`` is a sigmoid neuron p = σ(z) on 0/1 labels, trained on the mean binary
cross-entropy (torch's BCEWithLogitsLoss), computed from the logit z so that it never
takes the log of 0 or exp of a large number:

    L(theta) = mean(max(z, 0) - y z + log1p(exp(-|z|)))
    dL/dw    = (1/n) X^T (σ(z) - y)
    dL/db    = (1/n) sum(σ(z) - y)

Its :meth:`Model.metrics` add the accuracy: the share of rows whose label, 1 where
p > 0.5 (z > 0), is y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .neuron import ACTIVATIONS, forward

MODELS = ACTIVATIONS
INITS = ("seed", "zeros", "normal")
# A logistic model's label is 1 where its probability is above this (scikit-learn's predict),
# decided on the logit: p > t where z > log(t / (1 - t)), z > 0 for 0.5.
THRESHOLD = 0.5
# The logged logistic model's predict params and their defaults (steps/run/pyfunc_model.py).
PREDICT_PARAMS = {"output": "probability", "threshold": THRESHOLD}


def explicit_init(how: str) -> tuple[float, ...] | None:
    """The numbers of an init given as comma-separated numbers ("-1.5,2"), or None for a named
    init (:data:`INITS`). Raises ValueError for anything else, or a number that is not finite."""
    if how in INITS:
        return None
    try:
        numbers = tuple(float(part) for part in str(how).split(","))
    except ValueError:
        raise ValueError(
            f"unknown init {how!r}; choose from {', '.join(INITS)}, or give comma-separated numbers, "
            "one per parameter (e.g. -1.5,2)"
        ) from None
    if not all(np.isfinite(numbers)):
        raise ValueError(f"init {how!r}: every number must be finite")
    return numbers


@dataclass(frozen=True)
class Model:
    kind: str = "relu"
    n_features: int = 2
    fit_intercept: bool = False

    def __post_init__(self) -> None:
        if self.kind not in MODELS:
            raise ValueError(f"unknown model {self.kind!r}; choose from {', '.join(MODELS)}")

    @property
    def n_params(self) -> int:
        return self.n_features + int(self.fit_intercept)

    @property
    def n_weights(self) -> int:
        """How many leading entries of theta are weights: the ones penalized and decayed."""
        return self.n_features

    @property
    def tensors(self) -> tuple[tuple[slice, tuple[int, ...]], ...]:
        """Each parameter tensor as ``(slice of theta, shape)``, as torch would hold them: the
        weights (d,), then the bias (1,) (the optimizers that work per tensor read this)."""
        d = self.n_features
        return ((slice(0, d), (d,)),) + (((slice(d, d + 1), (1,)),) if self.fit_intercept else ())

    def init(self, how: str = "seed", seed: int = 0) -> np.ndarray:
        """Initial parameters: ``seed`` is the lesson's w_i = 0.1 * (i + 1), ``zeros`` all 0,
        ``normal`` draws w ~ N(0, 1/d) with ``seed``; the bias starts at 0. Comma-separated
        numbers ("0.5,-1") give every parameter: the d weights, then the bias with an intercept."""
        d = self.n_features
        given = explicit_init(how)
        if given is not None:
            if len(given) != self.n_params:
                what = f"{d} weights" + (" and the bias" if self.fit_intercept else "")
                raise ValueError(f"init gives {len(given)} numbers; the model has {self.n_params} parameters ({what})")
            return np.array(given, dtype=np.float64)
        theta = np.zeros(self.n_params)
        if how == "seed":
            theta[:d] = 0.1 * np.arange(1, d + 1)
        elif how == "normal":
            theta[:d] = np.random.default_rng(seed).normal(0.0, 1.0 / np.sqrt(d), d)
        return theta  # "zeros"

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, float | None]:
        """``(weights, bias)``; bias is None without an intercept."""
        d = self.n_features
        return theta[:d], (float(theta[d]) if self.fit_intercept else None)

    def predict(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """f(X w + b) for ``theta`` (n_params,), or one column per parameter vector for (n_params, k)."""
        d = self.n_features
        return forward(X, theta[:d], theta[d] if self.fit_intercept else None, self.kind)

    @property
    def loss_name(self) -> str:
        """What :meth:`loss` measures, as figures label it."""
        return "log loss" if self.kind == "logistic" else "MSE"

    def loss(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """The MSE, or for ``logistic`` the mean binary cross-entropy (log loss)."""
        if self.kind == "logistic":
            return float(log_loss(self.logits(theta, X), y))
        r = self.predict(theta, X) - y
        return float(r @ r) / len(y)

    def losses(self, thetas: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The loss of each parameter vector, one a row of ``thetas`` (k, n_params): a loss surface."""
        if self.kind == "logistic":
            return log_loss(self.logits(thetas.T, X), y)
        r = self.predict(thetas.T, X) - y[:, None]
        return np.einsum("ij,ij->j", r, r) / len(y)

    def logits(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """z = X w + b, before the activation (the logit of a logistic model)."""
        d = self.n_features
        return forward(X, theta[:d], theta[d] if self.fit_intercept else None, "linear")

    def metrics(self, theta: np.ndarray, X, y, X_val=None, y_val=None) -> dict[str, float]:
        """A classifier's own metrics: ``accuracy`` on (X, y) and ``val_accuracy`` on the validation
        rows when there are any (None: none), labels 1 where p > 0.5; empty for a regression."""
        if self.kind != "logistic":
            return {}
        out = {"accuracy": self.accuracy(theta, X, y)}
        if X_val is not None:
            out["val_accuracy"] = self.accuracy(theta, X_val, y_val)
        return out

    def accuracy(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """The share of rows whose label (1 where p > 0.5, else 0) equals y (0/1). Decided on the
        logit, z > 0 (as scikit-learn's predict): one pass over X, no sigmoid."""
        right = np.count_nonzero((self.logits(theta, X) > 0.0) == (y > 0.5))
        return right / len(y)

    def workspace(self, n: int, dtype=np.float64) -> Workspace:
        """Buffers for :meth:`loss_and_grad` on up to ``n`` rows, reused every step."""
        scratch = np.empty(n if self.kind == "logistic" else 0, dtype)
        vectors = (np.empty(n, dtype), np.empty(n, dtype), np.empty(n, bool))
        return Workspace(*vectors, np.empty(self.n_params, dtype), scratch)

    def loss_and_grad(
        self, theta: np.ndarray, X: np.ndarray, y: np.ndarray, ws: Workspace | None = None
    ) -> tuple[float, np.ndarray]:
        """The loss (MSE, or log loss) and its exact gradient, sharing one forward pass.

        With a :class:`Workspace` no array is allocated: the n-vectors are written
        in place and the returned gradient *is* ``ws.grad`` (overwritten next call).
        On big data the step is then two passes over X (``X w`` and ``X^T r``) plus
        a few over n-vectors, which is what memory bandwidth allows.
        """
        n, d = len(y), self.n_features
        if ws is None:
            ws = self.workspace(n, theta.dtype)
        z, r, grad = ws.z[:n], ws.r[:n], ws.grad
        np.matmul(X, theta[:d], out=z)
        if self.fit_intercept:
            z += theta[d]
        loss, scale = output_residual(self.kind, z, y, r, ws.active[:n], ws.scratch[:n])
        gw = grad[:d]
        np.matmul(X.T, r, out=gw)
        gw *= scale
        if self.fit_intercept:
            grad[d] = scale * r.sum()
        return loss, grad


def output_residual(kind: str, z, y, r, active, scratch) -> tuple[float, float]:
    """The output unit's loss at pre-activations ``z`` and, in ``r``, its residual: dL/dz is
    ``scale * r``. Returns ``(loss, scale)``: MSE, r = f'(z) (f(z) - y), scale 2/n; log loss,
    r = σ(z) - y, scale 1/n. In place in ``r``, ``active`` and ``scratch`` (n,)."""
    n = len(y)
    if kind == "logistic":
        return _log_loss_residual(z, y, r, active, scratch), 1.0 / n
    if kind == "relu":
        np.greater(z, 0.0, out=active)
        np.maximum(z, 0.0, out=r)
        r -= y  # f(z) - y
        loss = float(r @ r) / n
        r *= active  # f'(z) * (f(z) - y)
    else:
        np.subtract(z, y, out=r)
        loss = float(r @ r) / n
    return loss, 2.0 / n


def _log_loss_residual(z, y, r, positive, scratch) -> float:
    """Log loss = mean(max(z, 0) - y z + log1p(e)), e = exp(-|z|); leaves r = σ(z) - y, the
    gradient's residual (times 1/n). In place, no array allocated, and no masked ufunc (numpy's
    ``where=`` runs 10x slower on a random mask): with a = e / (1 + e) = σ(-|z|), exact in (0, 1/2],
    σ(z) = a + [z > 0] (1 - 2a), which is a for z <= 0 and 1 - a for z > 0."""
    np.greater(z, 0.0, out=positive)
    np.maximum(z, 0.0, out=scratch)
    positive_part = float(scratch.sum())
    np.abs(z, out=r)
    np.negative(r, out=r)
    np.exp(r, out=r)  # e = exp(-|z|), in (0, 1]
    np.log1p(r, out=scratch)
    loss = (positive_part - float(y @ z) + float(scratch.sum())) / len(y)
    np.add(r, 1.0, out=scratch)
    np.divide(r, scratch, out=r)  # a = σ(-|z|)
    np.multiply(r, -2.0, out=scratch)
    scratch += 1.0
    scratch *= positive  # (1 - 2a) where z > 0, else 0
    r += scratch  # σ(z)
    r -= y
    return loss


def log_loss(z: np.ndarray, y: np.ndarray):
    """The mean binary cross-entropy of labels ``y`` (n,) of 0/1 under logits ``z`` (n,), or under
    each column of ``z`` (n, k): mean(max(z, 0) - y z + log1p(exp(-|z|))), which is
    -mean(y log σ(z) + (1 - y) log(1 - σ(z))). Summed as :meth:`Model.loss_and_grad` sums it."""
    log_terms = np.log1p(np.exp(-np.abs(z))).sum(axis=0)
    return (np.maximum(z, 0.0).sum(axis=0) - y @ z + log_terms) / len(y)


class Workspace(NamedTuple):
    """Preallocated buffers of one model: z = X w + b, the residual r, the ReLU mask (z > 0), the
    gradient, and a scratch n-vector for the log loss (empty for the other models)."""

    z: np.ndarray
    r: np.ndarray
    active: np.ndarray
    grad: np.ndarray
    scratch: np.ndarray
