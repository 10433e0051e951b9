"""Oracle tests: gdlab's numpy optimizers and penalties against torch.optim, step for step.

``tests/fixtures/torch_trajectories.json`` holds trajectories that torch==2.13.0
computed in float64 (``scripts/make_torch_fixture.py``, which shares no code with
``core``). Every case is replayed here through ``core.training.fit`` (the real
loop: model gradient, penalty, optimizer, prox, mini-batch shuffling) and theta
is compared after every recorded epoch. When torch is importable, the live tests
recompute the torch trajectories in-process with the script's own functions.

The two sides evaluate the same formulas in a different order (autograd vs the
hand-written gradient, ``addcdiv`` vs a product), so they agree to rounding, not
bit for bit: rtol 1e-10 with a small atol for entries that pass through zero.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core import optimizers
from core.config import TrainConfig
from core.data import Dataset
from core.training import components, fit

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PATH = ROOT / "tests" / "fixtures" / "torch_trajectories.json"
SCRIPT_PATH = ROOT / "scripts" / "make_torch_fixture.py"
FIXTURE = json.loads(FIXTURE_PATH.read_text())
CASES = FIXTURE["cases"]
RTOL, ATOL = 1e-10, 1e-12

# The lesson's final weights after 100 epochs (docs/design.md, "The seed's numbers").
LESSON_SGD_100 = [0.3644996182867053, 0.5455535728846579]
LESSON_ADAM_100 = [0.823853144243253, 0.9236083308245637]


def _params(predicate: Callable[[dict], bool]) -> list:
    selected = [pytest.param(case, id=case["id"]) for case in CASES if predicate(case)]
    assert selected, "the fixture has no case for this test"
    return selected


def _unpenalized(optimizer: str) -> Callable[[dict], bool]:
    return lambda c: (
        c["optimizer"] == optimizer
        and c["penalty"]["kind"] == "none"
        and c["batch_size"] == 0
        and not _clipped(c)
        and not _logistic(c)
        and not _mlp(c)
    )


def _mlp(case: dict) -> bool:
    """The network cases (--hidden, against torch's nn.Linear layers) have tests of their own."""
    return "hidden" in case


def _logistic(case: dict) -> bool:
    """The log-loss cases (--model logistic against BCEWithLogitsLoss) have tests of their own."""
    return case["model"] == "logistic" and not _mlp(case)


def _clipped(case: dict) -> bool:
    return bool(case["clip"]["norm"] or case["clip"]["value"])


def _penalized(kind: str, method: str | None = None) -> Callable[[dict], bool]:
    return lambda c: (
        c["penalty"]["kind"] == kind
        and (method is None or c["penalty"]["l1_method"] == method)
        and c["batch_size"] == 0
        and not _clipped(c)
        and not _logistic(c)
        and not _mlp(c)
    )


def _dataset(name: str) -> Dataset:
    data = FIXTURE["datasets"][name]
    X = np.asfortranarray(np.array(data["X"], dtype=np.float64))
    y = np.array(data["y"], dtype=np.float64)
    return Dataset(X, y, None, None, tuple(f"x{i}" for i in range(X.shape[1])))


def _config(case: dict) -> TrainConfig:
    penalty = case["penalty"]
    return TrainConfig(
        model=case["model"],
        hidden=tuple(case.get("hidden", ())),
        fit_intercept=case["fit_intercept"],
        init=case["init"],
        epochs=case["epochs"],
        batch_size=case["batch_size"],
        learning_rate=case["lr"],
        seed=case["seed"],
        log_every=1,
        optimizer=case["optimizer"],
        penalty=penalty["kind"],
        lam=penalty["lam"],
        l1_ratio=penalty["l1_ratio"],
        l1_method=penalty["l1_method"],
        clip_norm=case["clip"]["norm"],
        clip_value=case["clip"]["value"],
        **case.get("schedule", {}),
        **case["hyper"],
    )


def run_core(case: dict) -> np.ndarray:
    """Theta after each of the case's recorded epochs, from core.training.fit."""
    cfg = _config(case)
    data = _dataset(case["dataset"])
    start = components(cfg, data.n_features)[0].init(cfg.init, cfg.seed)
    np.testing.assert_array_equal(start, case["theta0"], err_msg="core starts from another theta than torch did")
    seen: dict[int, np.ndarray] = {}

    def callback(epoch: int, metrics: dict, theta: np.ndarray) -> None:
        seen[epoch] = theta.copy()  # theta at the start of `epoch` = after `epoch` epochs

    result = fit(cfg, data, callback)
    assert result.epochs_run == cfg.epochs
    seen[cfg.epochs] = result.theta.copy()
    return np.array([seen[e] for e in case["record_epochs"]])


def errors(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max absolute difference, max relative difference over nonzero reference entries)."""
    diff = np.abs(ours - reference)
    nonzero = reference != 0
    rel = float((diff[nonzero] / np.abs(reference[nonzero])).max()) if nonzero.any() else 0.0
    return float(diff.max()), rel


def assert_same_trajectory(case: dict, ours: np.ndarray, reference, what: str = "torch") -> None:
    reference = np.asarray(reference, dtype=np.float64)
    assert ours.shape == reference.shape
    for k, epoch in enumerate(case["record_epochs"]):
        np.testing.assert_allclose(
            ours[k],
            reference[k],
            rtol=RTOL,
            atol=ATOL,
            err_msg=f"{case['id']}: theta differs from {what} after epoch {epoch}",
        )
    if case["penalty"]["l1_method"] == "prox" and case["penalty"]["kind"] in ("l1", "elasticnet"):
        # Soft-thresholding gives exact zeros: the same ones on both sides, at every recorded step.
        d = len(FIXTURE["datasets"][case["dataset"]]["X"][0])
        np.testing.assert_array_equal(
            ours[:, :d] == 0, reference[:, :d] == 0, err_msg=f"{case['id']}: exact zeros differ from {what}"
        )


def check_case(case: dict) -> None:
    assert_same_trajectory(case, run_core(case), case["thetas"])


# ---------------------------------------------------------------- the fixture itself


def test_fixture_was_made_with_torch_2_13_0():
    assert FIXTURE["torch_version"] == "2.13.0"
    assert FIXTURE["torch_build"].split("+")[0] == "2.13.0"
    assert FIXTURE["dtype"] == "float64"


def test_fixture_is_small_and_covers_every_optimizer_and_penalty():
    assert FIXTURE_PATH.stat().st_size < 3_000_000
    # Lion is not in torch.optim: test_core_optimizers checks it against the paper's algorithm.
    assert {c["optimizer"] for c in CASES} == set(optimizers.OPTIMIZERS) - {"lion"}
    assert {(c["penalty"]["kind"], c["penalty"]["l1_method"]) for c in CASES if c["penalty"]["kind"] != "none"} >= {
        ("l2", "prox"),
        ("l1", "prox"),
        ("l1", "subgradient"),
        ("elasticnet", "prox"),
        ("elasticnet", "subgradient"),
    }
    for case in CASES:
        n = len(FIXTURE["datasets"][case["dataset"]]["y"])
        steps = case["epochs"] * (1 if case["batch_size"] == 0 else -(-n // case["batch_size"]))
        if _mlp(case):  # a network's theta is longer: fewer epochs recorded (the file stays small)
            assert case["epochs"] >= (20 if case["optimizer"] == "lbfgs" else 200), case["id"]
        elif case["optimizer"] == "lbfgs":  # an epoch is up to max_iter iterations: every one is recorded
            assert case["epochs"] >= 20, case["id"]
            assert case["record_epochs"] == list(range(1, case["epochs"] + 1)), case["id"]
        else:
            assert steps >= 200, case["id"]
        assert case["record_epochs"][-1] == case["epochs"]
        assert len(case["thetas"]) == len(case["record_epochs"])


def test_core_defaults_are_torch_defaults():
    assert FIXTURE["torch_defaults"] == {k: v for k, v in optimizers.DEFAULTS.items() if k != "lion"}


def test_torch_abs_gradient_at_zero_is_zero_like_our_subgradient():
    assert FIXTURE["abs_grad_at_zero"] == 0.0
    assert np.sign(0.0) == 0.0


def test_torch_reproduces_the_lessons_numbers_after_100_epochs():
    by_id = {c["id"]: c for c in CASES}
    for case_id, expected in (("sgd/none/lesson", LESSON_SGD_100), ("adam/none/lesson", LESSON_ADAM_100)):
        case = by_id[case_id]
        theta = case["thetas"][case["record_epochs"].index(100)]
        np.testing.assert_allclose(theta, expected, rtol=1e-14, err_msg=case_id)


# ---------------------------------------------------------------- optimizers, no penalty


@pytest.mark.parametrize("case", _params(_unpenalized("sgd")))
def test_sgd_matches_torch_step_for_step(case):
    """Plain, momentum, momentum + dampening, Nesterov; relu/linear, with/without bias; relu'(0) = 0."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("adam")))
def test_adam_matches_torch_step_for_step(case):
    """Default and custom betas/eps, AMSGrad."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("adamw")))
def test_adamw_matches_torch_step_for_step(case):
    """Decoupled decay of the weights only (torch: the bias in a group with weight_decay=0)."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("rmsprop")))
def test_rmsprop_matches_torch_step_for_step(case):
    """Plain, alpha/eps, centered, momentum, centered + momentum."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("adagrad")))
def test_adagrad_matches_torch_step_for_step(case):
    """Plain and with lr_decay."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("nadam")))
def test_nadam_matches_torch_step_for_step(case):
    """Default, momentum_decay and beta2, weight decay in the gradient and decoupled (weights only)."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("radam")))
def test_radam_matches_torch_step_for_step(case):
    """Through the first steps (rho_t <= 5: SGD with momentum) into the rectified ones; weight decay both ways."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("adamax")))
def test_adamax_matches_torch_step_for_step(case):
    """Default and custom betas/eps."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("adadelta")))
def test_adadelta_matches_torch_step_for_step(case):
    """Default and custom rho/eps, at torch-sized learning rates (0.5, 1.0)."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("asgd")))
def test_asgd_matches_torch_step_for_step(case):
    """Default (t0 = 1e6: no averaging yet) and with lambd/alpha and averaging from step 20."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("rprop")))
def test_rprop_matches_torch_step_for_step(case):
    """Default and custom etas/step-size bounds: sign flips skip the step, sizes start at the lr."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("adafactor")))
def test_adafactor_matches_torch_step_for_step(case):
    """Defaults (eps1 None: float64's epsilon), beta2_decay/eps1/eps2/d, decoupled weight decay of the
    weights only; the weights and the bias are separate tensors, each with its own RMS (a bias at 0
    steps by eps2 * rho), and the update clipping by d."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_unpenalized("lbfgs")))
def test_lbfgs_matches_torch_step_for_step(case):
    """One LBFGS.step(closure) an epoch, fixed step or strong Wolfe line search, short histories and
    budgets: the same iterates whichever of torch's exits ends a step; a step schedule sets the lr
    of each step(closure). (The penalized cases are in the penalty tests below.)"""
    check_case(case)


@pytest.mark.parametrize("case", _params(_clipped))
def test_gradient_clipping_matches_torchs_clip_grad_norm_and_value(case):
    """clip_grad_norm_ and/or clip_grad_value_ before the step, the bias and the L2 term's gradient included."""
    check_case(case)


# ---------------------------------------------------------------- penalties


@pytest.mark.parametrize("case", _params(_penalized("l2")))
def test_l2_penalty_matches_torch_loss_term_step_for_step(case):
    """lambda * sum w^2 added to torch's loss (bias unpenalized)."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_penalized("l1", "subgradient")))
def test_l1_subgradient_matches_torch_autograd_of_abs(case):
    """lambda * sum|w| in torch's loss: autograd gives lambda * sign(w), sign(0) = 0 (see the zeros-init cases)."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_penalized("l1", "prox")))
def test_l1_prox_matches_torch_step_then_soft_threshold(case):
    """torch step, then w <- sign(w) max(|w| - lr lambda, 0): same values and the same exact zeros."""
    check_case(case)


@pytest.mark.parametrize("case", _params(_penalized("elasticnet")))
def test_elasticnet_matches_torch_step_for_step(case):
    """Squares in the loss; the L1 part by prox (threshold lr lambda r) or by subgradient."""
    check_case(case)


# ---------------------------------------------------------------- mini-batches


@pytest.mark.parametrize("case", _params(lambda c: c["batch_size"] > 0))
def test_minibatch_sgd_momentum_fit_matches_torch_with_the_same_shuffles(case):
    """fit's per-epoch default_rng(seed).permutation(n) order, a short last batch, theta after every epoch."""
    assert case["optimizer"] == "sgd"
    assert case["hyper"].get("momentum", 0) > 0
    check_case(case)


# ---------------------------------------------------------------- logistic regression

LOGISTIC_MAX_ABS = 1e-12  # observed: 2.5e-14 (RMSprop), most cases 4e-16


@pytest.mark.parametrize("case", _params(_logistic))
def test_logistic_matches_torch_bce_with_logits_step_for_step(case):
    """--model logistic against torch's BCEWithLogitsLoss: every optimizer variant, without a penalty,
    with L2 and with the L1 prox (the same exact zeros), with and without a bias; theta within 1e-12."""
    ours = run_core(case)
    worst = float(np.abs(ours - np.asarray(case["thetas"])).max())
    assert worst <= LOGISTIC_MAX_ABS, f"{case['id']}: {worst:.1e} from torch"
    assert_same_trajectory(case, ours, case["thetas"])


def test_logistic_cases_cover_every_variant_penalty_and_bias():
    cases = [c for c in CASES if _logistic(c)]
    combos = {(c["id"].split("/")[0], c["penalty"]["kind"], c["fit_intercept"]) for c in cases}
    variants = {c["id"].split("/")[0] for c in CASES if not _logistic(c) and c["penalty"]["kind"] == "none"}
    penalties = {v: ("none", "l2") if v.startswith("lbfgs") else ("none", "l2", "l1") for v in variants}  # no prox
    assert combos == {(v, p, b) for v in variants for p in penalties[v] for b in (False, True)}
    assert set(np.unique(FIXTURE["datasets"]["binary"]["y"])) == {0.0, 1.0}
    assert any((np.asarray(c["thetas"])[:, :3] == 0).any() for c in cases if c["penalty"]["kind"] == "l1")


# ---------------------------------------------------------------- networks (--hidden)

MLP_MAX_ABS = 1e-10  # the bound; observed worst: see test_mlp_cases_cover (printed by -s)


@pytest.mark.parametrize("case", _params(_mlp))
def test_mlp_matches_torch_linear_layers_step_for_step(case):
    """ReLU hidden layers (4, or 4 and 3) and biases, from torch's default nn.Linear init drawn with
    numpy: every optimizer variant (Adafactor factoring each weight matrix's second moment as torch
    does), without a penalty and with L2 on every weight (never a bias), regression and log loss."""
    ours = run_core(case)
    worst = float(np.abs(ours - np.asarray(case["thetas"])).max())
    assert worst <= MLP_MAX_ABS, f"{case['id']}: {worst:.1e} from torch"
    assert_same_trajectory(case, ours, case["thetas"])


def test_mlp_cases_cover_every_optimizer_both_losses_and_two_depths():
    cases = [c for c in CASES if _mlp(c)]
    assert {c["optimizer"] for c in cases} == set(optimizers.OPTIMIZERS) - {"lion"}
    assert {(c["model"], len(c["hidden"])) for c in cases} == {(m, k) for m in ("linear", "logistic") for k in (1, 2)}
    assert {c["penalty"]["kind"] for c in cases} == {"none", "l2"}
    variants = {c["id"].split("/")[0] for c in CASES if not _mlp(c)}
    assert {c["id"].split("/")[0] for c in cases} == variants
    assert any(c["optimizer"] == "adafactor" and len(c["hidden"]) == 2 for c in cases)


# ---------------------------------------------------------------- live torch


@pytest.fixture(scope="module")
def fixture_script():
    pytest.importorskip("torch", exc_type=ImportError)  # absent or broken: skip the live tests
    spec = importlib.util.spec_from_file_location("make_torch_fixture", SCRIPT_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_live_fixture_script_describes_the_committed_cases(fixture_script):
    """The script's case list and data are the committed ones (regenerate the JSON if this fails)."""
    assert fixture_script.datasets() == FIXTURE["datasets"]
    specs = fixture_script.case_specs()
    assert [{k: v for k, v in c.items() if k not in ("thetas", "sensitivity")} for c in CASES] == specs
    assert fixture_script.torch_defaults() == FIXTURE["torch_defaults"]
    assert fixture_script.abs_grad_at_zero() == 0.0


def _one_per_variant_and_penalty() -> Callable[[dict], bool]:
    """Live torch reruns a sample: one case of each optimizer on the neuron (and one of each
    mini-batch, init, clipping and schedule kind), one of each penalty on the logistic neuron,
    and three networks. The committed fixture, which every case is checked against above, is what
    these vouch for (and the script's case list is checked whole, below); rerunning all of it
    would cost the suite 100 s of CPU, the networks most."""
    first: dict[tuple, str] = {}
    mlp_kept = {("sgd", 1), ("adam", 2), ("adafactor", 2), ("lbfgs", 1)}
    for case in CASES:
        if _mlp(case):
            if (case["optimizer"], len(case["hidden"])) in mlp_kept:
                first.setdefault(("mlp", case["optimizer"], len(case["hidden"])), case["id"])
            continue
        if _logistic(case):
            first.setdefault(("logistic", case["penalty"]["kind"]), case["id"])
            continue
        _, penalty, problem = case["id"].split("/", 2)
        kind = next((k for k in ("zeros-init", "minibatch", "clip", "steplr") if k in problem), "")
        first.setdefault((case["optimizer"], kind) if not kind else (kind,), case["id"])
        first.setdefault(("penalty", penalty), case["id"])
    chosen = set(first.values())
    return lambda c: c["id"] in chosen


@pytest.mark.parametrize("case", _params(_one_per_variant_and_penalty()))
def test_live_torch_trajectory_matches_core_and_fixture(case, fixture_script):
    live = fixture_script.run_case(case, FIXTURE["datasets"])
    assert_same_trajectory(case, np.asarray(live), case["thetas"], what="the committed fixture")
    assert_same_trajectory(case, run_core(case), live, what="live torch")
