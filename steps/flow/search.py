"""What `sweep` searches, and `--search random|tpe`: an Optuna study whose trials are child runs.

The space (:class:`Space`) is the learning rate, the penalty strength (l1, l2) and, with
``--optimizers``, the optimizer: each a list of values (a grid axis, or a categorical choice)
or, for random and tpe, a log-uniform range ``LOW:HIGH``.

A search runs Optuna's ask-and-tell loop in the workflow's process, over its worker
processes (:mod:`steps.flow.workers`): when a worker is free, the study is asked for a trial, the
trial's child run is created (nested under the sweep's run, named for its values, tagged
``optuna.study`` and ``optuna.trial``; the study keeps its run id as the trial's user
attribute ``gdlab.run_id``) and handed to the worker; when the child ends, the study is told
its value (the child's ``final_val_loss`` with a validation split, else ``final_objective``),
that it was pruned, or that it failed. With ``--prune true`` the worker reports each logged
epoch (``val_loss``, else ``objective``) to the study itself and a median pruner may stop it
(:class:`steps.flow.study.Reporter`). No trial is left RUNNING in the study: a stopped sweep
tells its unfinished trials FAIL.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass, field

import click

from steps.flow.launch import Child, Outcome, Ran, close_run, make_child, progress, runs_by_id, source_tags
from steps.report.report_files import EXTRA_FILES
from steps.run.lifecycle import claim
from steps.run.signals import SIGNALS

PENALIZED = ("l1", "l2")
METHODS = ("grid", "random", "tpe")
# The median pruner: the first trials run in full, and none is pruned in its first tenth of the epochs.
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_SHARE = 0.1
FIGURES = EXTRA_FILES  # optimization_history.png, param_importances.png, study.json (steps.report.report_files)


@dataclass(frozen=True)
class Range:
    """A log-uniform range of values, ``LOW:HIGH`` (0 < LOW < HIGH)."""

    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low!r}:{self.high!r}"


def shown(values) -> str:
    """A list or range as the option takes it."""
    return str(values) if isinstance(values, Range) else ",".join(map(repr, values))


@dataclass(frozen=True)
class Space:
    """What a sweep varies: learning rates, lambdas (l1, l2 only: else None), optimizers (() = the
    technique's own). Values are keyed by their option names: learning_rate, lambda, optimizer."""

    technique: str
    learning_rates: tuple | Range
    lambdas: tuple | Range | None = None
    optimizers: tuple[str, ...] = ()

    def axes(self) -> dict:
        axes = {"learning_rate": self.learning_rates}
        if self.lambdas is not None:
            axes["lambda"] = self.lambdas
        if self.optimizers:
            axes["optimizer"] = self.optimizers
        return axes

    def grid(self) -> list[dict]:
        """Every combination (lists only), optimizer first, then learning rate, then lambda."""
        out = [{}]
        for name in ("optimizer", "learning_rate", "lambda"):
            if (values := self.axes().get(name)) is not None:
                out = [{**point, name: v} for point in out for v in values]
        return out

    def corners(self) -> list[dict]:
        """Each optimizer with the ends of each axis: the configs to check before anything starts."""
        ends = {k: (v.low, v.high) if isinstance(v, Range) else (min(v), max(v)) for k, v in self.axes().items()}
        ends["optimizer"] = self.optimizers or (None,)
        points = [{}]
        for name, values in ends.items():
            points = [{**p, name: v} for p in points for v in dict.fromkeys(values)]
        return [{k: v for k, v in p.items() if v is not None} for p in points]

    def suggest(self, trial) -> dict:
        """The trial's values: a range log-uniform, a list of several a categorical choice."""
        out = {}
        for name, values in self.axes().items():
            if isinstance(values, Range):
                out[name] = trial.suggest_float(name, values.low, values.high, log=True)
            else:
                out[name] = values[0] if len(values) == 1 else trial.suggest_categorical(name, list(values))
        return out

    def described(self) -> dict:
        return {k: shown(v) for k, v in self.axes().items()}


def label_of(space: Space, values: dict, number: int | None = None) -> str:
    """A child's name: what it trains and its values (`l1 lr=0.1 lambda=0.01`; a trial's values to
    4 digits, and its number: `adam+l2 lr=0.00316 lambda=0.0123 (trial 7)`)."""
    fmt = repr if number is None else (lambda v: f"{v:.4g}")
    what = space.technique
    if space.optimizers:
        what = values["optimizer"] + (f"+{space.technique}" if space.technique in PENALIZED else "")
    label = f"{what} lr={fmt(values['learning_rate'])}"
    if "lambda" in values:
        label += f" lambda={fmt(values['lambda'])}"
    return label if number is None else f"{label} (trial {number})"


def child_of(space: Space, values: dict, shared: dict, label: str) -> Child:
    """The child that trains ``values``: the technique's entry point, or with ``--optimizers``
    `train --optimizer NAME` with the technique's penalty (none for sgd and adam)."""
    extra = {"learning_rate": values["learning_rate"]}
    if "lambda" in values:
        extra["lam"] = values["lambda"]
    if not space.optimizers:
        return make_child(label, space.technique, shared, **extra)
    penalty = space.technique if space.technique in PENALIZED else "none"
    return make_child(label, "train", shared, optimizer=values["optimizer"], penalty=penalty, **extra)


# --------------------------------------------------------------------------- random and tpe


@dataclass(frozen=True)
class Search:
    """How a random or tpe search runs (the sweep's --search options, checked)."""

    method: str
    n_trials: int
    timeout: float  # seconds; 0 = none
    prune: bool
    study_name: str
    storage: str  # '' (in memory), 'mlflow' or an RDB URL
    seed: int
    max_trials: int = 0  # the study's total of finished trials, across every sweep sharing it; 0 = none
    retry_failed: bool = False  # a trial whose sweep died is run again once, with the same values

    def sampler(self, run_id: str):
        """Seeded by --seed: reproducible in memory; with a storage, by --seed and the sweep's run
        id too, so that sweeps adding trials to one study do not all draw the same values."""
        import optuna

        seed = self.seed
        if self.storage:
            seed = int(hashlib.sha256(f"{self.seed}:{run_id}".encode()).hexdigest()[:8], 16)
        if self.method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        with warnings.catch_warnings():  # constant_liar is "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    def pruner(self, epochs: int):
        import optuna

        if not self.prune:
            return optuna.pruners.NopPruner()
        warmup = int(epochs * PRUNER_WARMUP_SHARE)
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=warmup)


