"""The workflow at the speed of its math: `mlflow run .` against one run, and a 24-child sweep.

    python benchmarks/bench_workflow.py               # both launchers (about 6 minutes)
    python benchmarks/bench_workflow.py --repeat 5 --launchers local

Every command is a real `mlflow run <checkout> --env-manager local`, as a user types it,
each into a fresh copy of an initialized temporary sqlite store, interleaved and repeated
(median shown). Printed side by side:

* `mlflow run .` (main: four children + compare) wall over `mlflow run . -e adam` wall
  (goal <= 1.5 with the default launcher);
* a 24-child sweep (`-e sweep`, l1, 6 learning rates x 4 lambdas): wall, and its wall
  beyond one run's spread over the 23 other children, in seconds a child (goal <= 0.5 s);
* the same with `-P launcher=mlflow` (each child an `mlflow run` of its own), for reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LRS = "0.001,0.003,0.01,0.03,0.1,0.3"
LAMBDAS = "0.001,0.01,0.1,1"
SWEEP = ["-e", "sweep", "-P", f"learning_rates={LRS}", "-P", f"lambdas={LAMBDAS}"]


def make_store(path: Path) -> None:
    import mlflow

    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()  # runs MLflow's migrations once


def timed(args: list[str], store: Path, tmp: Path) -> float:
    """One `mlflow run` into a fresh copy of ``store``; wall seconds."""
    work = Path(tempfile.mkdtemp(dir=tmp))
    shutil.copy(store, work / "mlflow.db")
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db")
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local", *args]
    cmd += ["-P", f"output_dir={work}/out"] if "-e" not in args or "sweep" in args else []
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(work, ignore_errors=True)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each command (median shown)")
    ap.add_argument("--launchers", default="local,mlflow", help="comma-separated: local, mlflow")
    args = ap.parse_args()
    launchers = args.launchers.split(",")

    cases = {"one run (-e adam)": ["-e", "adam"]}
    for launcher in launchers:
        cases[f"main, launcher {launcher}"] = ["-P", f"launcher={launcher}"]
        cases[f"24-child sweep, launcher {launcher}"] = [*SWEEP, "-P", f"launcher={launcher}"]
    times: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "initialized.db"
        make_store(store)
        for i in range(args.repeat):
            for name, case in cases.items():
                if "sweep" in name and "mlflow" in name and i > 0:
                    continue  # about 100 s a time: once is enough for a reference
                times[name].append(timed(case, store, Path(tmp)))
                print(f"  round {i + 1}: {name}: {times[name][-1]:.1f} s", file=sys.stderr)

    med = {name: statistics.median(t) for name, t in times.items()}
    one = med["one run (-e adam)"]
    print(f"\n{os.cpu_count()} cores; `mlflow run <checkout> --env-manager local`, median of {args.repeat}\n")
    print("| command | wall s | ratio to one run | s a child beyond the first |")
    print("|---|---|---|---|")
    print(f"| `-e adam` (one run) | {one:.1f} | 1.00 | |")
    for launcher in launchers:
        m = med[f"main, launcher {launcher}"]
        s = med[f"24-child sweep, launcher {launcher}"]
        print(f"| main (4 children + compare), `launcher={launcher}` | {m:.1f} | {m / one:.2f} | |")
        print(f"| 24-child sweep, `launcher={launcher}` | {s:.1f} | {s / one:.2f} | {(s - one) / 23:.2f} |")
    if "local" in launchers:
        m, s = med["main, launcher local"], med["24-child sweep, launcher local"]
        print(f"\nGoals: main / one run = {m / one:.2f} (<= 1.5); sweep, s a child = {(s - one) / 23:.2f} (<= 0.5)")


if __name__ == "__main__":
    main()
