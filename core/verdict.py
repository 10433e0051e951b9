"""The statistics of a fair optimizer benchmark, in the style of DeepOBS and AlgoPerf.

Pure numpy (scipy is the test oracle only, never imported here):

    bootstrap_ci         percentile bootstrap CI of the median over seeds, equal to
                         ``scipy.stats.bootstrap(..., method="percentile")`` bit for bit
    epochs_to_target     the first logged epoch whose value is <= the target, else inf
    target_of            min over the contenders' finite medians, times (1 + tol)
    ratios               Dolan & Moré performance ratios r[p, s] = t[p, s] / min_s t[p, s]
    performance_profile  rho_s(tau) = share of problems with r[p, s] <= tau
    profile_area         (1 / (tau_max - 1)) * integral of rho_s over [1, tau_max], exactly
    log_grid, on_edge    a log-spaced hyperparameter grid, and whether its best value sits on an end

Conventions shared by all of them: lower is better, and ``+inf`` means "failed": a seed that
diverged, or a run that never reached the target. ``+inf`` flows through every function without
ever turning into ``nan``; ``nan`` itself is refused wherever it could only mean a bug.

References: Schneider, Balles & Hennig, "DeepOBS: A Deep Learning Optimizer Benchmark Suite",
ICLR 2019 (median and spread over seeds, speed as epochs to a target derived from the best
contender); Dolan & Moré, "Benchmarking optimization software with performance profiles",
Math. Program. 91, 2002; Dahl et al., "Benchmarking Neural Network Training Algorithms", 2023
(AlgoPerf: median time to target over studies, integrated performance profiles, r_max = 4).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

Statistic = Callable[..., np.ndarray]


# --------------------------------------------------------------------------------------------------
# bootstrap


def _sample(values: ArrayLike) -> np.ndarray:
    """The sample as a 1-D float64 array; refuses empty, nan and -inf (lower is better, +inf = failed)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_ci takes a 1-D sample, got an array of shape {x.shape}")
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value, got an empty sample")
    if np.isnan(x).any():
        raise ValueError("bootstrap_ci got a nan: record a failed seed as +inf, not nan")
    if np.isneginf(x).any():
        raise ValueError("bootstrap_ci got -inf: only +inf (a failed seed) is allowed")
    return x


def _is_vectorized(statistic: Statistic) -> bool:
    """scipy's rule (``vectorized=None``): the statistic is vectorized iff it takes an ``axis`` argument."""
    try:
        return "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def _statistic_of_rows(statistic: Statistic, resamples: np.ndarray) -> np.ndarray:
    """The statistic of each row of ``resamples`` (shape (B, n)), as scipy computes it.

    A vectorized statistic is called once, ``statistic(resamples, axis=-1)``; any other is applied
    row by row (scipy's ``_vectorize_statistic`` does ``np.apply_along_axis`` over the same rows).
    """
    if _is_vectorized(statistic):
        return np.asarray(statistic(resamples, axis=-1), dtype=np.float64)
    return np.asarray([statistic(row) for row in resamples], dtype=np.float64)


def _quantile_linear(sorted_values: np.ndarray, p: float) -> float:
    """The p-quantile of sorted values, Hyndman & Fan type 7 (numpy's and scipy's "linear"),
    in the exact floating-point steps of ``scipy.stats.quantile`` (scipy/stats/_quantile.py,
    ``_quantile_hf`` with ``m = 1 - p``):

        jg = p * B + (1 - p);  j = floor(jg) - 1;  g = jg mod 1;  both indices clipped to [0, B - 1]
        q  = (1 - g) * y[j] + g * y[j + 1]

    With +inf among the order statistics: a position on or past an infinite y[j] gives inf, one
    strictly between a finite y[j] and y[j + 1] = inf gives inf (the limit of the interpolation),
    and one exactly on a finite y[j] (g = 0) gives y[j] although y[j + 1] = inf. Whenever g = 0 and
    y[j + 1] = inf, scipy computes ``y[j] + 0 * inf = nan`` (and warns ``DegenerateDataWarning``),
    where this returns y[j] (finite or inf); nowhere else do the two differ.
    """
    b = sorted_values.size
    jg = p * float(b) + (1.0 - p)
    jp1 = jg // 1
    j = jp1 - 1
    g = jg % 1
    if j < 0:
        g = 0.0
    lo = sorted_values[int(min(max(j, 0.0), b - 1.0))]
    hi = sorted_values[int(min(max(jp1, 0.0), b - 1.0))]
    if math.isinf(hi) and (g == 0 or math.isinf(lo)):
        return float(lo)  # on a finite y[j] (weight 0 on the inf), or among infinite order statistics
    return float((1 - g) * lo + g * hi)


