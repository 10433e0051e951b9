"""Models: the lesson's ReLU neuron and a linear model, with an optional bias.

Parameters travel as one 1-D vector ``theta``: the weights ``w`` (d values),
then the bias ``b`` when ``fit_intercept`` is set. Only ``theta[:d]`` is ever
penalized or decayed.

Forward and backward sit side by side (micrograd style). With
``z = X w + b`` and ``f(z)`` the activation, the loss and its gradient are

    L(theta) = mean((f(z) - y)^2)
    dL/dw    = (2/n) X^T (f'(z) * (f(z) - y))
    dL/db    = (2/n) sum(f'(z) * (f(z) - y))

For ReLU we take f'(0) = 0, as torch does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .neuron import ACTIVATIONS, forward

MODELS = ACTIVATIONS
INITS = ("seed", "zeros", "normal")


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

    def loss(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        r = self.predict(theta, X) - y
        return float(r @ r) / len(y)

    def losses(self, thetas: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The MSE of each parameter vector, one a row of ``thetas`` (k, n_params): a loss surface."""
        r = self.predict(thetas.T, X) - y[:, None]
        return np.einsum("ij,ij->j", r, r) / len(y)

    def workspace(self, n: int, dtype=np.float64) -> Workspace:
        """Buffers for :meth:`loss_and_grad` on up to ``n`` rows, reused every step."""
        return Workspace(np.empty(n, dtype), np.empty(n, dtype), np.empty(n, bool), np.empty(self.n_params, dtype))

    def loss_and_grad(
        self, theta: np.ndarray, X: np.ndarray, y: np.ndarray, ws: Workspace | None = None
    ) -> tuple[float, np.ndarray]:
        """MSE and its exact gradient, sharing one forward pass.

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
        if self.kind == "relu":
            active = np.greater(z, 0.0, out=ws.active[:n])
            np.maximum(z, 0.0, out=r)
            r -= y  # f(z) - y
            loss = float(r @ r) / n
            r *= active  # f'(z) * (f(z) - y)
        else:
            np.subtract(z, y, out=r)
            loss = float(r @ r) / n
        gw = grad[:d]
        np.matmul(X.T, r, out=gw)
        gw *= 2.0 / n
        if self.fit_intercept:
            grad[d] = (2.0 / n) * r.sum()
        return loss, grad


class Workspace(NamedTuple):
    """Preallocated buffers of one model: z = X w + b, the residual r, the ReLU mask, the gradient."""

    z: np.ndarray
    r: np.ndarray
    active: np.ndarray
    grad: np.ndarray
