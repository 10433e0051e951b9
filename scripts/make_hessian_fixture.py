"""Write tests/fixtures/torch_hessians.json: Hessians computed by torch.autograd, the oracle for
core.curvature where torch is not installed (tests/test_core_curvature.py checks against it always,
and against torch live where it is).

Independent of ``core``: the data, the models and the test functions are spelled out here in torch,
float64. Cases: the neuron (relu, linear, logistic; with and without a bias and an L2 term), every
test function at three points, and networks of one and two hidden layers (ReLU, theta = every W
row-major then every b, as core.mlp.MLP). Run from the repository root with torch==2.13.0::

    python scripts/make_hessian_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "torch_hessians.json"
torch.set_default_dtype(torch.float64)


def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([0.5, -1.0, 0.25]) + 0.1 * rng.normal(size=40)
    return X, y, (y > 0).astype(float)


def loss(kind, z, y):
    if kind == "linear":
        return ((z - y) ** 2).mean()
    if kind == "relu":
        return ((torch.relu(z) - y) ** 2).mean()
    return torch.nn.functional.binary_cross_entropy_with_logits(z, y)


def function(name, kappa):
    def f(p):
        x, y = p[0], p[1]
        return {
            "rosenbrock": lambda: (1 - x) ** 2 + 100 * (y - x * x) ** 2,
            "beale": lambda: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2,
            "himmelblau": lambda: (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
            "rastrigin": lambda: 20 + x * x + y * y - 10 * (torch.cos(2 * torch.pi * x) + torch.cos(2 * torch.pi * y)),
            "booth": lambda: (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2,
            "ill_conditioned": lambda: 0.5 * (x * x + kappa * y * y),
        }[name]()

    return f


def network(kind, hidden, X, y, l2):
    sizes = (X.shape[1], *hidden, 1)
    shapes = [(sizes[k + 1], sizes[k]) for k in range(len(sizes) - 1)]
    n_weights = sum(o * i for o, i in shapes)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def objective(theta):
        at, b_at, a = 0, n_weights, Xt
        for k, (out, inp) in enumerate(shapes):
            W = theta[at : at + out * inp].reshape(out, inp)
            at += out * inp
            a = a @ W.T + theta[b_at : b_at + out]
            b_at += out
            if k < len(shapes) - 1:
                a = torch.relu(a)
        return loss(kind, a[:, 0], yt) + l2 * (theta[:n_weights] ** 2).sum()

    return objective, n_weights + sum(o for o, _ in shapes)


def hessian(objective, theta):
    return torch.autograd.functional.hessian(objective, torch.tensor(theta)).numpy().tolist()


def main():
    if torch.__version__.split("+")[0] != "2.13.0":
        raise SystemExit(f"torch 2.13.0 writes the fixture; this is {torch.__version__}")
    X, y_reg, y_cls = data()
    cases = []
    for kind in ("linear", "relu", "logistic"):
        y = y_cls if kind == "logistic" else y_reg
        for bias in (False, True):
            for l2 in (0.0, 0.05):
                theta = [0.3, -0.7, 0.4, 0.1][: 3 + bias]
                Xt, yt = torch.tensor(X), torch.tensor(y)

                def objective(t, kind=kind, bias=bias, l2=l2, Xt=Xt, yt=yt):
                    return loss(kind, Xt @ t[:3] + (t[3] if bias else 0.0), yt) + l2 * (t[:3] ** 2).sum()

                cases.append({"what": "neuron", "kind": kind, "bias": bias, "l2": l2, "theta": theta,
                              "hessian": hessian(objective, theta)})  # fmt: skip
    for name in ("rosenbrock", "beale", "himmelblau", "rastrigin", "booth", "ill_conditioned"):
        kappa = 100.0 if name == "ill_conditioned" else 10.0
        for point in ((-1.2, 1.0), (0.3, -0.8), (2.5, 0.4)):
            cases.append({"what": "function", "name": name, "kappa": kappa, "theta": list(point),
                          "hessian": hessian(function(name, kappa), list(point))})  # fmt: skip
    rng = np.random.default_rng(3)
    for hidden in ((6,), (4, 3)):
        for kind in ("linear", "logistic"):
            y = y_cls if kind == "logistic" else y_reg
            objective, p = network(kind, hidden, X, y, 0.01)
            theta = rng.normal(scale=0.5, size=p).tolist()
            cases.append({"what": "network", "kind": kind, "hidden": list(hidden), "l2": 0.01, "theta": theta,
                          "hessian": hessian(objective, theta)})  # fmt: skip
    OUT.write_text(json.dumps({"torch": torch.__version__, "X": X.tolist(), "y": y_reg.tolist(),
                               "labels": y_cls.tolist(), "cases": cases}))  # fmt: skip
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
