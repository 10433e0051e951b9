"""Environment variables set for the span of a block (MLflow reads several at call time)."""

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
