"""The logged model, as code (MLflow "models from code"): nothing is pickled.

It reads ``model_spec.json`` ({"weights", "bias", "model", "features", "mean", "scale"}, for
a logistic model "classes", for a network "hidden") and predicts ``f(X w + b)`` for a DataFrame
holding the feature columns, with the forward pass of :mod:`core.neuron` (the model carries
``core`` in its ``code/`` folder). A network (``hidden``: its layers' widths) has every weight
matrix in "weights" (W1 row-major, W2, ...) and every bias vector in "bias" (or null), and
predicts with :func:`core.neuron.mlp_forward`. A model trained with ``--standardize true`` has
the training split's ``mean`` and ``scale`` and takes raw features: it standardizes them itself
(:func:`core.neuron.standardize`); otherwise they are null (or absent, in models logged before there was a scaler).

A logistic model predicts the probability of its second class, ``classes[1]`` (the labels
sorted: 0/1, or e.g. "benign"/"malignant"). Its signature takes two params:
``{"output": "label"}`` returns the labels themselves, ``classes[1]`` where the probability
is above ``threshold`` (default 0.5, as in training's accuracy) and ``classes[0]`` elsewhere,
decided on the logit (z > log(t / (1 - t)), z > 0 for 0.5) so that the rounding of p never
decides; ``{"output": "probability"}`` is the default.
"""

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from core.models import PREDICT_PARAMS
from core.neuron import model_forward

OUTPUTS = ("probability", "label")


class NeuronModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["weights"]) as fh:
            spec = json.load(fh)
        self.weights = np.asarray(spec["weights"], dtype=np.float64)
        self.bias = spec["bias"]
        self.activation = spec["model"]
        self.features = list(spec["features"])
        self.mean, self.scale = (
            None if spec.get(k) is None else np.asarray(spec[k], dtype=np.float64) for k in ("mean", "scale")
        )
        self.classes = spec.get("classes")  # a logistic model's labels for 0 and 1; else None
        self.hidden = tuple(spec.get("hidden") or ())  # a network's hidden layers; () for the neuron

    def _forward(self, X: np.ndarray, activation: str) -> np.ndarray:
        return model_forward(X, self.weights, self.bias, activation, self.hidden, mean=self.mean, scale=self.scale)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        # The DataFrame type hint tells MLflow to validate against the logged signature.
        X = pd.DataFrame(model_input)[self.features].to_numpy(dtype=np.float64)
        finite = np.isfinite(X)
        if not finite.all():  # NaN, null or ±Inf: the answer was HTTP 200 with [NaN], which is not JSON
            rows, cols = np.nonzero(~finite)
            where = ", ".join(dict.fromkeys(self.features[c] for c in cols))
            _refuse(
                f"the input is not a finite number in row(s) {', '.join(map(str, dict.fromkeys(rows.tolist())))} "
                f"of column(s) {where} (NaN, null or ±Inf): the model predicts from finite numbers only"
            )
        if self.classes is None:
            return self._forward(X, self.activation)
        params = {**PREDICT_PARAMS, **(params or {})}
        if params["output"] not in OUTPUTS:
            _refuse(f"output must be one of {', '.join(OUTPUTS)}, got {params['output']!r}")
        threshold = float(params["threshold"])
        if not 0.0 <= threshold <= 1.0:
            _refuse(f"threshold must be a probability in [0, 1], got {threshold}")
        if params["output"] == "probability":
            return self._forward(X, self.activation)
        z = self._forward(X, "linear")
        with np.errstate(divide="ignore"):  # thresholds 0 and 1: logits -inf and inf
            cut = np.log(threshold) - np.log1p(-threshold)
        return np.asarray(self.classes)[(z > cut).astype(int)]


def _refuse(reason: str):
    """Bad input, said first: MLflow's scoring server answers an MlflowException of this code with
    HTTP 400 and its message, where a ValueError became its generic text and a stack trace."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    raise MlflowException(reason, error_code=INVALID_PARAMETER_VALUE)


mlflow.models.set_model(NeuronModel())