def bootstrap_ci(
    values: ArrayLike,
    *,
    n_resamples: int = 9999,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Statistic = np.median,
) -> tuple[float, float]:
    """The two-sided percentile bootstrap confidence interval of ``statistic`` (the median) of a sample.

    Equal, to the last bit, to ``scipy.stats.bootstrap((values,), statistic, method="percentile",
    n_resamples=n_resamples, confidence_level=confidence, rng=np.random.default_rng(seed))``
    (scipy 1.17, scipy/stats/_resampling.py, with its defaults ``batch=None``, ``vectorized=None``,
    ``axis=0``). It follows the same steps:

    1. one draw of all the resample indices, ``i = default_rng(seed).integers(0, n, (B, n))``
       (``batch=None`` means a single batch of B = n_resamples rows, so the stream is identical);
    2. ``theta[b] = statistic(values[i[b]])``, by ``statistic(values[i], axis=-1)`` when the
       statistic takes an ``axis`` (np.median does), else row by row;
    3. with alpha = (1 - confidence) / 2, the bounds are the type-7 ("linear") quantiles of theta at
       alpha and 1 - alpha, computed as ``scipy.stats.quantile`` computes them (see _quantile_linear).

    Conventions where scipy degenerates:

    * one value, or all values equal (including all +inf): returns (v, v) without resampling.
      scipy refuses a sample of one (ValueError: "two or more observations"); for equal values it
      resamples anyway and returns (1 - g) v + g v, which is v in every case tried but is not
      guaranteed to the bit by IEEE arithmetic. Here it is exactly v, and costs nothing.
    * +inf is a seed that diverged or never reached the target. The median of a resample is inf
      when its middle order statistic (for even n, the upper of the two) is inf: np.median averages
      inf with a finite value or with inf to inf, never nan.
      A bound whose quantile position falls on or among infinite order statistics, or between a
      finite one and inf, is inf, never nan. Where scipy gives nan (a position exactly on an order
      statistic followed by inf: it multiplies that inf by a weight of 0) this returns that order
      statistic, finite or inf. Wherever scipy's bound is not nan, the two agree exactly.

    Raises ValueError on an empty sample, a non-1-D array, nan, -inf, ``n_resamples < 1`` or a
    confidence outside (0, 1).
    """
    x = _sample(values)
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if np.all(x == x[0]):
        v = float(x[0])
        return v, v
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, x.size, (int(n_resamples), x.size), dtype="int64")
    theta = np.sort(_statistic_of_rows(statistic, x[indices]))
    if np.isnan(theta).any():
        raise ValueError("the statistic returned nan on a resample")
    alpha = (1 - confidence) / 2
    return _quantile_linear(theta, alpha), _quantile_linear(theta, 1 - alpha)


# --------------------------------------------------------------------------------------------------
# targets


