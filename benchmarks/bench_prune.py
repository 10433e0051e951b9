"""A 30-trial TPE search with and without pruning, side by side: what `--prune true` saves.

    python benchmarks/bench_prune.py                  # one pair, about 4 minutes on 2 busy cores
    python benchmarks/bench_prune.py --repeat 2       # interleaved pairs

Each run is `python -m steps.sweep --search tpe --n-trials 30 --seed 0 --max-parallel 1` on the
same synthetic problem (20,000 rows x 20 features, a linear model trained with mini-batches of
512 for 100 epochs, 20% held out), learning rate log-uniform in 1e-4:0.3, into a fresh temporary
sqlite store. One trial at a time, so both searches draw the same first trials (TPE's first 10
are random, seeded) and the pruner of the second sees every trial before the one it judges.
Printed: wall time, trials pruned, epochs trained (a pruned trial trains up to the epoch it is
stopped at), the best final_val_loss each found, and the ratio of the wall times.
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

import mlflow

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 100
PROBLEM = [
    "--technique", "sgd", "--search", "tpe", "--n-trials", "30", "--seed", "0", "--max-parallel", "1",
    "--learning-rates", "1e-4:0.3", "--dataset", "synthetic", "--n-samples", "20000", "--n-features", "20",
    "--n-informative", "5", "--model", "linear", "--batch-size", "512", "--epochs", str(EPOCHS),
    "--validation-fraction", "0.2",
]  # fmt: skip


def one(prune: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        exp = mlflow.MlflowClient(uri).create_experiment("bench", artifact_location=Path(tmp, "artifacts").as_uri())
        env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_ID=exp)
        cmd = [sys.executable, "-m", "steps.sweep", *PROBLEM, "--prune", str(prune).lower(), "--output-dir", f"{tmp}/o"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        runs = mlflow.MlflowClient(uri).search_runs([exp], max_results=1000)
    kids = [r for r in runs if r.data.tags.get("technique") == "sgd"]
    assert len(kids) == 30, len(kids)
    pruned = [int(r.data.tags["pruned"].split()[-1]) for r in kids if "pruned" in r.data.tags]
    complete = [r.data.metrics["final_val_loss"] for r in kids if "pruned" not in r.data.tags]
    epochs = EPOCHS * len(complete) + sum(e + 1 for e in pruned)
    return {"wall": wall, "pruned": len(pruned), "epochs": epochs, "best": min(complete)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="pairs of searches, interleaved")
    args = ap.parse_args()
    rows = {False: [], True: []}
    print(f"{'prune':>6s} {'wall s':>8s} {'pruned':>7s} {'epochs trained':>15s} {'best final_val_loss':>20s}")
    for _ in range(args.repeat):
        for prune in (False, True):
            r = one(prune)
            rows[prune].append(r)
            print(f"{str(prune).lower():>6s} {r['wall']:8.1f} {r['pruned']:7d} {r['epochs']:15d} {r['best']:20.6g}")
    full, pruned = (statistics.median(x["wall"] for x in rows[p]) for p in (False, True))
    print(f"\nwall time without / with pruning: {full / pruned:.2f}x ({(1 - pruned / full) * 100:.0f}% saved)")
    share = statistics.median(x["epochs"] for x in rows[True]) / (30 * EPOCHS)
    print(f"epochs trained with pruning, as a share of the 30 x {EPOCHS} without: {share:.2f}")


if __name__ == "__main__":
    main()
