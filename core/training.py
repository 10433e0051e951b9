"""The training loop: full batch (the lesson) or seeded mini-batches.

Per epoch e (0-based): the learning rate comes from the schedule; the loss
reported for step e is the training loss (the MSE; the log loss for ``logistic``) of the
weights at the *start* of epoch e (as the lesson logs it), ``objective`` adds lambda * R(w),
``val_loss`` is the validation loss, a classifier's ``accuracy`` and ``val_accuracy`` the share
of rows labelled right (1 where p > 0.5) by those weights (:meth:`core.models.Model.metrics`),
``lr`` the learning rate epoch e steps with, ``grad_norm`` the L2
norm of the full-batch gradient at those weights (the penalty's smooth part in, bias
included, before clipping), ``update_norm`` the L2 norm of the change the epoch made
to the parameters (the step actually taken: after clipping, decay and prox; net over
an epoch's mini-batches), and with an L1 term ``zero_weights`` the weights exactly 0.
With the ``plateau`` schedule, the monitored loss of epoch e (the value logged for e) is
fed to it after epoch e's update, and the rate it returns is epoch e+1's.
The caller receives them through ``callback(epoch, metrics, theta)``, theta the
parameters at the start of epoch e, every ``log_every`` epochs and at the last one,
after the epoch's update. Each optimizer step is

    grad  = dloss/dtheta (+ the penalty's smooth part, weights only)
    grad  = clipped (--clip-norm, then --clip-value; torch's clip_grad_norm_ / clip_grad_value_)
    theta = theta - optimizer step
    w     = prox(w)            (L1 with the proximal method)

L-BFGS instead takes one ``step(closure)`` an epoch, which evaluates the objective (MSE plus
penalty) and its gradient itself, up to max_eval times (full batch; no clipping, no prox).

The loop times itself, callbacks excluded: ``train_time_s`` is the optimization alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import curvature as curvature_mod
from . import data as data_mod
from . import functions, optimizers
from .config import TEST_FUNCTIONS, TrainConfig
from .mlp import MLP
from .models import Model
from .neuron import standardize
from .penalties import Penalty

Callback = Callable[[int, dict, np.ndarray], None]


DIVERGED = "training diverged"  # how a diverged run's failure reason begins


class DivergenceError(ArithmeticError):
    """The loss or the parameters became non-finite; ``epoch`` says when. Its message (a diverged
    run's ``failure_reason``) starts with :data:`DIVERGED`."""

    def __init__(self, epoch: int, what: str):
        self.epoch = epoch
        super().__init__(
            f"{DIVERGED} at epoch {epoch}: {what} is not finite; "
            "try a smaller learning rate (or a different optimizer / schedule)"
        )


@dataclass(frozen=True)
class TrainResult:
    theta: np.ndarray
    weights: list[float]
    bias: float | list[float] | None  # the neuron's bias; a network's biases, layer by layer
    epochs_run: int
    steps: int
    train_time_s: float
    stopped_early: bool
    final: dict[str, float] = field(default_factory=dict)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_time_s if self.train_time_s > 0 else float("inf")


def load_data(cfg: TrainConfig) -> data_mod.Dataset:
    """Build the dataset the config names, split it, and with ``cfg.standardize`` z-score the
    features with the training split's scaler (raises :class:`core.data.DataError`).

    A test function has no data: its dataset is a placeholder of one row of zeros whose two
    columns, x and y, stand for the point's coordinates (the loop reads its shape only)."""
    if cfg.dataset in TEST_FUNCTIONS:
        X = np.zeros((1, 2), dtype=cfg.dtype, order="F")
        return data_mod.Dataset(X, np.zeros(1, dtype=cfg.dtype), None, None, ("x", "y"))
    try:
        if cfg.dataset == "seed":
            X, y, names = data_mod.seed_data()
        elif cfg.dataset == "synthetic":
            X, y, names, _ = data_mod.synthetic(
                cfg.n_samples, cfg.n_features, cfg.n_informative, cfg.noise, cfg.data_seed, teacher=cfg.model
            )
        else:
            X, y, names = data_mod.load_csv(cfg.dataset, cfg.target, labels=cfg.model == "logistic")
        classes = None
        if cfg.model == "logistic":  # two labels, as 0 and 1 (synthetic labels are 0/1 already)
            y, classes = (y, (0, 1)) if cfg.dataset == "synthetic" else data_mod.binary_labels(y, cfg.target)
        # Full batch streams columns (X w, X^T r): column-major. Mini-batches gather random
        # rows: row-major, 4-5x faster to gather. float32 halves the memory traffic.
        with np.errstate(over="ignore"):
            X = np.asarray(X, dtype=cfg.dtype, order="C" if 0 < cfg.batch_size < len(y) else "F")
            y = y.astype(cfg.dtype, copy=False)
    except MemoryError:
        raise data_mod.DataError("not enough memory to load the data") from None
    _check_scale(X, y, cfg.dtype)
    Xt, yt, Xv, yv = data_mod.split(X, y, cfg.validation_fraction, cfg.seed)
    if not cfg.standardize:
        return data_mod.Dataset(Xt, yt, Xv, yv, names, classes=classes)
    # z-scores with the training split's mean and scale only: the validation rows are scaled
    # with the same statistics, as a model fitted on the training rows would see new data.
    mean, scale = data_mod.fit_scaler(Xt)
    Xt, Xv = (None if A is None else _standardized(A, mean, scale, cfg.dtype) for A in (Xt, Xv))
    return data_mod.Dataset(Xt, yt, Xv, yv, names, mean=mean, scale=scale, classes=classes)


def _standardized(X: np.ndarray, mean: np.ndarray, scale: np.ndarray, dtype: str) -> np.ndarray:
    """``X`` standardized (:func:`core.neuron.standardize`), in ``dtype`` and ``X``'s layout."""
    return np.asarray(standardize(X, mean, scale), dtype=dtype, order="F" if np.isfortran(X) else "C")


def _check_scale(X: np.ndarray, y: np.ndarray, dtype: str) -> None:
    """Data whose values, or whose squared errors, do not fit ``dtype`` cannot be trained on:
    say so here, rather than as a divergence ("try a smaller learning rate") or a loss of inf.
    (max and min reduce without a temporary; a nan or inf anywhere makes them non-finite.)"""
    big = float(np.finfo(dtype).max)
    scale = 0.0
    for what, a in (("a feature", X), ("the target", y)):
        if not a.size:
            continue
        hi, lo = float(a.max()), float(a.min())
        if not (np.isfinite(hi) and np.isfinite(lo)):
            raise data_mod.DataError(f"{what} has values too large for {dtype} (beyond {big:.3g})")
        scale = max(scale, hi, -lo)
    if scale > np.sqrt(big / 4):  # the squared error of such a value overflows
        raise data_mod.DataError(
            f"values up to {scale:.3g} overflow {dtype} when squared (the loss); "
            f"rescale the data{' or use --dtype float64' if dtype == 'float32' else ''}"
        )


def components(
    cfg: TrainConfig, n_features: int
) -> tuple[Model | functions.Objective, optimizers.Optimizer | optimizers.Lbfgs, Penalty]:
    """The model, optimizer and penalty ``cfg`` names, for ``n_features`` inputs (each validates
    its own hyperparameters): the neuron, or with ``cfg.hidden`` the network (:class:`core.mlp.MLP`).
    For a test function the "model" is the function itself
    (:class:`core.functions.Objective`: its two parameters, the point, are the weights)."""
    if cfg.dataset in TEST_FUNCTIONS:
        model = functions.Objective(cfg.dataset, cfg.condition_number)
    elif cfg.hidden:
        model = MLP(cfg.model, n_features, cfg.fit_intercept, hidden=cfg.hidden)
    else:
        model = Model(cfg.model, n_features, cfg.fit_intercept)
    # The first n_weights entries of theta are the weights: penalized and decayed, never a bias.
    opt = optimizers.create(cfg.optimizer, cfg.optimizer_hyper(), mask=slice(0, model.n_weights), tensors=model.tensors)
    penalty = Penalty(cfg.penalty, cfg.lam, cfg.l1_ratio, cfg.l1_method)
    return model, opt, penalty


def loss_surface(cfg: TrainConfig, X, y, w0, w1, bias: float = 0.0, penalized: bool = True):
    """The objective of ``cfg``'s two-weight model over the grid ``w0`` x ``w1`` (1-D arrays) at a
    fixed bias: the model's own loss, plus the penalty's own value when ``penalized``.
    For a test function it is the function itself over the points (x, y) = (w0, w1) (X, y and
    bias are ignored). Returns the meshgrid W0, W1 and Z of that shape."""
    model, _, penalty = components(cfg, 2)
    W0, W1 = np.meshgrid(w0, w1)
    flat = np.column_stack([W0.ravel(), W1.ravel()])
    if isinstance(model, functions.Objective):
        Z = model.losses(flat)
    else:
        thetas = np.column_stack([flat, np.full(len(flat), bias)]) if model.fit_intercept else flat
        Z = np.empty(len(flat))
        chunk = max(1, 2_000_000 // max(1, len(y)))  # at most 2M residuals in memory at once
        for s in range(0, len(flat), chunk):
            Z[s : s + chunk] = model.losses(thetas[s : s + chunk], X, y)
    if penalized:
        Z += penalty.values(flat)
    return W0, W1, Z.reshape(W0.shape)


def fit(cfg: TrainConfig, data: data_mod.Dataset, callback: Callback | None = None) -> TrainResult:
    # Overflow is expected when a run diverges; it is detected and reported, not warned about.
    with np.errstate(over="ignore", invalid="ignore"):
        return _fit(cfg, data, callback)


def _fit(cfg: TrainConfig, data: data_mod.Dataset, callback: Callback | None) -> TrainResult:
    """The loop itself. Long on purpose (about 90 lines): the per-epoch state lives in local
    variables, and on tiny problems (the lesson: 2x2) every extra Python call an epoch shows in
    steps_per_s, which benchmarks/bench_core.py holds near the call floor. What runs only on
    reported epochs, or once a mini-batch epoch, is in the helpers below."""
    model, opt, penalty = components(cfg, data.n_features)
    d = model.n_weights  # theta[:d] are the weights (penalized, decayed); the biases follow
    X, y, Xv, yv = data.X_train, data.y_train, data.X_val, data.y_val
    theta = model.init(cfg.init, cfg.seed).astype(X.dtype)
    state = opt.init(theta)
    lr_at = cfg.schedule()
    plateau = cfg.plateau()  # feedback: it sets each next epoch's rate from this epoch's loss
    plateau_state = plateau.init() if plateau is not None else None
    watch_val = plateau is not None and cfg.lr_monitor == "val_loss"
    clip_norm, clip_value = cfg.clip_norm, cfg.clip_value
    n = len(y)
    batch = n if cfg.batch_size <= 0 or cfg.batch_size >= n else cfg.batch_size
    ws = model.workspace(batch, X.dtype)  # every step reuses these buffers
    if batch < n and np.isfortran(X):  # mini-batches gather rows: row-major (load_data already is)
        X = np.ascontiguousarray(X)
    rng = np.random.default_rng(cfg.seed)
    has_val = Xv is not None

    best_val, since_best, stopped_early = math.inf, 0, False
    classifier = getattr(model, "kind", None) == "logistic"  # (a test function has no kind)
    closure_steps = isinstance(opt, optimizers.Lbfgs)
    steps, epoch, callback_time = 0, 0, 0.0
    curvature_every, reported = cfg.curvature_every, 0
    tracker = curvature_mod.Tracker(model, X, y, penalty) if curvature_every else None
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        lr = lr_at(epoch) if plateau is None else plateau_state.lr
        report = epoch % cfg.log_every == 0 or epoch == cfg.epochs - 1
        val = model.loss(theta, Xv, yv) if has_val and (report or cfg.patience or watch_val) else None
        stop = False
        if cfg.patience:  # early stopping on the validation loss
            if val < best_val:
                best_val, since_best = val, 0
            else:
                since_best += 1
                stop = since_best >= cfg.patience
        report = report or stop  # the epoch training stops at is always reported too
        loss = None
        if batch == n:
            loss, grad = model.loss_and_grad(theta, X, y, ws)
            if penalty.active:
                penalty.add_grad(grad[:d], theta[:d])
            full_grad = grad
        elif report:  # the full-batch loss and gradient, at the reported epochs only
            loss, full_grad = model.loss_and_grad(theta, X, y)
            if penalty.active:
                penalty.add_grad(full_grad[:d], theta[:d])
        if loss is not None and not math.isfinite(loss):
            raise DivergenceError(epoch, "the training loss")
        if report:
            metrics = _epoch_metrics(loss, full_grad, val, lr, theta[:d], penalty)
            if classifier:
                metrics.update(model.metrics(theta, X, y, Xv, yv))  # accuracy, val_accuracy
            if curvature_every and reported % curvature_every == 0:  # measured, not optimization: off the clock
                t_curv = time.perf_counter()
                metrics.update(tracker(theta).metrics(lr))
                callback_time += time.perf_counter() - t_curv
            reported += 1
        if stop:
            callback_time += _report(callback, epoch, metrics, theta, theta)
            stopped_early = True
            break
        start = theta  # every step makes a new array: this one stays the epoch's start
        if closure_steps:  # L-BFGS: one step(closure) an epoch, on the full batch
            theta, state = _lbfgs_epoch(opt, model, penalty, X, y, ws, state, theta, lr)
            steps += 1
        elif batch == n:
            theta, state = _step(opt, penalty, grad, state, theta, lr, d, clip_norm, clip_value)
            steps += 1
        else:
            theta, state = _minibatch_epoch(model, opt, penalty, X, y, ws, rng.permutation(n), batch, state, theta,
                                            lr, clip_norm, clip_value)  # fmt: skip
            steps += -(-n // batch)
        if report:
            callback_time += _report(callback, epoch, metrics, start, theta)
        if plateau is not None:  # the loss at the start of this epoch, after its step (torch's order)
            if not watch_val and loss is None:
                loss = model.loss(start, X, y)
            _, plateau_state = plateau.update(val if watch_val else loss, plateau_state)
        # A dead ReLU keeps a finite loss while its weights run off to infinity: check both.
        if not np.isfinite(theta).all():
            raise DivergenceError(epoch, "a parameter")
    else:
        epoch = cfg.epochs
    train_time = time.perf_counter() - t0 - callback_time

    weights, bias = model.split(theta)
    return TrainResult(
        theta=theta,
        weights=weights.tolist(),
        bias=bias,
        epochs_run=epoch,
        steps=steps,
        train_time_s=train_time,
        stopped_early=stopped_early,
        final=_final_metrics(model, penalty, theta, data, epoch, classifier),
    )


def _epoch_metrics(loss: float, full_grad: np.ndarray, val, lr: float, w: np.ndarray, penalty: Penalty) -> dict:
    """A reported epoch's metrics (the module docstring defines them); ``w`` the weights."""
    metrics = {"loss": loss, "objective": loss + penalty.value(w) if penalty.active else loss, "lr": lr}
    metrics["grad_norm"] = math.sqrt(float(full_grad @ full_grad))  # before clipping
    if penalty.active and penalty.l1_weight > 0:
        metrics["zero_weights"] = int(np.count_nonzero(w == 0.0))
    if val is not None:
        metrics["val_loss"] = val
    return metrics


def _final_metrics(model, penalty: Penalty, theta, data: data_mod.Dataset, epoch: int, classifier: bool) -> dict:
    """The loss, objective (and validation loss; a classifier's accuracies) of the trained parameters."""
    final_loss = model.loss(theta, data.X_train, data.y_train)
    if not math.isfinite(final_loss):  # (every epoch's start was finite: the last one's update was not)
        raise DivergenceError(epoch - 1, "the training loss after its update")
    final = {"final_loss": final_loss, "final_objective": final_loss + penalty.value(theta[: model.n_weights])}
    if data.X_val is not None:
        final["final_val_loss"] = model.loss(theta, data.X_val, data.y_val)
    if classifier:
        metrics = model.metrics(theta, data.X_train, data.y_train, data.X_val, data.y_val)
        final.update({f"final_{k}": v for k, v in metrics.items()})
    return final


def _minibatch_epoch(model, opt, penalty, X, y, ws, order, batch, state, theta, lr, clip_norm, clip_value):
    """One pass over the rows in ``order``, a step a mini-batch of ``batch`` (the last may be shorter)."""
    d = model.n_weights
    for first in range(0, len(order), batch):
        idx = order[first : first + batch]
        # Fancy indexing gathers the rows into a small row-major block (np.take with
        # out= into a column-major buffer is 1000x slower: it copies all of X first).
        _, grad = model.loss_and_grad(theta, X[idx], y[idx], ws)
        if penalty.active:
            penalty.add_grad(grad[:d], theta[:d])
        theta, state = _step(opt, penalty, grad, state, theta, lr, d, clip_norm, clip_value)
    return theta, state


def _clip(grad, clip_norm: float, clip_value: float) -> None:
    """torch.nn.utils.clip_grad_norm_ (the L2 norm of every parameter's gradient, bias included,
    scaled down to ``clip_norm``: factor min(clip_norm / (norm + 1e-6), 1)), then
    clip_grad_value_ (each entry into [-clip_value, clip_value]); in place, 0 = off."""
    if clip_norm:
        grad *= min(clip_norm / (float(np.sqrt(grad @ grad)) + 1e-6), 1.0)
    if clip_value:
        np.clip(grad, -clip_value, clip_value, out=grad)


def _step(opt, penalty, grad, state, theta, lr, d, clip_norm=0.0, clip_value=0.0):
    """One update from ``grad`` (the penalty's smooth part already in it): clip, step, prox."""
    if clip_norm or clip_value:
        _clip(grad, clip_norm, clip_value)
    step, state = opt.update(grad, state, theta, lr)
    theta = theta - step
    if penalty.uses_prox:
        penalty.prox(theta[:d], lr)
    return theta, state


def _report(callback, epoch: int, metrics: dict, start: np.ndarray, theta: np.ndarray) -> float:
    """Hand epoch ``epoch``'s metrics and its starting parameters ``start`` to the callback, with
    ``update_norm``, the size of the update the epoch made (``theta`` is where it ended; the same
    array when training stops before stepping: no update). Returns the seconds it took."""
    if callback is None:
        return 0.0
    c0 = time.perf_counter()
    if theta is not start:
        change = theta - start
        size = math.sqrt(float(change @ change))  # (np.linalg.norm costs 3x this on small vectors)
        if math.isfinite(size):  # a diverging step is reported by the caller, not logged
            metrics["update_norm"] = size
    callback(epoch, metrics, start)
    return time.perf_counter() - c0


def _lbfgs_epoch(opt, model, penalty, X, y, ws, state, theta, lr):
    """One epoch of L-BFGS: torch's ``LBFGS.step(closure)`` at learning rate ``lr``. The closure is
    the objective the other optimizers follow the gradient of: the MSE plus the penalty (its
    squares, and its L1 term by the subgradient method; TrainConfig refuses the prox), and its
    gradient, a fresh array each call (``ws`` is overwritten by the next)."""
    d = model.n_weights

    def closure(th):
        loss, grad = model.loss_and_grad(th, X, y, ws)
        grad = grad.copy()
        if penalty.active:
            penalty.add_grad(grad[:d], th[:d])
            loss += penalty.value(th[:d])
        return loss, grad

    theta, state, _ = opt.step(closure, state, theta, lr)
    return theta, state
