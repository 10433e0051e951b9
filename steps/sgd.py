"""`sgd`: plain gradient descent, the lesson's first script (momentum and Nesterov optional)."""

from steps.cli.options import COMMON, apply, command
from steps.run.runner import execute, make_config


@command(
    examples=(
        "python -m steps.sgd",
        "python -m steps.sgd --momentum 0.9 --nesterov true --learning-rate 0.1",
        "mlflow run . -e sgd -P dataset=synthetic -P batch_size=32",
    )
)
@apply([*COMMON, "momentum", "dampening", "nesterov"])
def sgd(**options):
    """Gradient descent on the MSE: w <- w - lr * grad (torch.optim.SGD's rule).

    With the defaults this is the lesson: final weights [0.3644996182867053, 0.5455535728846579].
    """
    execute(make_config("sgd", **options), "sgd")


if __name__ == "__main__":
    sgd()
