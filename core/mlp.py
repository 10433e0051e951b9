"""A small network: ReLU hidden layers in front of the neuron of :class:`core.models.Model`.

``--hidden 16,8`` adds layers of 16 and 8 ReLU units; ``--model`` still names the output unit
(``linear``: regression on the MSE, ``logistic``: a classifier on the log loss, ``relu``: the
lesson's neuron on top). As torch's ``nn.Sequential(Linear(d, 16), ReLU(), Linear(16, 8), ReLU(),
Linear(8, 1))``, with ``bias=fit_intercept`` in every layer.

Parameters are one flat ``theta``: **every weight first, then every bias**::

    theta = (W_1, W_2, ..., W_out, b_1, b_2, ..., b_out)

each ``W_k`` of torch's ``Linear.weight`` shape (out, in), row-major. So ``theta[:n_weights]`` is
exactly what penalties and decoupled weight decay act on (never a bias), as for the neuron.

Forward and backward side by side, with a_0 = X, r the output's residual as for the neuron
(dL/dz, the loss's own scale folded in) and G_k = dL/dZ_k (n, h_k):

    Z_k = a_{k-1} W_k^T + b_k,   a_k = max(0, Z_k)          (hidden layers)
    z   = a_L w_out + b_out                                 (the output's pre-activation)
    dL/dw_out = r^T a_L,         dL/db_out = sum(r)
    G_L = (r w_out^T) * [a_L > 0]
    dL/dW_k = G_k^T a_{k-1},     dL/db_k = sum over rows of G_k
    G_{k-1} = (G_k W_k) * [a_{k-1} > 0]

with ReLU'(0) = 0, as torch (a_k > 0 exactly where Z_k > 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .models import Model, explicit_init, output_residual
from .neuron import layer_shapes, mlp_forward, unpack


def check_hidden(hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of layer widths; raises ValueError unless every one is an int >= 1."""
    widths = tuple(hidden)
    if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in widths):
        raise ValueError(f"hidden layer widths must be whole numbers >= 1, got {','.join(map(str, widths))}")
    return tuple(int(h) for h in widths)


