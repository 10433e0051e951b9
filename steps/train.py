"""`train`: every optimizer, penalty and schedule; the presets call into the same runner."""

from __future__ import annotations

from core import optimizers
from steps.cli.options import COMMON, OPTIMIZER, OPTIONS, PENALTY, PER_OPTIMIZER, apply, command
from steps.run.runner import execute, make_config


def _torch_default(option: str) -> dict:
    """An option whose torch default depends on the optimizer: left to the optimizer (None), with
    each one's default in the help."""
    each = ", ".join(f"{name} {d[option]:g}" for name, d in optimizers.DEFAULTS.items() if option in d)
    flag = option.replace("_", "-")
    return {"default": None, "help": f"{OPTIONS[flag].help} [default: torch's for the optimizer: {each}]"}


@command(
    examples=(
        "python -m steps.train --optimizer adam --learning-rate 0.05 --dataset rosenbrock --epochs 500",
        "python -m steps.train --dataset examples/diabetes.csv --target target --model linear"
        " --fit-intercept true --standardize true",
        "python -m steps.train --optimizer adamw --penalty l2 --lambda 0.01 --lr-schedule cosine --dataset synthetic",
        "python -m steps.train --dataset examples/breast_cancer.csv --target diagnosis"
        " --model logistic --hidden 16 --standardize true",
        "mlflow run . -e train -P optimizer=rmsprop -P centered=true",
    )
)
@apply(COMMON + OPTIMIZER + PENALTY, {o.replace("_", "-"): _torch_default(o) for o in PER_OPTIMIZER})
def train(**options):
    """Train one model (the ReLU neuron, a linear or logistic one, or a network with --hidden), or a
    point on a test function, with any optimizer, penalty and schedule; logged to MLflow.

    The objective is mean((y - f(X w + b))^2) + lambda * R(w); the update rules are
    torch.optim's. With a test function as --dataset (rosenbrock, ...) the parameters are
    the point (x, y) and the objective f(x, y) + lambda * R(x, y). Options that do not apply
    to the chosen optimizer, penalty, schedule or dataset are refused unless left at their
    defaults.
    """
    defaults = {p.name: p.default for p in train.params}
    execute(make_config("train", defaults, **options), "train")


if __name__ == "__main__":
    train()
