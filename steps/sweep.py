"""`sweep`: one technique over learning rates (lambdas, optimizers), as nested parallel runs.

``--search grid`` (the default) walks the grid, modelled on MLflow's examples/hyperparam
(nested child runs, a parent that knows the best), with these differences: the children
train in the workflow's own worker processes (:mod:`steps.flow.workers`; ``--launcher mlflow``
for MLflow's own launch, on any backend), at most ``--max-parallel`` at a time; every
declared parameter is used; a failed child is reported without sinking the sweep; the best
child is tagged, and `compare` runs over the grid.

``--search random|tpe`` asks an Optuna study for ``--n-trials`` trials instead (ranges
``LOW:HIGH`` are log-uniform, lists categorical), each a child run in the same workers; with
``--prune true`` a median pruner stops hopeless trials early; with ``--storage`` and
``--study-name`` many sweeps, on many machines, add their trials to one study
(:mod:`steps.flow.search`, :mod:`steps.flow.study`).
"""

from __future__ import annotations

import re
import sys

import click

from core import optimizers
from steps.cli.options import COMMON, NON_NEGATIVE, POSITIVE, FiniteFloat, NameList, apply, as_param, command
from steps.cli.workflow import Workflow, workflow_options
from steps.flow.launch import workflow
from steps.flow.search import METHODS, PENALIZED, PRUNER_STARTUP_TRIALS, Range, Search, Space, child_of, label_of, shown
from steps.run.runner import load_checked

TECHNIQUES = ("sgd", "adam", "l1", "l2")
N_TRIALS = 20


class Values(click.ParamType):
    """Comma-separated numbers, each checked by ``item`` (a Click float type), or a log-uniform
    range ``LOW:HIGH`` (0 < LOW < HIGH) for --search random and tpe."""

    name = "list|range"

    def __init__(self, item: click.ParamType):
        self.item = item

    def _number(self, part: str, param, ctx) -> float:
        try:
            return self.item.convert(part, param, ctx)
        except click.BadParameter as exc:
            self.fail(f"{part!r}: {exc.message}", param, ctx)

    def convert(self, value, param, ctx):
        if isinstance(value, (tuple, Range)):
            return value
        text = str(value)
        if ":" in text:
            low, _, high = (p.strip() for p in text.partition(":"))
            low, high = self._number(low, param, ctx), self._number(high, param, ctx)
            if not 0 < low < high:
                self.fail(f"{text!r}: a range LOW:HIGH needs 0 < LOW < HIGH (it is log-uniform)", param, ctx)
            return Range(low, high)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            self.fail("give at least one number, e.g. 0.001,0.01,0.1, or a range such as 1e-4:1e-1", param, ctx)
        return tuple(dict.fromkeys(self._number(p, param, ctx) for p in parts))


class StudyName(click.ParamType):
    """A study's name: letters, digits, '.', '_' and '-' (it names an MLflow experiment and is
    matched in search filters)."""

    name = "name"

    def convert(self, value, param, ctx):
        value = str(value).strip()
        if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value):
            self.fail(f"{value!r}: use up to 100 letters, digits, '.', '_' and '-'", param, ctx)
        return value


SEARCH_HELP = (
    "grid: every combination of the lists; random or tpe: an Optuna study (RandomSampler or TPESampler, "
    "seeded by --seed) asked for --n-trials trials, each a child run; lists are categorical choices, "
    "ranges LOW:HIGH log-uniform."
)
VALUES_HELP = "Comma-separated {what} to try, or (random, tpe) a log-uniform range LOW:HIGH, e.g. {example}."
STORAGE_HELP = (
    "random/tpe: where the study is kept, so that sweeps on several machines (or several on one) share it: "
    "'mlflow' (in the current tracking server, MLflow's MlflowStorage: experiment <experiment>.optuna.<study "
    "name>) or a database URL (sqlite:///study.db, postgresql://...). '' = in memory, for this sweep only."
)


