"""Run one training configuration as an MLflow run (shared by every training entry point).

Order matters for "nothing lost": everything the user can get wrong (options,
data) is checked *before* a run starts; once it has started, metrics are
buffered and flushed at the end, on divergence and on Ctrl-C / SIGTERM, and the
run ends FINISHED, FAILED or KILLED, never left RUNNING.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from core.config import FUNCTION_IGNORES, NEEDS, OWNERS, TEST_FUNCTIONS, TrainConfig, option_name, unused_options
from core.data import DataError, Dataset, printable
from core.neuron import layer_shapes, original_units
from core.penalties import Penalty
from core.training import DivergenceError, TrainResult, components, fit, load_data
from steps.cli.options import OPTIONS, as_param
from steps.run import fingerprint, story
from steps.run.errors import Pruned
from steps.run.lifecycle import RunFailed, exit_on_end, tracked_run

# Trajectories (the weight path) are recorded for models this small.
MAX_TRAJECTORY_PARAMS = 10
# ... and thinned to at most this many points (the loss metric itself keeps every logged epoch).
MAX_TRAJECTORY_POINTS = 10_000
# The optimizer's internals per logged epoch (core.training's metrics), kept as internals.csv
# for compare's panel of them (one artifact a run instead of four metric histories): compare draws them.
INTERNALS = ("lr", "grad_norm", "update_norm", "zero_weights", "val_loss", "sharpness")
INTERNALS_FILE = "internals.csv"


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

    Option combinations that cannot work are refused here, before any run starts: an option
    the dataset does not read (another test function's, a test function's data and model
    options), one the chosen schedule does not read (another schedule's; the warmup's start
    factor without a warmup; the cyclic gamma outside exp_range) and, with `train`, one the
    chosen optimizer or penalty does not read, is refused unless it has its default
    (``defaults``: the command's own, else the options table's).
    """
    kwargs = {**kwargs, **PRESETS[technique]}
    _refuse_options_that_would_not_act(kwargs, defaults or {}, optimizer_and_penalty=technique == "train")
    if kwargs.get("dataset") == "synthetic" and kwargs.get("n_informative", 0) > kwargs.get("n_features", 10):
        raise click.BadParameter(
            f"{kwargs['n_informative']} is more than --n-features ({kwargs.get('n_features', 10)})",
            param_hint="'--n-informative'",
        )
    try:
        cfg = TrainConfig(**kwargs)
        components(cfg, 1)  # validates the optimizer's and penalty's hyperparameters
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return cfg


def _refuse_options_that_would_not_act(kwargs: dict, defaults: dict, optimizer_and_penalty: bool) -> None:
    """An option set to something other than its default that would not act is a usage error
    (:func:`core.config.unused_options` says which): another test function's and another
    schedule's (every entry point; and :data:`core.config.NEEDS`), a data or model option with a test
    function, and with ``optimizer_and_penalty`` (`train`) another optimizer's or penalty's."""
    chosen = {"dataset": kwargs.get("dataset", "seed"), "lr_schedule": kwargs.get("lr_schedule", "constant")}
    if optimizer_and_penalty:
        chosen.update(optimizer=kwargs.get("optimizer", "sgd"), penalty=kwargs.get("penalty", "none"))
    settings = {k: kwargs[k] for k in ("warmup_epochs", "lr_mode") if k in kwargs}
    unused = unused_options({**chosen, **settings})
    for name, value in kwargs.items():
        option = option_name(name)
        flag = option.replace("_", "-")
        default = defaults.get(name, OPTIONS[flag].default if flag in OPTIONS else None)
        if option not in unused or value is None or value == default:
            continue
        for what, table in OWNERS:
            owners = [o for o, opts in table.items() if option in opts]
            if what in chosen and owners and chosen[what] not in owners:
                raise click.UsageError(
                    f"--{flag} {as_param(value)} does not apply to --{what.replace('_', '-')} {chosen[what]} "
                    f"(it is an option of {', '.join(owners)})"
                )
        if option in NEEDS:
            raise click.UsageError(f"--{flag} {as_param(value)} does not act here: {NEEDS[option]}")
        if chosen["dataset"] in TEST_FUNCTIONS and option in FUNCTION_IGNORES:
            raise click.UsageError(
                f"--{flag} {as_param(value)} does not apply to --dataset {chosen['dataset']}: "
                "a test function has no data "
                "and no model (its parameters are the point (x, y))"
            )


