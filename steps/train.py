"""`train`: every optimizer, penalty and schedule; the presets call into the same runner."""

from __future__ import annotations

from .options import COMMON, OPTIMIZER, PENALTY, apply, command
from .runner import execute, make_config

EPSILON_HELP = (
    "Adam/AdamW/RMSprop/Adagrad: term added to the denominator "
    "[default: torch's for the optimizer: 1e-8, or 1e-10 for adagrad]"
)


@command()
@apply(COMMON + OPTIMIZER + PENALTY, {"epsilon": {"default": None, "help": EPSILON_HELP}})
def train(**options):
    """Train one ReLU (or linear) neuron with any optimizer and penalty, logged to MLflow.

    The objective is mean((y - f(X w + b))^2) + lambda * R(w); the update rules are
    torch.optim's. Options that do not apply to the chosen optimizer or penalty are
    refused unless left at their defaults.
    """
    defaults = {p.name: p.default for p in train.params}
    execute(make_config("train", defaults, **options), "train")


if __name__ == "__main__":
    train()
