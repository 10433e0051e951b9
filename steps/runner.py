"""Run one training configuration as an MLflow run (shared by every training entry point).

Order matters for "nothing lost": everything the user can get wrong (options,
data) is checked *before* a run starts; once it has started, metrics are
buffered and flushed at the end, on divergence and on Ctrl-C / SIGTERM, and the
run ends FINISHED, FAILED or KILLED, never left RUNNING.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click

from core.config import OPTIMIZER_OPTIONS, TrainConfig
from core.data import DataError, Dataset
from core.training import DivergenceError, TrainResult, build, fit, load_data

from . import fingerprint
from .lifecycle import RunFailed, exit_on_end, tracked_run
from .options import OPTIONS

# Trajectories (the weight path) are recorded for models this small.
MAX_TRAJECTORY_PARAMS = 10
# ... and thinned to at most this many points (the loss metric itself keeps every logged epoch).
MAX_TRAJECTORY_POINTS = 10_000


# What each entry point fixes; `train` fixes nothing.
PRESETS = {
    "sgd": {"optimizer": "sgd"},
    "adam": {"optimizer": "adam"},
    "l1": {"optimizer": "sgd", "penalty": "l1"},
    "l2": {"optimizer": "sgd", "penalty": "l2"},
    "train": {},
}


def make_config(technique: str, defaults: dict | None = None, **kwargs) -> TrainConfig:
    """Build and check the config of entry point ``technique`` from its options.

    Option combinations that cannot work are refused here, before any run starts:
    with `train`, an option the chosen optimizer or penalty does not read is refused
    unless it has its default (``defaults``: the command's own, else the options table's).
    """
    kwargs = {**kwargs, **PRESETS[technique]}
    optimizer = kwargs.get("optimizer", "sgd")
    if technique == "train":
        fits = set(OPTIMIZER_OPTIONS[optimizer])
        for name, value in kwargs.items():
            flag = name.replace("_", "-")
            default = (defaults or {}).get(name, OPTIONS[flag].default if flag in OPTIONS else None)
            owners = [o for o, opts in OPTIMIZER_OPTIONS.items() if name in opts]
            if owners and name not in fits and value is not None and value != default:
                raise click.UsageError(
                    f"--{flag} {value} does not apply to --optimizer {optimizer} "
                    f"(it is an option of {', '.join(owners)})"
                )
        penalty = kwargs.get("penalty", "none")
        if penalty == "none" and kwargs.get("lam", 0.0) > 0:
            raise click.UsageError("--lambda needs a --penalty (l1, l2 or elasticnet)")
        if penalty != "elasticnet" and kwargs.get("l1_ratio", 0.5) != OPTIONS["l1-ratio"].default:
            raise click.UsageError("--l1-ratio applies to --penalty elasticnet only")
        if penalty not in ("l1", "elasticnet") and kwargs.get("l1_method", "prox") != "prox":
            raise click.UsageError("--l1-method applies to --penalty l1 or elasticnet only")
    if kwargs.get("dataset") == "synthetic" and kwargs.get("n_informative", 0) > kwargs.get("n_features", 10):
        raise click.BadParameter(
            f"{kwargs['n_informative']} is more than --n-features ({kwargs.get('n_features', 10)})",
            param_hint="'--n-informative'",
        )
    try:
        cfg = TrainConfig(**kwargs)
        build(cfg, 1)  # validates the optimizer's and penalty's hyperparameters
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return cfg


def load_checked(cfg: TrainConfig):
    """The config's data; unusable data is a usage error on --dataset (before any run starts)."""
    try:
        return load_data(cfg)
    except DataError as exc:
        message = str(exc)
        if "no such file (looked for" in message and os.environ.get("MLFLOW_RUN_ID"):
            message += "; `mlflow run` runs in the project's folder: give an absolute path or a URL"
        raise click.BadParameter(message, param_hint="'--dataset'") from None


def execute(cfg: TrainConfig, technique: str) -> None:
    """The training entry points' command: load the data, train and log one run; exits non-zero on failure."""
    data = load_checked(cfg)
    result = exit_on_end(train_run, cfg, technique, data, progress=True)
    print(f"Final weights: {result.weights}")
    if result.bias is not None:
        print(f"Final bias: {result.bias}")