@dataclass
class _Trials:
    """The ask-and-tell loop's state: the trials in flight (by run id) and this sweep's outcomes."""

    parent: object
    study: object
    spec: object  # steps.flow.study.StorageSpec
    space: Space
    search: Search
    shared: dict
    metric: str  # the final metric told to the study
    epoch_metric: str  # the per-epoch metric reported for pruning
    pruner: object
    flying: dict = field(default_factory=dict)  # run id -> (trial, label)
    outcomes: dict = field(default_factory=dict)  # label -> Outcome
    pruned: dict = field(default_factory=dict)  # label -> epoch

    def slots(self):
        """The trials to start, asked of the study one at a time as a worker frees up: --n-trials of
        them, none once --timeout has passed or the study has its --max-trials."""
        start = time.monotonic()
        for i in range(self.search.n_trials):
            if self.search.timeout and time.monotonic() - start >= self.search.timeout:
                click.echo(
                    f"--timeout {self.search.timeout:g} s has passed: no new trial starts "
                    f"({i} of --n-trials {self.search.n_trials} started)",
                    err=True,
                )
                return
            trial = self.ask()
            if trial is None:
                click.echo(
                    f"the study has its --max-trials {self.search.max_trials} (finished or running, every sweep "
                    f"sharing it): no new trial starts ({i} started here)",
                    err=True,
                )
                return
            yield trial

    def ask(self):
        """The next trial, or None once the study has --max-trials finished or running ones.

        Counted before asking, and again after: two sweeps that both saw N-1 both ask, and the one
        whose trial has the higher number (numbers are given out in order by the storage) tells its
        trial FAIL (user attribute ``gdlab.over_budget``) and starts nothing, so the study ends with
        exactly N finished trials. A trial of a sweep that died is failed first (the study's
        heartbeat), and with --retry-failed asked again, with its values, by a sweep still running."""
        from optuna.trial import TrialState

        from steps.flow.study import fail_stale_trials, storage_behind

        record = getattr(storage_behind(self.study), "record_heartbeat", None)
        if record is not None:  # this sweep's own trials are alive, whatever the heartbeat thread managed
            for trial, _ in self.flying.values():
                record(trial._trial_id)
        for stale in fail_stale_trials(self.study):  # a trial of a sweep that is gone: end its run too
            if run_id := stale.user_attrs.get("gdlab.run_id"):
                reason = f"its sweep stopped beating (trial {stale.number} failed by the study's heartbeat)"
                close_run(self.parent.client, run_id, "FAILED", reason)
        limit = self.search.max_trials
        taken = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        counted = (*taken, TrialState.WAITING)  # (a waiting trial, e.g. a retry, is the next one asked)
        if limit and len(self.study.get_trials(deepcopy=False, states=taken)) >= limit:
            return None
        with warnings.catch_warnings():  # gdlab beats for its own trials (run_search)
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            trial = self.study.ask()
        if (beat := getattr(storage_behind(self.study), "record_heartbeat", None)) is not None:
            beat(trial._trial_id)  # (a trial without one is never seen as stale)
        if limit:
            ahead = [t for t in self.study.get_trials(deepcopy=False, states=counted) if t.number <= trial.number]
            if len(ahead) > limit:
                trial.set_user_attr("gdlab.over_budget", True)
                self.tell(trial, None, "FAIL")
                return None
        return trial

    def make_task(self, trial, base: dict, where: tuple):
        """Create the trial's child run (called with signals held)."""
        from steps.flow.study import TrialRef
        from steps.flow.workers import Task

        run_id = None
        try:
            values = self.space.suggest(trial)
            child = child_of(self.space, values, self.shared, label_of(self.space, values, trial.number))
            tags = {**base, **child.tags, **claim()}  # the sweep holds the run until its worker takes it
            tags.update({"optuna.study": self.study.study_name, "optuna.trial": str(trial.number)})
            run = self.parent.client.create_run(self.parent.experiment_id, run_name=child.label, tags=tags)
            run_id = run.info.run_id
            trial.set_user_attr("gdlab.run_id", run_id)
            trial.set_user_attr("gdlab.label", child.label)
        except BaseException as exc:  # nothing is left RUNNING: neither the trial nor its run
            if run_id is not None:
                close_run(self.parent.client, run_id, "FAILED", f"its trial could not be set up: {exc}")
            self.tell(trial, None, "FAIL")
            raise
        self.flying[run_id] = (trial, child.label)
        ref = None
        if self.search.prune:  # (Optuna's Trial has no public id; a worker needs it to reopen the trial)
            ref = TrialRef(self.spec, self.study.study_name, trial._trial_id, self.epoch_metric, self.pruner)
        return Task(child.label, child.entry_point, child.config, run_id, *where, trial=ref)

    def tell(self, trial, value: float | None, state: str | None = None) -> None:
        """Tell the study how ``trial`` ended; a store error is a warning (the sweep goes on)."""
        from optuna.trial import TrialState

        from steps.flow.study import quiet_urls

        try:
            with SIGNALS.held(), quiet_urls():
                if state is None:
                    self.study.tell(trial, value)
                else:
                    self.study.tell(trial, state=TrialState[state])
        except Exception as exc:
            click.echo(f"warning: could not tell the study how trial {trial._trial_id} ended: {exc}", err=True)

    def finish(self, done) -> None:
        """A child ended: close its run if its worker could not, tell the study, say so."""
        trial, label = self.flying.pop(done.run_id)
        client = self.parent.client
        what = f"{done.status}: {done.reason}"
        if done.status != "FINISHED":
            close_run(client, done.run_id, done.status, done.reason)
            self.tell(trial, None, "FAIL")
        elif done.pruned is not None:
            self.tell(trial, None, "PRUNED")
            self.pruned[label] = done.pruned
            what = f"pruned at epoch {done.pruned}"
        else:
            value = client.get_run(done.run_id).data.metrics.get(self.metric)
            ok = value is not None and math.isfinite(value)
            self.tell(trial, value if ok else None, None if ok else "FAIL")
            what = f"finished, {self.metric} = {value:.6g}" if ok else f"finished without a finite {self.metric}"
        label = self._renamed(trial, label, done.run_id)
        self.outcomes[label] = Outcome(done.run_id, done.status == "FINISHED")
        progress(len(self.outcomes), self.search.n_trials, label, done.run_id, what)

    def _renamed(self, trial, label: str, run_id: str) -> str:
        """The child's name with the trial's number as the study has it now: an mlflow-stored study
        corrects a number two trials shared when the trial ends (SharedMlflowStorage)."""
        from steps.flow.study import storage_behind

        if self.spec.kind != "mlflow":
            return label
        try:
            number = storage_behind(self.study).get_trial_number_from_id(trial._trial_id)
        except Exception:  # only a name
            return label
        old = f"(trial {trial.number})"
        if number == trial.number or not label.endswith(old):
            return label
        label = f"{label[: -len(old)]}(trial {number})"
        with SIGNALS.held():
            self.parent.client.update_run(run_id, name=label)
            self.parent.client.set_tag(run_id, "optuna.trial", str(number))
        return label

    def abandon(self) -> None:
        """The sweep is stopping: the trials still in flight end FAIL in the study."""
        for trial, _label in self.flying.values():
            self.tell(trial, None, "FAIL")
        self.flying.clear()


