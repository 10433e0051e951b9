"""The lesson in 40 lines: one ReLU neuron on a 2x2 set, trained by SGD and by Adam with gdlab's core.

    python examples/lesson.py

No MLflow, no Click: the model's loss and exact gradient (core.models), torch.optim's update
rules (core.optimizers, optax-shaped: ``init(params)`` and ``update(grad, state, params, lr)``
returning the step to subtract) and a plain loop. The entry points `sgd` and `adam` run the same
rules through core.training.fit and print the same weights.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from core import optimizers
from core.data import seed_data
from core.models import Model

X, y, _ = seed_data()  # X = [[0.1, 0.2], [0.4, 0.5]], y = [0.3, 0.9]
model = Model("relu", n_features=2)  # f(x) = max(0, x . w), no bias


def train(optimizer, lr=0.01, epochs=100):
    w = model.init("seed")  # the lesson's start: w = [0.1, 0.2]
    state = optimizer.init(w)
    for epoch in range(epochs):
        loss, grad = model.loss_and_grad(w, X, y)  # MSE and its gradient at the epoch's start
        step, state = optimizer.update(grad.copy(), state, w, lr)
        w = w - step
        if epoch % 25 == 0:
            print(f"  epoch {epoch:3d}  loss {loss:.6f}")
    return w


for name, optimizer in [("SGD", optimizers.sgd()), ("Adam", optimizers.adam())]:
    print(name)
    print(f"Final weights: {train(optimizer).tolist()}")
