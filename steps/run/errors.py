"""How a run can end other than FINISHED: the exceptions :mod:`steps.run.lifecycle` and
:mod:`steps.run.tracking` raise and catch (a module of their own, so neither imports the other for them)."""

from __future__ import annotations


class StoreGone(Exception):
    """The tracking store did not answer within the budget (--store-timeout). What the run could
    not write is in its spill file; ``python -m steps.recover`` writes it once the store is back."""

    run_id: str | None = None  # set by tracked_run: whose spill file to name


class ArtifactsFailed(Exception):
    """The artifact store refused an upload (a full disk) or did not answer within the budget: the
    run ends FAILED with this one line as its reason; its metrics are in the tracking store."""

    run_id: str | None = None  # set by tracked_run


class RunFailed(Exception):
    """Raise inside :func:`tracked_run` to end the run FAILED with ``reason``."""

    def __init__(self, reason: str, run_id: str | None = None):
        super().__init__(reason)
        self.reason, self.run_id = reason, run_id


class RunStopped(BaseException):
    """The run was interrupted (Ctrl-C or SIGTERM) and ended KILLED."""

    def __init__(self, reason: str, exit_code: int, run_id: str | None = None, message: str | None = None):
        super().__init__(reason)
        self.reason, self.exit_code, self.run_id, self.message = reason, exit_code, run_id, message


class Pruned(Exception):
    """Raised by a sweep trial's per-epoch hook when Optuna's pruner stops it after logged epoch
    ``epoch``: :func:`steps.run.runner.train_run` then ends the run FINISHED, tagged ``pruned``, with
    the history logged so far."""

    def __init__(self, epoch: int):
        super().__init__(f"pruned at epoch {epoch}")
        self.epoch = epoch