def load_checked(cfg: TrainConfig):
    """The config's data; unusable data is a usage error on --dataset, and an --init whose count
    of numbers does not fit the data's model one on --init (before any run starts)."""
    try:
        data = load_data(cfg)
    except DataError as exc:
        message = str(exc)
        if "no such file (looked for" in message and os.environ.get("MLFLOW_RUN_ID"):
            message += "; `mlflow run` runs in the project's folder: give an absolute path or a URL"
        raise click.BadParameter(message, param_hint="'--dataset'") from None
    _check_network_fits(cfg, data)
    try:
        model = components(cfg, data.n_features)[0]
        theta = model.init(cfg.init, cfg.seed).astype(data.X_train.dtype)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--init'") from None
    if cfg.init not in ("seed", "zeros", "normal"):  # numbers of the user's: a start nothing can leave
        with np.errstate(over="ignore", invalid="ignore"):
            start = model.loss(theta, data.X_train, data.y_train)
        if not (np.isfinite(theta).all() and math.isfinite(start)):
            raise click.BadParameter(
                f"{cfg.init}: the loss at this starting point is not finite in {cfg.dtype}", param_hint="'--init'"
            )
    return data


# Bytes a step holds per parameter, in copies of it: the parameters, the gradient, the step, the
# optimizer's state and the temporaries in between. Measured 2026-12-06: `train --hidden H
# --optimizer adam` peaks at 119 bytes a float64 parameter (H = 2e6 and 4e6: 1.25 and 2.20 GB).
PARAMETER_COPIES = 16


def _check_network_fits(cfg: TrainConfig, data: Dataset) -> None:
    """A network whose parameters (with their gradient, step and optimizer state) and activations
    would not fit in memory is a usage error on --hidden, before any run starts: --hidden 100000000
    was killed by the kernel after a minute, silently, its run left RUNNING."""
    from core.data import physical_memory

    if not cfg.hidden or cfg.dataset in TEST_FUNCTIONS:
        return
    # Every layer with its bias (torch's nn.Linear): an estimate that errs on the side of room.
    n_params = sum(out * (fan_in + 1) for out, fan_in in layer_shapes(data.n_features, cfg.hidden))
    size = np.dtype(cfg.dtype).itemsize
    need = n_params * size * PARAMETER_COPIES + 2 * len(data.y_train) * sum(cfg.hidden) * size
    if need > physical_memory():
        raise click.BadParameter(
            f"{','.join(map(str, cfg.hidden))}: a network of {n_params:.3g} parameters on {data.n_features} features "
            f"needs about {need / 2**30:.1f} GiB (its parameters, gradient, step and optimizer state, and the "
            f"activations of {len(data.y_train)} rows), more than this machine's {physical_memory() / 2**30:.1f} GiB",
            param_hint="'--hidden'",
        )


def execute(cfg: TrainConfig, technique: str) -> None:
    """The training entry points' command: load the data, train and log one run; exits non-zero on failure."""
    import mlflow

    data = load_checked(cfg)
    result = exit_on_end(train_run, cfg, technique, data, progress=True)
    if cfg.hidden or len(result.weights) > 10:  # a network, a wide table: many numbers say nothing here
        n_bias = len(result.bias) if isinstance(result.bias, list) else int(result.bias is not None)
        biases = f", {n_bias} bias{'es' if n_bias > 1 else ''}" if n_bias else ""
        print(f"Final parameters: {len(result.weights)} weights{biases} (the run's weights.json)")
    else:
        print(f"Final weights: {result.weights}")
        if result.bias is not None:
            print(f"Final bias: {result.bias}")
    run = mlflow.last_active_run()
    if run is None:
        print(f"Final {story.summary(result.final, result.epochs_run)}")
        return
    info = run.info
    print(f"Final {story.summary(result.final, result.epochs_run)} (run {info.run_id[:8]}: {info.run_name})")
    print(f"See it: {story.where(mlflow.get_tracking_uri(), info.experiment_id, info.run_id)}")


