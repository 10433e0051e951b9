"""The classic 2-D test functions of optimization, as objectives any optimizer can train on.

``--dataset rosenbrock`` (or beale, himmelblau, rastrigin, booth, ill_conditioned) trains no
model on no data: the two parameters are the point (x, y) and the loss is f(x, y). Each
function is written out by hand with its exact gradient (numpy, vectorized: ``value`` takes
arrays of points, for contours), its known global minima, a classic start and a plot extent:

    rosenbrock       f = (1 - x)^2 + 100 (y - x^2)^2                 min f(1, 1) = 0
    beale            f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2
                         + (2.625 - x + xy^3)^2                       min f(3, 0.5) = 0
    himmelblau       f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2           four minima, f = 0
    rastrigin        f = 20 + x^2 - 10 cos(2 pi x) + y^2 - 10 cos(2 pi y)
                                                                      min f(0, 0) = 0
    booth            f = (x + 2y - 7)^2 + (2x + y - 5)^2              min f(1, 3) = 0
    ill_conditioned  f = (x^2 + kappa y^2) / 2                        min f(0, 0) = 0

:class:`Objective` gives a function the interface the training loop uses of a model
(``init``, ``loss``, ``loss_and_grad``, ``workspace``, ``split``, ``n_features``,
``n_weights``, ``tensors``, ``fit_intercept``); the data arguments are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .models import explicit_init

# ill_conditioned's kappa when none is given (the CLI's --condition-number default).
DEFAULT_CONDITION_NUMBER = 10.0


def rosenbrock(x, y):
    """f = (1 - x)^2 + 100 (y - x^2)^2: a curved, narrow valley; the minimum is at its far end."""
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def rosenbrock_grad(x, y):
    """df/dx = -2 (1 - x) - 400 x (y - x^2),  df/dy = 200 (y - x^2)."""
    r = y - x * x
    return -2.0 * (1.0 - x) - 400.0 * x * r, 200.0 * r


def _beale_terms(x, y):
    return 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y**3


def beale(x, y):
    """f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2: flat plateaus, steep walls."""
    a, b, c = _beale_terms(x, y)
    return a * a + b * b + c * c


def beale_grad(x, y):
    """With a, b, c the three terms: df/dx = 2a (y - 1) + 2b (y^2 - 1) + 2c (y^3 - 1),
    df/dy = 2a x + 4b xy + 6c xy^2."""
    a, b, c = _beale_terms(x, y)
    return (
        2.0 * a * (y - 1.0) + 2.0 * b * (y * y - 1.0) + 2.0 * c * (y**3 - 1.0),
        2.0 * a * x + 4.0 * b * x * y + 6.0 * c * x * y * y,
    )


def himmelblau(x, y):
    """f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2: four global minima, a local maximum between them."""
    return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2


def himmelblau_grad(x, y):
    """With a = x^2 + y - 11, b = x + y^2 - 7: df/dx = 4x a + 2b,  df/dy = 2a + 4y b."""
    a, b = x * x + y - 11.0, x + y * y - 7.0
    return 4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b


def rastrigin(x, y):
    """f = 20 + x^2 - 10 cos(2 pi x) + y^2 - 10 cos(2 pi y) (A = 10): a bowl covered in local minima."""
    return 20.0 + x * x - 10.0 * np.cos(2.0 * np.pi * x) + y * y - 10.0 * np.cos(2.0 * np.pi * y)


def rastrigin_grad(x, y):
    """df/dx = 2x + 20 pi sin(2 pi x),  df/dy = 2y + 20 pi sin(2 pi y)."""
    return 2.0 * x + 20.0 * np.pi * np.sin(2.0 * np.pi * x), 2.0 * y + 20.0 * np.pi * np.sin(2.0 * np.pi * y)


def booth(x, y):
    """f = (x + 2y - 7)^2 + (2x + y - 5)^2: a quadratic bowl, tilted (Hessian eigenvalues 18 and 2)."""
    return (x + 2.0 * y - 7.0) ** 2 + (2.0 * x + y - 5.0) ** 2


def booth_grad(x, y):
    """With a = x + 2y - 7, b = 2x + y - 5: df/dx = 2a + 4b,  df/dy = 4a + 2b."""
    a, b = x + 2.0 * y - 7.0, 2.0 * x + y - 5.0
    return 2.0 * a + 4.0 * b, 4.0 * a + 2.0 * b


def ill_conditioned(x, y, kappa: float = DEFAULT_CONDITION_NUMBER):
    """f = (x^2 + kappa y^2) / 2: an axis-aligned quadratic whose Hessian diag(1, kappa) has
    condition number kappa (gradient descent is stable for lr < 2 / kappa, and then crawls
    along x at rate (1 - lr))."""
    return 0.5 * (x * x + kappa * y * y)


def ill_conditioned_grad(x, y, kappa: float = DEFAULT_CONDITION_NUMBER):
    """df/dx = x,  df/dy = kappa y."""
    return 1.0 * x, kappa * y


@dataclass(frozen=True)
class Function:
    """One test function: its value and gradient, where it is lowest, where to start, what to show."""

    title: str
    formula: str  # for legends
    value: Callable
    grad: Callable
    minima: tuple[tuple[float, float], ...]  # every global minimum (f = 0 for all six)
    start: tuple[float, float]  # init "seed"
    extent: tuple[tuple[float, float], tuple[float, float]]  # ((x_lo, x_hi), (y_lo, y_hi))
    levels: str  # contour levels: "log" or "linear"


FUNCTIONS = {
    "rosenbrock": Function(
        "Rosenbrock", "(1 − x)² + 100 (y − x²)²", rosenbrock, rosenbrock_grad,
        ((1.0, 1.0),), (-1.2, 1.0), ((-2.0, 2.0), (-1.0, 3.0)), "log",
    ),
    "beale": Function(
        "Beale", "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²", beale, beale_grad,
        ((3.0, 0.5),), (1.0, 1.0), ((-4.5, 4.5), (-4.5, 4.5)), "log",
    ),
    "himmelblau": Function(
        "Himmelblau", "(x² + y − 11)² + (x + y² − 7)²", himmelblau, himmelblau_grad,
        (
            (3.0, 2.0),
            (-2.805118086952745, 3.131312518250573),
            (-3.779310253377747, -3.283185991286169),
            (3.5844283403304917, -1.8481265269644034),
        ),
        (0.0, 0.0), ((-5.0, 5.0), (-5.0, 5.0)), "log",
    ),
    "rastrigin": Function(
        "Rastrigin", "20 + x² − 10 cos 2πx + y² − 10 cos 2πy", rastrigin, rastrigin_grad,
        ((0.0, 0.0),), (-2.2, 2.7), ((-5.12, 5.12), (-5.12, 5.12)), "linear",
    ),
    "booth": Function(
        "Booth", "(x + 2y − 7)² + (2x + y − 5)²", booth, booth_grad,
        ((1.0, 3.0),), (-5.0, -5.0), ((-10.0, 10.0), (-10.0, 10.0)), "log",
    ),
    "ill_conditioned": Function(
        "Ill-conditioned quadratic", "(x² + κ y²) / 2", ill_conditioned, ill_conditioned_grad,
        ((0.0, 0.0),), (-4.0, 1.0), ((-5.0, 5.0), (-5.0, 5.0)), "log",
    ),
}  # fmt: skip
NAMES = tuple(FUNCTIONS)


@dataclass(frozen=True)
class Objective:
    """A test function with the interface of :class:`core.models.Model` that the training loop
    uses: the parameters theta are the point (x, y), the loss is f(x, y), X and y are ignored.

    ``condition_number`` is ill_conditioned's kappa (>= 1); the other functions have none.
    """

    name: str
    condition_number: float = DEFAULT_CONDITION_NUMBER

    n_features = 2  # the two coordinates, which the loop treats as the weights (penalized, decayed)
    n_weights = 2
    n_params = 2
    tensors = ((slice(0, 2), (2,)),)  # one tensor, the point
    fit_intercept = False

    def __post_init__(self) -> None:
        if self.name not in FUNCTIONS:
            raise ValueError(f"unknown test function {self.name!r}; choose from {', '.join(NAMES)}")
        if not self.condition_number >= 1.0:
            raise ValueError(f"condition_number must be >= 1, got {self.condition_number}")

    @property
    def function(self) -> Function:
        return FUNCTIONS[self.name]

    @property
    def formula(self) -> str:
        text = self.function.formula
        return text.replace("κ", f"{self.condition_number:g}") if self.name == "ill_conditioned" else text

    def _kwargs(self) -> dict:
        return {"kappa": self.condition_number} if self.name == "ill_conditioned" else {}

    def value(self, x, y):
        """f at the points (x, y): scalars or arrays of any (broadcastable) shape."""
        return self.function.value(x, y, **self._kwargs())

    def grad(self, x, y):
        """(df/dx, df/dy) at the points (x, y)."""
        return self.function.grad(x, y, **self._kwargs())

    def init(self, how: str = "seed", seed: int = 0) -> np.ndarray:
        """The start: ``seed`` is the function's classic start point, ``zeros`` the origin,
        ``normal`` draws N(0, 1/2) per coordinate with ``seed`` (as a 2-weight model's), and
        comma-separated numbers give the point itself ("-1.5,2")."""
        point = explicit_init(how)
        if point is not None:
            if len(point) != 2:
                raise ValueError(f"init gives {len(point)} numbers; a test function's point has 2 (x, y)")
            return np.array(point, dtype=np.float64)
        if how == "seed":
            return np.array(self.function.start, dtype=np.float64)
        if how == "normal":
            return np.random.default_rng(seed).normal(0.0, 1.0 / np.sqrt(2.0), 2)
        return np.zeros(2)  # "zeros"

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, None]:
        """``(point, None)``: the point stands where a model's weights would, and there is no bias."""
        return theta[:2], None

    def loss(self, theta: np.ndarray, X=None, y=None) -> float:
        """f(theta[0], theta[1]); X and y are ignored."""
        return float(self.value(theta[0], theta[1]))

    def losses(self, thetas: np.ndarray, X=None, y=None) -> np.ndarray:
        """f of each point, one a row of ``thetas`` (k, 2)."""
        return self.value(thetas[:, 0], thetas[:, 1])

    def workspace(self, n: int = 0, dtype=np.float64) -> np.ndarray:
        """The gradient's buffer (``n``, the number of rows, plays no part)."""
        return np.empty(2, dtype)

    def loss_and_grad(self, theta: np.ndarray, X=None, y=None, ws: np.ndarray | None = None):
        """f and its exact gradient at theta; with a workspace the gradient is written into it
        (and overwritten next call), as :meth:`core.models.Model.loss_and_grad` does."""
        grad = np.empty_like(theta) if ws is None else ws
        grad[0], grad[1] = self.grad(theta[0], theta[1])
        return self.loss(theta), grad
