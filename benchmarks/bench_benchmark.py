"""The fair comparison at the cost of its math: `benchmark --suite lab` against bare MLflow runs.

    python benchmarks/bench_benchmark.py                  # the lab suite at its defaults (~3 minutes)
    python benchmarks/bench_benchmark.py --budget 3 --seeds 2 --optimizers sgd,adam   # any benchmark options
    python benchmarks/bench_benchmark.py --suite lab --output-dir report/   # keep the report

Runs the `benchmark` command in this process, as `python -m steps.benchmark` would (its worker
processes train the children), into a fresh temporary sqlite store, then measures in the same
process and store what a bare MLflow run costs: create a run, log one batch of 100 epochs x 6
metrics (what a lesson child logs per epoch), end it. Printed side by side:

* the children (every tuning trial and seed rerun), the wall time (goal: <= 180 s for the
  default suite on 2 cores), seconds a child, and seconds a child per worker;
* the math: the children's own training loops (`train_time_s`), a child on average;
* what a child adds to the wall time beyond a bare MLflow run and its math over the workers
  (goal: <= 0.05 s), and, for reference, a child's time per worker beyond the same: the workers
  share one sqlite file, whose writes take turns, so two workers do not halve the store's time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_runs(client, experiment_id: str, n: int = 40) -> float:
    """Median seconds of create run + one log_batch of 600 values + end."""
    from mlflow.entities import Metric

    times = []
    for i in range(n):
        t = time.perf_counter()
        run = client.create_run(experiment_id, run_name=f"bare {i}")
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(e), now, e) for e in range(100) for k in ("loss", "objective", "lr", "a", "b", "c")]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    if not args:
        args = ["--suite", "lab"]
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.chdir(tmp)
        import mlflow

        from steps.benchmark import benchmark
        from steps.cli.workflow import cores

        client = mlflow.MlflowClient(uri)
        client.search_experiments()  # the store's migrations, outside the timing
        t = time.perf_counter()
        try:
            given = any(a.startswith("--output-dir") for a in args)
            benchmark.main([*args, *([] if given else ["--output-dir", f"{tmp}/out"])], standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
        wall = time.perf_counter() - t
        parent = client.search_runs(["0"], "tags.technique = 'benchmark'", max_results=1)[0]
        children = client.search_runs(["0"], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=50_000)
        math_s = sum(c.data.metrics.get("train_time_s", 0.0) for c in children)
        bare = bare_runs(client, "0")
    n = len(children)
    workers = cores()
    per_worker = wall * workers / n
    # What a child adds to the benchmark's wall time beyond a bare run's store writes and its own
    # training (spread over the workers that train side by side).
    beyond = wall / n - bare - math_s / n / workers
    print(f"\nbenchmark {' '.join(args)}: {n} children, {workers} workers, {os.cpu_count()} cores\n")
    print("| what | seconds |")
    print("|---|---|")
    print(f"| wall, the whole benchmark | {wall:.1f} |")
    print(f"| wall a child | {wall / n:.4f} |")
    print(f"| a child per worker (wall x workers / children) | {per_worker:.4f} |")
    print(f"| the math a child (its train_time_s) | {math_s / n:.4f} |")
    print(f"| a bare MLflow run (create, log_batch of 600 values, end), this process | {bare:.4f} |")
    print(f"| wall a child beyond a bare run and its math / workers | {beyond:.4f} |")
    print(f"| a child per worker beyond a bare run and its math | {per_worker - bare - math_s / n:.4f} |")
    print(f"\nGoals: beyond <= 0.05 s a child: {beyond:.3f}; the default suite <= 180 s: {wall:.0f} s")


if __name__ == "__main__":
    main()
