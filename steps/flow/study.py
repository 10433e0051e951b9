"""The Optuna study of a `sweep --search random|tpe`: where it is kept, and a trial's reports.

Three storages (``--storage``):

* none: a journal file (``optuna.storages.JournalStorage``) in a temporary folder, removed when
  the sweep ends: the study lives as long as the sweep, as an in-memory one would, but the
  worker processes can open it too, which they must to report each epoch to the pruner;
* an RDB URL (``sqlite:///study.db``, ``postgresql://...``): Optuna's ``RDBStorage``;
* ``mlflow``: MLflow's ``mlflow.optuna.MlflowStorage``, the study kept in the tracking server
  itself, as runs of an experiment of its own, ``<experiment>.optuna.<study name>`` (see
  :class:`SharedMlflowStorage` for what gdlab changes in it and why).

Every worker that opens the same study (same storage, same name) adds its trials to it. The
sweep's settings that decide what a trial's value means (technique, search space, data and
training options) are kept in the study (user attribute ``gdlab``); a sweep with other settings
is refused rather than mixed in.

A trial that trains in a worker process gets a :class:`TrialRef`; the worker's
:class:`Reporter` opens the study, reports each logged epoch's value
(``trial.report``) and asks the pruner; when it says stop, :class:`steps.run.errors.Pruned` ends
the training (the run ends FINISHED, tagged ``pruned``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
import warnings
from dataclasses import dataclass

import click

from steps.run.env import setenv
from steps.run.errors import Pruned

STUDY_ATTR = "gdlab"  # the study's user attribute holding the sweep settings it was made with
WAIT_FOR_STUDY_S = 30.0  # how long a worker waits for the one creating an mlflow study to finish


@dataclass(frozen=True)
class StorageSpec:
    """Where a study is kept, as a worker process needs to open it again."""

    kind: str  # "memory" (a journal file in a temporary folder), "rdb" or "mlflow"
    where: str  # the journal file, the database URL, or the study's MLflow experiment id

    def shown(self) -> str:
        """For params, tags and messages: an RDB URL without its password."""
        if self.kind == "rdb":
            from sqlalchemy.engine import make_url

            return make_url(self.where).render_as_string(hide_password=True)
        return {"memory": "memory", "mlflow": "mlflow"}[self.kind]


@dataclass(frozen=True)
class TrialRef:
    """One trial, for the worker that trains it: the study, the trial, what to report, the pruner."""

    storage: StorageSpec
    study_name: str
    trial_id: object  # int (journal, RDB) or the trial's MLflow run id (mlflow)
    metric: str  # the per-epoch metric reported: val_loss with a validation split, else objective
    pruner: object  # an optuna pruner (picklable)


# --------------------------------------------------------------------------- MLflow as the storage


def quiet_urls():
    """MLflow prints "View run <name> at: <url>" for every run it ends on a tracking server; the
    study's own runs (its container, its trials) are bookkeeping, not worth a line each."""
    return setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _shared_mlflow_storage_class():
    from mlflow.optuna.storage import MlflowStorage, mlflow_optuna_status_map

    class SharedMlflowStorage(MlflowStorage):
        """MLflow 3.17's ``MlflowStorage`` with what a study shared by many workers needs.

        Each trial is a run of the study's experiment, nested under the study's run; MLflow
        reads every trial again (four requests a trial) on every ``get_all_trials`` (each
        ``ask``, each suggestion of TPE, each pruning check), reads at most one page of
        them (1,000), and returns them newest first. Here:

        * every trial is read, page after page, and sorted by number (Optuna's samplers
          expect that order, as its own RDB storage gives it);
        * a finished trial is read once and kept: it never changes again (MLflow writes a
          trial's values before its end status, so a finished trial is whole);
        * only the trials in the states asked for are read.

        * a trial's number is its place in the study run's ``trial_id`` metric history, read
          when the trial is created; but that history is ordered by timestamp (then value),
          not by arrival: a worker that took its timestamp, was descheduled (a loaded machine)
          and wrote it after another worker's later one lands before it, and both read the same
          place: two trials of one number. So the number is read again when the trial ends, by
          then every trial that took an earlier timestamp has long written it, and corrected.

        gdlab keys trials by their run ids, never by number; the number names the child run.
        """

        page_size = 1000  # trial runs read a request

        def __init__(self, experiment_id: str):
            super().__init__(experiment_id)
            self._finished: dict = {}
            self._study_of: dict = {}  # trial id -> study id, for the trials this process made

        def create_new_trial(self, study_id, template_trial=None):
            trial_id = super().create_new_trial(study_id, template_trial)
            self._study_of[trial_id] = study_id
            return trial_id

        def place(self, trial_id) -> int | None:
            """The trial's place in its study's ``trial_id`` history now (trials this process made)."""
            study_id = self._study_of.get(trial_id)
            if study_id is None:
                return None
            mark = float(hash(trial_id))  # (what MlflowStorage logged: str hashes differ between processes)
            history = self._mlflow_client.get_metric_history(study_id, "trial_id")
            return next((i for i, m in enumerate(history) if m.value == mark), None)

        def set_trial_state_values(self, trial_id, state, values=None):
            if state.is_finished() and (number := self.place(trial_id)) is not None:
                from mlflow.entities import RunTag

                self._queue_batch_operation(trial_id, tags=[RunTag("numbers", str(number))])  # written first
            return super().set_trial_state_values(trial_id, state, values)

        def _trial_runs(self, study_id):
            runs, token = [], None
            while True:
                page = self._mlflow_client.search_runs(
                    [self._experiment_id],
                    f"tags.mlflow.parentRunId = '{study_id}'",
                    max_results=self.page_size,
                    page_token=token,
                )
                runs += page
                token = page.token
                if not token:
                    return runs

        def get_trial(self, trial_id):
            if (kept := self._finished.get(trial_id)) is not None:
                return kept
            trial = super().get_trial(trial_id)
            if trial.state.is_finished():
                self._finished[trial_id] = trial
            return trial

        def get_all_trials(self, study_id, deepcopy=True, states=None):
            self.flush_all_batches()
            trials = []
            for run in self._trial_runs(study_id):
                if states is not None and mlflow_optuna_status_map[run.info.status] not in states:
                    continue
                trial = self.get_trial(run.info.run_id)
                if states is None or trial.state in states:  # (it may have ended since the search)
                    trials.append(trial)
            trials.sort(key=lambda t: (t.number, t.datetime_start))
            return copy.deepcopy(trials) if deepcopy else trials

        def get_n_trials(self, study_id, states=None):
            return len(self.get_all_trials(study_id, deepcopy=False, states=states))

    return SharedMlflowStorage