def train_run(
    cfg: TrainConfig,
    technique: str,
    data: Dataset,
    *,
    run_id: str | None = None,
    progress: bool = False,
    on_epoch: Callable[[int, dict], None] | None = None,
    log_model: bool = True,
) -> TrainResult | None:
    """Train on ``data`` and log it all to one run (``run_id``, MLFLOW_RUN_ID or a new one).

    ``on_epoch(epoch, metrics)`` is called at each logged epoch, after its metrics are logged; a
    sweep's trial reports to Optuna there, and raises :class:`~steps.run.errors.Pruned` to stop: the
    run then ends FINISHED, tagged ``pruned`` = ``epoch N``, with its history (metrics,
    trajectory.csv, internals.csv) but no final metrics or model, and None is returned.
    ``log_model=False`` logs everything but the LoggedModel and the dataset inputs (a benchmark's
    tuning trials: hundreds of runs whose models nobody loads). Raises
    :class:`~steps.run.lifecycle.RunFailed` (diverged) or :class:`~steps.run.lifecycle.RunStopped`
    (interrupted) once the run has been closed.
    """
    import mlflow

    from steps.run import tracking

    name = story.run_name(cfg, technique)
    with tempfile.TemporaryDirectory() as tmp, tracked_run(run_id=run_id, name=name) as run:
        tmpdir = Path(tmp)
        epochs = _EpochLog(run, cfg, data, _progress(cfg.epochs) if progress else None, on_epoch)

        def save_path_so_far() -> None:  # when the run ends without finishing, or is pruned
            if _write_trajectory(tmpdir, epochs.path, data.n_features, cfg.fit_intercept):
                tracking.upload(lambda: mlflow.log_artifact(str(tmpdir / "trajectory.csv")), "trajectory.csv")
            if _write_internals(tmpdir, epochs.internals):
                tracking.upload(lambda: mlflow.log_artifact(str(tmpdir / INTERNALS_FILE)), INTERNALS_FILE)

        run.on_close.append(save_path_so_far)
        run.log_params(cfg.params())
        tags = {"technique": technique, "optimizer": cfg.optimizer, "penalty": cfg.penalty}
        tags[story.NOTE_TAG] = story.description(cfg, technique)  # the run's page in the MLflow UI
        if data.classes is not None:  # which label is 0 and which 1, e.g. "0=benign, 1=malignant"
            tags["classes"] = ", ".join(f"{i}={printable(label, 100)}" for i, label in enumerate(data.classes))
        shas = fingerprint.tags(cfg, data)
        run.set_tags({**tags, **shas})
        if log_model:  # (a benchmark's hundreds of tuning trials: 10 ms a run saved on sqlite)
            with run.held():
                _log_data(run, cfg, data, shas[fingerprint.TAG_DATA])
        try:
            result = fit(cfg, data, epochs.callback)
        except DivergenceError as exc:
            raise RunFailed(str(exc) + _scale_hint(cfg, data)) from None
        except Pruned as exc:
            with run.held():
                save_path_so_far()
            run.set_tags({"pruned": f"epoch {exc.epoch}"})
            return None
        if epochs.bar is not None:
            epochs.bar.render_finish()
        _write_trajectory(tmpdir, epochs.path, data.n_features, cfg.fit_intercept)
        _write_internals(tmpdir, epochs.internals)
        _log_results(run, cfg, data, result, tmpdir, log_model)
        if result.stopped_early:
            run.set_tags({"stopped_early": f"epoch {result.epochs_run}"})
    return result