def run_search(parent, pool, *, search: Search, space: Space, shared: dict, data, study, spec, epochs: int) -> Ran:
    """The search under the sweep's run ``parent``: trials as child runs in ``pool``'s workers;
    then what the whole study has so far (every worker's trials) for the best and the compare."""
    import os

    import mlflow

    from steps.flow.launch import best_metric
    from steps.flow.study import storage_behind
    from steps.run.heartbeat import HEARTBEAT

    study.sampler = search.sampler(parent.id)
    storage = storage_behind(study)
    backend = getattr(storage, "_backend", storage)  # (Optuna wraps an RDBStorage in a cache)
    if search.retry_failed and hasattr(backend, "heartbeat_stale_trial_callback"):
        import optuna

        backend.heartbeat_stale_trial_callback = optuna.storages.RetryFailedTrialCallback(max_retry=1)
    epoch_metric = "val_loss" if data.X_val is not None else "objective"
    trials = _Trials(parent, study, spec, space, search, shared, best_metric(data), epoch_metric, search.pruner(epochs))
    parent.set_tags({"optuna.study": study.study_name, "optuna.storage": spec.shown()})
    base = {**source_tags(parent.client.get_run(parent.id).data.tags), "mlflow.parentRunId": parent.id}
    where = (mlflow.get_tracking_uri(), dict(os.environ), os.getcwd())

    def started(task) -> None:
        click.echo(f"{task.label}: started run {task.run_id}", err=True)

    if (record := getattr(storage, "record_heartbeat", None)) is not None:  # the study's heartbeat (RDB)
        HEARTBEAT.add(("trials", parent.id), lambda: [record(t._trial_id) for t, _ in list(trials.flying.values())])
    try:
        for done in pool.run(trials.slots(), lambda trial: trials.make_task(trial, base, where), started):
            trials.finish(done)
    except BaseException:
        with SIGNALS.closing():  # a second Ctrl-C must not cut the closing short
            for task in pool.stop():
                close_run(parent.client, task.run_id, "KILLED", "the workflow was stopped")
            trials.abandon()
        raise
    finally:
        HEARTBEAT.remove(("trials", parent.id))
    return _study_so_far(parent, trials)


