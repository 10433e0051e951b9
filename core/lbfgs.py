"""torch.optim.LBFGS in numpy: limited-memory BFGS driven by a closure, with torch's strong-Wolfe
line search (``_strong_wolfe``, ``_zoom``, ``_cubic_interpolate``), as torch keeps it in a module of
its own (torch/optim/lbfgs.py).

L-BFGS evaluates the objective itself, several times a step, so it is an :class:`Lbfgs` pair
rather than an :class:`core.optimizers.Optimizer`: ``params, state, loss = opt.step(closure,
state, params, lr)``. :mod:`core.optimizers` lists it with the others (``BUILDERS["lbfgs"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


Closure = Callable[[np.ndarray], tuple[float, np.ndarray]]


class LbfgsState(NamedTuple):
    func_evals: int
    n_iter: int  # inner iterations over all steps; the very first one starts the memory afresh
    d: np.ndarray | None  # the last direction and step length (s = t d is the last move)
    t: float | None
    old_dirs: tuple[np.ndarray, ...]  # y_i = g_{i+1} - g_i, oldest first
    old_stps: tuple[np.ndarray, ...]  # s_i
    ro: tuple[float, ...]  # 1 / (y_i . s_i)
    H_diag: float  # gamma = (s . y) / (y . y) of the newest pair: the initial inverse Hessian
    prev_flat_grad: np.ndarray | None
    prev_loss: float | None


class Lbfgs(NamedTuple):
    """An optimizer that evaluates the objective itself (torch's ``step(closure)``)::

        state = opt.init(params)
        params, state, loss = opt.step(closure, state, params, lr)   # closure(theta) -> (loss, grad)

    ``loss`` is the objective at the ``params`` passed in; ``closure`` must return a fresh gradient.
    """

    init: Callable[[np.ndarray], LbfgsState]
    step: Callable[[Closure, LbfgsState, np.ndarray, float], tuple[np.ndarray, LbfgsState, float]]


def lbfgs(
    *,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> Lbfgs:
    r"""torch.optim.LBFGS (limited-memory BFGS, after minFunc): one ``step`` runs up to
    ``max_iter`` iterations (and ``max_eval`` evaluations, None: max_iter * 5 // 4) of

    .. math::
        d_k = -H_k g_k \text{ (the two-loop recursion over the last } m \text{ pairs }
              s_i = t_i d_i, \; y_i = g_{i+1} - g_i \text{ with } y_i^\top s_i > 10^{-10}, \;
              H_k^0 = \tfrac{s^\top y}{y^\top y} I) \\
        \theta_{k+1} = \theta_k + t_k d_k, \qquad
        t_k = \gamma \text{ (the very first iteration: } \gamma \min(1, 1 / \|g_0\|_1))
              \text{ or the strong Wolfe line search from it}

    (``m`` = history_size, ``gamma`` the learning rate), and stops early when
    :math:`\|g\|_\infty \le` tolerance_grad, :math:`g^\top d > -` tolerance_change,
    :math:`\|t d\|_\infty \le` tolerance_change or :math:`|f_k - f_{k-1}| <` tolerance_change.
    The memory carries over from one step to the next, as torch's state does.
    """
    _check(max_iter >= 1, f"Invalid max_iter value: {max_iter}")
    _check(max_eval is None or max_eval >= 1, f"Invalid max_eval value: {max_eval}")
    _check(tolerance_grad >= 0.0, f"Invalid tolerance_grad value: {tolerance_grad}")
    _check(tolerance_change >= 0.0, f"Invalid tolerance_change value: {tolerance_change}")
    _check(history_size >= 1, f"Invalid history_size value: {history_size}")
    _check(line_search_fn in (None, "strong_wolfe"), f"only 'strong_wolfe' is supported, got {line_search_fn!r}")
    evals_cap = max_iter * 5 // 4 if max_eval is None else max_eval

    def init(params: np.ndarray) -> LbfgsState:
        return LbfgsState(0, 0, None, None, (), (), (), 1.0, None, None)

    def step(closure, state, params, lr):
        orig_loss, flat_grad = closure(params)
        loss, evals, func_evals, n_total = orig_loss, 1, state.func_evals + 1, state.n_iter
        if np.abs(flat_grad).max() <= tolerance_grad:  # optimal already: nothing else changes
            return params, state._replace(func_evals=func_evals), orig_loss
        d, t, prev_flat_grad, prev_loss = state.d, state.t, state.prev_flat_grad, state.prev_loss
        memory = (state.old_dirs, state.old_stps, state.ro, state.H_diag)

        def directional(x, t_, d_):  # torch's obj_func: the objective at x + t d
            return closure(x + t_ * d_)

        for n_iter in range(1, max_iter + 1):
            n_total += 1
            if n_total == 1:
                d, memory = -flat_grad, ((), (), (), 1.0)
            else:
                d, memory = _lbfgs_direction(flat_grad, prev_flat_grad, d * t, memory, history_size)
            prev_flat_grad, prev_loss = flat_grad, loss
            t = lr if n_total > 1 else _first_step(flat_grad) * lr
            gtd = float(flat_grad @ d)
            if gtd > -tolerance_change:  # not a descent direction (any more)
                break
            if line_search_fn is not None:
                loss, flat_grad, t, ls_evals = _strong_wolfe(
                    directional, params, t, d, loss, flat_grad, gtd, tolerance_change=tolerance_change,
                    max_ls=evals_cap - evals,
                )  # fmt: skip
                params = params + t * d
            else:
                params, ls_evals = params + t * d, 0
                if n_iter != max_iter:  # torch does not evaluate after the last iteration
                    loss, flat_grad = closure(params)
                    ls_evals = 1
            evals, func_evals = evals + ls_evals, func_evals + ls_evals
            if n_iter == max_iter or evals >= evals_cap or np.abs(flat_grad).max() <= tolerance_grad:
                break
            if np.abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break  # lack of progress
        state = LbfgsState(func_evals, n_total, d, t, *memory, prev_flat_grad, prev_loss)
        return params, state, orig_loss

    return Lbfgs(init, step)


def _first_step(grad: np.ndarray) -> float:
    """min(1, 1 / ||g||_1), the first iteration's step length before the learning rate (1/0 = inf)."""
    total = float(np.abs(grad).sum())
    return min(1.0, 1.0 / total) if total else 1.0


def _lbfgs_direction(grad, prev_grad, s, memory, history_size):
    """Update the memory with the last move ``s`` and the change in gradient (when their product
    is > 1e-10), then the L-BFGS direction -H g by the two-loop recursion."""
    old_dirs, old_stps, ro, H_diag = memory
    y = grad - prev_grad
    ys = float(y @ s)
    if ys > 1e-10:
        if len(old_dirs) == history_size:  # forget the oldest pair
            old_dirs, old_stps, ro = old_dirs[1:], old_stps[1:], ro[1:]
        old_dirs, old_stps, ro = (*old_dirs, y), (*old_stps, s), (*ro, 1.0 / ys)
        H_diag = ys / float(y @ y)
    al = [0.0] * len(old_dirs)
    q = -grad
    for i in reversed(range(len(old_dirs))):
        al[i] = float(old_stps[i] @ q) * ro[i]
        q = q - al[i] * old_dirs[i]
    r = q * H_diag
    for i in range(len(old_dirs)):
        be_i = float(old_dirs[i] @ r) * ro[i]
        r = r + (al[i] - be_i) * old_stps[i]
    return r, (old_dirs, old_stps, ro, H_diag)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to ``bounds``
    (default: between the two points); their midpoint when the cubic has no minimum. torch's
    port of minFunc's polyinterp, in IEEE arithmetic (a division by zero gives inf or nan)."""
    xmin_bound, xmax_bound = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    with np.errstate(divide="ignore", invalid="ignore"):
        x1, f1, g1, x2, f2, g2 = map(np.float64, (x1, f1, g1, x2, f2, g2))
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_square = d1 * d1 - g1 * g2
        if d2_square >= 0:
            d2 = np.sqrt(d2_square)
            if x1 <= x2:
                min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
            else:
                min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
            return float(min(max(min_pos, xmin_bound), xmax_bound))
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """torch's line search for the strong Wolfe conditions (minFunc's lswolfe): bracket a step
    that satisfies them, then zoom in on it. Returns (f, g, t, evaluations)."""
    d_norm = float(np.abs(d).max())
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals, gtd_new = 1, float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done, ls_iter = False, 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):  # too far: bracketed
            bracket = ([t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new])
            break
        if abs(gtd_new) <= -c2 * gtd:  # the strong Wolfe conditions hold at t
            bracket, done = ([t], [f_new], [g_new], [gtd_new]), True
            break
        if gtd_new >= 0:  # the slope turned: bracketed
            bracket = ([t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new])
            break
        # extrapolate: the cubic's minimizer within [t + 0.01 (t - t_prev), 10 t]
        t_next = _cubic_interpolate(
            t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(t + 0.01 * (t - t_prev), t * 10)
        )
        t_prev, f_prev, g_prev, gtd_prev, t = t, f_new, g_new, gtd_new, t_next
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals, gtd_new, ls_iter = ls_func_evals + 1, float(g_new @ d), ls_iter + 1
    if ls_iter == max_ls:  # out of evaluations: the better of the start and the last trial
        bracket = ([0, t], [f, f_new], [g, g_new], [None, None])
    low = 0 if bracket[1][0] <= bracket[1][-1] else 1
    if not done and ls_iter < max_ls:
        low, evals = _zoom(obj_func, x, d, f, gtd, bracket, low, max_ls - ls_iter, c1, c2, tolerance_change, d_norm)
        ls_func_evals += evals
    points, values, grads, _ = bracket
    return values[low], grads[low], points[low], ls_func_evals


def _zoom(obj_func, x, d, f, gtd, bracket, low, max_ls, c1, c2, tolerance_change, d_norm):
    """The zoom phase of :func:`_strong_wolfe`: shrink ``bracket`` (its four lists, in place) around a
    point that satisfies the strong Wolfe conditions, with at most ``max_ls`` evaluations.
    Returns the index of the bracket's low point and the evaluations made."""
    points, values, grads, slopes = bracket
    high, insuf_progress, evals = 1 - low, False, 0
    while evals < max_ls:
        if abs(points[1] - points[0]) * d_norm < tolerance_change:  # the bracket is too small
            break
        t = _cubic_interpolate(points[0], values[0], slopes[0], points[1], values[1], slopes[1])
        # too close to an end twice in a row, or outside: move to 0.1 of the bracket from the nearer end
        lo, hi = min(points), max(points)
        eps = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < eps:
            if insuf_progress or t >= hi or t <= lo:
                t = hi - eps if abs(t - hi) < abs(t - lo) else lo + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        gtd_new, evals = float(g_new @ d), evals + 1
        if f_new > (f + c1 * t * gtd) or f_new >= values[low]:  # not low enough: the new high end
            points[high], values[high], grads[high], slopes[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if values[0] <= values[1] else (1, 0)
            continue
        if abs(gtd_new) <= -c2 * gtd:  # the strong Wolfe conditions hold
            points[low], values[low], grads[low], slopes[low] = t, f_new, g_new, gtd_new
            break
        if gtd_new * (points[high] - points[low]) >= 0:  # the old low end becomes the high end
            points[high], values[high], grads[high], slopes[high] = points[low], values[low], grads[low], slopes[low]
        points[low], values[low], grads[low], slopes[low] = t, f_new, g_new, gtd_new
    return low, evals