def search_options(f):
    """The options of --search random and tpe (and --search itself)."""
    for decorator in reversed(
        [
            click.option("--search", type=click.Choice(METHODS), default="grid", show_default=True, help=SEARCH_HELP),
            click.option(
                "--optimizers",
                type=NameList(optimizers.OPTIMIZERS, "an optimizer", ", ".join(optimizers.OPTIMIZERS), empty=True),
                default="",
                help="Comma-separated optimizers to choose from (a grid axis, or a categorical choice), each as "
                "`train --optimizer NAME` with torch's defaults and the technique's penalty (none for sgd, adam); "
                "'' = the technique's own optimizer.",
            ),
            click.option(
                "--n-trials",
                type=click.IntRange(1),
                default=N_TRIALS,
                show_default=True,
                help="random/tpe: trials this sweep runs (with --storage, added to the study's); with --max-trials "
                "and this left at its default, --max-trials.",
            ),
            click.option(
                "--max-trials",
                type=click.IntRange(0),
                default=0,
                show_default=True,
                help="random/tpe: the study's total of finished trials (complete or pruned), across every sweep "
                "sharing it (--storage): no sweep starts a trial once the study has this many finished or "
                "running, so K sweeps started together end with exactly this many; 0 = no total.",
            ),
            click.option(
                "--retry-failed",
                type=click.BOOL,
                default=False,
                show_default=True,
                help="random/tpe with a database --storage: a trial whose sweep died (its heartbeat stopped) is "
                "failed by another sweep of the study and run again once, with the same values.",
            ),
            click.option(
                "--timeout",
                type=FiniteFloat(0.0),
                default=0.0,
                show_default=True,
                help="random/tpe: seconds after which no new trial starts (those running finish); 0 = none.",
            ),
            click.option(
                "--prune",
                type=click.BOOL,
                default=False,
                show_default=True,
                help="random/tpe: each trial reports its val_loss (objective without a split) every logged epoch "
                "and a median pruner stops one worse than the median of the complete trials at that epoch "
                f"(after {PRUNER_STARTUP_TRIALS} complete trials and in no trial's first tenth of the epochs); it "
                "ends FINISHED, tagged pruned, with the history logged so far.",
            ),
            click.option(
                "--study-name",
                type=StudyName(),
                default="",
                help="random/tpe: the study's name; with --storage, sweeps giving the same name share one study.",
            ),
            click.option("--storage", default="", help=STORAGE_HELP),
        ]
    ):
        f = decorator(f)
    return f


@command(
    examples=(
        "python -m steps.sweep --technique sgd --learning-rates 0.001,0.01,0.1",
        "python -m steps.sweep --technique l2 --learning-rates 0.01,0.1 --lambdas 0.001,0.01,0.1",
        "python -m steps.sweep --search tpe --learning-rates 1e-4:1 --n-trials 30 --prune true",
        "python -m steps.sweep --optimizers sgd,adam,rmsprop --learning-rates 0.001,0.01,0.1",
    )
)
@click.option(
    "--technique",
    type=click.Choice(("", *TECHNIQUES)),
    default="",
    show_default=True,
    help="The entry point every child runs; with --optimizers it only says the penalty (l1 or l2; sgd or adam: "
    "none). '' = l1, or with --optimizers none.",
)
@click.option(
    "--learning-rates",
    type=Values(POSITIVE),
    default="0.001,0.01,0.1",
    show_default=True,
    help=VALUES_HELP.format(what="learning rates (each > 0)", example="1e-4:1e-1"),
)
@click.option(
    "--lambdas",
    type=Values(NON_NEGATIVE),
    default="0.001,0.01,0.1",
    show_default=True,
    help=VALUES_HELP.format(what="penalty strengths (each >= 0)", example="1e-4:1")
    + " Used by l1 and l2, ignored otherwise.",
)
@search_options
@apply([o for o in COMMON if o != "learning-rate"])
@workflow_options
def sweep(technique, learning_rates, lambdas, optimizers, flow: Workflow, **shared):
    """Run one technique over learning rates x lambdas (x --optimizers) as nested child runs, in
    parallel: a grid, or an Optuna search (--search random|tpe, --prune, a shared --storage); tag the
    sweep run with the best child (`best_run_id`), then compare the children."""
    names = ("search", "n_trials", "max_trials", "retry_failed", "timeout", "prune", "study_name", "storage")
    options = {k: shared.pop(k) for k in names}
    technique = technique or ("sgd" if optimizers else "l1")  # --optimizers alone: no penalty
    space = Space(technique, learning_rates, lambdas if technique in PENALIZED else None, optimizers)
    search = _checked_search(space, flow, **options, seed=shared["seed"])
    params = {"technique": technique, "search": options["search"], "learning_rates": shown(learning_rates)}
    params["lambdas"] = shown(lambdas)
    if optimizers:
        params["optimizers"] = ",".join(optimizers)
    params.update({**shared, **flow.params})
    if search is None:
        planned = [child_of(space, values, shared, label_of(space, values)) for values in space.grid()]
    else:
        planned = [child_of(space, values, shared, label_of(space, values)) for values in space.corners()]
        params.update(_search_params(search))
    data = load_checked(planned[0].config)  # every child's options checked first; one dataset for all

    def failure_of(outcomes, compare_ok):
        if outcomes and not any(o.ok for o in outcomes.values()):  # (none: the study had its --max-trials)
            return "every child failed"
        return None if compare_ok else "failed: compare"

    name = f"sweep {','.join(optimizers) if optimizers and technique in ('sgd', 'adam') else technique}"
    if search is None:
        outcomes, reason = _workflow(planned, params, data, flow, failure_of, name)
    else:
        outcomes, reason = _search_workflow(search, space, shared, planned, params, data, flow, failure_of, name)
    failed = [label for label, o in outcomes.items() if not o.ok]
    if failed:
        click.echo(f"warning: {len(failed)} of {len(outcomes)} children failed: {', '.join(failed)}", err=True)
    if reason:
        click.echo(f"Error: {reason}", err=True)
        sys.exit(1)