def _runs_here(parent, run_ids: list[str]) -> set[str]:
    """Which of ``run_ids`` are runs of the parent's experiment (a study may hold trials that other
    sweeps ran in another experiment, or against another tracking server)."""
    return set(runs_by_id(parent.client, parent.experiment_id, run_ids))


def _study_so_far(parent, trials: _Trials) -> Ran:
    """This sweep's outcomes; the best chosen from, and compare run over, every finished trial of
    the study (other workers' too); the study's pictures, logged to ``parent`` as well."""
    from optuna.trial import TrialState

    finished = [t for t in trials.study.get_trials(deepcopy=False) if t.state.is_finished()]
    by_run = {t.user_attrs["gdlab.run_id"]: t for t in finished if "gdlab.run_id" in t.user_attrs}
    own = [o.run_id for o in trials.outcomes.values()]
    others = [r for r in by_run if r not in own]
    here = _runs_here(parent, others)
    if len(others) > len(here):
        click.echo(f"note: {len(others) - len(here)} trials of the study ran in another experiment", err=True)
    scored = {label: o for label, o in trials.outcomes.items() if not o.ok}
    for run_id, t in by_run.items():
        if t.state == TrialState.COMPLETE and (run_id in here or run_id in own):
            label = t.user_attrs.get("gdlab.label", run_id)
            scored[label if label not in scored else f"{label} [{run_id[:8]}]"] = Outcome(run_id, True)
    counts = {"trials": len(trials.outcomes), "trials_pruned": len(trials.pruned)}
    counts["trials_failed"] = sum(not o.ok for o in trials.outcomes.values())
    counts["study_trials"] = len(finished)
    parent.log_metrics(counts)
    images = study_figures(finished)
    _log_images(parent, images)
    return Ran(trials.outcomes, scored, own + sorted(here), images)