def epochs_to_target(epochs: ArrayLike, values: ArrayLike, target: float, *, stay: bool = False) -> float:
    """The first logged epoch whose value is <= ``target``, else ``math.inf``; with ``stay=True``,
    the first from which every later value (the last included) stays <= ``target``.

    ``stay`` is what gdlab's benchmark reports: a run that touches the target and leaves it again
    (Lion on Rosenbrock dips to 1e-28 at epoch 290 and ends at 0.03) has not reached it, and a run
    that "reached" the target then ends above it would contradict its own final score.

    ``values[k]`` is the value logged at epoch ``epochs[k]`` (in logging order). ``nan`` (a diverged
    step) never reaches: ``nan <= target`` is false. A non-finite target (nan, or the inf that
    :func:`target_of` returns when no contender finished) is unreachable: returns inf. This is
    DeepOBS's "speed" and AlgoPerf's time to target (``get_best_trial_index``: the first eval index
    where ``value <= target``), measured in epochs.
    """
    e = np.asarray(epochs, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if e.ndim != 1 or e.shape != v.shape:
        raise ValueError(f"epochs and values must be 1-D of the same length, got shapes {e.shape} and {v.shape}")
    if not math.isfinite(target):
        return math.inf
    with np.errstate(invalid="ignore"):
        below = v <= target
    if stay:
        above = np.flatnonzero(~below)
        if above.size == 0:
            return float(e[0]) if e.size else math.inf
        last = above[-1]
        return float(e[last + 1]) if last + 1 < e.size else math.inf
    reached = np.flatnonzero(below)
    return float(e[reached[0]]) if reached.size else math.inf


def target_of(medians: ArrayLike, tol: float) -> float:
    """The target every contender is timed to: ``min(finite medians) * (1 + tol)``; inf if none is finite.

    ``medians`` are the contenders' median final losses (over seeds); non-finite ones (a contender
    whose median seed diverged) take no part. As in DeepOBS, the target is set by the best
    contender, loosened by a relative tolerance; it assumes losses >= 0 (for a negative best
    median, (1 + tol) would tighten the target).
    """
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    m = np.asarray(medians, dtype=np.float64).ravel()
    finite = m[np.isfinite(m)]
    return float(finite.min() * (1 + tol)) if finite.size else math.inf


# --------------------------------------------------------------------------------------------------
# performance profiles


def _scores(scores: ArrayLike) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or 0 in s.shape:
        raise ValueError(f"scores must be a non-empty 2-D array (problems x contenders), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain nan: record a failed contender as +inf")
    if (s < 0).any():
        raise ValueError("scores must be >= 0 for ratios to mean anything (subtract the known optimum f*)")
    return s


def ratios(scores: ArrayLike) -> np.ndarray:
    """Dolan & Moré's performance ratios: ``r[p, s] = scores[p, s] / min_s scores[p, s]``, shape (P, S).

    ``scores`` is problems x contenders, lower is better, +inf = failed; nan and negatives are refused.
    Conventions (each r is in [1, inf], never nan):

    * a failed contender (inf) on a problem someone solved: r = inf;
    * a problem every contender failed (min = inf): r = inf for all, so it counts as unsolved for
      everyone (AlgoPerf computes inf / inf = nan there, which also never satisfies r <= tau);
    * a problem whose best score is 0 (a loss of exactly 0, or 0 epochs to target): a contender with
      score 0 has r = 1 and any positive score r = inf (AlgoPerf would compute 0 / 0 = nan and
      give the winner nothing).
    """
    s = _scores(scores)
    best = s.min(axis=1, keepdims=True)
    r = np.full_like(s, math.inf)
    solved = np.isfinite(best) & (best > 0)
    rows = solved[:, 0]
    r[rows] = s[rows] / best[rows]  # inf / finite = inf
    r[(best == 0) & (s == 0)] = 1.0
    return r


def performance_profile(scores: ArrayLike, taus: ArrayLike) -> np.ndarray:
    """Dolan & Moré's performance profile: ``rho[t, s] = (1 / P) * #{p : r[p, s] <= taus[t]}``.

    Shape (len(taus), contenders), with ``r = ratios(scores)`` (see there for inf and 0). The share
    is over all P problems, including those nobody solved (they add 0 to every rho), as AlgoPerf
    divides by its fixed number of workloads (Dahl et al. 2023, ``compute_performance_profiles``).
    rho_s is a right-continuous non-decreasing step function of tau, with rho_s(1) the share of
    problems where s is (one of) the best.
    """
    r = ratios(scores)
    t = np.asarray(taus, dtype=np.float64)
    if t.ndim != 1 or np.isnan(t).any():
        raise ValueError(f"taus must be a 1-D array without nan, got {taus!r}")
    return (r[None, :, :] <= t[:, None, None]).sum(axis=1) / r.shape[0]


def profile_area(ratios_column_or_matrix: ArrayLike, tau_max: float = 4.0) -> np.ndarray | float:
    """The integrated performance profile: ``B_s = (1 / (tau_max - 1)) * integral_1^tau_max rho_s(tau) dtau``.

    This is the AlgoPerf benchmark score (Dahl et al. 2023, DOCUMENTATION.md "Integrating performance
    profiles": integrate from 1 to r_max = 4 and divide by r_max - 1), in [0, 1]: 1 = best on every
    problem, 0 = never within tau_max of the best. Takes a ratio column (P,) -> float, or a ratio
    matrix (P, S) from :func:`ratios` -> array (S,).

    Computed exactly, not on a grid. rho_s is a step function that rises by 1/P at each ratio
    r_p <= tau_max, so with the finite ratios sorted, r_(1) <= ... <= r_(k) <= tau_max, and
    r_(k+1) := tau_max,

        integral = sum_{i=1..k} (i / P) * (r_(i+1) - r_(i)) = (1 / P) * sum_{i=1..k} (tau_max - r_(i)),

    the second form (each problem contributes the length of [r_p, tau_max]) being what is summed.
    Ratios below 1 (possible only with a reference contender instead of the best) count from 1;
    ratios above tau_max and inf contribute 0; nan is refused.

    Difference from AlgoPerf's code (mlcommons/algorithmic-efficiency, scoring/performance_profile.py
    and scoring/score_submissions.py, 2025): it samples rho on ``np.linspace(1, 4, 100)`` and
    integrates with ``np.trapz``, normalized by ``max(tau) - min(tau) = 3`` (``normalize=True`` in
    score_submissions' ``compute_leaderboard_score``). The trapezoid rule smears each problem's step
    over the grid cell it falls in, so each problem's share of the score can be off by up to
    (3 / 99) / 2 / 3 / P = 1 / (198 P), and the score by up to 1/198 in all; the normalization
    (divide by tau_max - 1) is the same. It also sets times above 4x the best to inf first, which
    changes nothing on [1, 4].
    """
    r = np.asarray(ratios_column_or_matrix, dtype=np.float64)
    if r.ndim not in (1, 2) or r.shape[0] == 0:
        raise ValueError(f"profile_area takes a non-empty ratio column (P,) or matrix (P, S), got shape {r.shape}")
    if np.isnan(r).any():
        raise ValueError("ratios contain nan")
    if not (math.isfinite(tau_max) and tau_max > 1):
        raise ValueError(f"tau_max must be a finite number > 1, got {tau_max!r}")
    within = np.where(r <= tau_max, tau_max - np.maximum(r, 1.0), 0.0)
    area = within.sum(axis=0) / (r.shape[0] * (tau_max - 1))
    return float(area) if r.ndim == 1 else area


# --------------------------------------------------------------------------------------------------
# hyperparameter grids


def log_grid(low: float, high: float, n: int) -> np.ndarray:
    """``n`` log-spaced points from ``low`` to ``high``, both ends included exactly
    (``np.geomspace``: x_k = low * (high / low) ** (k / (n - 1))); for n = 1 the geometric mean
    ``sqrt(low * high)``. Needs 0 < low <= high, finite, and n >= 1.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise ValueError(f"log_grid needs finite 0 < low <= high, got low={low!r}, high={high!r}")
    if n == 1:
        return np.array([math.sqrt(low) * math.sqrt(high)])
    return np.geomspace(low, high, int(n))


def on_edge(grid_values: ArrayLike, best: float) -> bool:
    """Whether ``best`` is the smallest or the largest value tried (or outside their range).

    A best value on an edge of the grid means the optimum may lie beyond it: widen the grid. The
    comparison allows a relative 1e-9, so a value that went through text (an MLflow param) still
    matches its grid point. A one-point grid is always on its edge.
    """
    g = np.asarray(grid_values, dtype=np.float64).ravel()
    if g.size == 0 or not np.isfinite(g).all():
        raise ValueError(f"grid_values must be non-empty and finite, got {grid_values!r}")
    lo, hi = float(g.min()), float(g.max())
    return bool(
        best <= lo or best >= hi or math.isclose(best, lo, rel_tol=1e-9) or math.isclose(best, hi, rel_tol=1e-9)
    )