def _log_data(run, cfg: TrainConfig, data: Dataset, digest: str) -> None:
    """The data as MLflow dataset inputs (training, and validation with a split); a test
    function has none."""
    from steps.run import tracking

    if cfg.dataset in TEST_FUNCTIONS:
        return
    source = None if cfg.dataset in ("seed", "synthetic") else cfg.dataset
    splits = (("training", data.X_train, data.y_train), ("validation", data.X_val, data.y_val))
    with warnings.catch_warnings():  # a path MLflow's registry reads two ways: it says so, and picks one
        warnings.simplefilter("ignore", UserWarning)
        tracking.log_data(run.client, run.id, story.dataset_name(cfg.dataset), source, digest, splits)


def _scale_hint(cfg: TrainConfig, data: Dataset) -> str:
    """For a diverged run on features in their own units: how far apart their scales are, and
    the cure. The curvature along a weight is about twice its feature's mean square, so features
    far from unit scale need a rate too small for the rest (docs/tutorials.md: Real data)."""
    if cfg.standardize or cfg.dataset in TEST_FUNCTIONS or data.X_train.shape[1] == 0:
        return ""
    squares = np.mean(np.square(data.X_train, dtype=np.float64), axis=0)
    low, high = float(squares.min()), float(squares.max())
    if high <= 100 and high <= 100 * max(low, 1e-300):
        return ""
    return (
        f"; the features are far from one scale (mean squares {low:.2g} to {high:.2g}): "
        "--standardize true puts them on one"
    )


class _EpochLog:
    """What happens at each logged epoch: its metrics to the run's buffer, the weights to the
    path (models this small only), the optimizer's internals to a table (every model), both
    thinned to a bounded length, the progress bar, then ``on_epoch`` (a sweep trial's report)."""

    def __init__(self, run, cfg: TrainConfig, data: Dataset, bar, on_epoch=None):
        self.run, self.bar, self.shown, self.on_epoch = run, bar, 0, on_epoch
        # (a network's parameters are no path in weight space that compare could draw)
        self.record = not cfg.hidden and data.n_features + int(cfg.fit_intercept) <= MAX_TRAJECTORY_PARAMS
        self.path: list[tuple[int, list[float], float]] = []
        self.internals: list[tuple] = []

    def callback(self, epoch: int, metrics: dict, theta) -> None:
        self.run.log_metrics(metrics, epoch)
        self.internals.append((epoch, *(metrics.get(k, math.nan) for k in INTERNALS)))
        if len(self.internals) > MAX_TRAJECTORY_POINTS:  # a long run keeps every other point: bounded memory
            self.internals[:] = self.internals[::2]
        if self.record:
            self.path.append((epoch, theta.tolist(), metrics["loss"]))
            if len(self.path) > MAX_TRAJECTORY_POINTS:
                self.path[:] = self.path[::2]
        if self.bar is not None:
            self.bar.update(epoch + 1 - self.shown)
            self.shown = epoch + 1
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics)


