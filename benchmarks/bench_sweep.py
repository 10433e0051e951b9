"""A 24-run sweep on the lesson's data: wall time, runs per second, serial vs parallel,
and where the time goes.

    python benchmarks/bench_sweep.py                 # max-parallel 1 and 2 (about 3 minutes)
    python benchmarks/bench_sweep.py --parallel 1,2,4

Each setting runs `python -m steps.sweep --technique l1` with 6 learning rates x 4
lambdas into a fresh temporary sqlite store, then reads the child runs back to split
each child's time into training, the rest of the child's run (MLflow logging, the
model) and process start-up (Python + `import mlflow`, measured on its own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LRS = "0.001,0.003,0.01,0.03,0.1,0.3"
LAMBDAS = "0.001,0.01,0.1,1"


def timed(cmd, env) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parallel", default="1,2", help="comma-separated max-parallel settings")
    args = ap.parse_args()
    import mlflow

    startup = statistics.median(timed([sys.executable, "-c", "import mlflow"], dict(os.environ)) for _ in range(3))
    print(f"Python start + import mlflow: {startup:.2f} s (median of 3)\n")
    print(
        f"{'max_parallel':>12s} {'wall s':>8s} {'runs/s':>7s} {'child wall s':>13s} {'train ms':>9s} "
        f"{'logging+model s':>16s}"
    )
    rows = {}
    for par in [int(p) for p in args.parallel.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
            exp = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).create_experiment(
                "bench", artifact_location=Path(tmp, "artifacts").as_uri()
            )
            env["MLFLOW_EXPERIMENT_ID"] = exp
            cmd = [
                sys.executable,
                "-m",
                "steps.sweep",
                "--technique",
                "l1",
                "--learning-rates",
                LRS,
                "--lambdas",
                LAMBDAS,
                "--max-parallel",
                str(par),
                "--output-dir",
                f"{tmp}/out",
            ]
            wall = timed(cmd, env)
            client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
            kids = [r for r in client.search_runs([exp], max_results=100) if r.data.tags.get("technique") == "l1"]
            assert len(kids) == 24, len(kids)
            child_wall = statistics.median((r.info.end_time - r.info.start_time) / 1000 for r in kids)
            train = statistics.median(r.data.metrics["train_time_s"] for r in kids)
            rows[par] = wall
            print(
                f"{par:12d} {wall:8.1f} {24 / wall:7.2f} {child_wall:13.2f} {train * 1e3:9.2f} "
                f"{child_wall - train:16.2f}"
            )
    if 1 in rows:
        for par, wall in rows.items():
            if par != 1:
                print(f"speed-up of max_parallel={par} over serial: {rows[1] / wall:.2f}x")
    print(
        "\nchild wall = a child run's start to end as MLflow records it (its process start-up, "
        "before the run is created, is on top)"
    )


if __name__ == "__main__":
    main()
