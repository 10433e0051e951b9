"""`l1`: SGD on MSE + lambda * sum|w| (the lesson's L1 script, with the penalty in the update)."""

from steps.cli.options import COMMON, apply, command
from steps.run.runner import execute, make_config


@command(
    examples=(
        "python -m steps.l1 --lambda 0.1 --dataset synthetic",
        "python -m steps.l1 --l1-method subgradient   # the lesson's way, kept to teach",
    )
)
@apply([*COMMON, "lambda", "l1-method"], {"lambda": {"default": 0.01}})
def l1(**options):
    """SGD with an L1 penalty. The default proximal step soft-thresholds the weights
    after each update, so small weights become exactly 0.

    The lesson only added the penalty to the logged loss; here it changes the weights.
    """
    execute(make_config("l1", **options), "l1")


if __name__ == "__main__":
    l1()
