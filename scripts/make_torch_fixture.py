"""Write tests/fixtures/torch_trajectories.json: reference trajectories computed by torch.optim.

This is the *oracle* for gdlab's numpy optimizers and penalties. It is written
independently of ``core`` (it imports nothing from it): the data, the model, the
loss, the penalties and the mini-batch order are all spelled out here in torch,
in float64, and the optimizers are torch.optim's own (``foreach=False``, i.e.
the ``_single_tensor_*`` reference implementations).

Run it from the repository root with torch==2.13.0 installed::

    python scripts/make_torch_fixture.py

It refuses to run with any other torch release, so the committed JSON always says
which torch produced it. ``tests/test_core_optimizers_torch.py`` replays every case with
``core.training.fit`` and compares every recorded step; it also imports this
file (``build_fixture`` / ``run_case``) to recompute the trajectories live.

Conventions (those of docs/design.md):

* parameters theta = (w, b): weights, then the bias when ``fit_intercept``;
  the bias starts at 0 and is never penalized nor decayed (for AdamW it sits in
  its own param group with ``weight_decay=0``);
* loss = mean((f(X w + b) - y)^2), f = relu or identity; for the logistic cases torch's
  BCEWithLogitsLoss (the mean binary cross-entropy of 0/1 labels under the logit X w + b);
* penalty lambda * R(w): the squares are added to the torch loss; L1 is either
  added to the loss as lambda * sum|w| (``subgradient``: autograd of abs gives
  sign(w) with sign(0) = 0) or applied after ``optimizer.step()`` as a
  soft-threshold of w by lr * (L1 coefficient) under ``torch.no_grad`` (``prox``);
* L-BFGS: one ``opt.step(closure)`` an epoch, the closure zeroing the gradients and
  back-propagating the full objective (squares and the L1 subgradient included; L-BFGS is
  never combined with the prox, clipping or mini-batches);
* a case with a ``schedule`` (gdlab's options) steps torch's lr_scheduler once an epoch;
* mini-batches: per epoch, ``order = rng.permutation(n)`` with one
  ``rng = np.random.default_rng(seed)`` for the whole run, batches are
  ``order[start:start + batch_size]`` (the last one may be shorter), as
  core/training.py draws them.

Every case must be well conditioned: re-run with y moved by 4 ulps, its torch
trajectory may move by at most ``MAX_SENSITIVITY`` (the value is stored per case),
otherwise the script stops. A chaotic case (RMSprop without momentum oscillating
around the optimum at lr 0.01 amplifies rounding ~100x every 10 steps) could not
tell a wrong implementation from a different rounding order.
"""

from __future__ import annotations

import inspect
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

TORCH_VERSION = "2.13.0"
ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "fixtures" / "torch_trajectories.json"

# ---------------------------------------------------------------- data


def lesson_data() -> tuple[np.ndarray, np.ndarray]:
    """The lesson's toy problem."""
    return np.array([[0.1, 0.2], [0.4, 0.5]]), np.array([0.3, 0.9])