def study_experiment_name(experiment_name: str, study_name: str) -> str:
    """The MLflow experiment that holds an mlflow-stored study (its runs are the study's trials)."""
    return f"{experiment_name}.optuna.{study_name}"


def _mlflow_study_experiment(study_name: str) -> tuple[str, bool]:
    """The study's experiment id, and whether this process created it. Creating an experiment
    is atomic on the tracking server (a second one of that name is refused), so the worker that
    creates it is the one that creates the study in it: two workers started at once never make
    two studies of one name (MlflowStorage alone would: it never looks for an existing one)."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking.fluent import _get_experiment_id

    client = mlflow.MlflowClient()
    name = study_experiment_name(client.get_experiment(_get_experiment_id() or "0").name, study_name)
    for _ in range(2):
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage != "active":
                raise click.BadParameter(
                    f"the study's experiment {name!r} is deleted: restore it (mlflow experiments restore) "
                    "or choose another --study-name",
                    param_hint="'--study-name'",
                )
            return found.experiment_id, False
        with contextlib.suppress(MlflowException):  # another worker created it meanwhile: read it again
            return client.create_experiment(name, tags={"gdlab.optuna_study": study_name}), True
    raise click.ClickException(f"could not create or find the experiment {name!r} of the study")


def _open_mlflow(study_name: str) -> tuple[StorageSpec, object]:
    """The mlflow-stored study ``study_name`` of the current experiment, created by the one sweep
    that creates its experiment; the others wait (a while) for it to appear."""
    import mlflow
    from optuna.study import StudyDirection

    from steps.run.tracking import check_reachable

    check_reachable()  # an unreachable server is one line, within seconds
    experiment_id, created = _mlflow_study_experiment(study_name)
    storage = _shared_mlflow_storage_class()(experiment_id)
    deadline = time.monotonic() + WAIT_FOR_STUDY_S
    while not created and storage.get_study_id_by_name_if_exists(study_name) is None:
        created = time.monotonic() > deadline  # its creator died between the experiment and the study
        if not created:
            time.sleep(0.5)
    if created:
        study_id = storage.create_new_study([StudyDirection.MINIMIZE], study_name)
        # The study's run is a container (its trials are runs nested under it): gdlab leaves no run RUNNING.
        with quiet_urls():
            mlflow.MlflowClient().set_terminated(study_id, "FINISHED")
    spec = StorageSpec("mlflow", experiment_id)
    _storages[spec] = storage
    return spec, storage


# --------------------------------------------------------------------------- opening a study

_storages: dict = {}  # one storage object a process and a spec (MlflowStorage starts a thread each)


def storage_of(spec: StorageSpec):
    """The storage ``spec`` names, opened once a process."""
    if spec not in _storages:
        import optuna

        if spec.kind == "memory":
            from optuna.storages.journal import JournalFileBackend

            _storages[spec] = optuna.storages.JournalStorage(JournalFileBackend(spec.where))
        elif spec.kind == "rdb":
            from steps.run.heartbeat import interval_s, stale_after_s

            # With a heartbeat: a sweep sharing the study fails a trial whose sweep stopped beating.
            for attempt in range(5):
                try:
                    with warnings.catch_warnings():  # ("experimental" since Optuna 2.9)
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        _storages[spec] = optuna.storages.RDBStorage(
                            spec.where,
                            heartbeat_interval=max(1, round(interval_s())),
                            grace_period=max(2, round(stale_after_s())),
                        )
                    break
                except Exception as exc:
                    # Sweeps started together on a new database all create Optuna's tables; on
                    # PostgreSQL the losers of that race meet "duplicate key value ... pg_type" (or
                    # "already exists"). Once the winner has made them, opening again finds them.
                    if attempt == 4 or not any(w in str(exc) for w in ("duplicate key", "already exists")):
                        raise
                    time.sleep(0.2 * (attempt + 1))
        else:
            _storages[spec] = _shared_mlflow_storage_class()(spec.where)
    return _storages[spec]


def storage_behind(optuna_study):
    """The storage an Optuna study reads and writes (Optuna wraps an RDBStorage in a cache: this is
    the wrapper, whose heartbeat calls reach the database)."""
    return optuna_study._storage


def fail_stale_trials(optuna_study) -> list:
    """Optuna's ``fail_stale_trials`` (the trials of a sweep that stopped beating end FAIL, and the
    storage's stale-trial callback runs: with --retry-failed, Optuna's RetryFailedTrialCallback
    asks for them again), returning the trials it failed, so that their runs can be ended too."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
    from optuna.trial import TrialState

    storage = storage_behind(optuna_study)
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    failed = []
    for trial_id in storage._get_stale_trial_ids(optuna_study._study_id):
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(copy.deepcopy(storage.get_trial(trial_id)))
        except UpdateFinishedTrialError:  # another sweep failed it first
            pass
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial in failed:
        if callback is not None:
            callback(optuna_study, trial)
    return failed


