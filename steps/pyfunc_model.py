"""The logged model, as code (MLflow "models from code"): nothing is pickled.

It reads ``weights.json`` ({"weights", "bias", "model", "features"}) and predicts
``f(X w + b)`` for a DataFrame holding the feature columns.
"""

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class NeuronModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["weights"]) as fh:
            spec = json.load(fh)
        self.weights = np.asarray(spec["weights"], dtype=np.float64)
        self.bias = float(spec["bias"] or 0.0)
        self.relu = spec["model"] == "relu"
        self.features = list(spec["features"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        # The DataFrame type hint tells MLflow to validate against the logged signature.
        X = pd.DataFrame(model_input)[self.features].to_numpy(dtype=np.float64)
        z = X @ self.weights + self.bias
        return np.maximum(z, 0.0) if self.relu else z


mlflow.models.set_model(NeuronModel())
