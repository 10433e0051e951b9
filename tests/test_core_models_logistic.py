"""`--model logistic`: the sigmoid neuron on the log loss, its labels, metrics and logged model.

The numbers are checked against independent formulas here (the naive cross-entropy, finite
differences, scikit-learn's log_loss and accuracy); tests/test_core_optimizers_torch.py checks whole
trajectories against torch's BCEWithLogitsLoss and tests/test_core_penalties_sklearn.py converged fits
against scikit-learn's LogisticRegression.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose, assert_array_equal

from core import data, training
from core.config import TrainConfig, unused_options
from core.models import Model, log_loss
from core.neuron import forward, sigmoid
from steps.train import train


def problem(seed: int, fit_intercept: bool, n: int = 12, d: int = 4, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    model = Model("logistic", d, fit_intercept)
    X = np.asfortranarray(rng.standard_normal((n, d)))
    y = (rng.random(n) < 0.5).astype(np.float64)
    theta = scale * rng.standard_normal(model.n_params)
    return model, X, y, theta


def naive_cross_entropy(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ---------------------------------------------------------------- the model


def test_sigmoid_is_one_over_one_plus_exp_and_never_overflows():
    z = np.linspace(-30, 30, 121)
    assert_allclose(sigmoid(z), 1 / (1 + np.exp(-z)), rtol=1e-15, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp, no division by zero
        big = sigmoid(np.array([-1e308, -800.0, 0.0, 800.0, 1e308]))
    assert_array_equal(big, [0.0, 0.0, 0.5, 1.0, 1.0])
    assert sigmoid(np.array([-745.0]))[0] > 0  # exp(-745) is the smallest subnormal: still resolved
    assert sigmoid(np.float32([3.0])).dtype == np.float32


@pytest.mark.parametrize("fit_intercept", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("seed", range(3))
def test_log_loss_is_the_cross_entropy_and_its_gradient_the_finite_differences(seed, fit_intercept):
    model, X, y, theta = problem(seed, fit_intercept)
    loss, grad = model.loss_and_grad(theta, X, y)
    p = model.predict(theta, X)
    assert_allclose(p, sigmoid(model.logits(theta, X)), rtol=0, atol=0)
    assert loss == pytest.approx(naive_cross_entropy(p, y), rel=1e-14)
    assert loss == pytest.approx(model.loss(theta, X, y), rel=1e-15)
    # dL/dtheta = (1/n) [X 1]^T (p - y): the closed form, and central differences of the loss
    Xt = np.column_stack([X, np.ones(len(y))]) if fit_intercept else X
    assert_allclose(grad, Xt.T @ (p - y) / len(y), rtol=1e-13, atol=1e-16)
    h = 1e-6
    numeric = [
        (model.loss(theta + h * e, X, y) - model.loss(theta - h * e, X, y)) / (2 * h) for e in np.eye(len(theta))
    ]
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_log_loss_stays_exact_where_the_naive_formula_gives_inf_or_zero():
    X = np.array([[1.0], [1.0], [-1.0]])
    y = np.array([1.0, 0.0, 0.0])
    model = Model("logistic", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = model.loss_and_grad(np.array([800.0]), X, y)
    # rows: log1p(exp(-800)) ~ 0, 800 (the wrong side, no log(0)), log1p(exp(-800)) ~ 0
    assert loss == 800.0 / 3
    assert_allclose(grad, [(0.0 + 1.0 - 0.0) / 3], rtol=1e-15)
    tiny = model.loss(np.array([40.0]), X[[0]], y[[0]])  # log1p(exp(-40)): relative precision kept
    assert tiny == pytest.approx(np.exp(-40.0), rel=1e-15)


def test_loss_and_grad_with_a_workspace_allocates_nothing_and_equals_the_plain_call():
    model, X, y, theta = problem(5, True, n=20)
    ws = model.workspace(20)
    for k in (20, 7):  # a full batch, then a shorter one in the same buffers
        loss, grad = model.loss_and_grad(theta, X[:k], y[:k], ws)
        plain_loss, plain_grad = model.loss_and_grad(theta, X[:k], y[:k])
        assert grad is ws.grad
        assert loss == plain_loss
        assert_array_equal(grad, plain_grad)
    assert Model("relu", 4).workspace(20).scratch.size == 0  # only the log loss needs the scratch vector


def test_float32_loss_and_gradient_agree_with_float64():
    model, X, y, theta = problem(2, True, n=50)
    l64, g64 = model.loss_and_grad(theta, X, y)
    l32, g32 = model.loss_and_grad(theta.astype(np.float32), X.astype(np.float32), y.astype(np.float32))
    assert g32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


def test_losses_of_a_surface_equal_the_loss_of_each_vector():
    model, X, y, _ = problem(3, True)
    thetas = np.random.default_rng(1).standard_normal((7, model.n_params)) * 5
    assert_allclose(model.losses(thetas, X, y), [model.loss(t, X, y) for t in thetas], rtol=1e-14)
    assert_allclose(log_loss(X @ thetas[0, :4] + thetas[0, 4], y), model.loss(thetas[0], X, y), rtol=1e-15)


def test_metrics_are_the_accuracy_at_threshold_one_half_and_sklearns():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    model, X, y, theta = problem(4, True, n=40, scale=3.0)
    p = model.predict(theta, X)
    expected = sklearn_metrics.accuracy_score(y, (p > 0.5).astype(float))
    assert model.metrics(theta, X, y) == {"accuracy": expected}
    assert model.metrics(theta, X, y, X[:10], y[:10]) == {
        "accuracy": expected,
        "val_accuracy": model.accuracy(theta, X[:10], y[:10]),
    }
    assert model.loss(theta, X, y) == pytest.approx(sklearn_metrics.log_loss(y, p), rel=1e-12)
    assert Model("linear", 4, True).metrics(theta, X, y) == {}  # a regression has no accuracy
    # p exactly 0.5 (z = 0) is labelled 0, as scikit-learn's predict (decision_function > 0)
    assert Model("logistic", 1).accuracy(np.array([0.0]), np.array([[1.0]]), np.array([0.0])) == 1.0


# ---------------------------------------------------------------- labels and data


@pytest.mark.parametrize(
    ("values", "y", "classes"),
    [
        (np.array([0.0, 1.0, 1.0, 0.0]), [0, 1, 1, 0], (0, 1)),
        (np.array([0.9, 0.3]), [1, 0], (0.3, 0.9)),  # the lesson's seed targets
        (np.array([-1.0, 2.0, -1.0]), [0, 1, 0], (-1, 2)),  # numbers sort by value, not as text
        (np.array(["M", "B", "M"], dtype=object), [1, 0, 1], ("B", "M")),
        (np.array(["malignant", "benign"], dtype=object), [1, 0], ("benign", "malignant")),
    ],
)
def test_two_labels_become_0_and_1_in_sorted_order(values, y, classes):
    got_y, got_classes = data.binary_labels(values, "target")
    assert_array_equal(got_y, y)
    assert got_y.dtype == np.float64
    assert got_classes == classes
    assert [type(c) for c in got_classes] == [type(c) for c in classes]  # plain ints, floats, strs: JSON as such


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            np.array([0.1, 0.3, 0.5, 0.7, 0.9, 0.1, 1.1]),
            "target column 'y' has 6 distinct values (0.1, 0.3, 0.5, 0.7, 0.9, ...); --model logistic needs two",
        ),
        (np.array([1.0, 1.0]), "target column 'y' has 1 distinct value (1); --model logistic needs two"),
        (np.array(["a", "b", "c"], dtype=object), "target column 'y' has 3 distinct values (a, b, c); --model"),
    ],
)
def test_any_other_number_of_labels_is_a_data_error_naming_column_and_values(values, message):
    with pytest.raises(data.DataError) as err:
        data.binary_labels(values, "y")
    assert message in str(err.value)


def test_load_data_maps_text_labels_and_keeps_them_as_the_datasets_classes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,diagnosis\n1,2,M\n3,4,B\n5,6,M\n7,8,B\n")
    ds = training.load_data(TrainConfig(dataset=str(path), target="diagnosis", model="logistic"))
    assert ds.classes == ("B", "M")
    assert_array_equal(ds.y_train, [1, 0, 1, 0])
    assert_array_equal(ds.X_train, [[1, 2], [3, 4], [5, 6], [7, 8]])
    # the same file for a regression: text in the target is refused as before
    with pytest.raises(data.DataError, match=r"column 'diagnosis' has the non-numeric .* value 'M' on line 2"):
        training.load_data(TrainConfig(dataset=str(path), target="diagnosis", model="linear"))
    path.write_text("a,diagnosis\n1,M\n3,\n")
    with pytest.raises(data.DataError, match="column 'diagnosis' has a missing value on line 3"):
        training.load_data(TrainConfig(dataset=str(path), target="diagnosis", model="logistic"))


def test_seed_data_for_logistic_maps_0_3_and_0_9_to_0_and_1():
    ds = training.load_data(TrainConfig(model="logistic"))
    assert ds.classes == (0.3, 0.9)
    assert_array_equal(ds.y_train, [0.0, 1.0])
    assert training.load_data(TrainConfig()).classes is None  # a regression has none


def test_synthetic_logistic_labels_are_seeded_bernoulli_draws_of_the_teacher():
    X, y, _, w = data.synthetic(400, 5, 2, seed=3, teacher="logistic")
    X_lin, _, _, w_lin = data.synthetic(400, 5, 2, seed=3, teacher="linear")
    assert_array_equal(X, X_lin)  # the same X and true weights as the other teachers draw
    assert_array_equal(w, w_lin)
    # Replay the generator: X (d x n), the informative weights, then one uniform per row.
    rng = np.random.default_rng(3)
    rng.standard_normal((5, 400))
    rng.uniform(0.5, 2.0, 2)
    assert_array_equal(y, (rng.uniform(size=400) < sigmoid(X @ w)).astype(float))
    assert set(np.unique(y)) == {0.0, 1.0}
    ds = training.load_data(TrainConfig(dataset="synthetic", model="logistic"))
    assert ds.classes == (0, 1)
    assert "noise" in unused_options({"dataset": "synthetic", "model": "logistic"})
    assert "noise" not in unused_options({"dataset": "synthetic", "model": "linear"})


# ---------------------------------------------------------------- the loop


def test_fit_logs_accuracy_per_epoch_and_at_the_end_of_a_logistic_run():
    cfg = TrainConfig(
        dataset="synthetic",
        model="logistic",
        fit_intercept=True,
        validation_fraction=0.25,
        learning_rate=0.5,
        epochs=50,
    )
    ds = training.load_data(cfg)
    seen = []
    result = training.fit(cfg, ds, lambda epoch, metrics, theta: seen.append((dict(metrics), theta.copy())))
    model = Model("logistic", ds.n_features, True)
    for metrics, theta in seen:  # each at the weights the epoch starts from, like the loss
        assert metrics["loss"] == model.loss(theta, ds.X_train, ds.y_train)
        assert metrics["accuracy"] == model.accuracy(theta, ds.X_train, ds.y_train)
        assert metrics["val_accuracy"] == model.accuracy(theta, ds.X_val, ds.y_val)
    final = result.final
    assert final["final_accuracy"] == model.accuracy(result.theta, ds.X_train, ds.y_train)
    assert final["final_val_accuracy"] == model.accuracy(result.theta, ds.X_val, ds.y_val)
    assert final["final_accuracy"] > 0.75 > seen[0][0]["accuracy"] - 0.1
    assert final["final_loss"] < seen[0][0]["loss"]
    regression = training.fit(TrainConfig(epochs=3), training.load_data(TrainConfig()))
    assert not any("accuracy" in k for k in regression.final)


def test_mini_batch_logistic_training_reports_the_full_batch_loss_and_accuracy():
    cfg = TrainConfig(dataset="synthetic", model="logistic", batch_size=32, learning_rate=0.5, epochs=20, seed=1)
    ds = training.load_data(cfg)
    seen = []
    result = training.fit(cfg, ds, lambda epoch, metrics, theta: seen.append((dict(metrics), theta.copy())))
    model = Model("logistic", ds.n_features)
    for metrics, theta in seen:
        assert metrics["loss"] == model.loss(theta, ds.X_train, ds.y_train)
        assert metrics["accuracy"] == model.accuracy(theta, ds.X_train, ds.y_train)
    assert result.steps == 20 * 7  # 200 rows in batches of 32: six full and a short one
    assert result.final["final_loss"] < 0.7 * seen[0][0]["loss"]


def test_the_data_fingerprint_tells_labels_apart():
    from steps.run.fingerprint import data_sha

    X = np.asfortranarray(np.eye(2))
    y = np.array([0.0, 1.0])
    same = [data.Dataset(X, y, None, None, ("a", "b"), classes=classes) for classes in (("B", "M"), ("A", "B"), None)]
    assert len({data_sha(d) for d in same}) == 3  # `--reuse` never stands a run in for other labels


# ---------------------------------------------------------------- CLI, logged model


def labelled_csv(tmp_path, labels=("benign", "malignant"), n: int = 60):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 2))
    y = rng.random(n) < sigmoid(X @ np.array([2.0, -1.0]) + 0.5)
    frame = pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "diagnosis": np.where(y, labels[1], labels[0])})
    path = tmp_path / "labelled.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_logistic_run_logs_accuracy_and_a_model_that_returns_labels(tracking, tmp_path):
    path, frame = labelled_csv(tmp_path)
    args = ["--dataset", str(path), "--target", "diagnosis", "--model", "logistic", "--fit-intercept", "true"]
    args += ["--learning-rate", "0.5", "--epochs", "60", "--validation-fraction", "0.25"]
    result = CliRunner().invoke(train, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    metrics = run.data.metrics
    assert {"final_accuracy", "final_val_accuracy", "accuracy", "val_accuracy"} <= set(metrics)
    assert run.data.tags["classes"] == "0=benign, 1=malignant"
    assert [m.step for m in tracking.client.get_metric_history(run.info.run_id, "accuracy")] == list(range(60))
    spec_path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model_spec.json", dst_path=str(tmp_path / "dl")
    )
    with open(spec_path) as fh:
        spec = json.load(fh)
    assert spec["model"] == "logistic"
    assert spec["classes"] == ["benign", "malignant"]

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert model.metadata.signature.params.to_dict() == [
        {"name": "output", "type": "string", "default": "probability", "shape": None},
        {"name": "threshold", "type": "double", "default": 0.5, "shape": None},
    ]
    X = frame[["x0", "x1"]]
    p = forward(X.to_numpy(), np.array(spec["weights"]), spec["bias"], "logistic")
    assert_array_equal(model.predict(X), p)  # probabilities of "malignant" (class 1) by default
    labels = model.predict(X, params={"output": "label"})
    assert_array_equal(labels, np.where(p > 0.5, "malignant", "benign"))
    strict = model.predict(X, params={"output": "label", "threshold": 0.9})
    assert_array_equal(strict, np.where(p > 0.9, "malignant", "benign"))
    assert (strict == "malignant").sum() < (labels == "malignant").sum()
    assert set(model.predict(X, params={"output": "label", "threshold": 0.0})) == {"malignant"}  # every p > 0
    assert set(model.predict(X, params={"output": "label", "threshold": 1.0})) == {"benign"}  # no p > 1
    with pytest.raises(Exception, match="output must be one of probability, label"):
        model.predict(X, params={"output": "class"})
    with pytest.raises(Exception, match=r"threshold must be a probability in \[0, 1\]"):
        model.predict(X, params={"output": "label", "threshold": 1.5})


def test_a_regression_model_keeps_its_plain_signature(tracking):
    result = CliRunner().invoke(train, ["--epochs", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    assert "classes" not in run.data.tags
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert model.metadata.signature.params is None


# ---------------------------------------------------------------- the shipped example


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "breast_cancer.csv"


def test_the_breast_cancer_example_is_scikit_learns_data_with_text_labels():
    cfg = TrainConfig(dataset=str(EXAMPLE), target="diagnosis", model="logistic")
    ds = training.load_data(cfg)
    assert ds.X_train.shape == (569, 30)
    assert ds.classes == ("benign", "malignant")
    assert int(ds.y_train.sum()) == 212  # malignant = 1
    datasets = pytest.importorskip("sklearn.datasets")
    reference = datasets.load_breast_cancer()
    assert_array_equal(ds.X_train, reference.data)  # the values exactly, in scikit-learn's order
    assert list(ds.feature_names) == list(reference.feature_names)
    assert_array_equal(ds.y_train, reference.target == 0)  # scikit-learn's 0 is malignant


def test_the_readmes_breast_cancer_numbers():
    """docs/tutorials.md, "A worked example": plain SGD at the default rate, then Adam for 5000 epochs."""
    base = {"dataset": str(EXAMPLE), "target": "diagnosis", "model": "logistic", "fit_intercept": True}
    base["validation_fraction"] = 0.2
    sgd = training.fit(TrainConfig(**base), training.load_data(TrainConfig(**base))).final
    # each value as docs/tutorials.md prints it (to half a unit of its last digit)
    assert sgd["final_loss"] == pytest.approx(900.596, abs=5e-4)
    assert sgd["final_val_loss"] == pytest.approx(1015.44, abs=5e-3)
    assert (round(sgd["final_accuracy"], 3), round(sgd["final_val_accuracy"], 3)) == (0.382, 0.333)
    cfg = TrainConfig(**base, optimizer="adam", epochs=5000, log_every=5000)
    adam = training.fit(cfg, training.load_data(cfg)).final
    assert adam["final_loss"] == pytest.approx(0.100126, abs=5e-7)
    assert adam["final_val_loss"] == pytest.approx(0.13821, abs=5e-6)
    assert (round(adam["final_accuracy"], 3), round(adam["final_val_accuracy"], 3)) == (0.967, 0.956)
