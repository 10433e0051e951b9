"""Ctrl-C and SIGTERM as exceptions that never land inside a tracking-store write.

Python raises an exception from a signal handler wherever the main thread happens
to be, which in a training run is often half-way through an SQLAlchemy
transaction of ``log_batch``. Interrupted there, the store's connection can keep
its write lock, and the flush that saves the buffered metrics then meets
"database is locked". So writes run inside :meth:`DeferredSignals.held`: a signal that
arrives meanwhile is remembered and raised as soon as the write is done. A second
signal (a person pressing Ctrl-C again, more than a second later) abandons a write
or a close that is taking too long: the process must never be held by a store that
does not answer.
"""

from __future__ import annotations

import contextlib
import signal
import time

# A second signal this soon after the first is part of the same stop, not a person insisting:
# under `mlflow run`, a Ctrl-C reaches both processes and MLflow follows it with a SIGTERM.
SAME_STOP_S = 1.0


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that a run can be closed cleanly (exit 143)."""


class DeferredSignals:
    """While entered, SIGTERM raises ``on_term`` and SIGINT raises KeyboardInterrupt, except
    inside :meth:`held` (raised when the block ends) and :meth:`kept` / :meth:`closing` (left
    pending for later): the signals are deferred, never lost.

    A SIGINT that is ignored on entry (a background job of a non-interactive shell)
    stays ignored. :meth:`ignore` drops both signals entirely.
    Entering again (a run inside a run, e.g. `compare` inside `main`) is a no-op: the
    handlers are installed by the outermost entry and restored by its exit.
    """

    def __init__(self, on_term: type[BaseException] = Terminated):
        self.raises = {signal.SIGTERM: on_term, signal.SIGINT: KeyboardInterrupt}
        self.depth = 0
        self.entered = 0
        self.stopping = False  # a signal has been raised: this process is winding down
        self.first_at: float | None = None  # when the first signal of this stop came
        self.abandoned = False  # a second signal cut a write or a close short
        self.pending: type[BaseException] | None = None
        self.previous: dict = {}

    def __enter__(self) -> DeferredSignals:
        self.entered += 1
        if self.entered == 1:
            for signum in self.raises:
                current = signal.getsignal(signum)
                if current is signal.SIG_IGN:
                    continue
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        self.entered -= 1
        if self.entered:
            return
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()
        self.pending, self.stopping, self.first_at, self.abandoned = None, False, None, False

    def _handle(self, signum, frame) -> None:
        exc = self.raises[signum]
        now = time.monotonic()
        first = self.first_at is None
        self.first_at = now if first else self.first_at
        if not first and self.depth and now - self.first_at > SAME_STOP_S:
            # A second Ctrl-C/SIGTERM, by a person, during a write or a close: abandon it (a store
            # that does not answer must not hold the process), whatever state the run is left in.
            self.stopping, self.abandoned = True, True
            raise exc()
        if self.depth or self.stopping:  # inside a write or a close, or already stopping: later
            self.pending = self.pending or exc
            return
        self.stopping = True  # the first signal starts the stop; the close that follows is not cut short
        raise exc()

    @contextlib.contextmanager
    def held(self):
        """Signals arriving inside this block are raised when it ends (not half-way)."""
        with self._deferred(raise_at_end=True):
            yield

    @contextlib.contextmanager
    def kept(self):
        """Signals arriving inside this block stay pending, for the next :meth:`held` block to raise
        (or a loop that checks :attr:`pending`)."""
        with self._deferred(raise_at_end=False):
            yield

    @contextlib.contextmanager
    def _deferred(self, raise_at_end: bool):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if raise_at_end and not self.depth and self.pending is not None:
                exc, self.pending = self.pending, None
                self.stopping = True
                raise exc()

    @contextlib.contextmanager
    def closing(self):
        """Closing a run: a signal that arrives meanwhile is kept, not raised (the close must not be cut
        short) and not dropped: the next :meth:`held` block raises it, or a loop checks :attr:`pending`.
        Only a second signal, more than :data:`SAME_STOP_S` after the first, abandons the close.
        """
        with self.kept():
            yield

    @contextlib.contextmanager
    def ignore(self):
        """Drop both signals inside this block (for code that must finish and has no run to stop)."""
        saved = {signum: signal.signal(signum, signal.SIG_IGN) for signum in self.previous}
        try:
            yield
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)


# The process's one instance: every run of a process (a training run, a workflow's parent,
# compare nested in it, a worker's child after child) shares it.
SIGNALS = DeferredSignals()
