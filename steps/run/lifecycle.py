"""One run lifecycle for every gdlab run: start or resume, guarded writes, flush, the right end.

Training runs, the parents of `main` and `sweep`, and `compare` all go through
:func:`tracked_run`::

    with tracked_run(name="adam", tags={...}) as run:
        run.log_params(...)            # guarded: a signal never lands half-way through a write
        run.log_metrics({...}, step)   # buffered, written with log_batch
        ...

How the run ends:

=====================================  ========  =====================================
the block                              status    then
=====================================  ========  =====================================
returns                                FINISHED  (FAILED if ``run.fail(reason)`` was called)
raises :class:`RunFailed`              FAILED    re-raised, with the run's id
Ctrl-C (SIGINT)                        KILLED    :class:`RunStopped` (exit code 130)
SIGTERM                                KILLED    :class:`RunStopped` (exit code 143)
a :class:`RunStopped` from a run
nested inside (compare inside main)    KILLED    :class:`RunStopped`, for this run
any other exception                    FAILED    re-raised
=====================================  ========  =====================================

Whatever the ending, the buffered metrics are flushed, a run that did not finish gets
a ``failure_reason`` tag and the ``on_close`` hooks (e.g. save the weight path so far),
and the run is ended. A signal that comes meanwhile waits (:meth:`DeferredSignals.closing`); only a
second one, a person insisting, abandons a close that waits on the store, and what was not
written is spilled. No run is left RUNNING while the store answers.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator

import click

from steps.run.errors import ArtifactsFailed, RunFailed, RunStopped, StoreGone
from steps.run.heartbeat import HEARTBEAT
from steps.run.signals import SIGNALS, Terminated

NOT_DONE = ("RUNNING", "SCHEDULED")
# The name MLflow gives a run nobody named (mlflow.utils.name_utils: predicate-noun-number).
RANDOM_NAME = re.compile(r"[a-z]+-[a-z]+-\d+")


class Run:
    """The run inside :func:`tracked_run`: its ids and guarded, retried writes."""

    def __init__(self, client, info):
        from steps.run.tracking import MetricBuffer

        self.client, self.info = client, info
        self.id, self.experiment_id = info.run_id, info.experiment_id
        self.held = SIGNALS.held  # `with run.held():` a signal waits until the block ends
        self.buffer = MetricBuffer(client, self.id, guard=SIGNALS.held)
        self.failure: str | None = None
        self.on_close: list[Callable[[], None]] = []  # called when the run ends without finishing

    def log_params(self, params: dict) -> None:
        from steps.run import tracking

        with self.held():
            tracking.log_params(self.client, self.id, params)

    def set_tags(self, tags: dict) -> None:
        from steps.run import tracking

        with self.held():
            if tags:
                tracking.set_tags(self.client, self.id, tags)

    def log_metrics(self, metrics: dict, step: int = 0, model_id: str | None = None) -> None:
        """Buffered (flushed every few seconds, when full, and when the run ends); ``model_id``
        links them to a LoggedModel of the run as well."""
        self.buffer.add(metrics, step, model_id)

    def fail(self, reason: str) -> None:
        """End FAILED with ``reason`` when the block returns (no exception needed)."""
        self.failure = reason


def end_if_open(client, run_id: str, status: str, reason: str | None) -> bool:
    """End ``run_id`` ``status`` with its ``failure_reason``, unless it has ended already (a finished
    run is never written into). For runs whose own process could not end them."""
    from steps.run import tracking

    if client.get_run(run_id).info.status not in NOT_DONE:
        return False
    tracking.set_tags(client, run_id, {"failure_reason": reason or status.lower()})
    client.set_terminated(run_id, status)
    return True


# The process that writes a run: {"host", "pid", "start"} (start: the process's start time, in
# clock ticks since boot, so that a pid reused by another process is not taken for the owner).
OWNER_TAG = "gdlab.owner"
HEARTBEAT_TAG = "gdlab.heartbeat"  # refreshed while the run is open (steps.run.heartbeat): seconds since the epoch


def claim() -> dict[str, str]:
    """The tags that say this process writes a run, as of now: its owner and its first heartbeat."""
    import time

    return {OWNER_TAG: owner(), HEARTBEAT_TAG: str(int(time.time()))}


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])  # field 22, after "pid (comm)"
    except (OSError, ValueError, IndexError):
        return None


def owner() -> str:
    """This process, as the ``gdlab.owner`` tag of the runs it writes."""
    import json
    import socket

    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start": _start_ticks(os.getpid())})


def live_owner(tag: str | None, heartbeat: str | None = None) -> str | None:
    """Who else writes a run, if its ``gdlab.owner`` names another live process ("process 123 on
    host"); None if nobody, this process, or a process that is gone. A process on another host
    cannot be seen from here: it counts as alive unless its ``gdlab.heartbeat`` is stale."""
    import json
    import socket
    import time

    from steps.run.heartbeat import stale_after_s

    try:
        who = json.loads(tag or "")
        host, pid, start = who["host"], int(who["pid"]), who.get("start")
    except (ValueError, TypeError, KeyError):
        return None
    said = f"process {pid} on {host}"
    if host != socket.gethostname():
        try:
            stale = time.time() - float(heartbeat or "nan") > stale_after_s()
        except ValueError:
            stale = False
        return None if stale else said
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return said if start is None or _start_ticks(pid) in (None, start) else None


def resumable(client, run_id: str, owned: bool = True) -> None:
    """Refuse to write into a run that has ended (a finished run is never written into), or (with
    ``owned``) into one that another live process is writing (a run is written by one process)."""
    run = client.get_run(run_id)
    status = run.info.status
    if status not in NOT_DONE:
        raise click.ClickException(
            f"run {run_id} (from MLFLOW_RUN_ID) is {status}: gdlab never writes into a run that has "
            "ended; unset MLFLOW_RUN_ID to start a new run"
        )
    if owned:
        _refuse_if_owned(run_id, run.data.tags)


def _refuse_if_owned(run_id: str, tags: dict) -> None:
    if other := live_owner(tags.get(OWNER_TAG), tags.get(HEARTBEAT_TAG)):
        raise click.ClickException(
            f"run {run_id} (from MLFLOW_RUN_ID) is being written by {other}: a run is written by one "
            "process; unset MLFLOW_RUN_ID to start a new run"
        )


def _start(run_id, experiment_id, parent_run_id, name, tags):
    """Start or resume the run; returns (client, run, tags still to set). A run this function
    made and could not make active is ended FAILED before the error goes on."""
    import mlflow

    from steps.run import tracking

    client = tracking.store_client()  # every call retried within --store-timeout
    active = mlflow.active_run()
    resume = run_id or os.environ.get("MLFLOW_RUN_ID")
    me = claim()
    if resume:
        # A run handed over by a workflow (run_id) is this process's: its parent made it for it.
        resumable(client, resume, owned=not run_id)
        run = tracking.start_run(run_id=run_id, nested=active is not None)
        if not run_id:  # handed over by MLFLOW_RUN_ID, maybe to two processes at once: the last to say it owns it does
            tracking.set_tags(client, resume, me)
            try:
                _refuse_if_owned(resume, client.get_run(resume).data.tags)
            except click.ClickException:
                _let_go(resume)
                raise
        made_by_mlflow_run = not run_id and "mlflow.project.entryPoint" in run.data.tags
        if made_by_mlflow_run and name and run.info.run_name != name and RANDOM_NAME.fullmatch(run.info.run_name or ""):
            # `mlflow run` made it (MLFLOW_RUN_ID) with a random name ("auspicious-kit-7"): name it for what it is.
            # A name someone chose (a workflow's child, `mlflow run --run-name`) stays.
            tracking.retry(lambda: client.update_run(run.info.run_id, name=name))
        extra = {**(tags or {}), **me}
        if parent_run_id and "mlflow.parentRunId" not in run.data.tags:
            extra["mlflow.parentRunId"] = parent_run_id
        return client, run, extra
    if active is not None and parent_run_id and active.info.run_id != parent_run_id:
        # Nested under another run than the active one: MLflow's start_run refuses that, so make it first.
        made = client.create_run(
            experiment_id or active.info.experiment_id,
            run_name=name,
            tags={**(tags or {}), "mlflow.parentRunId": parent_run_id, **me},
        )
        try:
            return client, tracking.start_run(run_id=made.info.run_id, nested=True), {}
        except BaseException:
            with contextlib.suppress(Exception):
                client.set_terminated(made.info.run_id, "FAILED")
            raise
    run = tracking.start_run(
        experiment_id=experiment_id,
        run_name=name,
        parent_run_id=parent_run_id if active is None else None,
        nested=active is not None,
        tags={**(tags or {}), **me},
    )
    return client, run, {}


@contextlib.contextmanager
def tracked_run(
    *,
    run_id: str | None = None,
    experiment_id: str | None = None,
    parent_run_id: str | None = None,
    name: str | None = None,
    tags: dict | None = None,
) -> Iterator[Run]:
    """Start a run, or resume ``run_id`` (else MLFLOW_RUN_ID, which `mlflow run` sets), and
    end it as the table in this module's docstring says.

    A new run is nested under ``parent_run_id`` when given, else under the active run, if any
    (tag ``mlflow.parentRunId``).
    """
    from steps.run.tracking import check_reachable

    if run_id is None:  # (a workflow's child: its parent has just reached the store; an outage is retried)
        check_reachable()
    resume = run_id or os.environ.get("MLFLOW_RUN_ID")
    with SIGNALS:
        run: Run | None = None
        status, stopped = "FAILED", None
        try:
            # While the run is being created a signal is only remembered (the store may be creating
            # its tables); the guarded write below raises it, inside this `try`, so the run ends KILLED.
            with SIGNALS.kept():
                client, started, late_tags = _start(run_id, experiment_id, parent_run_id, name, tags)
                run = Run(client, started.info)
                HEARTBEAT.add(run.id, _beat(run.id))
            run.set_tags(late_tags)  # guarded: delivers a signal that came while the run was created
            yield run
            status = "FAILED" if run.failure else "FINISHED"
        except RunFailed as exc:
            if run is not None:
                run.failure, exc.run_id = exc.reason, run.id
            raise
        except RunStopped as exc:  # a run nested inside this one was interrupted
            status, stopped = "KILLED", RunStopped(exc.reason, exc.exit_code, run and run.id, exc.message)
        except KeyboardInterrupt:
            status, stopped = "KILLED", RunStopped("interrupted (Ctrl-C)", 130, run and run.id)
        except Terminated:
            status, stopped = "KILLED", RunStopped("terminated (SIGTERM)", 143, run and run.id)
        except BaseException as exc:
            if run is not None:
                run.failure = _one_line(exc)
                if isinstance(exc, StoreGone):
                    run.failure, exc.run_id = f"the tracking store went away ({exc})", run.id
                if isinstance(exc, ArtifactsFailed):
                    run.failure, exc.run_id = str(exc), run.id
            elif resume and isinstance(exc, StoreGone):  # it could not be opened: `recover` ends it
                exc.run_id = resume
                tracking_spill(resume, {"status": "FAILED", "failure_reason": f"the tracking store went away ({exc})"})
            raise
        finally:
            if run is not None:
                if stopped is not None:
                    run.failure = stopped.reason
                if SIGNALS.abandoned:  # a second signal cut a write short: do not wait on the store again
                    HEARTBEAT.remove(run.id, wait=False)  # (it stays RUNNING: a late beat is harmless)
                    stopped = _abandoned(run, status, stopped)
                    run = None
            if run is not None:
                try:
                    with SIGNALS.closing():  # a signal now waits: the run must not be left RUNNING, nor metrics lost
                        HEARTBEAT.remove(run.id)  # nothing beats into the run once it is being ended
                        _close(run, status)
                        _end(run, status)
                except (KeyboardInterrupt, Terminated) as exc:  # a second signal abandoned the close
                    stopped = _abandoned(run, status, exc)
        if stopped is not None:
            raise stopped


def _beat(run_id: str) -> Callable[[], None]:
    """The run's heartbeat: its ``gdlab.heartbeat`` tag set to now (one try; a miss is skipped)."""
    import time

    import mlflow

    client = mlflow.MlflowClient()
    return lambda: client.set_tag(run_id, HEARTBEAT_TAG, str(int(time.time())))


def tracking_spill(run_id: str, end: dict) -> None:
    from steps.run import tracking

    with contextlib.suppress(Exception):
        tracking.spill(run_id, end=end)


def _abandoned(run: Run, status: str, exc: BaseException | None) -> RunStopped:
    """The close was cut short by a second signal (or a write was, before it): keep what is left in
    the spill file, take the run off MLflow's stack without waiting on the store, say where it is."""
    from steps.run import tracking

    end = {"status": "KILLED" if status == "FINISHED" else status, "failure_reason": run.failure or "interrupted"}
    with contextlib.suppress(Exception):
        tracking.spill(run.id, metrics=run.buffer.pending, end=end)
        run.buffer.pending = []
    _let_go(run.id)
    if isinstance(exc, RunStopped):
        code = exc.exit_code
    else:
        code = 130 if isinstance(exc, KeyboardInterrupt) else 143
    message = (
        f"Run {run.id}: its close was abandoned (a second signal), so it may be left RUNNING; what was not "
        f"written is in {tracking.spill_file(run.id)}: `python -m steps.recover` writes it and ends the run."
    )
    return RunStopped(end["failure_reason"], code, run.id, message)


def _let_go(run_id: str) -> None:
    """Take the run off MLflow's active-run stack without writing to the store (it is ended later,
    by `recover`, once the values in its spill file are written)."""
    import mlflow

    try:
        from mlflow.tracking import fluent

        stack = fluent._active_run_stack.get()
        if stack and stack[-1].info.run_id == run_id:
            stack.pop()
            fluent._last_active_run_id.set(run_id)
        os.environ.pop("MLFLOW_RUN_ID", None)
    except (ImportError, AttributeError):  # MLflow moved its private names: end it, quickly, if it answers
        from steps.run import tracking

        with tracking.http_waits(max_retries=0, timeout_s=2), contextlib.suppress(Exception):
            mlflow.end_run(status="KILLED")


def _end(run: Run, status: str) -> None:
    """``mlflow.end_run``; if the store refuses, try again, else say how to end the run by hand. A
    run whose values wait in its spill file is not ended: `recover` writes them, then ends it."""
    import mlflow

    from steps.run import tracking

    if tracking.gone() or tracking.spill_file(run.id).exists():
        if not tracking.gone():  # (a write given up on for another reason: say where its values are)
            click.echo(
                f"warning: run {run.id} is left RUNNING: what it could not write is in "
                f"{tracking.spill_file(run.id)}; `python -m steps.recover` writes it and ends the run",
                err=True,
            )
        _let_go(run.id)
        return
    try:
        mlflow.end_run(status=status)
        return
    except Exception:  # end_run has taken the run off MLflow's active-run stack; write the status again
        pass
    try:
        tracking.retry(lambda: run.client.set_terminated(run.id, status))
    except StoreGone:
        tracking.spill(run.id, end={"status": status, "failure_reason": run.failure})
    except Exception as exc:
        click.echo(
            f"warning: could not end run {run.id} {status} ({_one_line(exc)}); end it with: python -c "
            f"\"import mlflow; mlflow.MlflowClient().set_terminated('{run.id}', '{status}')\"",
            err=True,
        )


def _close(run: Run, status: str) -> None:
    """Flush what the run has; say why it did not finish. Errors are reported, not raised; if the
    store has gone away, what could not be written (and how the run should end) is spilled."""
    from steps.run import tracking

    try:
        run.buffer.flush()
        if status != "FINISHED":
            tracking.set_tags(run.client, run.id, {"failure_reason": run.failure or status.lower()})
            for hook in run.on_close:
                hook()
    except StoreGone:
        pass
    except Exception as exc:  # report, but still end the run
        click.echo(f"warning: could not save everything of run {run.id}: {_one_line(exc)}", err=True)
    if tracking.gone():
        run.failure = run.failure or f"the tracking store went away ({tracking.gone()})"
        end = {"status": "FAILED" if status == "FINISHED" else status, "failure_reason": run.failure}
        tracking.spill(run.id, end=end)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return (f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)[:500]


def exit_on_end(fn: Callable, *args, **kwargs):
    """Call ``fn``; an interrupted run exits 130/143 and a failed one is a one-line error (exit 1)."""
    import sys

    try:
        return fn(*args, **kwargs)
    except RunStopped as exc:
        from steps.run import tracking

        if exc.message:
            click.echo(exc.message, err=True)
        elif exc.run_id and tracking.spill_file(exc.run_id).exists():
            click.echo(
                f"Run {exc.run_id} {exc.reason}: stopped; what the store did not take is in "
                f"{tracking.spill_file(exc.run_id)}: `python -m steps.recover` writes it and ends the run.",
                err=True,
            )
        elif exc.run_id:
            click.echo(f"Run {exc.run_id} {exc.reason}: stopped, metrics so far are saved.", err=True)
        else:
            click.echo(f"{exc.reason[:1].upper()}{exc.reason[1:]} before a run started.", err=True)
        sys.exit(exc.exit_code)
    except RunFailed as exc:
        raise click.ClickException(f"{exc.reason} (run {exc.run_id} marked FAILED)") from None
    except StoreGone as exc:
        raise click.ClickException(store_gone_message(exc)) from None
    except ArtifactsFailed as exc:
        raise click.ClickException(f"{exc} (run {exc.run_id} marked FAILED)") from None


def store_gone_message(exc: BaseException) -> str:
    """What to do when the tracking store went away: where the unwritten metrics are, how to replay them."""
    from steps.run import tracking

    own = getattr(exc, "run_id", None)
    files = tracking.spilled_since_start()
    if own and tracking.spill_file(own).exists() and tracking.spill_file(own) not in files:
        files.insert(0, tracking.spill_file(own))
    kept = f"; what was not written is in {', '.join(map(str, files))}" if files else ""
    return (
        f"the tracking store went away ({exc}): the run could not be ended there{kept}. When the store "
        "answers again, `python -m steps.recover` writes it and ends the run"
    )
