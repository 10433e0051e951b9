"""The neuron's forward pass, ``f(X w + b)``: its one definition.

Training (:class:`core.models.Model`), compare's loss surface and the logged MLflow model
(``steps/pyfunc_model.py``, which carries ``core`` with it) all call :func:`forward`.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("relu", "linear")


def forward(X: np.ndarray, w: np.ndarray, b=None, activation: str = "relu") -> np.ndarray:
    """``f(X w + b)``, with ``f`` = max(0, z) for ``relu`` and the identity for ``linear``.

    ``w`` is one weight vector (d,) or k of them as columns (d, k), giving (n,) or (n, k);
    ``b`` is None (no bias), a number, or one bias per column (k,).
    """
    z = X @ w
    if b is not None:
        z += b
    return np.maximum(z, 0.0) if activation == "relu" else z
