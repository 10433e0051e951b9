"""What `--curvature-every 1` costs a run, side by side with none (issue 25).

    python benchmarks/bench_curvature.py

For each problem, ``core.training.fit`` (the math alone, every epoch logged, no MLflow) with
``curvature_every`` 0 and 1, the median of a few repeats, and the ratio: the lesson (2x2, ReLU),
diabetes (442x10, linear; and a --hidden 16 network), and synthetic 1M x 10 linear. A linear
model's Hessian is 2/n XᵀX wherever it is: formed once a run, then an eigvalsh a logged epoch.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import TrainConfig
from core.training import fit, load_data

DIABETES = {
    "dataset": str(Path(__file__).resolve().parents[1] / "examples" / "diabetes.csv"),
    "target": "target",
    "model": "linear",
    "fit_intercept": True,
    "standardize": True,
}
PROBLEMS = {
    "lesson (relu, 2x2)": ({}, 5),
    "diabetes linear": ({**DIABETES, "learning_rate": 0.1}, 5),
    "diabetes --hidden 16": ({**DIABETES, "hidden": (16,), "learning_rate": 0.001}, 3),
    "synthetic 1M x 10 linear": (
        {"dataset": "synthetic", "model": "linear", "n_samples": 1_000_000, "epochs": 20, "learning_rate": 0.1},
        3,
    ),
}


def timed(cfg: TrainConfig, data, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit(cfg, data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def whole_run(cfg: TrainConfig, data, repeats: int) -> float:
    """A whole run as `train` logs it (metrics, artifacts, the model) into a temporary sqlite store."""
    from steps.run.runner import train_run

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_run(cfg, "train", data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import os
    import tempfile

    print("The math alone (core.training.fit, every epoch logged):\n")
    print(f"{'problem':<28}{'none (s)':>12}{'every 1 (s)':>14}{'ratio':>8}")
    for name, (options, repeats) in PROBLEMS.items():
        base = TrainConfig(**options)
        data = load_data(base)
        off = timed(base, data, repeats)
        on = timed(TrainConfig(**options, curvature_every=1), data, repeats)
        print(f"{name:<28}{off:>12.4f}{on:>14.4f}{on / off:>8.2f}", flush=True)
    print("\nThe whole run (train_run: MLflow on a temporary sqlite store, the model logged):\n")
    print(f"{'problem':<28}{'none (s)':>12}{'every 1 (s)':>14}{'ratio':>8}")
    with tempfile.TemporaryDirectory(prefix="gdlab-bench-curvature-") as tmp:
        import mlflow

        os.chdir(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        for name in ("lesson (relu, 2x2)", "diabetes linear", "diabetes --hidden 16"):
            options, _ = PROBLEMS[name]
            base = TrainConfig(**options)
            data = load_data(base)
            whole_run(base, data, 1)  # warm: the store's tables, the imports
            off = whole_run(base, data, 5)
            on = whole_run(TrainConfig(**options, curvature_every=1), data, 5)
            print(f"{name:<28}{off:>12.4f}{on:>14.4f}{on / off:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
