"""`l2`: SGD on MSE + lambda * sum w^2 (the lesson's L2 script, with the penalty in the update)."""

from steps.cli.options import COMMON, apply, command
from steps.run.runner import execute, make_config


@command(
    examples=(
        "python -m steps.l2 --lambda 0.1",
        "mlflow run . -e l2 -P lambda=0.1 -P dataset=my.csv -P target=price",
    )
)
@apply([*COMMON, "lambda"], {"lambda": {"default": 0.01}})
def l2(**options):
    """SGD with an L2 penalty: the gradient gains 2 * lambda * w, shrinking every weight.

    The lesson only added the penalty to the logged loss; here it changes the weights.
    """
    execute(make_config("l2", **options), "l2")


if __name__ == "__main__":
    l2()
