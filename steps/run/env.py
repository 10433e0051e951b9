"""Environment variables: set for the span of a block (MLflow reads several at call time), and
gdlab's own seconds read from one."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def setenv(name: str, value: str):
    """``os.environ[name] = value`` inside the block; the old value (or its absence) after it."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def seconds(name: str, default: float, least: float) -> float:
    """The number of seconds in ``os.environ[name]``, at least ``least``; ``default`` when it is
    unset or not a number."""
    try:
        return max(least, float(os.environ.get(name, default)))
    except ValueError:
        return default