def _workflow(children, params, data, flow, failure_of, name, **search):
    return workflow("sweep", children, params, data=data, flow=flow, failure_of=failure_of, name=name, **search)


def _checked_search(
    space: Space,
    flow: Workflow,
    *,
    search,
    n_trials,
    max_trials,
    retry_failed,
    timeout,
    prune,
    study_name,
    storage,
    seed,
):
    """The --search options, checked together: None for a grid. Options of the other kind are
    usage errors (unless left at their defaults, as `mlflow run` passes every parameter)."""
    if search == "grid":
        for flag, values in (("--learning-rates", space.learning_rates), ("--lambdas", space.lambdas)):
            if isinstance(values, Range):
                raise click.BadParameter(
                    f"{values} is a range: ranges need --search random or tpe", param_hint=f"'{flag}'"
                )
        given = {"--n-trials": n_trials != N_TRIALS, "--timeout": timeout != 0, "--prune": prune}
        given.update({"--max-trials": max_trials != 0, "--retry-failed": retry_failed})
        given.update({"--study-name": bool(study_name), "--storage": bool(storage)})
        if wrong := [flag for flag, set_ in given.items() if set_]:
            verb = "needs" if len(wrong) == 1 else "need"
            raise click.UsageError(f"{', '.join(wrong)} {verb} --search random or tpe (this sweep walks a grid)")
        return None
    if flow.launch.launcher != "local":
        raise click.UsageError(f"--search {search} trains its trials in this sweep's workers: use --launcher local")
    if flow.reuse:
        raise click.UsageError(f"--reuse applies to --search grid (the trials of --search {search} are new values)")
    if storage and not study_name:
        raise click.UsageError("--storage needs --study-name: the name every sweep sharing the study gives")
    if storage.split("?")[0] in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        raise click.BadParameter(
            f"{storage!r} is a database in memory: every worker would see its own empty study. Give a file "
            "(sqlite:///study.db) or a server",
            param_hint="'--storage'",
        )
    if storage not in ("", "mlflow") and "://" not in storage:
        raise click.BadParameter(
            f"{storage!r}: give mlflow or a database URL such as sqlite:///study.db", param_hint="'--storage'"
        )
    if retry_failed and "://" not in storage:
        raise click.UsageError(
            "--retry-failed needs a database --storage (sqlite:///study.db, postgresql://...): the study's "
            "heartbeat, by which a sweep that died is seen, is kept there"
        )
    if max_trials and n_trials == N_TRIALS:
        n_trials = max_trials  # the study's total decides, not this process's default
    name = study_name or f"sweep-{space.technique}"
    return Search(search, n_trials, timeout, prune, name, storage, seed, max_trials, retry_failed)


def _search_params(search: Search) -> dict:
    from steps.flow.study import StorageSpec

    shown_storage = StorageSpec("rdb", search.storage).shown() if "://" in search.storage else search.storage
    return {
        "n_trials": search.n_trials,
        "max_trials": search.max_trials,
        "retry_failed": search.retry_failed,
        "timeout": search.timeout,
        "prune": search.prune,
        "study_name": search.study_name,
        "storage": shown_storage,
    }


def _search_workflow(search: Search, space: Space, shared, planned, params, data, flow, failure_of, name):
    """Open the study (a bad storage, or a study made by other settings, is a usage error before
    any run starts), then run the search as the sweep's children."""
    import functools
    import os
    import tempfile

    import optuna

    from steps.flow.launch import best_metric
    from steps.flow.search import run_search
    from steps.flow.study import check_settings, close_storage, load_study, open_storage, settings_json
    from steps.run import fingerprint

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = {"technique": space.technique, **space.described(), "metric": best_metric(data)}
    settings["data_sha"] = fingerprint.data_sha(data)
    settings["options"] = {k: as_param(v) for k, v in sorted(shared.items()) if k != "dataset"}
    with tempfile.TemporaryDirectory(prefix=f"gdlab-study-{os.getpid()}-") as tmp:
        spec = open_storage(search.storage, search.study_name, tmp)
        try:
            try:
                study = load_study(spec, search.study_name)
            except Exception as exc:
                message = f"cannot open study {search.study_name!r}: {exc}"
                raise click.BadParameter(message, param_hint="'--storage'") from None
            check_settings(study, settings_json(settings))
            epochs = planned[0].config.epochs
            run = functools.partial(
                run_search, search=search, space=space, shared=shared, data=data, study=study, spec=spec, epochs=epochs
            )
            return _workflow([], params, data, flow, failure_of, name, search=run, slots=search.n_trials)
        finally:
            close_storage(spec)


if __name__ == "__main__":
    sweep()
