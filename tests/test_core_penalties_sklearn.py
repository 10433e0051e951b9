r"""Oracle tests: converged penalized fits equal scikit-learn's Lasso, Ridge, ElasticNet and LogisticRegression.

gdlab minimizes (docs/design.md, "Conventions"), over the weights w and an unpenalized bias b,

.. math::
    J(w, b) = \frac{1}{n} \lVert y - Xw - b \rVert^2 + \lambda R(w), \qquad
    R(w) = r \lVert w \rVert_1 + (1 - r) \lVert w \rVert_2^2

(r = 1 for ``l1``, r = 0 for ``l2``). The full-batch loop of ``core.training.fit``
with plain SGD and the proximal L1 step is ISTA: gradient step on the smooth part
(the MSE and the squares), then soft-thresholding by lr * lambda * r. For a step
size lr below 1/L, L the Lipschitz constant of the smooth part's gradient, it
converges linearly (the problem is strongly convex here) to the minimizer of J,
whatever lr is, so the converged weights can be compared with scikit-learn's
coordinate-descent / Cholesky solutions of the same problem. Each estimator
scales its objective differently; the scalings below make the minimizers equal.

The bias is unpenalized on both sides (``fit_intercept`` on both sides); gdlab's
exact zeros (soft-thresholding) must sit where scikit-learn's are (coordinate
descent also gives exact zeros).

With ``--standardize true`` the same fits, trained on the z-scores of raw features (the
shipped diabetes table: columns from 0.5 to 35 in spread, means up to 189), predict on RAW
inputs what ``make_pipeline(StandardScaler(), estimator)`` predicts, through the scaler the
Dataset carries, through weights.json's original-units weights, and through the logged model.
The logistic model (``--model logistic``, the mean cross-entropy in place of the MSE) is
compared with LogisticRegression at the end of the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.config import TrainConfig
from core.data import Dataset, synthetic
from core.neuron import forward, original_units
from core.training import fit, load_data

N, D, N_INFORMATIVE, NOISE, DATA_SEED = 200, 8, 3, 0.5, 1
OFFSET = 3.0  # added to y for the problems with an intercept, so that the bias has work to do
WEIGHT_ATOL = 1e-9  # observed: ~1e-15
SK = {"tol": 1e-14, "max_iter": 1_000_000}


def _problem(fit_intercept: bool) -> Dataset:
    X, y, names, w_true = synthetic(N, D, N_INFORMATIVE, NOISE, DATA_SEED)
    assert (w_true[N_INFORMATIVE:] == 0).all()
    if fit_intercept:
        y = y + OFFSET
    return Dataset(X, y, None, None, names)


def _step_size(data: Dataset, fit_intercept: bool, penalty: str, lam: float, l1_ratio: float = 0.5) -> float:
    """0.9 / L, L the Lipschitz constant of the smooth part's gradient on ``data``'s training rows."""
    X = data.X_train
    n = len(data.y_train)
    Xt = np.column_stack([X, np.ones(n)]) if fit_intercept else X
    l2_weight = {"l2": lam, "elasticnet": lam * (1.0 - l1_ratio)}.get(penalty, 0.0)
    # Smooth part: (1/n)||y - X~ theta||^2 + l2_weight ||w||^2  ->  L = 2 lambda_max(X~^T X~ / n) + 2 l2_weight.
    lipschitz = 2.0 * np.linalg.eigvalsh(Xt.T @ Xt / n).max() + 2.0 * l2_weight
    return float(0.9 / lipschitz)


def _converged_fit(
    data: Dataset, fit_intercept: bool, penalty: str, lam: float, l1_ratio: float = 0.5, epochs: int = 2000
):
    """Full-batch proximal gradient with lr = 0.9 / L, run well past convergence."""
    cfg = TrainConfig(
        model="linear",
        fit_intercept=fit_intercept,
        init="zeros",
        epochs=epochs,
        learning_rate=_step_size(data, fit_intercept, penalty, lam, l1_ratio),
        log_every=epochs,
        optimizer="sgd",
        penalty=penalty,
        lam=lam,
        l1_ratio=l1_ratio,
        l1_method="prox",
    )
    result = fit(cfg, data)
    return np.array(result.weights), result.bias


def _assert_same_solution(ours_w, ours_b, est, fit_intercept: bool, *, sparse: bool) -> None:
    np.testing.assert_allclose(ours_w, est.coef_, rtol=0, atol=WEIGHT_ATOL)
    if fit_intercept:
        assert ours_b == pytest.approx(est.intercept_, abs=WEIGHT_ATOL)
    else:
        assert ours_b is None
        assert est.intercept_ == 0.0
    if sparse:
        zeros = est.coef_ == 0
        np.testing.assert_array_equal(ours_w == 0, zeros, err_msg="exact zeros differ from scikit-learn's")
        assert zeros[N_INFORMATIVE:].any(), "some truly-zero weights should be exact zeros"
        assert not zeros[:N_INFORMATIVE].any(), "the informative weights should survive"


BIAS = [pytest.param(False, id="no-intercept"), pytest.param(True, id="intercept")]


@pytest.mark.parametrize("fit_intercept", BIAS)
def test_l1_prox_converges_to_sklearn_lasso(fit_intercept):
    r"""Lasso minimizes (1/(2n))||y - Xw - b||^2 + alpha ||w||_1.

    Ours: (1/n)||y - Xw - b||^2 + lambda ||w||_1 = 2 [(1/(2n))||...||^2 + (lambda/2) ||w||_1],
    so the minimizers agree for **alpha = lambda / 2**.
    """
    lam = 0.1
    data = _problem(fit_intercept)
    w, b = _converged_fit(data, fit_intercept, "l1", lam)
    est = Lasso(alpha=lam / 2, fit_intercept=fit_intercept, **SK).fit(data.X_train, data.y_train)
    _assert_same_solution(w, b, est, fit_intercept, sparse=True)


@pytest.mark.parametrize("fit_intercept", BIAS)
def test_l2_converges_to_sklearn_ridge(fit_intercept):
    r"""Ridge minimizes ||y - Xw - b||^2 + alpha ||w||^2 (a sum, not a mean).

    Ours times n: ||y - Xw - b||^2 + n lambda ||w||^2, so **alpha = n * lambda**.
    """
    lam = 0.1
    data = _problem(fit_intercept)
    w, b = _converged_fit(data, fit_intercept, "l2", lam)
    n = len(data.y_train)
    est = Ridge(alpha=n * lam, fit_intercept=fit_intercept, solver="cholesky").fit(data.X_train, data.y_train)
    _assert_same_solution(w, b, est, fit_intercept, sparse=False)
    assert (w != 0).all()


@pytest.mark.parametrize("fit_intercept", BIAS)
@pytest.mark.parametrize("l1_ratio", [pytest.param(0.5, id="r=0.5"), pytest.param(0.8, id="r=0.8")])
def test_elasticnet_prox_converges_to_sklearn_elasticnet(fit_intercept, l1_ratio):
    r"""ElasticNet minimizes (1/(2n))||y - Xw - b||^2 + alpha rho ||w||_1 + (alpha (1 - rho) / 2) ||w||^2.

    Ours halved: (1/(2n))||...||^2 + (lambda r / 2) ||w||_1 + (lambda (1 - r) / 2) ||w||^2. Matching terms,
    alpha rho = lambda r / 2 and alpha (1 - rho) = lambda (1 - r); adding them,
    **alpha = lambda (1 - r/2)**, and then **rho = (lambda r / 2) / alpha = r / (2 - r)**.
    """
    lam = 0.2
    data = _problem(fit_intercept)
    w, b = _converged_fit(data, fit_intercept, "elasticnet", lam, l1_ratio)
    alpha, rho = lam * (1.0 - l1_ratio / 2.0), l1_ratio / (2.0 - l1_ratio)
    est = ElasticNet(alpha=alpha, l1_ratio=rho, fit_intercept=fit_intercept, **SK).fit(data.X_train, data.y_train)
    _assert_same_solution(w, b, est, fit_intercept, sparse=True)


def test_scalings_make_the_objectives_proportional():
    """The three conversions, checked on the objectives themselves at random points."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)), rng.standard_normal(30)
    n, lam, r = len(y), 0.3, 0.4

    def ours(w, l1_ratio):
        return np.mean((y - X @ w) ** 2) + lam * (l1_ratio * np.abs(w).sum() + (1 - l1_ratio) * w @ w)

    def lasso(w, alpha):
        return np.sum((y - X @ w) ** 2) / (2 * n) + alpha * np.abs(w).sum()

    def ridge(w, alpha):
        return np.sum((y - X @ w) ** 2) + alpha * w @ w

    def enet(w, alpha, rho):
        return np.sum((y - X @ w) ** 2) / (2 * n) + alpha * rho * np.abs(w).sum() + alpha * (1 - rho) / 2 * w @ w

    for w in rng.standard_normal((5, 4)):
        assert ours(w, 1.0) == pytest.approx(2 * lasso(w, lam / 2))
        assert ours(w, 0.0) == pytest.approx(ridge(w, n * lam) / n)
        assert ours(w, r) == pytest.approx(2 * enet(w, lam * (1 - r / 2), r / (2 - r)))


