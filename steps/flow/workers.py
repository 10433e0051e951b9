"""Worker processes for `main` and `sweep`: each imports MLflow once and trains child after child.

An `mlflow run` child costs two interpreter start-ups and two ``import mlflow`` (about
2 s each here) for a few milliseconds of training. Here the workflow starts at most
``--max-parallel`` workers once, forked from a `forkserver` that has imported MLflow,
numpy, pandas and the training code already (so the import is paid once, not once a
worker, and a worker that dies is replaced in milliseconds), and sends them children
one at a time over a pipe.

Who does what:

* the parent (:class:`Workers`, in the workflow's process) creates each child's run,
  nested under the workflow's run, just before handing it to a free worker, so it
  always knows which run a worker holds;
* the worker (:func:`serve`) resumes that run and trains it with the same
  :func:`steps.run.runner.train_run` as the training entry points, so a child logs exactly
  what `mlflow run -e <technique>` logs, and ends it FINISHED, FAILED or KILLED; a sweep's
  trial (``Task.trial``) also reports each logged epoch to its Optuna study, which the
  worker opens itself (:mod:`steps.flow.study`), and ends FINISHED tagged ``pruned`` when the
  study's pruner stops it;
* a worker that dies (SIGKILL, out of memory) is noticed through its process sentinel:
  its run ends FAILED with a ``failure_reason`` and a new worker takes the next child;
* Ctrl-C / SIGTERM to the workflow: workers get SIGTERM, close their runs KILLED
  (metrics flushed) and exit; after a grace period the rest are killed and their runs
  closed KILLED by the parent. No run is left RUNNING.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait

from core.config import TrainConfig

# Imported once by the forkserver, before it forks any worker.
PRELOAD = ["steps.flow._warm"]
# How long stopped workers get to close their runs before they are killed.
GRACE_S = 30.0


@dataclass(frozen=True)
class Task:
    """One child, as a worker needs it: what to train, into which run, in which environment."""

    label: str
    technique: str
    config: TrainConfig
    run_id: str
    tracking_uri: str
    env: dict
    cwd: str
    trial: object | None = None  # a sweep's Optuna trial (steps.flow.study.TrialRef): report, maybe prune
    log_model: bool = True  # False: no LoggedModel (a benchmark's tuning trials)


@dataclass(frozen=True)
class Done:
    """How a child ended (sent back by the worker)."""

    label: str
    run_id: str
    status: str  # FINISHED, FAILED or KILLED
    reason: str | None = None
    pruned: int | None = None  # FINISHED early: the epoch at which the study's pruner stopped it


# --------------------------------------------------------------------------- the worker side


def serve(conn) -> None:
    """A worker's life: take a task, train it, send back how it ended; until told to stop."""
    from steps.run.signals import SIGNALS, Terminated

    _let_the_forkserver_go()
    _die_with_parent()
    try:
        with SIGNALS:
            while True:
                task = conn.recv()
                if task is None:
                    return
                done = _train(task)
                conn.send(done)
                if done.status == "KILLED" or SIGNALS.pending or SIGNALS.stopping:
                    return  # the workflow is being stopped (a signal may have come while the run closed)
    except (EOFError, OSError, KeyboardInterrupt, Terminated):
        return  # the workflow went away or stopped us while idle


def _let_the_forkserver_go() -> None:
    """Close this worker's copy of the forkserver's "alive" pipe. multiprocessing hands it to every
    process the forkserver forks, so that the server outlives the workflow while any of them could
    still ask it for a process; a worker never does. Kept open, it held the forkserver alive after
    the workflow was killed outright (SIGKILL), so the forkserver never died, its workers never got
    their SIGTERM (:func:`_die_with_parent`) and trained on forever, their runs RUNNING."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None


def _die_with_parent() -> None:
    """SIGTERM this worker when its parent (the forkserver, which exits with the workflow) dies:
    a workflow killed with SIGKILL must not leave workers training forever. The run in hand is
    then closed KILLED like any other. Linux only (prctl); elsewhere a no-op."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


_data_cache: dict = {}


def _train(task: Task) -> Done:
    import mlflow

    from steps.run.lifecycle import RunFailed, RunStopped, tracked_run
    from steps.run.runner import train_run

    os.environ.clear()
    os.environ.update(task.env)
    os.environ.pop("MLFLOW_RUN_ID", None)
    os.chdir(task.cwd)
    mlflow.set_tracking_uri(task.tracking_uri)
    reporter = None
    try:
        what = "load --dataset"
        try:
            data = _load(task.config)
            what = "open its trial in the Optuna study"
            if task.trial is not None:
                from steps.flow.study import Reporter

                reporter = Reporter(task.trial)
        except Exception as exc:  # checked by the parent already; the file (or study) may have changed since
            with tracked_run(run_id=task.run_id):
                raise RunFailed(f"could not {what}: {exc}") from None
        result = train_run(
            task.config, task.technique, data, run_id=task.run_id, on_epoch=reporter, log_model=task.log_model
        )
    except RunFailed as exc:
        return Done(task.label, task.run_id, "FAILED", exc.reason)
    except RunStopped as exc:
        return Done(task.label, task.run_id, "KILLED", exc.reason)
    except Exception as exc:  # usually ended FAILED by tracked_run; the parent closes it if not
        return Done(task.label, task.run_id, "FAILED", f"{type(exc).__name__}: {exc}")
    finally:
        if reporter is not None:
            reporter.close()  # what it reported is in the study before the parent tells it the end
    pruned = reporter.pruned if reporter is not None and result is None else None
    return Done(task.label, task.run_id, "FINISHED", pruned=pruned)


