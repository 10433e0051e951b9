"""The neuron's forward pass, ``f(X w + b)``, and the feature scaling in front of it: their one definition.

Training (:class:`core.models.Model`), compare's loss surface and the logged MLflow model
(``steps/pyfunc_model.py``, which carries ``core`` with it) all call :func:`forward`; the
training data (``core.training.load_data``) and the logged model both standardize with
:func:`standardize`.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("relu", "linear", "logistic")


def standardize(X: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    r"""The z-scores of raw features, as scikit-learn's ``StandardScaler.transform``:

    .. math:: \tilde x_j = (x_j - \mu_j) / s_j

    with ``mean`` :math:`\mu` and ``scale`` :math:`s` (d,) fitted on the training split
    (:func:`core.data.fit_scaler`). ``mean`` None (no scaler): ``X`` itself, not a copy.
    """
    if mean is None:
        return X
    return (X - mean) / scale


def original_units(w: np.ndarray, b: float | None, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    r"""Weights trained on standardized features, in the raw features' units.

    .. math::
        z = \sum_j w_j \frac{x_j - \mu_j}{s_j} + b
          = \sum_j \frac{w_j}{s_j} x_j + \Big(b - \sum_j \frac{w_j \mu_j}{s_j}\Big)

    The pre-activation ``z`` is the same for every input, so ``f(z)`` is too, whatever the
    activation. Returns ``(w / scale, b - sum(w * mean / scale))``; ``b`` None counts as 0
    (the raw-units model has a bias even when the trained one has none).
    """
    w = np.asarray(w, dtype=np.float64)
    w_raw = w / scale
    return w_raw, (0.0 if b is None else float(b)) - float(w_raw @ mean)


def forward(
    X: np.ndarray,
    w: np.ndarray,
    b=None,
    activation: str = "relu",
    *,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """``f(X w + b)``, with ``f`` = max(0, z) for ``relu``, the identity for ``linear`` and the
    sigmoid σ(z) = 1 / (1 + exp(-z)) for ``logistic`` (the probability of class 1).

    ``w`` is one weight vector (d,) or k of them as columns (d, k), giving (n,) or (n, k);
    ``b`` is None (no bias), a number, or one bias per column (k,). With ``mean`` and ``scale``
    (a model trained on standardized features), ``X`` holds raw features and is standardized
    first (:func:`standardize`).
    """
    if mean is not None:
        X = standardize(X, mean, scale)
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
