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


@command()
@apply(COMMON + OPTIMIZER + PENALTY, {o.replace("_", "-"): _torch_default(o) for o in PER_OPTIMIZER})
def train(**options):
    """Train one ReLU (or linear) neuron with any optimizer and penalty, logged to MLflow.

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
