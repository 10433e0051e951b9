"""The neuron's forward pass, ``f(X w + b)``: its one definition.

Training (:class:`core.models.Model`), compare's loss surface and the logged MLflow model
(``steps/pyfunc_model.py``, which carries ``core`` with it) all call :func:`forward`.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("relu", "linear", "logistic")


def forward(X: np.ndarray, w: np.ndarray, b=None, activation: str = "relu") -> np.ndarray:
    """``f(X w + b)``, with ``f`` = max(0, z) for ``relu``, the identity for ``linear`` and the
    sigmoid σ(z) = 1 / (1 + exp(-z)) for ``logistic`` (the probability of class 1).

    ``w`` is one weight vector (d,) or k of them as columns (d, k), giving (n,) or (n, k);
    ``b`` is None (no bias), a number, or one bias per column (k,).
    """
    z = X @ w
    if b is not None:
        z += b
    if activation == "logistic":
        return sigmoid(z)
    return np.maximum(z, 0.0) if activation == "relu" else z


def sigmoid(z: np.ndarray) -> np.ndarray:
    r"""σ(z) = 1 / (1 + exp(-z)), without overflow: with e = exp(-|z|) (in (0, 1]),

    .. math::
        σ(z) = 1 / (1 + e) \quad (z > 0), \qquad σ(z) = e / (1 + e) \quad (z \le 0).
    """
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z > 0, 1.0, e) / (1.0 + e)
