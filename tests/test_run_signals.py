"""DeferredSignals: a signal never lands half-way through a tracking-store write."""

from __future__ import annotations

import os
import signal
import time

import mlflow
import pytest
from click.testing import CliRunner

from steps.compare import compare
from steps.main import main
from steps.run import signals
from steps.run.signals import DeferredSignals
from steps.sgd import sgd


class Stop(BaseException):
    pass


def signal_during(stops: DeferredSignals | None, signum: int, log: list) -> None:
    """Send ``signum`` to this process inside a (nested) write if ``stops`` is given, else outside one."""
    if stops is None:
        os.kill(os.getpid(), signum)  # Python runs the handler right after this call
        log.append("after the signal")
        return
    with stops.held():
        os.kill(os.getpid(), signum)
        with stops.held():  # nested writes: raised only when the outermost ends
            log.append("inner write")
        log.append("outer write")
    log.append("after the write")


def test_a_signal_outside_a_write_raises_at_once():
    log = []
    with DeferredSignals(on_term=Stop), pytest.raises(Stop):
        signal_during(None, signal.SIGTERM, log)
    assert log == []


@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGTERM, Stop), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_inside_a_write_waits_until_the_write_is_done(signum, raised):
    log = []
    with DeferredSignals(on_term=Stop) as stops, pytest.raises(raised):
        signal_during(stops, signum, log)
    assert log == ["inner write", "outer write"]


def start_then_write(stops: DeferredSignals, log: list) -> None:
    with stops.kept():
        os.kill(os.getpid(), signal.SIGTERM)
    log.append("run started")
    with stops.held():
        log.append("first write")
    log.append("after the first write")


def test_a_signal_while_the_run_starts_is_raised_by_the_first_write():
    log = []
    with DeferredSignals(on_term=Stop) as stops, pytest.raises(Stop):
        start_then_write(stops, log)
    assert log == ["run started", "first write"]


def test_ignore_drops_signals_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with DeferredSignals(on_term=Stop) as stops:
        with stops.ignore():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGTERM) == stops._handle
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with DeferredSignals(on_term=Stop):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_busy_store_is_retried_with_one_line_and_no_traceback(capfd, monkeypatch):
    import logging

    from mlflow.exceptions import MlflowException

    from steps.run import tracking

    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    calls = []

    def write():  # what MLflow's sqlite store does when the file is locked: log a traceback, raise
        calls.append(1)
        if len(calls) < 3:
            try:
                raise RuntimeError("(sqlite3.OperationalError) database is locked")
            except RuntimeError as exc:
                logging.getLogger("mlflow.store.db.utils").exception(
                    "SQLAlchemy database error. The following exception is caught.\n%s", exc
                )
                raise MlflowException(str(exc), error_code="TEMPORARILY_UNAVAILABLE") from exc
        return "written"

    assert tracking.retry(write) == "written"
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.count("warning: the tracking store is busy") == 2
    assert "database is locked" in err


def test_a_store_that_stays_busy_raises_after_the_last_attempt(monkeypatch):
    from mlflow.exceptions import MlflowException

    from steps.run import tracking

    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)

    def write():
        raise MlflowException("database is locked", error_code="TEMPORARILY_UNAVAILABLE")

    with pytest.raises(MlflowException, match="locked"):
        tracking.retry(write, attempts=2)


def test_a_signal_while_a_run_closes_is_kept_for_the_next_write_not_dropped():
    log = []
    with DeferredSignals(on_term=Stop) as stops:
        with stops.closing():
            os.kill(os.getpid(), signal.SIGTERM)
            log.append("closed")
        log.append("after the close")
        with pytest.raises(Stop), stops.held():
            log.append("next write")
    assert log == ["closed", "after the close", "next write"]


def int_then_term(stops: DeferredSignals, log: list) -> None:
    with stops.held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        log.append("write finished")


def test_mlflows_follow_up_sigterm_does_not_cut_the_write_short():
    """`mlflow run` answers Ctrl-C with a SIGTERM to its child a moment later: one stop, not two."""
    log = []
    with DeferredSignals(on_term=Stop) as stops, pytest.raises(KeyboardInterrupt):
        int_then_term(stops, log)
    assert log == ["write finished"]


def term_twice(stops: DeferredSignals, log: list) -> None:
    with stops.held():
        os.kill(os.getpid(), signal.SIGTERM)  # the first: waits for the write
        log.append("still writing")
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # the second: now
        log.append("never reached")


def test_a_second_signal_later_abandons_a_write_that_hangs(monkeypatch):
    """A person pressing Ctrl-C again: the write (a store that does not answer) is given up."""
    monkeypatch.setattr(signals, "SAME_STOP_S", 0.0)
    log = []
    with DeferredSignals(on_term=Stop) as stops:
        with pytest.raises(Stop):
            term_twice(stops, log)
        assert stops.abandoned
    assert log == ["still writing"]
    assert stops.abandoned is False  # reset when the outermost block ends


# --------------------------------------------------------------------------- hostile input (was test_hostile.py)

# --------------------------------------------------------------------------- 3: interrupted compare


def _sigterm_during_compare_logging(monkeypatch):
    real = mlflow.log_table

    def log_table(*args, **kwargs):  # the signal lands while the compare run writes its outputs
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_table", log_table)


def test_sigterm_to_a_standalone_compare_ends_its_run_killed(tracking, monkeypatch):
    assert CliRunner().invoke(sgd, ["--epochs", "3"]).exit_code == 0
    _sigterm_during_compare_logging(monkeypatch)
    result = CliRunner().invoke(compare, ["--output-dir", str(tracking.root / "out")])
    assert result.exit_code == 143, result.output
    (run,) = [r for r in tracking.client.search_runs([tracking.experiment_id]) if r.data.tags["technique"] == "compare"]
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"] == "terminated (SIGTERM)"


@pytest.mark.slow
def test_sigterm_while_main_compares_ends_compare_and_main_killed(tracking, monkeypatch):
    _sigterm_during_compare_logging(monkeypatch)
    result = CliRunner().invoke(main, ["--epochs", "3", "--output-dir", str(tracking.root / "out")])
    assert result.exit_code == 143, result.output
    runs = {r.data.tags["technique"]: r for r in tracking.client.search_runs([tracking.experiment_id])}
    assert runs["compare"].info.status == "KILLED"
    assert runs["main"].info.status == "KILLED"
    assert runs["main"].data.tags["failure_reason"] == "terminated (SIGTERM)"
    assert all(runs[t].info.status == "FINISHED" for t in ("sgd", "adam", "l1", "l2"))