def train_run(
    cfg: TrainConfig,
    technique: str,
    data: Dataset,
    *,
    run_id: str | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train on ``data`` and log it all to one run (``run_id``, MLFLOW_RUN_ID or a new one).

    Raises :class:`~steps.lifecycle.RunFailed` (diverged) or
    :class:`~steps.lifecycle.RunStopped` (interrupted) once the run has been closed.
    """
    import mlflow

    from . import tracking

    path: list[tuple[int, list[float], float]] = []
    record = data.n_features + int(cfg.fit_intercept) <= MAX_TRAJECTORY_PARAMS
    bar = _progress(cfg.epochs) if progress else None
    shown = 0

    def callback(epoch: int, metrics: dict, theta) -> None:
        nonlocal shown
        run.log_metrics(metrics, epoch)
        if record:
            path.append((epoch, theta.tolist(), metrics["loss"]))
            if len(path) > MAX_TRAJECTORY_POINTS:  # a long run keeps every other point: bounded memory
                path[:] = path[::2]
        if bar is not None:
            bar.update(epoch + 1 - shown)
            shown = epoch + 1

    with tempfile.TemporaryDirectory() as tmp, tracked_run(run_id=run_id, name=technique) as run:
        tmpdir = Path(tmp)

        def save_path_so_far() -> None:  # when the run ends without finishing
            if _write_trajectory(tmpdir, path, data.n_features, cfg.fit_intercept):
                mlflow.log_artifact(str(tmpdir / "trajectory.csv"))

        run.on_close.append(save_path_so_far)
        run.log_params(cfg.params())
        run.set_tags(
            {
                "technique": technique,
                "optimizer": cfg.optimizer,
                "penalty": cfg.penalty,
                **fingerprint.tags(cfg, data),
            }
        )
        try:
            result = fit(cfg, data, callback)
        except DivergenceError as exc:
            raise RunFailed(str(exc)) from None
        if bar is not None:
            bar.render_finish()
        _write_trajectory(tmpdir, path, data.n_features, cfg.fit_intercept)
        weights = tmpdir / "weights.json"
        weights.write_text(json.dumps({"weights": result.weights, "bias": result.bias}, indent=2))
        spec = tmpdir / "model_spec.json"
        spec.write_text(
            json.dumps(
                {
                    "weights": result.weights,
                    "bias": result.bias,
                    "model": cfg.model,
                    "features": list(data.feature_names),
                }
            )
        )
        with tracking.logged_model(run.id, run.experiment_id, cfg.params(), result.epochs_run) as model:
            run.log_metrics(
                {
                    **result.final,
                    "zero_weights": sum(w == 0.0 for w in result.weights),
                    "train_time_s": result.train_time_s,
                    "steps_per_s": result.steps_per_s,
                    "epochs_run": result.epochs_run,
                },
                result.epochs_run,
                model_id=model.model_id,
            )
            run.buffer.flush()
            with run.held():
                mlflow.log_artifacts(str(tmpdir))
                tracking.log_model(model, tmpdir, spec, data.feature_names, data.X_train)
        if result.stopped_early:
            run.set_tags({"stopped_early": f"epoch {result.epochs_run}"})
    return result


def _write_trajectory(tmpdir: Path, path, n_features: int, fit_intercept: bool) -> bool:
    if not path:
        return False
    cols = [f"w_{i}" for i in range(n_features)] + (["bias"] if fit_intercept else [])
    lines = [",".join(["epoch", *cols, "loss"])]
    lines += [",".join([str(e), *map(repr, theta), repr(loss)]) for e, theta, loss in path]
    (tmpdir / "trajectory.csv").write_text("\n".join(lines) + "\n")
    return True


def _progress(epochs: int):
    """A progress bar on an interactive terminal (stderr), else nothing."""
    if not sys.stderr.isatty():
        return None
    return click.progressbar(length=epochs, label="training", file=sys.stderr, show_pos=True)
