"""The neuron's forward pass, ``f(X w + b)``, and the feature scaling in front of it: their one definition.

Training (:class:`core.models.Model`), compare's loss surface and the logged MLflow model
(``steps/run/pyfunc_model.py``, which carries ``core`` with it) all call :func:`forward`; the
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


def layer_shapes(n_features: int, hidden) -> list[tuple[int, int]]:
    """The weight shapes ``(out, in)`` of a network with ``hidden`` ReLU layers (their widths) and
    one output unit, as torch's ``nn.Linear.weight``: (h1, d), (h2, h1), ..., (1, h_L)."""
    sizes = (n_features, *hidden, 1)
    return [(sizes[k + 1], sizes[k]) for k in range(len(sizes) - 1)]


def unpack(weights: np.ndarray, biases, shapes) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The layers ``[(W, b), ...]`` of the flat ``weights`` (every W row-major, in order) and
    ``biases`` (every b in order; None without biases): views, not copies."""
    layers, w_at, b_at = [], 0, 0
    for out, inp in shapes:
        W = weights[w_at : w_at + out * inp].reshape(out, inp)
        b = None if biases is None else biases[b_at : b_at + out]
        layers.append((W, b))
        w_at, b_at = w_at + out * inp, b_at + out
    return layers


def mlp_forward(
    X: np.ndarray,
    weights,
    biases,
    hidden,
    activation: str = "linear",
    *,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    r"""The network's output for the rows of ``X`` (n,): ReLU hidden layers of widths ``hidden``,
    then one output unit with ``activation`` (as :func:`forward`; ``linear`` gives the logit):

    .. math:: a_0 = x, \quad a_k = \max(0, W_k a_{k-1} + b_k) \ (k \le L), \quad
              \hat y = f(W_{L+1} a_L + b_{L+1})

    ``weights`` are every W (shape (out, in), row-major) one after the other, ``biases`` every b
    (None: no biases), the layout of :class:`core.mlp.MLP`'s parameters. ``mean`` and ``scale``
    standardize raw ``X`` first, as in :func:`forward`.
    """
    if mean is not None:
        X = standardize(X, mean, scale)
    weights = np.asarray(weights)
    biases = None if biases is None else np.asarray(biases)
    layers = unpack(weights, biases, layer_shapes(X.shape[1], hidden))
    a = X
    for W, b in layers[:-1]:
        a = a @ W.T
        if b is not None:
            a += b
        np.maximum(a, 0.0, out=a)
    W, b = layers[-1]
    return forward(a, W[0], None if b is None else b[0], activation)


def model_forward(X, weights, bias, activation: str, hidden=(), *, mean=None, scale=None) -> np.ndarray:
    """The logged model's output: :func:`forward` for the neuron, :func:`mlp_forward` with ``hidden``
    layers (``weights`` every W, ``bias`` every b, or None)."""
    if hidden:
        return mlp_forward(X, weights, bias, hidden, activation, mean=mean, scale=scale)
    return forward(X, weights, bias, activation, mean=mean, scale=scale)
