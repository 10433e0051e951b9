r"""Penalties R(w) of the objective J(w) = mean((y - f(X))^2) + lambda * R(w).

    l1          R(w) = sum |w|
    l2          R(w) = sum w^2
    elasticnet  R(w) = r * sum |w| + (1 - r) * sum w^2        (r = l1_ratio)

Only the weights are penalized, never the bias. The smooth part (the squares)
enters through the gradient, 2 lambda (1 - r) w, before the optimizer sees it
(coupled, like an L2 term in the loss). The L1 part is handled by

* ``prox`` (default): after the optimizer's step, soft-threshold each weight by
  lr * lambda * r: w <- sign(w) max(|w| - lr lambda r, 0). This is the proximal
  gradient (ISTA) step of the L1 term and gives exact zeros.
* ``subgradient``: add lambda * r * sign(w) to the gradient (sign(0) = 0). It is
  kept for teaching: weights hover around zero instead of reaching it.

The lesson logged lambda * R(w) in its loss but never put it into the gradient,
so its L1 and L2 weights equalled plain SGD's. Here the penalty acts on the update.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

PENALTIES = ("none", "l1", "l2", "elasticnet")
L1_METHODS = ("prox", "subgradient")


@dataclass(frozen=True)
class Penalty:
    kind: str = "none"
    lam: float = 0.0
    l1_ratio: float = 0.5
    l1_method: str = "prox"

    def __post_init__(self) -> None:
        if self.kind not in PENALTIES:
            raise ValueError(f"unknown penalty {self.kind!r}; choose from {', '.join(PENALTIES)}")
        if self.l1_method not in L1_METHODS:
            raise ValueError(f"unknown l1 method {self.l1_method!r}; choose from {', '.join(L1_METHODS)}")
        if not (np.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lambda must be a finite number >= 0, got {self.lam}")
        if not 0.0 <= self.l1_ratio <= 1.0:
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio}")

    @cached_property
    def l1_weight(self) -> float:
        """The coefficient of sum |w| in lambda * R(w)."""
        return {"l1": self.lam, "elasticnet": self.lam * self.l1_ratio}.get(self.kind, 0.0)

    @cached_property
    def l2_weight(self) -> float:
        """The coefficient of sum w^2 in lambda * R(w)."""
        return {"l2": self.lam, "elasticnet": self.lam * (1.0 - self.l1_ratio)}.get(self.kind, 0.0)

    @cached_property
    def active(self) -> bool:
        return self.kind != "none" and self.lam > 0

    @cached_property
    def uses_prox(self) -> bool:
        return self.l1_weight > 0 and self.l1_method == "prox"

    def value(self, w: np.ndarray) -> float:
        """lambda * R(w)."""
        return float(self.values(w))

    def values(self, W: np.ndarray) -> np.ndarray:
        """lambda * R(w) of each weight vector, one a row of ``W`` (..., d)."""
        out = np.zeros(np.shape(W)[:-1])
        if self.l1_weight:
            out += self.l1_weight * np.abs(W).sum(axis=-1)
        if self.l2_weight:
            out += self.l2_weight * np.einsum("...i,...i->...", W, W)
        return out

    def add_grad(self, grad_w: np.ndarray, w: np.ndarray) -> None:
        """Add the gradient of the penalty's differentiable part to ``grad_w`` in place."""
        if self.l2_weight:
            grad_w += (2.0 * self.l2_weight) * w
        if self.l1_weight and self.l1_method == "subgradient":
            grad_w += self.l1_weight * np.sign(w)

    def prox(self, w: np.ndarray, lr: float) -> None:
        """Soft-threshold ``w`` in place by lr * (L1 coefficient) (prox method only)."""
        if self.uses_prox:
            threshold = lr * self.l1_weight
            np.copysign(np.maximum(np.abs(w) - threshold, 0.0), w, out=w)
            w += 0.0  # -0.0 -> 0.0: a zeroed weight prints and serializes as 0.0