# --- standardized features: the pipeline StandardScaler -> estimator, on raw inputs -----------------

DIABETES = str(Path(__file__).resolve().parents[1] / "examples" / "diabetes.csv")
PREDICT_ATOL = 1e-8  # on targets of 25..346; observed: ~1e-12
STANDARDIZED_EPOCHS = 3000  # every case below has converged by 2000 (measured)
SPLIT = {"validation_fraction": 0.25, "seed": 0}


def _diabetes(standardize: bool) -> Dataset:
    cfg = TrainConfig(dataset=DIABETES, target="target", standardize=standardize, **SPLIT)
    return load_data(cfg)


def _sklearn_twin(penalty: str, lam: float, l1_ratio: float, n: int):
    """The estimator of the same objective on standardized features (the mapping of the tests above)."""
    if penalty == "l2":
        return Ridge(alpha=n * lam, solver="cholesky")
    if penalty == "l1":
        return Lasso(alpha=lam / 2, **SK)
    return ElasticNet(alpha=lam * (1.0 - l1_ratio / 2.0), l1_ratio=l1_ratio / (2.0 - l1_ratio), **SK)


STANDARDIZED = [
    pytest.param("l2", 1.0, 0.0, 0, id="ridge"),
    pytest.param("l1", 1.0, 1.0, 2, id="lasso"),  # (the expected number of exact zeros)
    pytest.param("elasticnet", 4.0, 0.5, 1, id="elasticnet"),
]