def _log_results(run, cfg: TrainConfig, data: Dataset, result: TrainResult, tmpdir: Path, log_model=True) -> None:
    """The end of a finished run: the final metrics (linked to the LoggedModel), the artifacts
    (weights.json, model_spec.json with a classifier's "classes", trajectory.csv) and the model. A
    test function's run ends with the point as its weights and no model (there is nothing to
    predict with)."""
    import mlflow

    from steps.run import tracking

    weights = {"weights": result.weights, "bias": result.bias}
    scaler = {"mean": None, "scale": None}
    report = dict(weights)
    if data.mean is not None:
        scaler = {"mean": data.mean.tolist(), "scale": data.scale.tolist()}
    if data.mean is not None and not cfg.hidden:  # trained on z-scores: the same neuron in the data's units
        w, b = original_units(result.weights, result.bias, data.mean, data.scale)
        report["original"] = {"weights": w.tolist(), "bias": b}
    (tmpdir / "weights.json").write_text(json.dumps(report, indent=2))
    final = {
        **result.final,
        "zero_weights": sum(w == 0.0 for w in result.weights),
        "train_time_s": result.train_time_s,
        "steps_per_s": result.steps_per_s,
        "epochs_run": result.epochs_run,
    }
    # At step 0, where MLflow's chart view draws a summary as a bar across runs; with an L1 term
    # zero_weights is a curve logged every epoch, and its final value ends that curve.
    l1 = Penalty(cfg.penalty, cfg.lam, cfg.l1_ratio, cfg.l1_method)
    curve = {"zero_weights": final.pop("zero_weights")} if l1.active and l1.l1_weight > 0 else {}
    if cfg.dataset in TEST_FUNCTIONS or not log_model:
        if cfg.dataset not in TEST_FUNCTIONS:
            _write_spec(tmpdir, cfg, data, weights, scaler)
        run.log_metrics(final, 0)
        run.log_metrics(curve, result.epochs_run)
        run.buffer.flush()
        with run.held():
            tracking.upload(lambda: mlflow.log_artifacts(str(tmpdir)), "the run's files")
        return
    spec = _write_spec(tmpdir, cfg, data, weights, scaler)
    with tracking.logged_model(run.id, run.experiment_id, cfg.params(), result.epochs_run) as model:
        run.log_metrics(final, 0, model_id=model.model_id)
        run.log_metrics(curve, result.epochs_run, model_id=model.model_id)
        run.buffer.flush()
        with run.held():
            tracking.upload(lambda: mlflow.log_artifacts(str(tmpdir)), "the run's files")
            tracking.log_model(model, tmpdir, spec, data.feature_names, _raw_rows(data, 2))


def _write_spec(tmpdir: Path, cfg: TrainConfig, data: Dataset, weights: dict, scaler: dict) -> Path:
    spec = tmpdir / "model_spec.json"
    described = {**weights, "model": cfg.model, "features": list(data.feature_names), **scaler}
    if cfg.hidden:  # a network: "weights" is every W (row-major), "bias" every b (core.neuron.mlp_forward)
        described["hidden"] = list(cfg.hidden)
    if data.classes is not None:  # a classifier's labels for 0 and 1 (the logged model returns them)
        described["classes"] = list(data.classes)
    spec.write_text(json.dumps(described))
    return spec


def _raw_rows(data: Dataset, k: int):
    """The first ``k`` training rows as the user gave them (the logged model's input example): the
    standardized rows mapped back to the data's units when the features were standardized."""
    rows = data.X_train[:k]
    return rows if data.mean is None else rows * data.scale + data.mean


def _write_trajectory(tmpdir: Path, path, n_features: int, fit_intercept: bool) -> bool:
    if not path:
        return False
    cols = [f"w_{i}" for i in range(n_features)] + (["bias"] if fit_intercept else [])
    lines = [",".join(["epoch", *cols, "loss"])]
    lines += [",".join([str(e), *map(repr, theta), repr(loss)]) for e, theta, loss in path]
    (tmpdir / "trajectory.csv").write_text("\n".join(lines) + "\n")
    return True


def _write_internals(tmpdir: Path, rows) -> bool:
    """internals.csv: epoch and the optimizer's internals per logged epoch (nan: not logged)."""
    if not rows:
        return False
    lines = [",".join(["epoch", *INTERNALS])] + [",".join(map(repr, row)) for row in rows]
    (tmpdir / INTERNALS_FILE).write_text("\n".join(lines) + "\n")
    return True


def _progress(epochs: int):
    """A progress bar on an interactive terminal (stderr), else nothing."""
    if not sys.stderr.isatty():
        return None
    return click.progressbar(length=epochs, label="training", file=sys.stderr, show_pos=True)
