"""`adam`: the lesson's Adam script, torch.optim.Adam's rule (AMSGrad optional)."""

from steps.cli.options import COMMON, apply, command
from steps.run.runner import execute, make_config


@command(
    examples=(
        "python -m steps.adam",
        "python -m steps.adam --dataset rosenbrock --learning-rate 0.05 --epochs 500",
        "mlflow run . -e adam -P beta2=0.99",
    )
)
@apply([*COMMON, "beta1", "beta2", "epsilon", "amsgrad"])
def adam(**options):
    """Adam on the MSE, with torch's defaults (betas 0.9, 0.999; eps 1e-8 after the sqrt).

    With the defaults this is the lesson: final weights [0.8238531442432531, 0.9236083308245632]
    (the lesson printed [0.823853144243253, 0.9236083308245637]: 3e-16, the order of operations).
    """
    execute(make_config("adam", **options), "adam")


if __name__ == "__main__":
    adam()