def close_storage(spec: StorageSpec) -> None:
    """Write what the storage still queues (MlflowStorage batches) and forget it."""
    storage = _storages.pop(spec, None)
    if (flush := getattr(storage, "flush_all_batches", None)) is not None:
        try:
            flush()
        except Exception as exc:
            click.echo(f"warning: could not write to the study's storage: {_first_line(exc)}", err=True)


def open_storage(storage: str, study_name: str, tmpdir: str) -> StorageSpec:
    """``--storage`` opened: '' (a journal in ``tmpdir``), ``mlflow`` (the study made there if it is
    not) or an RDB URL. A storage that cannot be opened is a usage error, before any run starts."""
    if not storage:
        spec = StorageSpec("memory", os.path.join(tmpdir, "study.journal"))
    elif storage == "mlflow":
        try:
            return _open_mlflow(study_name)[0]
        except click.ClickException:
            raise
        except Exception as exc:
            raise click.BadParameter(f"mlflow: {_first_line(exc)}", param_hint="'--storage'") from None
    else:
        spec = StorageSpec("rdb", storage)
    try:
        storage_of(spec)
    except Exception as exc:
        shown = spec.shown() if spec.kind != "rdb" else _shown_url(storage)
        raise click.BadParameter(f"cannot open {shown}: {_first_line(exc)}", param_hint="'--storage'") from None
    return spec


