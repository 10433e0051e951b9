"""Finished Optuna trials per second, by study storage and number of workers, side by side.

    python benchmarks/bench_study.py                       # 1, 2, 4 workers; every storage
    python benchmarks/bench_study.py --trials 20 --workers 1,2 --storages sqlite,postgresql

Each worker is a process of its own (as `sweep`s sharing a study are), started together; each
asks the study for ``--trials`` trials and tells it a value at once, so the time measured is the
storage's: what a trial costs before any training. Random sampling, so the sampler costs nothing.

* memory: Optuna's InMemoryStorage, which one process only can use: its workers are threads;
* journal: a JournalStorage file (what a lone `sweep` uses, in a temporary folder);
* sqlite: RDBStorage on a sqlite file;
* postgresql: RDBStorage on a PostgreSQL server of its own (scripts/local_postgres.py; skipped
  where PostgreSQL is not installed), with the heartbeat gdlab's sweeps use;
* mlflow: gdlab's SharedMlflowStorage (MLflow's MlflowStorage: the study as runs) on a sqlite
  tracking store.

Nothing is written outside a temporary directory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

STORAGES = ("memory", "journal", "sqlite", "postgresql", "mlflow")
STUDY = "bench"


def _open(kind: str, where: str):
    import optuna

    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(where))
    if kind in ("sqlite", "postgresql"):
        return optuna.storages.RDBStorage(where)
    if kind == "mlflow":
        import mlflow

        from steps.flow.study import _shared_mlflow_storage_class

        mlflow.set_tracking_uri(where.split("#")[0])
        return _shared_mlflow_storage_class()(where.split("#")[1])
    raise ValueError(kind)


def _work(study, trials: int) -> None:
    for _ in range(trials):
        trial = study.ask()
        x = trial.suggest_float("x", -10, 10)
        study.tell(trial, x * x)
    flush = getattr(study._storage, "flush_all_batches", None)
    if flush is not None:
        flush()


def _worker(kind: str, where: str, trials: int, go) -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    study = optuna.load_study(study_name=STUDY, storage=_open(kind, where), sampler=optuna.samplers.RandomSampler())
    go.wait()
    _work(study, trials)


def measure(kind: str, where: str, workers: int, trials: int) -> float:
    """Finished trials per second of ``workers`` workers, ``trials`` each."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "memory":
        study = optuna.create_study(study_name=STUDY, sampler=optuna.samplers.RandomSampler())
        threads = [threading.Thread(target=_work, args=(study, trials)) for _ in range(workers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - start
        assert len(study.trials) == workers * trials
        return workers * trials / took
    storage = _open(kind, where)
    if kind == "mlflow":
        from optuna.study import StudyDirection

        storage.create_new_study([StudyDirection.MINIMIZE], STUDY)
    else:
        optuna.create_study(study_name=STUDY, storage=storage)
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_worker, args=(kind, where, trials, go)) for _ in range(workers)]
    for p in procs:
        p.start()
    time.sleep(3.0 + workers)  # every worker has imported and opened the study
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    took = time.perf_counter() - start
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"{kind}: a worker failed")
    done = len(optuna.load_study(study_name=STUDY, storage=_open(kind, where)).trials)
    if done != workers * trials:
        print(f"  note: {kind} with {workers} workers holds {done} trials, not {workers * trials}")
    return done / took


def _where(kind: str, tmp: Path, pg, n: int) -> str:
    if kind == "journal":
        return str(tmp / f"study{n}.journal")
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'study{n}.db'}"
    if kind == "postgresql":
        return pg.database(f"bench{n}")
    if kind == "mlflow":
        import logging

        import mlflow

        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # not "Creating initial ... tables"
        uri = f"sqlite:///{tmp / f'mlflow{n}.db'}"
        experiment = mlflow.MlflowClient(uri).create_experiment("study")
        return f"{uri}#{experiment}"
    return ""


def main() -> None:
    import contextlib

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30, help="trials each worker finishes (default 30)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts to try (default 1,2,4)")
    ap.add_argument("--storages", default=",".join(STORAGES), help=f"of {','.join(STORAGES)} (default: all)")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    kinds = [k for k in args.storages.split(",") if k]
    if unknown := [k for k in kinds if k not in STORAGES]:
        ap.error(f"unknown storage(s) {','.join(unknown)}; choose from {','.join(STORAGES)}")
    print(f"finished trials per second ({args.trials} trials a worker, {os.cpu_count()} cores)\n")
    print(f"{'storage':<12}" + "".join(f"{f'{w} worker' + ('s' if w > 1 else ''):>12}" for w in counts))
    with tempfile.TemporaryDirectory(prefix="gdlab-bench-study-") as tmp, contextlib.ExitStack() as stack:
        pg = None
        if "postgresql" in kinds:
            import local_postgres

            if local_postgres.server_programs() is None:
                print(f"{'postgresql':<12}  skipped: PostgreSQL is not installed")
                kinds.remove("postgresql")
            else:
                pg = stack.enter_context(local_postgres.running())
        n = 0
        for kind in kinds:
            cells = []
            for w in counts:
                n += 1
                cells.append(measure(kind, _where(kind, Path(tmp), pg, n), w, args.trials))
            print(f"{kind:<12}" + "".join(f"{c:>12.1f}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