@dataclass(frozen=True)
class MLP(Model):
    hidden: tuple[int, ...] = (16,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.hidden:
            raise ValueError("an MLP needs at least one hidden layer (without, it is the neuron: core.models.Model)")
        object.__setattr__(self, "hidden", check_hidden(self.hidden))

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The weight matrices' shapes (out, in), input layer first."""
        return layer_shapes(self.n_features, self.hidden)

    @property
    def n_weights(self) -> int:
        return sum(o * i for o, i in self.shapes)

    @property
    def n_params(self) -> int:
        return self.n_weights + (sum(o for o, _ in self.shapes) if self.fit_intercept else 0)

    @property
    def tensors(self) -> tuple[tuple[slice, tuple[int, ...]], ...]:
        """Each parameter tensor as ``(slice of theta, shape)``: the W's, then the b's (torch's)."""
        out, at = [], 0
        for o, i in self.shapes:
            out.append((slice(at, at + o * i), (o, i)))
            at += o * i
        if self.fit_intercept:
            for o, _ in self.shapes:
                out.append((slice(at, at + o), (o,)))
                at += o
        return tuple(out)

    def layers(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """``[(W, b), ...]``: views into ``theta`` (b None without an intercept)."""
        nw = self.n_weights
        return unpack(theta[:nw], theta[nw:] if self.fit_intercept else None, self.shapes)

    def init(self, how: str = "seed", seed: int = 0) -> np.ndarray:
        """``seed``: torch's default ``nn.Linear`` init, W and b ~ U(-1/sqrt(in), 1/sqrt(in)) (in:
        the layer's fan-in; kaiming_uniform with a = sqrt(5) is that bound for W), drawn from
        ``numpy.random.default_rng(seed)`` layer by layer, W (row-major) then b, input layer first.
        ``normal``: W ~ N(0, 1/in), biases 0. Comma-separated numbers give every parameter in
        theta's order. ``zeros`` is refused: every hidden unit would stay identical (and dead)."""
        given = explicit_init(how)
        if given is not None:
            if len(given) != self.n_params:
                raise ValueError(
                    f"init gives {len(given)} numbers; the network has {self.n_params} parameters "
                    f"({self.n_weights} weights{' and the biases' if self.fit_intercept else ''})"
                )
            return np.array(given, dtype=np.float64)
        if how == "zeros":
            raise ValueError("init zeros cannot train a network (every hidden unit stays the same); use seed or normal")
        theta = np.zeros(self.n_params)
        rng = np.random.default_rng(seed)
        for W, b in self.layers(theta):
            fan_in = W.shape[1]
            if how == "normal":
                W[...] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), W.shape)
                continue
            bound = 1.0 / np.sqrt(fan_in)
            W[...] = rng.uniform(-bound, bound, W.shape)
            if b is not None:
                b[...] = rng.uniform(-bound, bound, b.shape)
        return theta

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, list[float] | None]:
        """``(weights, biases)``: every weight (flat, theta's order) and every bias (None without)."""
        nw = self.n_weights
        return theta[:nw], (theta[nw:].tolist() if self.fit_intercept else None)

    def predict(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The network's output for ``theta`` (n_params,) (:func:`core.neuron.mlp_forward`)."""
        nw = self.n_weights
        return mlp_forward(X, theta[:nw], theta[nw:] if self.fit_intercept else None, self.hidden, self.kind)

    def logits(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The output unit's pre-activation z (a logistic network's logit)."""
        nw = self.n_weights
        return mlp_forward(X, theta[:nw], theta[nw:] if self.fit_intercept else None, self.hidden, "linear")

    def losses(self, thetas: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The loss of each parameter vector, one a row of ``thetas``."""
        return np.array([self.loss(t, X, y) for t in thetas])

    def workspace(self, n: int, dtype=np.float64) -> MlpWorkspace:
        """Buffers for :meth:`loss_and_grad` on up to ``n`` rows: an activation, a gradient and a
        mask (n, h) per hidden layer, and the neuron's n-vectors for the output unit."""
        acts = tuple(np.empty((n, h), dtype) for h in self.hidden)
        deltas = tuple(np.empty((n, h), dtype) for h in self.hidden)
        masks = tuple(np.empty((n, h), bool) for h in self.hidden)
        scratch = np.empty(n if self.kind == "logistic" else 0, dtype)
        vectors = (np.empty(n, dtype), np.empty(n, dtype), np.empty(n, bool))
        return MlpWorkspace(*vectors, np.empty(self.n_params, dtype), scratch, acts, deltas, masks)

    def loss_and_grad(self, theta, X, y, ws: MlpWorkspace | None = None) -> tuple[float, np.ndarray]:
        """The loss and its exact gradient (the module docstring's backward pass). With a workspace
        nothing of size n is allocated; the returned gradient *is* ``ws.grad``."""
        n = len(y)
        if ws is None:
            ws = self.workspace(n, theta.dtype)
        layers, grads = self.layers(theta), self.layers(ws.grad)
        acts = [a[:n] for a in ws.acts]
        inputs = [X, *acts]  # a_0 = X, a_1, ..., a_L
        for (W, b), a_in, a in zip(layers, inputs, acts, strict=False):  # the hidden layers
            np.matmul(a_in, W.T, out=a)
            if b is not None:
                a += b
            np.maximum(a, 0.0, out=a)
        (w_out, b_out), a_last = layers[-1], inputs[-1]
        z, r = ws.z[:n], ws.r[:n]
        np.matmul(a_last, w_out[0], out=z)
        if b_out is not None:
            z += b_out[0]
        loss, scale = output_residual(self.kind, z, y, r, ws.active[:n], ws.scratch[:n])
        r *= scale  # dL/dz
        gw_out, gb_out = grads[-1]
        np.matmul(r, a_last, out=gw_out[0])
        if gb_out is not None:
            gb_out[0] = r.sum()
        delta = ws.deltas[-1][:n]
        np.multiply(r[:, None], w_out, out=delta)  # dL/da_L
        for k in range(len(self.hidden) - 1, -1, -1):
            mask = np.greater(acts[k], 0.0, out=ws.masks[k][:n])
            delta *= mask  # dL/dZ_k
            gW, gb = grads[k]
            np.matmul(delta.T, inputs[k], out=gW)
            if gb is not None:
                np.sum(delta, axis=0, out=gb)
            if k:
                below = ws.deltas[k - 1][:n]
                np.matmul(delta, layers[k][0], out=below)  # dL/da_{k-1}
                delta = below
        return loss, ws.grad


class MlpWorkspace(NamedTuple):
    """Preallocated buffers of a network: the output unit's (as :class:`core.models.Workspace`), the
    gradient, and per hidden layer its activations, dL/dZ and its ReLU mask."""

    z: np.ndarray
    r: np.ndarray
    active: np.ndarray
    grad: np.ndarray
    scratch: np.ndarray
    acts: tuple[np.ndarray, ...]
    deltas: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