def _shown_url(url: str) -> str:
    try:
        return StorageSpec("rdb", url).shown()
    except Exception:
        return "the storage URL"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def load_study(spec: StorageSpec, study_name: str, *, sampler=None, pruner=None):
    """The study (created if there is none of that name in the storage), minimizing."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "Using an existing study ..." a trial
    storage = storage_of(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.kind == "mlflow":  # created (once) by _open_mlflow: MlflowStorage cannot refuse a duplicate
            return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        return optuna.create_study(
            study_name=study_name, storage=storage, sampler=sampler, pruner=pruner, load_if_exists=True
        )


def check_settings(study, settings: dict) -> None:
    """Keep ``settings`` in a new study; refuse a study made with other settings (a usage error)."""
    from optuna.study import StudyDirection

    if study.direction != StudyDirection.MINIMIZE:
        raise click.BadParameter(
            f"study {study.study_name!r} maximizes; a sweep minimizes", param_hint="'--study-name'"
        )
    kept = study.user_attrs.get(STUDY_ATTR)
    if kept is None:
        study.set_user_attr(STUDY_ATTR, settings)
        return
    differ = _differences(kept, settings)
    if differ:
        shown = ", ".join(f"{k} ({there!r} there, {here!r} here)" for k, there, here in differ[:5])
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        raise click.BadParameter(
            f"study {study.study_name!r} was made by a sweep with other settings: {shown}{more}; a trial's value "
            "would not mean the same. Use the same settings, or another --study-name",
            param_hint="'--study-name'",
        )


def _differences(kept: dict, settings: dict) -> list[tuple[str, object, object]]:
    """``(name, kept value, new value)`` of each setting that differs, in the settings' order
    (technique first); a nested table (the training options) by its own entries, not whole."""
    found = []
    for k in dict.fromkeys([*settings, *kept]):
        there, here = kept.get(k), settings.get(k)
        if isinstance(there, dict) and isinstance(here, dict):
            found += _differences(there, here)
        elif there != here:
            found.append((k, there, here))
    return found


def settings_json(settings: dict) -> dict:
    """``settings`` as the study keeps them (JSON: what a storage gives back)."""
    return json.loads(json.dumps(settings, default=str))


# --------------------------------------------------------------------------- the worker's side


class Reporter:
    """A trial's ``on_epoch`` hook in the worker: report the epoch's value, ask the pruner.

    The pruner judges the trial against the study's trials that were complete when it started,
    read once into an in-memory copy: a check then costs no request per epoch, even with the
    study on a tracking server (where reading the study takes a request a trial, or several).
    Run one at a time (``--max-parallel 1``), every trial sees all the trials before it.
    """

    def __init__(self, ref: TrialRef):
        import optuna
        from optuna.trial import TrialState

        self.ref, self.pruned = ref, None
        self.storage = storage_of(ref.storage)
        study = load_study(ref.storage, ref.study_name, sampler=optuna.samplers.RandomSampler())
        self.judged = optuna.create_study(direction="minimize", pruner=ref.pruner)  # in memory
        self.judged.add_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        self.trial = copy.deepcopy(self.storage.get_trial(ref.trial_id))  # (a storage may hand out its own)

    def __call__(self, epoch: int, metrics: dict) -> None:
        value = float(metrics[self.ref.metric])
        self.storage.set_trial_intermediate_value(self.ref.trial_id, epoch, value)
        self.trial.intermediate_values[epoch] = value
        if self.ref.pruner.prune(self.judged, self.trial):
            self.pruned = epoch
            raise Pruned(epoch)

    def close(self) -> None:
        """Write what is still queued (MlflowStorage batches its writes); a failure is a warning."""
        flush = getattr(self.storage, "flush_all_batches", None)
        if flush is None:
            return
        try:
            flush()
        except Exception as exc:
            click.echo(f"warning: could not write trial {self.ref.trial_id}'s reports: {_first_line(exc)}", err=True)
