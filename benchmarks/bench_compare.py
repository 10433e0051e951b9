"""How fast `compare` reads many runs: MLflow's metric history per run vs the trajectory artifacts.

    python benchmarks/bench_compare.py                 # 1,000 runs x 100 epochs
    python benchmarks/bench_compare.py --runs 200 --no-end-to-end

It makes N runs in a temporary sqlite store (MlflowClient.log_batch: per-epoch loss and
objective, the final metrics, params and tags, plus the artifacts a training run writes
for a 2-weight model: trajectory.csv and weights.json), then times, side by side:

* old: ``MlflowClient.get_metric_history(run_id, "loss")`` for every run (timed on a
  sample, extrapolated to N; it is linear in N);
* new: what compare does, ``steps.report.compare_runs.gather``: each run's trajectory.csv (the loss
  curve and the weight path) and weights.json through ``mlflow.artifacts``, 8 threads;
* optionally the whole ``compare`` command end to end (table, figures, HTML, logging).

Nothing is written outside a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TECHNIQUES = {"sgd": ("sgd", "none"), "adam": ("adam", "none"), "l1": ("sgd", "l1"), "l2": ("sgd", "l2")}
SEED_X = np.array([[0.1, 0.2], [0.4, 0.5]])
SEED_Y = np.array([0.3, 0.9])


def relu_mse(W: np.ndarray) -> np.ndarray:
    """The lesson's loss at each row of W (n, 2)."""
    r = np.maximum(W @ SEED_X.T, 0.0) - SEED_Y
    return (r * r).mean(axis=1)


def make_runs(client, experiment_id: str, n: int, epochs: int, rng) -> None:
    from mlflow.entities import Metric, Param

    ts = int(time.time() * 1000)
    start = np.array([0.1, 0.2])
    t0 = time.perf_counter()
    for k in range(n):
        technique = list(TECHNIQUES)[k % 4]
        optimizer, penalty = TECHNIQUES[technique]
        lr = float(rng.choice([0.001, 0.003, 0.01, 0.03, 0.1]))
        lam = 0.01 if penalty != "none" else 0.0
        # A smooth path from the lesson's start towards the optimum (1, 1).
        speed = rng.uniform(0.002, 0.05)
        frac = 1 - np.exp(-speed * np.arange(epochs + 1))[:, None]
        path = start + frac * (np.array([1.0, 1.0]) - start) + rng.normal(0, 1e-3, (epochs + 1, 2)) * frac
        loss = relu_mse(path)
        pen = lam * (np.abs(path).sum(1) if penalty == "l1" else (path**2).sum(1)) if lam else np.zeros(len(path))
        metrics = [Metric("loss", float(loss[e]), ts, e) for e in range(epochs)]
        metrics += [Metric("objective", float(loss[e] + pen[e]), ts, e) for e in range(epochs)]
        finals = {
            "final_loss": loss[-1],
            "final_objective": loss[-1] + pen[-1],
            "zero_weights": 0.0,
            "train_time_s": 0.001,
            "steps_per_s": epochs / 0.001,
            "epochs_run": float(epochs),
        }
        metrics += [Metric(key, float(v), ts, epochs) for key, v in finals.items()]
        params = {
            "dataset": "seed",
            "model": "relu",
            "fit_intercept": "false",
            "epochs": str(epochs),
            "learning_rate": str(lr),
            "optimizer": optimizer,
            "penalty": penalty,
            "lambda": str(lam),
        }
        tags = {"technique": technique, "optimizer": optimizer, "penalty": penalty}
        rid = client.create_run(experiment_id, tags=tags).info.run_id
        client.log_batch(rid, params=[Param(*p) for p in params.items()])
        for i in range(0, len(metrics), 1000):  # log_batch takes at most 1,000 metrics
            client.log_batch(rid, metrics=metrics[i : i + 1000])
        rows = ["epoch,w_0,w_1,loss"]
        rows += [",".join(map(repr, [e, *path[e].tolist(), loss[e].item()])) for e in range(epochs)]
        client.log_text(rid, "\n".join(rows) + "\n", "trajectory.csv")
        client.log_text(rid, json.dumps({"weights": path[-1].tolist(), "bias": None}), "weights.json")
        client.set_terminated(rid)
        if (k + 1) % 100 == 0 or k + 1 == n:
            rate = (k + 1) / (time.perf_counter() - t0)
            print(f"\r  made {k + 1}/{n} runs ({rate:.0f} runs/s)", end="", flush=True)
    print()


