"""`sgd`: plain gradient descent, the lesson's first script (momentum and Nesterov optional)."""

from steps.cli.options import COMMON, apply, command
from steps.run.runner import execute, make_config


@command()
@apply([*COMMON, "momentum", "dampening", "nesterov"])
def sgd(**options):
    """Gradient descent on the MSE: w <- w - lr * grad (torch.optim.SGD's rule).

    With the defaults this is the lesson: final weights [0.3644996182867053, 0.5455535728846579].
    """
    execute(make_config("sgd", **options), "sgd")


if __name__ == "__main__":
    sgd()