@pytest.mark.parametrize(("penalty", "lam", "l1_ratio", "zeros"), STANDARDIZED)
def test_standardized_fits_predict_raw_inputs_as_the_standardscaler_pipeline(penalty, lam, l1_ratio, zeros):
    raw, std = _diabetes(False), _diabetes(True)
    w, b = _converged_fit(std, True, penalty, lam, l1_ratio, STANDARDIZED_EPOCHS)
    pipe = make_pipeline(StandardScaler(), _sklearn_twin(penalty, lam, l1_ratio, len(raw.y_train)))
    pipe.fit(raw.X_train, raw.y_train)
    scaler, est = pipe[0], pipe[-1]
    np.testing.assert_allclose(w, est.coef_, rtol=0, atol=WEIGHT_ATOL)
    assert b == pytest.approx(est.intercept_, abs=WEIGHT_ATOL)
    assert (w == 0).sum() == zeros
    np.testing.assert_array_equal(w == 0, est.coef_ == 0)
    w_raw, b_raw = original_units(w, b, std.mean, std.scale)
    np.testing.assert_allclose(w_raw, est.coef_ / scaler.scale_, rtol=1e-9, atol=WEIGHT_ATOL)
    for X in (raw.X_train, raw.X_val):  # raw rows in; the validation rows were never seen by the scaler
        expected = pipe.predict(X)
        np.testing.assert_allclose(
            forward(X, w, b, "linear", mean=std.mean, scale=std.scale), expected, atol=PREDICT_ATOL
        )
        np.testing.assert_allclose(X @ w_raw + b_raw, expected, rtol=0, atol=PREDICT_ATOL)