@click.command()
@click.option("--runs", "n", type=click.IntRange(1), default=1000, show_default=True, help="Runs to create.")
@click.option("--epochs", type=click.IntRange(1), default=100, show_default=True, help="Epochs (metric steps) a run.")
@click.option(
    "--sample", type=click.IntRange(1), default=100, show_default=True, help="Runs timed the old way (extrapolated)."
)
@click.option(
    "--end-to-end/--no-end-to-end", default=True, show_default=True, help="Also time the whole compare command."
)
@click.option(
    "--keep-output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Copy compare's outputs (end to end) to this folder, to look at them.",
)
def main(n, epochs, sample, end_to_end, keep_output):
    """Time compare's run reading, old way vs new way, on N runs in a temporary sqlite store."""
    import mlflow
    from mlflow import MlflowClient

    from steps.report.compare_runs import gather, search

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        exp = client.create_experiment("bench", artifact_location=Path(tmp, "artifacts").as_uri())
        print(f"{n} runs x {epochs} epochs in {uri}")
        make_runs(client, exp, n, epochs, np.random.default_rng(0))

        t = time.perf_counter()
        runs, _, _ = search(client, exp, "", n)
        t_search = time.perf_counter() - t
        assert len(runs) == n

        ids = [r.info.run_id for r in runs]
        k = min(sample, n)
        client.get_metric_history(ids[0], "loss")  # warm up
        t = time.perf_counter()
        old = {rid: client.get_metric_history(rid, "loss") for rid in ids[:k]}
        per_run_old = (time.perf_counter() - t) / k
        t_old = per_run_old * n

        t = time.perf_counter()
        got = gather(client, runs)
        t_new = time.perf_counter() - t
        # Same numbers both ways: the trajectory's loss column is the logged loss metric.
        for g in got[:k]:
            assert g.curve_source == "trajectory.csv", g.curve_source
            hist = sorted(old[g.run_id], key=lambda m: m.step)
            assert np.array_equal(g.loss, [m.value for m in hist]), g.run_id

        print(f"\nsearch_runs (params, tags, final metrics of all runs): {t_search:7.2f} s")
        print("loss curves of all runs:")
        print(
            f"  old: get_metric_history per run   {t_old:7.2f} s  ({per_run_old * 1e3:.1f} ms/run, "
            f"timed on {k} runs, x{n / k:g})"
        )
        print(
            f"  new: trajectory.csv + weights.json {t_new:7.2f} s  ({t_new / n * 1e3:.2f} ms/run, all {n} runs, "
            f"8 threads; also gives the weight paths and final weights)"
        )
        print(f"  ratio old / new: {t_old / t_new:.1f}x")

        if end_to_end:
            from click.testing import CliRunner

            from steps.compare import compare

            out = Path(tmp, "out")
            env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_ID": exp}
            t = time.perf_counter()
            res = CliRunner().invoke(compare, ["--output-dir", str(out), "--max-runs", str(n)], env=env)
            t_all = time.perf_counter() - t
            if res.exit_code != 0:
                raise SystemExit(f"compare failed: {res.output}\n{res.exception!r}")
            sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e3:.0f} kB" for p in sorted(out.iterdir()))
            print(f"\nwhole compare command on {n} runs: {t_all:.2f} s  ({sizes})")
            if keep_output is not None:
                shutil.copytree(out, keep_output, dirs_exist_ok=True)
                print(f"outputs copied to {keep_output}")


if __name__ == "__main__":
    main()