def _log_images(parent, images: dict[str, bytes]) -> None:
    import tempfile
    from pathlib import Path

    import mlflow

    from steps.run.tracking import upload

    with tempfile.TemporaryDirectory() as tmp, parent.held():
        for name, data in images.items():
            (Path(tmp) / name).write_bytes(data)
            upload(lambda p=Path(tmp) / name: mlflow.log_artifact(str(p)), name)


def optimization_history(study):
    """Optuna's optimization history, on a log axis when the values span more than two decades:
    one diverging 1.34 among trials near 0.01 flattened them all on Optuna's linear one."""
    import optuna
    from optuna.visualization import matplotlib as vis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = vis.plot_optimization_history(study)
    values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if values and min(values) > 0 and max(values) > 100 * min(values):
        ax.set_yscale("log")
        ax.set_ylabel("Objective Value (log scale)")
    return ax


def study_figures(trials: list) -> dict[str, bytes]:
    """Optuna's optimization history and parameter importances (its matplotlib pictures; the
    importances by PED-ANOVA, which needs no scikit-learn) of the study's finished ``trials``,
    drawn from an in-memory copy of them in the order of their numbers. A picture that cannot be
    drawn (importances need two complete trials) is left out, with a note."""
    import optuna
    from optuna.visualization import matplotlib as vis

    from steps.report.interactive import study_json
    from steps.report.report_files import drawn

    snapshot = optuna.create_study(direction="minimize")
    snapshot.add_trials(sorted(trials, key=lambda t: (t.number, t.datetime_start)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()

    def sized(plot):
        fig = plot(snapshot).figure
        fig.set_size_inches(8, 4.5)
        return fig

    draw = {
        FIGURES[0]: lambda: sized(optimization_history),
        FIGURES[1]: lambda: sized(lambda study: vis.plot_param_importances(study, evaluator=evaluator)),
    }
    images = drawn(draw, dpi=100)
    try:  # (importances need two complete trials, and values that differ)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(snapshot, evaluator=evaluator)
    except (ValueError, RuntimeError):
        importances = {}
    images[FIGURES[2]] = study_json(snapshot.trials, importances)  # the report draws both live from it
    return images