def synthetic_data(n: int = 40, d: int = 3, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A seeded regression set: standardized columns, one truly-zero weight, an offset."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    w_true = np.array([1.5, -2.0, 0.0])[:d]
    y = X @ w_true + 0.5 + 0.3 * rng.standard_normal(n)
    return X, y


def datasets() -> dict[str, dict[str, list]]:
    X0, y0 = lesson_data()
    X1, y1 = synthetic_data()
    return {
        "lesson": {"X": X0.tolist(), "y": y0.tolist()},
        "synthetic": {"X": X1.tolist(), "y": y1.tolist()},
        **logistic_datasets(),
    }


# ---------------------------------------------------------------- cases

# Optimizer variants: (label, name, hyperparameters in gdlab's option names, lr on the synthetic set).
# Hyperparameters not given take torch.optim's defaults (and gdlab's, which must agree).
# Learning rates are chosen so that no case is chaotic (see `sensitivity`): RMSprop without
# momentum at lr 0.01 oscillates around the optimum and amplifies rounding 100x every 10 steps.
VARIANTS: list[tuple[str, str, dict[str, Any], float]] = [
    ("sgd", "sgd", {}, 0.05),
    ("sgd-momentum", "sgd", {"momentum": 0.9}, 0.01),
    ("sgd-momentum-dampening", "sgd", {"momentum": 0.9, "dampening": 0.3}, 0.01),
    ("sgd-nesterov", "sgd", {"momentum": 0.9, "nesterov": True}, 0.01),
    ("adam", "adam", {}, 0.05),
    ("adam-betas-eps", "adam", {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6}, 0.05),
    ("adam-amsgrad", "adam", {"amsgrad": True}, 0.05),
    ("adamw", "adamw", {}, 0.05),
    ("adamw-wd0.1", "adamw", {"weight_decay": 0.1}, 0.05),
    ("adamw-wd0.1-amsgrad", "adamw", {"weight_decay": 0.1, "amsgrad": True}, 0.05),
    ("rmsprop", "rmsprop", {}, 0.005),
    ("rmsprop-alpha-eps", "rmsprop", {"alpha": 0.995, "epsilon": 1e-6}, 0.005),
    ("rmsprop-centered", "rmsprop", {"centered": True}, 0.005),
    ("rmsprop-momentum", "rmsprop", {"momentum": 0.5}, 0.005),
    ("rmsprop-centered-momentum", "rmsprop", {"centered": True, "momentum": 0.5}, 0.005),
    ("adagrad", "adagrad", {}, 0.1),
    ("adagrad-lr-decay", "adagrad", {"lr_decay": 0.01}, 0.1),
    ("nadam", "nadam", {}, 0.01),
    ("nadam-momentum-decay", "nadam", {"momentum_decay": 0.01, "beta2": 0.99}, 0.01),
    ("nadam-wd0.1", "nadam", {"weight_decay": 0.1}, 0.01),
    ("nadam-wd0.1-decoupled", "nadam", {"weight_decay": 0.1, "decoupled_weight_decay": True}, 0.01),
    ("radam", "radam", {}, 0.05),
    ("radam-wd0.1", "radam", {"weight_decay": 0.1}, 0.05),
    ("radam-wd0.1-decoupled", "radam", {"weight_decay": 0.1, "decoupled_weight_decay": True}, 0.05),
    ("adamax", "adamax", {}, 0.05),
    ("adamax-betas-eps", "adamax", {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6}, 0.05),
    ("adadelta", "adadelta", {}, 0.5),
    ("adadelta-rho-eps", "adadelta", {"rho": 0.95, "epsilon": 1e-5}, 1.0),
    ("asgd", "asgd", {}, 0.05),
    ("asgd-averaging", "asgd", {"lambd": 0.01, "alpha": 0.5, "t0": 20.0}, 0.05),
    ("rprop", "rprop", {}, 0.01),
    (
        "rprop-etas-steps",
        "rprop",
        {"eta_minus": 0.3, "eta_plus": 1.5, "step_size_min": 1e-4, "step_size_max": 1.0},
        0.01,
    ),
    ("adafactor", "adafactor", {}, 0.01),
    ("adafactor-decay-eps-d", "adafactor", {"beta2_decay": -0.6, "eps1": 0.05, "eps2": 1e-2, "d": 1.5}, 0.01),
    ("adafactor-wd0.1", "adafactor", {"weight_decay": 0.1}, 0.01),
]
# L-BFGS variants: each epoch is one LBFGS.step(closure) of up to max_iter iterations, so fewer
# epochs, every one recorded; the learning rate (torch's default is 1) is the fixed step, or where
# the line search starts, on every dataset. Between them the steps end by each of torch's exits
# (optimal at the start, gradient or directional derivative below tolerance, no progress, max_iter,
# max_eval; the line search out of evaluations, zooming) and the memory drops its oldest pairs.
# (lr 0.1 with the line search would be degenerate: on a quadratic, the slope at t = 0.1 of the
# quasi-Newton step is exactly c2 = 0.9 times the first, a tie in the curvature condition.)
LBFGS_VARIANTS: list[tuple[str, str, dict[str, Any], float]] = [
    ("lbfgs", "lbfgs", {}, 1.0),
    ("lbfgs-wolfe", "lbfgs", {"line_search_fn": "strong_wolfe"}, 0.8),
    ("lbfgs-short", "lbfgs", {"max_iter": 4, "history_size": 2, "tolerance_change": 1e-6}, 0.5),
    (
        "lbfgs-wolfe-short",
        "lbfgs",
        {"line_search_fn": "strong_wolfe", "max_iter": 6, "max_eval": 7, "history_size": 3, "tolerance_grad": 1e-5},
        0.7,
    ),
]
# L-BFGS with a penalty: (variant, penalty, problems). The subgradient of |w| makes the objective
# non-smooth; where L-BFGS without a line search keeps hitting max_iter around a kink (the lesson
# and syn-relu-bias with L1, syn-relu-bias with the elastic net), a 4-ulp change of y moves its path
# by more than MAX_SENSITIVITY, so those pairs are left out.
LBFGS_PENALIZED = [
    ("lbfgs", "l2", ("lesson", "syn-linear-bias", "syn-relu-bias")),
    ("lbfgs", "elasticnet-subgradient", ("lesson", "syn-linear-bias")),
    ("lbfgs", "l1-subgradient", ("syn-linear-bias",)),
    ("lbfgs-wolfe", "l2", ("lesson", "syn-linear-bias", "syn-relu-bias")),
    ("lbfgs-wolfe", "elasticnet-subgradient", ("lesson", "syn-linear-bias", "syn-relu-bias")),
    ("lbfgs-wolfe", "l1-subgradient", ("lesson", "syn-linear-bias")),
]
VARIANT = {label: (name, hyper, lr) for label, name, hyper, lr in VARIANTS + LBFGS_VARIANTS}
LBFGS_EPOCHS = 30

# Problems: (label, dataset, model, fit_intercept).
PROBLEMS = [
    ("lesson", "lesson", "relu", False),
    ("syn-linear", "synthetic", "linear", False),
    ("syn-linear-bias", "synthetic", "linear", True),
    ("syn-relu", "synthetic", "relu", False),
    ("syn-relu-bias", "synthetic", "relu", True),
]

# Penalties: (label, kind, lambda, l1_ratio, l1_method).
PENALTIES = [
    ("l2", "l2", 0.1, 0.5, "prox"),
    ("l1-subgradient", "l1", 0.1, 0.5, "subgradient"),
    ("l1-prox", "l1", 0.3, 0.5, "prox"),
    ("elasticnet-prox", "elasticnet", 0.4, 0.7, "prox"),
    ("elasticnet-subgradient", "elasticnet", 0.2, 0.3, "subgradient"),
]
PENALIZED_VARIANTS = [
    "sgd",
    "sgd-nesterov",
    "adam",
    "adamw-wd0.1",
    "rmsprop-centered-momentum",
    "adagrad-lr-decay",
    "nadam-wd0.1-decoupled",
    "radam",
    "adamax",
    "adadelta",
    "asgd-averaging",
    "rprop",
    "adafactor",
]
PENALIZED_PROBLEMS = ["lesson", "syn-linear", "syn-linear-bias", "syn-relu-bias"]

FULL_BATCH_STEPS = 200
LESSON_LR = 0.01


def record_epochs(epochs: int) -> list[int]:
    """Epochs after which theta is recorded: 1..10, every 10th, and the last."""
    marks = set(range(1, min(epochs, 10) + 1)) | set(range(10, epochs + 1, 10)) | {epochs}
    return sorted(marks)


def _case(
    problem: str,
    variant: str,
    penalty: tuple[str, str, float, float, str] | None = None,
    *,
    init: str = "seed",
    batch_size: int = 0,
    epochs: int = FULL_BATCH_STEPS,
    seed: int = 0,
    id_suffix: str = "",
    clip: tuple[float, float] = (0.0, 0.0),
    schedule: dict[str, Any] | None = None,
) -> dict[str, Any]:
    problems = PROBLEMS + LOGISTIC_PROBLEMS + MLP_PROBLEMS
    _, dataset, model, fit_intercept, *hidden = next(p for p in problems if p[0] == problem)
    name, hyper, lr = VARIANT[variant]
    if dataset == "lesson" and name != "lbfgs":
        lr = LESSON_LR
    plabel, kind, lam, l1_ratio, method = penalty or ("none", "none", 0.0, 0.5, "prox")
    d = len(datasets()[dataset]["X"][0])
    theta0 = np.zeros(d + int(fit_intercept))
    if init == "seed":
        theta0[:d] = 0.1 * np.arange(1, d + 1)  # the lesson's w = [0.1, 0.2, ...]
    if hidden:  # a network: torch's default init, drawn from default_rng(seed)
        theta0 = mlp_init(d, hidden[0], fit_intercept, seed)
        lr = lr if name == "lbfgs" else lr * MLP_LR_SCALE
    every_epoch = batch_size > 0 or name == "lbfgs"  # each L-BFGS epoch is up to max_iter iterations
    case = {
        "id": f"{variant}/{plabel}/{problem}{id_suffix}",
        "dataset": dataset,
        "model": model,
        "fit_intercept": fit_intercept,
        "init": init,
        "theta0": theta0.tolist(),
        "optimizer": name,
        "hyper": dict(hyper),
        "penalty": {"kind": kind, "lam": lam, "l1_ratio": l1_ratio, "l1_method": method},
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "clip": {"norm": clip[0], "value": clip[1]},
        "record_epochs": list(range(1, epochs + 1)) if every_epoch else record_epochs(epochs),
    }
    if schedule:  # gdlab's schedule options (only in the cases that have one)
        case["schedule"] = dict(schedule)
    if hidden:  # the hidden layers' widths (only in the network cases), fewer epochs recorded
        case["hidden"] = list(hidden[0])
        case["record_epochs"] = MLP_LBFGS_RECORD if name == "lbfgs" else MLP_RECORD
    return case


def case_specs() -> list[dict[str, Any]]:
    """Every case, without its trajectory."""
    cases = [_case(problem, variant) for variant, *_ in VARIANTS for problem, *_ in PROBLEMS]
    for penalty in PENALTIES:
        for variant in PENALIZED_VARIANTS:
            for problem in PENALIZED_PROBLEMS:
                cases.append(_case(problem, variant, penalty))
    # Start at w = 0: the first L1 subgradient must be sign(0) = 0 (linear model: relu'(0) = 0 would freeze it).
    l1_sub = next(p for p in PENALTIES if p[0] == "l1-subgradient")
    # (Adafactor from w = 0: the RMS of the weights is 0, so eps2 alone sets the first steps' size.)
    for variant in ("sgd", "adam", "adafactor"):
        cases.append(_case("syn-linear-bias", variant, l1_sub, init="zeros", id_suffix="-zeros-init"))
    # relu'(0) = 0, as torch's threshold backward has it: from theta = 0 with a bias every z is exactly 0,
    # so the gradient vanishes and nothing moves (relu'(0) = 1 would start training).
    # Adafactor there: a zero second moment, floored at eps1^2 (None: the dtype's epsilon), times a zero gradient.
    for variant in ("sgd", "adafactor"):
        cases.append(_case("syn-relu-bias", variant, init="zeros", id_suffix="-zeros-init"))
    # Mini-batch SGD with momentum, shuffled as core.training.fit shuffles (40 rows, batches 12+12+12+4).
    l1_prox = next(p for p in PENALTIES if p[0] == "l1-prox")
    for penalty in (None, l1_prox):
        cases.append(
            _case(
                "syn-linear-bias",
                "sgd-momentum",
                penalty,
                batch_size=12,
                epochs=50,
                seed=3,
                id_suffix="-minibatch12",
            )
        )
    # Gradient clipping before the step (torch.nn.utils.clip_grad_norm_, then clip_grad_value_), the
    # penalty's gradient included: norms and values small enough to clip at most steps.
    l2 = next(p for p in PENALTIES if p[0] == "l2")
    for variant in ("sgd", "sgd-momentum", "adam", "adamw"):
        for problem in ("lesson", "syn-linear-bias", "syn-relu-bias"):
            cases.append(_case(problem, variant, clip=(0.5, 0.0), id_suffix="-clipnorm0.5"))
            cases.append(_case(problem, variant, l2, clip=(0.0, 0.05), id_suffix="-clipvalue0.05"))
        cases.append(_case("syn-linear", variant, l2, clip=(1.0, 0.2), id_suffix="-clipnorm1-value0.2"))
    cases += lbfgs_cases()
    cases += logistic_case_specs()
    cases += mlp_case_specs()
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


def lbfgs_cases() -> list[dict[str, Any]]:
    """L-BFGS: every variant on every problem; the penalties it can take (the squares, and L1 by
    the subgradient, autograd of |w|; the prox is refused) where well conditioned; and a step
    schedule, which sets the param group's lr before each step(closure)."""
    penalty = {p[0]: p for p in PENALTIES}
    cases = [_case(problem, variant, epochs=LBFGS_EPOCHS) for variant, *_ in LBFGS_VARIANTS for problem, *_ in PROBLEMS]
    for variant, plabel, problems in LBFGS_PENALIZED:
        cases += [_case(problem, variant, penalty[plabel], epochs=LBFGS_EPOCHS) for problem in problems]
    step = {"lr_schedule": "step", "lr_step_size": 3, "lr_gamma": 0.5}
    for variant in ("lbfgs-short", "lbfgs-wolfe-short"):
        cases.append(_case("syn-relu-bias", variant, epochs=LBFGS_EPOCHS, schedule=step, id_suffix="-steplr"))
    return cases


# ---------------------------------------------------------------- logistic regression (issue 14)
#
# --model logistic against torch's BCEWithLogitsLoss: every optimizer variant above, without a
# penalty, with L2 and with the L1 prox, with and without a bias, on one small binary set.


def binary_data(n: int = 40, d: int = 3, seed: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A seeded binary set: standardized columns, labels drawn Bernoulli(sigmoid(X w + 0.3)) with a
    truly-zero weight; noisy enough that the classes overlap (the optimum is finite). The seed is
    one whose fitted bias is well away from 0: where the bias's gradient hovers around 0, Adam-type
    rules (NAdam, RAdam) amplify rounding and the cases fail the sensitivity check."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    z = X @ np.array([1.5, -1.0, 0.0])[:d] + 0.3
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    return X, y


def logistic_datasets() -> dict[str, dict[str, list]]:
    X, y = binary_data()
    return {"binary": {"X": X.tolist(), "y": y.tolist()}}


# Problems: (label, dataset, model, fit_intercept), as PROBLEMS.
LOGISTIC_PROBLEMS = [
    ("logistic", "binary", "logistic", False),
    ("logistic-bias", "binary", "logistic", True),
]
# Penalties: (label, kind, lambda, l1_ratio, l1_method), as PENALTIES. The L1 prox's lambda is large
# enough to zero the truly-zero weight along the way in about a third of the cases (exact zeros on
# both sides), not every weight.
LOGISTIC_PENALTIES = [
    ("l2", "l2", 0.1, 0.5, "prox"),
    ("l1-prox", "l1", 0.15, 0.5, "prox"),
]


def logistic_case_specs() -> list[dict[str, Any]]:
    """Every optimizer variant x (no penalty, L2, L1 prox) x (no bias, bias), 200 full-batch steps;
    every L-BFGS variant x (no penalty, L2: it refuses the prox) x (no bias, bias), LBFGS_EPOCHS."""
    cases = [
        _case(problem, variant, penalty)
        for variant, *_ in VARIANTS
        for penalty in (None, *LOGISTIC_PENALTIES)
        for problem, *_ in LOGISTIC_PROBLEMS
    ]
    l2 = next(p for p in LOGISTIC_PENALTIES if p[1] == "l2")
    cases += [
        _case(problem, variant, penalty, epochs=LBFGS_EPOCHS)
        for variant, *_ in LBFGS_VARIANTS
        for penalty in (None, l2)
        for problem, *_ in LOGISTIC_PROBLEMS
    ]
    return cases


# ---------------------------------------------------------------- networks (issue 14, --hidden)
#
# ReLU hidden layers in front of the output unit, as torch's nn.Sequential(Linear, ReLU, ...,
# Linear): every optimizer variant x (no penalty, L2) x (regression on the synthetic set, log loss
# on the binary set) with one hidden layer of 4; one variant per optimizer with two (4, 3); L-BFGS
# with L2. All with biases, from torch's default nn.Linear init drawn with numpy (mlp_init), at a
# fifth of the neuron's learning rates.

# Problems: (label, dataset, model, fit_intercept, hidden widths).
MLP_PROBLEMS = [
    ("mlp4", "synthetic", "linear", True, (4,)),
    ("mlp4-logistic", "binary", "logistic", True, (4,)),
    ("mlp4-3", "synthetic", "linear", True, (4, 3)),
    ("mlp4-3-logistic", "binary", "logistic", True, (4, 3)),
]
# The recorded epochs of a network case (the fixture stays under 3 MB): a few early, then sparse.
MLP_RECORD = [1, 2, 5, 10, 50, 100, 200]
MLP_LBFGS_RECORD = [1, 2, 3, 4, 5, 10, 15, 20, 25, 30]
# The variants' learning rates, scaled for the networks: at the neuron's, Adam-type rules and Rprop
# on a network amplify rounding (the sensitivity check); a fifth of them is well conditioned.
MLP_LR_SCALE = 0.2
# The two-layer cases: the first variant of each optimizer, and Adafactor's others (the factored
# second moment of every matrix).
MLP_DEEP_VARIANTS = ["sgd-momentum", "adam", "adamw-wd0.1", "rmsprop", "adagrad", "nadam", "radam", "adamax",
                     "adadelta", "asgd", "rprop", "adafactor", "adafactor-decay-eps-d", "adafactor-wd0.1"]  # fmt: skip


def mlp_shapes(d: int, hidden: tuple[int, ...]) -> list[tuple[int, int]]:
    """nn.Linear weight shapes (out, in), input layer first, one output unit."""
    sizes = (d, *hidden, 1)
    return [(sizes[k + 1], sizes[k]) for k in range(len(sizes) - 1)]


def mlp_init(d: int, hidden: tuple[int, ...], bias: bool, seed: int) -> np.ndarray:
    """torch's default nn.Linear init, W and b ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from
    numpy's default_rng(seed) layer by layer (W row-major, then b); laid out as gdlab's theta:
    every W, then every b."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for out, inp in mlp_shapes(d, hidden):
        bound = 1.0 / np.sqrt(inp)
        weights.append(rng.uniform(-bound, bound, (out, inp)).ravel())
        if bias:
            biases.append(rng.uniform(-bound, bound, out))
    return np.concatenate(weights + biases)


# Left out, as ill-conditioned (a 4-ulp change of y moves torch's path by more than MAX_SENSITIVITY):
# Rprop on the unpenalized log loss (the network separates the set, the logits grow, sign flips
# decide), RMSprop and Adagrad on the one-layer regression with L2 (1e-13 to 3e-13), and L-BFGS on a
# network without a penalty (non-convex: its exits differ) or where its path is as sensitive.
MLP_ILL_CONDITIONED = {
    "rprop/none/mlp4-logistic", "rprop-etas-steps/none/mlp4-logistic", "rprop/none/mlp4-3-logistic",
    "rmsprop-alpha-eps/l2/mlp4", "rmsprop-momentum/l2/mlp4", "rmsprop-centered-momentum/l2/mlp4", "adagrad/l2/mlp4",
}  # fmt: skip
MLP_LBFGS = [  # (variant, problem), all with L2
    ("lbfgs", "mlp4-logistic"),
    ("lbfgs", "mlp4-3-logistic"),
    ("lbfgs-wolfe", "mlp4"),
    ("lbfgs-wolfe", "mlp4-3-logistic"),
    ("lbfgs-short", "mlp4-logistic"),
    ("lbfgs-short", "mlp4-3-logistic"),
    ("lbfgs-wolfe-short", "mlp4-logistic"),
    ("lbfgs-wolfe-short", "mlp4-3-logistic"),
]


def mlp_case_specs() -> list[dict[str, Any]]:
    """Every variant x (none, L2) on the one-layer problems; the deep variants on the two-layer ones;
    L-BFGS with L2 (MLP_LBFGS); less the ill-conditioned (MLP_ILL_CONDITIONED)."""
    l2 = next(p for p in PENALTIES if p[0] == "l2")
    one, two = MLP_PROBLEMS[:2], MLP_PROBLEMS[2:]
    cases = [_case(p[0], v[0], pen) for v in VARIANTS for pen in (None, l2) for p in one]
    cases += [_case(p[0], v, None) for v in MLP_DEEP_VARIANTS for p in two]
    cases = [c for c in cases if c["id"] not in MLP_ILL_CONDITIONED]
    return cases + [_case(p, v, l2, epochs=LBFGS_EPOCHS) for v, p in MLP_LBFGS]


# ---------------------------------------------------------------- torch


def penalty_coefficients(penalty: dict[str, Any]) -> tuple[float, float]:
    """(coefficient of sum|w|, coefficient of sum w^2) in lambda * R(w)."""
    kind, lam, r = penalty["kind"], penalty["lam"], penalty["l1_ratio"]
    if kind == "l1":
        return lam, 0.0
    if kind == "l2":
        return 0.0, lam
    if kind == "elasticnet":
        return lam * r, lam * (1.0 - r)
    return 0.0, 0.0


# gdlab's option names -> torch's keyword, for the options torch takes in pairs.
PAIRS = {
    "betas": ("beta1", "beta2"),
    "etas": ("eta_minus", "eta_plus"),
    "step_sizes": ("step_size_min", "step_size_max"),
    "eps": ("eps1", "eps2"),  # Adafactor's pair (the others' eps is gdlab's epsilon)
}
CLASSES = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "adamax": torch.optim.Adamax,
    "adadelta": torch.optim.Adadelta,
    "asgd": torch.optim.ASGD,
    "rprop": torch.optim.Rprop,
    "adafactor": torch.optim.Adafactor,
    "lbfgs": torch.optim.LBFGS,
}


def make_optimizer(name: str, hyper: dict[str, Any], lr: float, weights: list, biases: list):
    """The torch.optim optimizer for gdlab's (name, hyperparameters), over the weight tensors, then
    the bias tensors (gdlab's theta order)."""
    cls = CLASSES[name]
    h = dict(hyper)
    defaults = cls([torch.zeros(1, requires_grad=True)]).defaults
    kwargs: dict[str, Any] = {"lr": lr}
    if "foreach" in defaults:  # LBFGS has no foreach implementation
        kwargs["foreach"] = False
    for pair, (first, second) in PAIRS.items():
        if first in h or second in h:
            kwargs[pair] = (h.pop(first, defaults[pair][0]), h.pop(second, defaults[pair][1]))
    if "epsilon" in h:
        kwargs["eps"] = h.pop("epsilon")
    kwargs.update(h)
    params: list = weights + biases
    if biases and kwargs.get("weight_decay", defaults.get("weight_decay", 0.0)):
        params = [{"params": weights}, {"params": biases, "weight_decay": 0.0}]  # gdlab never decays a bias
    return cls(params, **kwargs)


def run_case(case: dict[str, Any], data: dict[str, dict[str, list]]) -> list[list[float]]:
    """Train with torch.optim as the case says; theta (w then b) after each recorded epoch."""
    # torch keeps some optimizer state in scalars of the default dtype (NAdam's mu_product, ASGD's
    # eta): float32 unless set, which would round them to 1e-7. gdlab computes in float64 throughout.
    torch.set_default_dtype(torch.float64)
    f64 = torch.float64
    X_np = np.asarray(data[case["dataset"]]["X"], dtype=np.float64)
    y_np = np.asarray(data[case["dataset"]]["y"], dtype=np.float64)
    X, y = torch.tensor(X_np, dtype=f64), torch.tensor(y_np, dtype=f64)
    n, d = X_np.shape
    theta0 = np.asarray(case["theta0"], dtype=np.float64)
    weights, biases = initial_tensors(theta0, d, case)
    w, b = weights[0], (biases[0] if biases else None)  # the neuron's
    lr = case["lr"]
    opt = make_optimizer(case["optimizer"], case["hyper"], lr, weights, biases)
    l1, l2 = penalty_coefficients(case["penalty"])
    prox = l1 > 0 and case["penalty"]["l1_method"] == "prox"
    batch = n if case["batch_size"] <= 0 or case["batch_size"] >= n else case["batch_size"]
    rng = np.random.default_rng(case["seed"])
    wanted = set(case["record_epochs"])

    def objective(Xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if "hidden" in case:  # nn.Sequential(Linear, ReLU, ..., Linear): torch's own layers
            a = Xb
            for W, c in zip(weights[:-1], biases[:-1] or [None] * len(weights), strict=False):
                a = torch.relu(torch.nn.functional.linear(a, W, c))
            z = torch.nn.functional.linear(a, weights[-1], biases[-1] if biases else None)[:, 0]
        else:
            z = Xb @ w
            if b is not None:
                z = z + b
        if case["model"] == "logistic":
            loss = torch.nn.BCEWithLogitsLoss()(z, yb)  # mean over the rows, from the logit
        else:
            pred = torch.relu(z) if case["model"] == "relu" else z
            loss = ((pred - yb) ** 2).mean()
        if l2:
            loss = loss + l2 * sum((W**2).sum() for W in weights)
        if l1 and not prox:
            loss = loss + l1 * w.abs().sum()
        return loss

    def closure() -> torch.Tensor:  # L-BFGS: the full objective and its gradient, at the current w, b
        opt.zero_grad(set_to_none=True)
        loss = objective(X, y)
        loss.backward()
        return loss

    scheduler = make_scheduler(opt, case.get("schedule"))
    out = []
    for epoch in range(1, case["epochs"] + 1):
        if case["optimizer"] == "lbfgs":  # one step(closure) an epoch (full batch, no clipping, no prox)
            opt.step(closure)
            batches = []
        elif batch == n:
            batches = [None]
        else:
            order = rng.permutation(n)
            batches = [order[start : start + batch] for start in range(0, n, batch)]
        for idx in batches:
            opt.zero_grad(set_to_none=True)
            if idx is None:
                objective(X, y).backward()
            else:
                sel = torch.as_tensor(idx)
                objective(X[sel], y[sel]).backward()
            params = weights + biases
            if case["clip"]["norm"]:
                torch.nn.utils.clip_grad_norm_(params, case["clip"]["norm"], foreach=False)
            if case["clip"]["value"]:
                torch.nn.utils.clip_grad_value_(params, case["clip"]["value"], foreach=False)
            opt.step()
            if prox:
                with torch.no_grad():
                    w.copy_(torch.sign(w) * torch.clamp(w.abs() - lr * l1, min=0.0))
        if scheduler is not None:
            scheduler.step()
        if epoch in wanted:
            theta = np.concatenate([t.detach().numpy().ravel() for t in weights + biases])
            if not np.isfinite(theta).all():
                raise ArithmeticError(f"{case['id']}: torch diverged at epoch {epoch}")
            out.append(theta.tolist())
    return out


def initial_tensors(theta0: np.ndarray, d: int, case: dict[str, Any]) -> tuple[list, list]:
    """The weight and bias tensors (requires_grad) that theta0 lays out: the neuron's w (d,) and b
    (1,), or a network's nn.Linear weights (out, in) and biases (out,)."""
    shapes = mlp_shapes(d, tuple(case["hidden"])) if "hidden" in case else [(d,)]
    weights, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        weights.append(torch.tensor(theta0[at : at + size].reshape(shape), dtype=torch.float64, requires_grad=True))
        at += size
    biases = []
    if case["fit_intercept"]:
        for shape in shapes if "hidden" in case else [(1,)]:
            biases.append(torch.tensor(theta0[at : at + shape[0]], dtype=torch.float64, requires_grad=True))
            at += shape[0]
    return weights, biases


def make_scheduler(opt, schedule: dict[str, Any] | None):
    """torch's lr_scheduler for gdlab's schedule options (stepped once an epoch), or None (constant)."""
    if not schedule:
        return None
    if schedule["lr_schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(opt, schedule["lr_step_size"], schedule["lr_gamma"])
    raise ValueError(f"no torch scheduler for {schedule}")


MAX_SENSITIVITY = 1e-13


def sensitivity(case: dict[str, Any], data: dict[str, dict[str, list]], thetas: list[list[float]]) -> float:
    """How far the torch trajectory ``thetas`` moves when y moves by 4 ulps (max abs difference).

    A case whose dynamics amplify rounding (e.g. RMSprop oscillating around the
    optimum, where g / sqrt(v) acts like sign(g)) cannot be compared at 1e-10:
    two correct implementations that round differently part ways. Such cases are
    refused when the fixture is made.
    """
    shaken = {k: dict(v) for k, v in data.items()}
    y = np.asarray(data[case["dataset"]]["y"], dtype=np.float64)
    shaken[case["dataset"]]["y"] = (y * (1.0 + 2.0**-50)).tolist()
    a = np.asarray(thetas, dtype=np.float64)
    b = np.asarray(run_case(case, shaken), dtype=np.float64)
    return float(np.abs(a - b).max())


INT_OPTIONS = ("max_iter", "max_eval", "history_size")


def torch_defaults() -> dict[str, dict[str, Any]]:
    """torch.optim's defaults for the options gdlab exposes, under gdlab's names (None where torch's
    is None: Adafactor's eps1, LBFGS's line_search_fn; LBFGS's max_eval is its signature's None,
    which the constructor turns into max_iter * 5 // 4)."""
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    keep = {
        "sgd": ("momentum", "dampening", "nesterov"),
        "adam": ("betas", "eps", "amsgrad"),
        "adamw": ("betas", "eps", "amsgrad", "weight_decay"),
        "rmsprop": ("alpha", "eps", "momentum", "centered"),
        "adagrad": ("lr_decay", "eps"),
        "nadam": ("betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"),
        "radam": ("betas", "eps", "weight_decay", "decoupled_weight_decay"),
        "adamax": ("betas", "eps"),
        "adadelta": ("rho", "eps"),
        "asgd": ("lambd", "alpha", "t0"),
        "rprop": ("etas", "step_sizes"),
        "adafactor": ("beta2_decay", "eps", "d", "weight_decay"),
        "lbfgs": ("max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn"),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, cls in CLASSES.items():
        defaults = cls([p]).defaults
        if name == "lbfgs":  # the constructor resolves max_eval; the signature's default is None
            defaults = {**defaults, "max_eval": inspect.signature(cls).parameters["max_eval"].default}
        entry: dict[str, Any] = {}
        for key in keep[name]:
            value = defaults[key]
            if key in PAIRS and isinstance(value, tuple):
                first, second = PAIRS[key]
                entry[first], entry[second] = _number(first, value[0]), _number(second, value[1])
            elif key == "eps":
                entry["epsilon"] = float(value)
            else:
                entry[key] = _number(key, value)
        out[name] = entry
    return out


def _number(key: str, value: Any) -> Any:
    """A default as gdlab states it: None, a bool or a string as it is, a count an int, else a float."""
    if value is None or isinstance(value, (bool, str)):
        return value
    return int(value) if key in INT_OPTIONS else float(value)


def abs_grad_at_zero() -> float:
    """d|w|/dw at w = 0 as torch's autograd gives it (gdlab's subgradient uses sign(0) = 0)."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    w.abs().sum().backward()
    return float(w.grad[0])


def release(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0'."""
    return version.split("+", 1)[0]


def build_fixture() -> dict[str, Any]:
    data = datasets()
    cases = case_specs()
    for case in cases:
        thetas = run_case(case, data)
        shaken = sensitivity(case, data, thetas)
        if shaken > MAX_SENSITIVITY:
            raise ArithmeticError(
                f"{case['id']}: ill-conditioned, a 4-ulp change of y moves the torch trajectory by {shaken:.1e}"
            )
        case["sensitivity"] = float(f"{shaken:.1e}")
        case["thetas"] = thetas
    return {
        "description": "torch.optim reference trajectories for gdlab (float64, full batch unless batch_size > 0); "
        "thetas[k] is (w, b) after record_epochs[k] epochs. Regenerate: python scripts/make_torch_fixture.py",
        "torch_version": release(torch.__version__),
        "torch_build": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "dtype": "float64",
        "loss": "mean((f(X w + b) - y)^2) + lambda * R(w); f = relu or identity; "
        "logistic: BCEWithLogitsLoss(X w + b, y) + lambda * R(w)",
        "abs_grad_at_zero": abs_grad_at_zero(),
        "torch_defaults": torch_defaults(),
        "datasets": data,
        "cases": cases,
    }


# ---------------------------------------------------------------- output


def dumps(obj: Any, indent: int = 0) -> str:
    """JSON with one line per list of numbers (floats via repr), for readable diffs."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and all(isinstance(v, (list, dict)) for v in obj):
        return "[\n" + ",\n".join(inner + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, float) and not np.isfinite(obj):
        raise ValueError("non-finite value in the fixture")
    return json.dumps(obj)  # scalars and flat lists; json writes floats with repr


def main() -> int:
    if release(torch.__version__) != TORCH_VERSION:
        print(
            f"make_torch_fixture: refusing to run with torch {torch.__version__}; "
            f"the fixture is made with torch=={TORCH_VERSION} (pip install torch=={TORCH_VERSION})",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(1)
    fixture = build_fixture()
    text = dumps(fixture) + "\n"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {len(fixture['cases'])} cases, {len(text) / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
