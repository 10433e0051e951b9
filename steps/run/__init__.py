"""One MLflow run: its lifecycle, the store (batched writes, spill files, retries), signals, errors,
fingerprints, the training run itself and the logged model's code."""
