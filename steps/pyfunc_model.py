"""The logged model, as code (MLflow "models from code"): nothing is pickled.

It reads ``model_spec.json`` ({"weights", "bias", "model", "features", "mean", "scale"}) and
predicts ``f(X w + b)`` for a DataFrame holding the feature columns, with the forward pass of
:mod:`core.neuron` (the model carries ``core`` in its ``code/`` folder). A model trained with
``--standardize true`` has the training split's ``mean`` and ``scale`` and takes raw features:
it standardizes them itself (:func:`core.neuron.standardize`); otherwise they are null (or absent,
in models logged before there was a scaler).
"""

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from core.neuron import forward


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

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        # The DataFrame type hint tells MLflow to validate against the logged signature.
        X = pd.DataFrame(model_input)[self.features].to_numpy(dtype=np.float64)
        return forward(X, self.weights, self.bias, self.activation, mean=self.mean, scale=self.scale)


mlflow.models.set_model(NeuronModel())