def test_the_logged_model_takes_raw_inputs_and_predicts_as_the_pipeline(tracking):
    """End to end: `train --standardize true` on the CSV, then the LoggedModel loaded with
    mlflow.pyfunc and fed raw DataFrames; weights.json's original units predict the same."""
    import json

    import mlflow
    import pandas as pd
    from click.testing import CliRunner

    from steps.train import train

    penalty, lam, l1_ratio = "elasticnet", 4.0, 0.5
    raw, std = _diabetes(False), _diabetes(True)
    lr = _step_size(std, True, penalty, lam, l1_ratio)
    args = ["--dataset", DIABETES, "--target", "target", "--model", "linear", "--fit-intercept", "true"]
    args += ["--standardize", "true", "--validation-fraction", str(SPLIT["validation_fraction"]), "--seed", "0"]
    args += ["--init", "zeros", "--epochs", str(STANDARDIZED_EPOCHS), "--log-every", str(STANDARDIZED_EPOCHS)]
    args += ["--learning-rate", repr(lr), "--penalty", penalty, "--lambda", str(lam), "--l1-ratio", str(l1_ratio)]
    result = CliRunner().invoke(train, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    assert run.data.params["standardize"] == "true"

    pipe = make_pipeline(StandardScaler(), _sklearn_twin(penalty, lam, l1_ratio, len(raw.y_train)))
    pipe.fit(raw.X_train, raw.y_train)
    names = list(raw.feature_names)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    for X in (raw.X_train, raw.X_val):
        frame = pd.DataFrame(X, columns=names)
        np.testing.assert_allclose(np.asarray(model.predict(frame)), pipe.predict(X), rtol=0, atol=PREDICT_ATOL)

    def artifact(name):
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=name, dst_path=str(tracking.root / "dl")
        )
        return json.loads(Path(local).read_text())

    spec, weights = artifact("model_spec.json"), artifact("weights.json")
    np.testing.assert_array_equal(spec["mean"], pipe[0].mean_)  # the scaler of the training split
    np.testing.assert_array_equal(spec["scale"], pipe[0].scale_)
    assert spec["weights"] == weights["weights"]  # as trained
    assert spec["bias"] == weights["bias"]
    original = weights["original"]
    np.testing.assert_allclose(
        raw.X_val @ np.array(original["weights"]) + original["bias"], pipe.predict(raw.X_val), rtol=0, atol=PREDICT_ATOL
    )
    example = model.input_example  # raw rows, as the model takes them (the training rows mapped back)
    np.testing.assert_allclose(example[names].to_numpy(), raw.X_train[:2], rtol=1e-15)


# ---------------------------------------------------------------- logistic regression
#
# gdlab's logistic objective (--model logistic) is the mean binary cross-entropy plus the same penalty,
#     J(w, b) = (1/n) sum_i l_i(w, b) + lambda R(w),   l_i = log(1 + exp(z_i)) - y_i z_i,  z_i = x_i w + b;
# LogisticRegression minimizes C sum_i l_i + P(w) with P = rho ||w||_1 + ((1 - rho)/2) ||w||^2 (rho =
# l1_ratio: 0 is its L2 penalty 1/2 ||w||^2, 1 its L1 ||w||_1), the intercept unpenalized. Dividing J by
# k = lambda (2 - r):
#     J / k = (1/(n k)) sum_i l_i + (r / (2 - r)) ||w||_1 + ((1 - r) / (2 - r)) ||w||^2,
# and (1 - rho)/2 = (1 - r)/(2 - r) for rho = r/(2 - r). So **C = 1 / (n lambda (2 - r))**, **l1_ratio =
# r / (2 - r)**: l2 (r = 0) C = 1/(2 n lambda), l1 (r = 1) C = 1/(n lambda), elasticnet both. The smooth
# part's gradient is Lipschitz with L = lambda_max(X~^T X~)/(4n) + 2 lambda (1 - r) (sigma' <= 1/4), and
# the proximal loop with lr = 0.9/L converges to the minimizer, exact zeros where the optimum has them.

LOGISTIC_OFFSET = 1.0  # added to the teacher's logits for the problems with an intercept
LOGISTIC_SK = {"tol": 1e-14, "max_iter": 1_000_000}


