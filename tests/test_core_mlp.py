"""--hidden: a small network (core.mlp.MLP). Layout, torch's default init drawn with numpy, loss and
gradient against torch autograd, a logged model that predicts with the network, refusals.
(Trajectories of every optimizer against torch: tests/test_core_optimizers_torch.py's network cases.)"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose, assert_array_equal

from core.config import TrainConfig, unused_options
from core.mlp import MLP
from core.neuron import mlp_forward
from core.training import components, fit, load_data
from steps.cli.options import as_param
from steps.report.compare_runs import gather
from steps.report.compare_table import build_table
from steps.train import train

try:  # only the autograd oracle needs torch: the other tests run without it
    import torch
except ImportError:  # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install -e '.[torch]')")


def test_layout_every_weight_then_every_bias():
    m = MLP("linear", 3, True, hidden=(4, 2))
    assert m.shapes == [(4, 3), (2, 4), (1, 2)]
    assert (m.n_weights, m.n_params) == (12 + 8 + 2, 22 + 4 + 2 + 1)
    assert [t[1] for t in m.tensors] == [(4, 3), (2, 4), (1, 2), (4,), (2,), (1,)]
    theta = np.arange(m.n_params, dtype=float)
    (W1, b1), _, (_, b3) = m.layers(theta)
    assert_array_equal(W1, np.arange(12).reshape(4, 3))  # row-major, torch's Linear.weight (out, in)
    assert_array_equal(b1, [22, 23, 24, 25])
    assert_array_equal(b3, [28])
    assert MLP("linear", 3, False, hidden=(4,)).n_params == 16


def test_seed_init_is_torchs_default_drawn_in_the_documented_order():
    m = MLP("linear", 3, True, hidden=(4,))
    theta = m.init("seed", 5)
    assert_array_equal(theta, m.init("seed", 5))
    assert not np.array_equal(theta, m.init("seed", 6))
    rng = np.random.default_rng(5)
    W1, b1 = rng.uniform(-1 / 3**0.5, 1 / 3**0.5, (4, 3)), rng.uniform(-1 / 3**0.5, 1 / 3**0.5, 4)
    W2, b2 = rng.uniform(-0.5, 0.5, (1, 4)), rng.uniform(-0.5, 0.5, 1)
    assert_array_equal(theta, np.concatenate([W1.ravel(), W2.ravel(), b1, b2]))
    big = MLP("linear", 9, True, hidden=(400,)).init("seed", 0)
    assert 0.33 < np.abs(big[: 9 * 400]).max() <= 1 / 3  # U(-1/sqrt(9), 1/sqrt(9))


def _torch_net(m: MLP, theta: np.ndarray):
    sizes = (m.n_features, *m.hidden, 1)
    layers = []
    for k in range(len(sizes) - 1):
        layers += [torch.nn.Linear(sizes[k], sizes[k + 1], bias=m.fit_intercept, dtype=torch.float64), torch.nn.ReLU()]
    net = torch.nn.Sequential(*(layers if m.kind == "relu" else layers[:-1]))
    linear = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
    with torch.no_grad():
        for (W, b), layer in zip(m.layers(theta), linear, strict=True):
            layer.weight.copy_(torch.from_numpy(W))
            if b is not None:
                layer.bias.copy_(torch.from_numpy(b))
    return net, linear


@needs_torch
@pytest.mark.parametrize("kind", ["linear", "logistic", "relu"])
@pytest.mark.parametrize("hidden", [(4,), (5, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_loss_and_gradient_equal_torch_autograd(kind, hidden, bias):
    rng = np.random.default_rng(hash((kind, hidden, bias)) % 2**32)
    X = rng.standard_normal((50, 3))
    y = (rng.random(50) < 0.5).astype(float) if kind == "logistic" else rng.standard_normal(50)
    m = MLP(kind, 3, bias, hidden=hidden)
    theta = m.init("normal", 1) + 0.2 * rng.standard_normal(m.n_params)
    loss, grad = m.loss_and_grad(theta, np.asfortranarray(X), y)
    net, linear = _torch_net(m, theta)
    out = net(torch.from_numpy(X))[:, 0]
    yt = torch.from_numpy(y)
    ref = torch.nn.BCEWithLogitsLoss()(out, yt) if kind == "logistic" else ((out - yt) ** 2).mean()
    ref.backward()
    ref_grad = [layer.weight.grad.numpy().ravel() for layer in linear]
    ref_grad += [layer.bias.grad.numpy() for layer in linear] if bias else []
    assert abs(loss - ref.item()) <= 1e-12
    assert_allclose(grad, np.concatenate(ref_grad), rtol=0, atol=1e-12)
    assert abs(m.loss(theta, X, y) - ref.item()) <= 1e-12
    p = net(torch.from_numpy(X))[:, 0].detach().numpy()
    assert_allclose(m.predict(theta, X), 1 / (1 + np.exp(-p)) if kind == "logistic" else p, atol=1e-13)


def test_workspace_gradient_is_the_fresh_one_and_float32_trains():
    cfg = TrainConfig(dataset="synthetic", model="linear", hidden=(8,), fit_intercept=True, epochs=40,
                      optimizer="adam", learning_rate=0.05, n_samples=100, n_features=3)  # fmt: skip
    model = components(cfg, 3)[0]
    data = load_data(cfg)
    theta = model.init("seed", 0)
    ws = model.workspace(100)
    assert_array_equal(model.loss_and_grad(theta, data.X_train, data.y_train, ws)[1],
                       model.loss_and_grad(theta, data.X_train, data.y_train)[1])  # fmt: skip
    r64 = fit(cfg, data)
    r32 = fit(
        TrainConfig(**{**cfg.__dict__, "dtype": "float32"}),
        load_data(TrainConfig(**{**cfg.__dict__, "dtype": "float32"})),
    )
    assert r64.final["final_loss"] < 0.5 * model.loss(theta, data.X_train, data.y_train)
    assert abs(r32.final["final_loss"] - r64.final["final_loss"]) < 1e-3 * r64.final["final_loss"] + 1e-4


def test_refusals():
    with pytest.raises(ValueError, match="init zeros cannot train a network"):
        TrainConfig(hidden=(4,), init="zeros")
    with pytest.raises(ValueError, match="whole numbers >= 1"):
        TrainConfig(hidden=(4, 0))
    with pytest.raises(ValueError, match="init gives 2 numbers; the network has 16 parameters"):
        MLP("linear", 3, False, hidden=(4,)).init("1,2")
    result = CliRunner().invoke(train, ["--hidden", "4,x"])
    assert result.exit_code == 2
    assert "layer widths" in result.output
    result = CliRunner().invoke(train, ["--dataset", "rosenbrock", "--hidden", "4"])
    assert result.exit_code == 2
    assert "--hidden 4 does not apply to --dataset rosenbrock" in result.output


def test_unused_options_say_when_hidden_and_seed_act():
    assert "hidden" in unused_options({"hidden": ()})
    assert "hidden" in unused_options({"hidden": "none"})
    assert "hidden" not in unused_options({"hidden": "16,8"})
    neuron = {"hidden": (), "init": "seed", "validation_fraction": 0, "batch_size": 0}
    assert "seed" in unused_options(neuron)
    assert "seed" not in unused_options({**neuron, "hidden": (16,)})  # torch's init draws from --seed
    logged = {k: as_param(v) for k, v in TrainConfig(hidden=(16, 8)).params().items()}
    assert logged["hidden"] == "16,8"
    assert TrainConfig.from_params(logged).hidden == (16, 8)
    assert "hidden" not in TrainConfig().params()
    assert TrainConfig.from_params({"hidden": "none"}).hidden == ()


def test_cli_run_logs_a_network_that_predicts_like_core(tracking, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 2)) * [1.0, 30.0] + [0.0, 100.0]
    y = np.where(X[:, 0] * (X[:, 1] - 100) > 0, "yes", "no")
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": y})
    frame.to_csv(tmp_path / "xor.csv", index=False)
    args = ["--dataset", str(tmp_path / "xor.csv"), "--target", "label", "--model", "logistic", "--hidden", "8,4",
            "--fit-intercept", "true", "--standardize", "true", "--optimizer", "adam", "--learning-rate", "0.05",
            "--epochs", "150", "--seed", "3"]  # fmt: skip
    result = CliRunner().invoke(train, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = tracking.client.search_runs([tracking.experiment_id])
    assert (run.data.params["hidden"], run.data.params["seed"]) == ("8,4", "3")
    assert run.data.metrics["final_accuracy"] > 0.9  # XOR: no single neuron gets there
    spec_path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model_spec.json",
                                                    dst_path=str(tmp_path / "dl"))  # fmt: skip
    spec = json.loads(Path(spec_path).read_text())
    assert (spec["hidden"], len(spec["weights"]), len(spec["bias"])) == ([8, 4], 16 + 32 + 4, 8 + 4 + 1)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    raw = frame[["a", "b"]]
    mean, scale = np.array(spec["mean"]), np.array(spec["scale"])
    p = mlp_forward(raw.to_numpy(), spec["weights"], spec["bias"], (8, 4), "logistic", mean=mean, scale=scale)
    assert_array_equal(model.predict(raw), p)
    labels = model.predict(raw, params={"output": "label"})
    assert_array_equal(labels, np.where(p > 0.5, "yes", "no"))
    assert "Final parameters: 52 weights, 13 biases" in result.output  # not 65 numbers

    # compare: the network next to a neuron, its weights.json read (its bias is a list), hidden shown.
    neuron = CliRunner().invoke(train, [*args[: args.index("--hidden")], *args[args.index("--hidden") + 2 :]])
    assert neuron.exit_code == 0, neuron.output
    runs = tracking.client.search_runs([tracking.experiment_id])
    table = build_table(gather(tracking.client, runs))
    assert "hidden" in table.shown
    assert sorted(table.frame["hidden"].astype(str)) == ["8,4", "none"]
    assert not any("unreadable" in note for note in table.frame["note"])


def test_unused_options_read_a_parsed_single_width():
    # compare parses logged params: "16" comes back as the number 16
    assert "hidden" not in unused_options({"hidden": 16})
    assert "hidden" in unused_options({"hidden": "None"})


def test_a_network_too_large_for_memory_is_refused_before_any_run(tracking):
    # --hidden 100000000 was killed by the kernel after about a minute, silently, its run left RUNNING.
    from click.testing import CliRunner

    from steps.main import main
    from steps.train import train

    for command, hidden in ((train, "100000000"), (main, "20000,20000")):
        result = CliRunner().invoke(command, ["--hidden", hidden])
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '--hidden': {hidden}: a network of 4e+08 parameters" in result.output
        assert "more than this machine's" in result.output
    assert tracking.client.search_runs([tracking.experiment_id]) == []