def _load(cfg: TrainConfig):
    """The config's data; a worker keeps the last dataset (the children of a workflow share it)."""
    from core.training import load_data

    key = cfg.data_key()  # (the model too: a logistic child's labels are 0/1, a linear one's the raw target)
    if key not in _data_cache:
        _data_cache.clear()
        _data_cache[key] = load_data(cfg)
    return _data_cache[key]


# --------------------------------------------------------------------------- the parent side

_END = object()  # the end of a run's tasks


@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: object
    task: Task | None = None


class Workers:
    """At most ``n`` worker processes, started in the background on entry."""

    def __init__(self, n: int):
        self.n = n
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.workers: list[_Worker] = []
        self._starter: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Workers:
        # The first worker starts the forkserver, which imports MLflow (~2 s): meanwhile the
        # workflow's own process starts its run.
        self._starter = threading.Thread(target=self._start_all, name="gdlab-workers", daemon=True)
        self._starter.start()
        return self

    def _start_all(self) -> None:
        try:
            for _ in range(self.n):
                self.workers.append(self._spawn())
        except BaseException as exc:  # raised in the main thread by _ready
            self._error = exc

    def _spawn(self) -> _Worker:
        here, there = self.ctx.Pipe()
        process = self.ctx.Process(target=serve, args=(there,), name="gdlab-worker", daemon=True)
        process.start()
        there.close()
        return _Worker(process, here)

    def _ready(self) -> None:
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        if self._error is not None:
            raise RuntimeError(f"could not start the worker processes: {self._error}")

    def run(
        self,
        tasks: Iterable,
        make_task: Callable[[object], Task],
        on_start: Callable[[Task], None] | None = None,
    ) -> Iterator[Done]:
        """Hand ``tasks`` to free workers (``make_task`` creates each one's run just in time);
        yield how each ended, in the order they end. A dead worker's child ends FAILED.

        ``tasks`` is read lazily, one item when a worker is free: a sweep's search asks its study
        for the next trial only then, and stops at its trial count or timeout."""
        from steps.run.signals import SIGNALS

        self._ready()
        source, more = iter(tasks), True
        while more or any(w.task for w in self.workers):
            for w in list(self.workers):
                if w.task is None and more:
                    if not w.process.is_alive():  # it exited while idle
                        w = self._replace(w)
                    with SIGNALS.held():  # a signal waits until the run is created and handed over
                        item = next(source, _END)
                        more = item is not _END
                        if more:
                            w.task = make_task(item)
                            with contextlib.suppress(OSError):  # it died: its sentinel says so below
                                w.conn.send(w.task)
                    if on_start is not None and w.task is not None:
                        on_start(w.task)
            busy = [w for w in self.workers if w.task]
            if not busy:
                break
            ready = wait([x for w in busy for x in (w.conn, w.process.sentinel)])
            for w in busy:
                if w.conn not in ready and w.process.sentinel not in ready:
                    continue
                done = None
                try:
                    if w.conn.poll():
                        done = w.conn.recv()
                except (EOFError, OSError):
                    pass
                if done is None:  # it died holding the task; the caller closes the run FAILED
                    w.process.join(5)
                    yield Done(w.task.label, w.task.run_id, "FAILED", f"its worker process died ({_how(w.process)})")
                    self._replace(w)
                    continue
                # The task is let go only once the caller has dealt with its Done: if a signal comes
                # in between, stop() still lists it, and its run is closed if it is still open.
                yield done
                w.task = None
                if done.status == "KILLED":  # the worker exits after an interrupted child
                    w.process.join(5)
                    self._replace(w)

    def _replace(self, dead: _Worker) -> _Worker:
        dead.conn.close()
        new = self._spawn()
        self.workers[self.workers.index(dead)] = new
        return new

    def stop(self, grace_s: float = GRACE_S) -> list[Task]:
        """SIGTERM every worker (each closes its run KILLED), wait up to ``grace_s``, kill the rest.

        Returns the tasks whose worker did not report back (their runs may still be open).
        """
        with contextlib.suppress(RuntimeError):
            self._ready()
        unreported = []
        for w in self.workers:
            w.process.terminate()  # SIGTERM; a no-op for a worker that has already gone
        for w in self.workers:
            w.process.join(grace_s)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(5)
            if w.task is not None:
                try:
                    reported = w.conn.poll()
                except OSError:
                    reported = False
                if not reported:
                    unreported.append(w.task)
        return unreported

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is not None:
            return  # the caller stops the workers (stop()) and closes their runs
        try:
            self._ready()
        except RuntimeError:
            return
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in self.workers:
            w.process.join(10)
            if w.process.is_alive():
                w.process.kill()
            w.conn.close()


def _how(process) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