def _logistic_problem(fit_intercept: bool) -> Dataset:
    from core.neuron import sigmoid

    X, y, names, w_true = synthetic(N, D, N_INFORMATIVE, seed=DATA_SEED, teacher="logistic")
    if fit_intercept:  # labels drawn around an offset, so that the bias has work to do
        u = np.random.default_rng(DATA_SEED + 100).uniform(size=N)
        y = (u < sigmoid(X @ w_true + LOGISTIC_OFFSET)).astype(np.float64)
    assert set(np.unique(y)) == {0.0, 1.0}
    return Dataset(X, y, None, None, names, classes=(0, 1))


def _converged_logistic_fit(data: Dataset, fit_intercept: bool, penalty: str, lam: float, l1_ratio: float):
    X, n = data.X_train, len(data.y_train)
    Xt = np.column_stack([X, np.ones(n)]) if fit_intercept else X
    l2_weight = {"l2": lam, "elasticnet": lam * (1.0 - l1_ratio)}.get(penalty, 0.0)
    lipschitz = np.linalg.eigvalsh(Xt.T @ Xt / n).max() / 4 + 2.0 * l2_weight
    epochs = 3000  # observed: converged to 1e-14 well before
    cfg = TrainConfig(
        model="logistic",
        fit_intercept=fit_intercept,
        init="zeros",
        epochs=epochs,
        learning_rate=0.9 / lipschitz,
        log_every=epochs,
        penalty=penalty,
        lam=lam,
        l1_ratio=l1_ratio,
    )
    result = fit(cfg, data)
    return np.array(result.weights), result.bias


def _sklearn_logistic(data: Dataset, fit_intercept: bool, lam: float, r: float):
    from types import SimpleNamespace

    from sklearn.linear_model import LogisticRegression

    C, rho = 1.0 / (len(data.y_train) * lam * (2.0 - r)), r / (2.0 - r)
    solver = "newton-cholesky" if r == 0 else "saga"  # saga: the solver of L1 and elastic net
    est = LogisticRegression(C=C, l1_ratio=rho, solver=solver, fit_intercept=fit_intercept, **LOGISTIC_SK)
    est.fit(data.X_train, data.y_train)
    return SimpleNamespace(coef_=est.coef_[0], intercept_=float(est.intercept_[0]) if fit_intercept else 0.0)


@pytest.mark.parametrize("fit_intercept", BIAS)
@pytest.mark.parametrize(
    ("penalty", "lam", "l1_ratio"),
    [
        pytest.param("l2", 0.05, 0.0, id="l2"),
        pytest.param("l1", 0.06, 1.0, id="l1"),
        pytest.param("elasticnet", 0.06, 0.5, id="elasticnet-r=0.5"),
        pytest.param("elasticnet", 0.06, 0.8, id="elasticnet-r=0.8"),
    ],
)
def test_logistic_converges_to_sklearn_logistic_regression(fit_intercept, penalty, lam, l1_ratio):
    """C = 1 / (n lambda (2 - r)), l1_ratio = r / (2 - r) (derivation above); weights and bias to 1e-9
    (observed ~1e-14), the same exact zeros with an L1 term."""
    data = _logistic_problem(fit_intercept)
    w, b = _converged_logistic_fit(data, fit_intercept, penalty, lam, l1_ratio)
    est = _sklearn_logistic(data, fit_intercept, lam, l1_ratio)
    _assert_same_solution(w, b, est, fit_intercept, sparse=penalty != "l2")


def test_logistic_scaling_makes_the_objectives_proportional():
    """J = lambda (2 - r) S = S / (C n) for C and rho as above, at random points (r = 0 is l2, 1 is l1)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)), (rng.random(30) < 0.5).astype(float)
    n, lam = len(y), 0.3

    def ours(w, r):
        z = X @ w
        return np.mean(np.logaddexp(0, z) - y * z) + lam * (r * np.abs(w).sum() + (1 - r) * w @ w)

    def sklearn_objective(w, C, rho):
        z = X @ w
        return C * np.sum(np.logaddexp(0, z) - y * z) + rho * np.abs(w).sum() + (1 - rho) / 2 * w @ w

    for w in rng.standard_normal((5, 4)):
        for r in (0.0, 0.4, 1.0):
            C, rho = 1 / (n * lam * (2 - r)), r / (2 - r)
            assert ours(w, r) == pytest.approx(lam * (2 - r) * sklearn_objective(w, C, rho), rel=1e-13)
