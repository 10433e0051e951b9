"""A process's heartbeat: every :func:`interval_s` seconds, a thread refreshes what this process
holds, so that another process can tell a holder that is gone from one that is busy.

What beats:

* every run the process has open (:mod:`steps.run.lifecycle` adds it when the run starts and
  removes it before the run ends): tag ``gdlab.heartbeat``, the time in seconds since the epoch,
  beside ``gdlab.owner`` (host, pid, start time). `recover` ends a RUNNING run whose owner is a
  process that is gone: on this host it looks at the pid; a process on another host cannot be
  seen, so there a heartbeat older than :func:`stale_after_s` says it is gone;
* a sweep's trials in flight, in an Optuna study on a database (``RDBStorage.record_heartbeat``):
  another sweep sharing the study fails a trial whose heartbeat is stale (``fail_stale_trials``).

The thread starts with the first beat and is a daemon: a process killed outright stops beating,
which is the point. A beat that fails (the store does not answer) is skipped; the next may land.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

from steps.run.env import seconds

INTERVAL_S = 15.0  # GDLAB_HEARTBEAT_S
STALE_BEATS = 4  # a heartbeat this many intervals old says its process is gone


def interval_s() -> float:
    return seconds("GDLAB_HEARTBEAT_S", INTERVAL_S, 0.1)


def stale_after_s() -> float:
    """How old a heartbeat is when its process counts as gone (a process on another host)."""
    return STALE_BEATS * interval_s()


class Heartbeat:
    """Callables beaten every :func:`interval_s` seconds, each under one lock: :meth:`remove` waits for
    a beat in flight, so that nothing beats into a run once it is being ended."""

    def __init__(self):
        self.beats: dict[object, Callable[[], None]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = None

    def add(self, key, beat: Callable[[], None]) -> None:
        with self.lock:
            self.beats[key] = beat
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                self.pid = os.getpid()  # (a forked worker has the object, not the thread)
                self.thread = threading.Thread(target=self._run, name="gdlab-heartbeat", daemon=True)
                self.thread.start()

    def remove(self, key, wait: bool = True) -> None:
        """Stop beating ``key``; with ``wait``, once a beat in flight has ended."""
        if wait:
            with self.lock:
                self.beats.pop(key, None)
        else:
            self.beats.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(interval_s())
            with self.lock:
                for beat in list(self.beats.values()):
                    with contextlib.suppress(Exception):  # the store does not answer: the next beat may land
                        beat()


HEARTBEAT = Heartbeat()
