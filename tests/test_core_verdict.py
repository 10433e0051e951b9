"""core.verdict: the bootstrap against scipy's, bit for bit; profiles and areas against numbers worked by hand."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import ROOT

from core import verdict

INF = math.inf


def scipy_percentile_bootstrap(values, n_resamples, confidence, seed, statistic=np.median):
    stats = pytest.importorskip("scipy.stats")
    # with inf in the sample, scipy's standard error (not used here) is std([.., inf]) = nan, and warns
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        return stats.bootstrap(
            (np.asarray(values, dtype=np.float64),),
            statistic,
            method="percentile",
            n_resamples=n_resamples,
            confidence_level=confidence,
            rng=np.random.default_rng(seed),
        )


def scipy_percentile_ci(values, n_resamples, confidence, seed, statistic=np.median):
    ci = scipy_percentile_bootstrap(values, n_resamples, confidence, seed, statistic).confidence_interval
    return float(ci.low), float(ci.high)


# --------------------------------------------------------------------------------------------------
# bootstrap_ci

SAMPLES = {
    "3 values": [0.31, 0.12, 0.57],
    "10 values (even)": [1.3, 0.2, 2.9, 0.8, 1.1, 3.7, 0.5, 2.2, 1.9, 0.05],
    "11 values (odd)": [4.0, 2.5, 3.3, 9.1, 0.7, 5.5, 6.2, 1.8, 2.0, 7.4, 3.9],
    "10 values with ties": [2.0, 2.0, 2.0, 1.0, 3.0, 3.0, 5.0, 1.0, 2.0, 8.0],
    "11 epochs-to-target (integers, ties)": [12, 15, 12, 30, 18, 12, 15, 21, 40, 18, 15],
}


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("n_resamples", [999, 9999])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_the_bootstrap_ci_equals_scipys_percentile_bootstrap_with_the_same_resamples(name, n_resamples, confidence):
    values = SAMPLES[name]
    ours = verdict.bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=12345)
    assert ours == scipy_percentile_ci(values, n_resamples, confidence, 12345)


def test_the_bootstrap_ci_of_a_statistic_without_an_axis_argument_also_equals_scipys():
    values = SAMPLES["11 values (odd)"]

    def mean(x):
        return float(np.mean(x))

    assert verdict.bootstrap_ci(values, n_resamples=999, statistic=mean, seed=3) == scipy_percentile_ci(
        values, 999, 0.95, 3, mean
    )


def test_the_bootstrap_ci_defaults_are_9999_resamples_95_percent_and_seed_0():
    values = SAMPLES["10 values (even)"]
    assert verdict.bootstrap_ci(values) == scipy_percentile_ci(values, 9999, 0.95, 0)


def test_the_bootstrap_ci_with_one_diverged_seed_of_ten_has_a_finite_lower_bound_and_no_nan():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, INF]
    low, high = verdict.bootstrap_ci(values)
    assert math.isfinite(low)
    assert not math.isnan(high)
    assert (low, high) == scipy_percentile_ci(values, 9999, 0.95, 0)


def test_the_bootstrap_ci_with_four_diverged_seeds_of_ten_has_an_infinite_upper_bound_and_no_nan():
    # A resample's median is inf when >= 5 of its 10 draws are inf: P = 0.37 at p = 0.4, so far more
    # than 2.5% of the 9999 medians are inf, and the lower 2.5% are all finite.
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, INF, INF, INF, INF]
    low, high = verdict.bootstrap_ci(values)
    assert math.isfinite(low)
    assert high == INF
    assert (low, high) == scipy_percentile_ci(values, 9999, 0.95, 0)


def test_the_bootstrap_ci_is_the_order_statistic_where_scipy_multiplies_inf_by_a_zero_weight():
    # B = 21, confidence 0.9: the upper position is jg = 0.95 * 21 + 0.05 = 20.0 exactly, so g = 0 and
    # the bound is the 20th of the 21 sorted medians (index 19); the 21st (index 20) is inf for this
    # seed, and scipy computes 1 * y[19] + 0 * inf = nan.
    stats = pytest.importorskip("scipy.stats")
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, INF, INF]
    with pytest.warns(stats.DegenerateDataWarning):
        res = scipy_percentile_bootstrap(values, n_resamples=21, confidence=0.9, seed=7)
    medians = np.sort(res.bootstrap_distribution)
    assert math.isnan(res.confidence_interval.high)
    assert medians[19] < INF
    assert medians[20] == INF
    low, high = verdict.bootstrap_ci(values, n_resamples=21, confidence=0.9, seed=7)
    assert low == res.confidence_interval.low
    assert high == medians[19]


def test_a_bootstrap_ci_of_one_value_or_of_equal_values_is_that_value_twice():
    assert verdict.bootstrap_ci([0.25]) == (0.25, 0.25)
    assert verdict.bootstrap_ci([0.1, 0.1, 0.1, 0.1]) == (0.1, 0.1)
    assert verdict.bootstrap_ci([INF, INF, INF]) == (INF, INF)


@pytest.mark.parametrize("values", [[], [1.0, float("nan"), 2.0], [1.0, -INF], [[1.0, 2.0], [3.0, 4.0]]])
def test_the_bootstrap_ci_refuses_an_empty_sample_a_nan_minus_inf_and_a_2d_array(values):
    with pytest.raises(ValueError):  # noqa: PT011 (the messages differ per case)
        verdict.bootstrap_ci(values)


# --------------------------------------------------------------------------------------------------
# epochs_to_target, target_of


def test_epochs_to_target_is_inf_when_the_target_is_never_reached():
    assert verdict.epochs_to_target([0, 1, 2], [3.0, 2.0, 1.5], target=1.0) == INF


def test_epochs_to_target_is_the_first_logged_epoch_when_it_starts_below_the_target():
    assert verdict.epochs_to_target([5, 10, 15], [0.5, 0.1, 0.01], target=1.0) == 5.0


def test_epochs_to_target_counts_a_value_equal_to_the_target_as_reached():
    assert verdict.epochs_to_target([0, 1, 2], [3.0, 1.0, 0.5], target=1.0) == 1.0


def test_epochs_to_target_skips_nan_values_and_returns_the_epoch_number_not_the_index():
    # nan <= 1.0 is false at epoch 20; the first value <= 1.0 is at epoch 30 (index 2)
    assert verdict.epochs_to_target([10, 20, 30, 40], [5.0, float("nan"), 0.5, 0.1], target=1.0) == 30.0


def test_epochs_to_target_of_an_infinite_or_nan_target_is_inf():
    assert verdict.epochs_to_target([0, 1], [0.5, 0.1], target=INF) == INF
    assert verdict.epochs_to_target([0, 1], [0.5, 0.1], target=float("nan")) == INF


def test_epochs_to_target_refuses_epochs_and_values_of_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        verdict.epochs_to_target([0, 1, 2], [0.5, 0.1], target=1.0)


def test_the_target_is_the_best_finite_median_loosened_by_the_tolerance():
    # finite medians 0.2, 0.1: 0.1 * (1 + 0.5) = 0.15
    assert verdict.target_of([0.2, INF, 0.1, float("nan")], tol=0.5) == pytest.approx(0.15, rel=1e-15)
    assert verdict.target_of([0.2, 0.1], tol=0.0) == 0.1


def test_the_target_is_inf_when_no_median_is_finite():
    assert verdict.target_of([INF, INF], tol=0.1) == INF


# --------------------------------------------------------------------------------------------------
# ratios, performance_profile, profile_area

# problems x contenders A, B, C (lower is better, inf = never reached)
SCORES = [
    [2.0, 5.0, INF],  # best 2: ratios 2/2 = 1, 5/2 = 2.5, inf
    [4.0, 4.0, 6.0],  # a tie, best 4: ratios 1, 1, 6/4 = 1.5
    [INF, INF, INF],  # unsolved by all: inf, inf, inf
]


def test_the_ratios_of_the_table_are_its_scores_over_each_problems_best():
    np.testing.assert_array_equal(verdict.ratios(SCORES), [[1.0, 2.5, INF], [1.0, 1.0, 1.5], [INF, INF, INF]])


def test_a_best_score_of_zero_gives_ratio_one_to_its_holders_and_inf_to_everyone_else():
    scores = [[0.0, 0.0, 3.0], [0.0, INF, 2.0]]
    np.testing.assert_array_equal(verdict.ratios(scores), [[1.0, 1.0, INF], [1.0, INF, INF]])


def test_the_performance_profile_of_the_table_is_the_share_of_problems_within_tau_counted_by_hand():
    taus = [0.5, 1.0, 1.5, 2.0, 2.5, 4.0, 10.0]
    # ratio columns: A = (1, 1, inf), B = (2.5, 1, inf), C = (inf, 1.5, inf); P = 3 (the unsolved problem counts)
    counts = np.array(
        [
            # A    B    C
            [0, 0, 0],  # tau 0.5: nothing is below 1
            [2, 1, 0],  # tau 1:   A best on p0 and p1 (tie), B on p1 (tie)
            [2, 1, 1],  # tau 1.5: C's 1.5 on p1
            [2, 1, 1],  # tau 2
            [2, 2, 1],  # tau 2.5: B's 2.5 on p0
            [2, 2, 1],  # tau 4
            [2, 2, 1],  # tau 10:  never 3/3, p2 is unsolved by all
        ]
    )
    got = verdict.performance_profile(SCORES, taus)
    assert got.shape == (7, 3)
    np.testing.assert_allclose(got, counts / 3, rtol=1e-15, atol=0)


def test_the_profile_area_of_the_table_is_the_integral_over_1_to_4_divided_by_3_worked_by_hand():
    # each solved problem adds (4 - r) / (P * (4 - 1)) = (4 - r) / 9:
    # A: (4 - 1) + (4 - 1) = 6      -> 6 / 9   = 2/3
    # B: (4 - 2.5) + (4 - 1) = 4.5  -> 4.5 / 9 = 1/2
    # C: (4 - 1.5) = 2.5            -> 2.5 / 9 = 5/18
    area = verdict.profile_area(verdict.ratios(SCORES))
    np.testing.assert_allclose(area, [2 / 3, 1 / 2, 5 / 18], rtol=1e-15, atol=0)


def test_the_profile_area_with_tau_max_2_ignores_ratios_above_2():
    # A: (2 - 1) + (2 - 1) = 2 -> 2 / 3;  B: (2 - 1) = 1 (2.5 > 2) -> 1 / 3;  C: (2 - 1.5) = 0.5 -> 1 / 6
    area = verdict.profile_area(verdict.ratios(SCORES), tau_max=2.0)
    np.testing.assert_allclose(area, [2 / 3, 1 / 3, 1 / 6], rtol=1e-15, atol=0)


def test_the_profile_area_of_one_column_is_a_float_and_best_everywhere_scores_1():
    assert verdict.profile_area(np.array([1.0, 1.0, 1.0])) == 1.0
    assert verdict.profile_area(np.array([INF, 4.0, 7.0])) == 0.0
    area = verdict.profile_area(np.array([1.0, 2.5, INF]))  # (3 + 1.5) / 9 = 0.5
    assert isinstance(area, float)
    assert area == 0.5


def test_the_exact_profile_area_matches_a_fine_midpoint_sum_of_the_profile():
    taus = 1 + (np.arange(30000) + 0.5) * (3 / 30000)
    riemann = verdict.performance_profile(SCORES, taus).mean(axis=0)
    np.testing.assert_allclose(verdict.profile_area(verdict.ratios(SCORES)), riemann, atol=1e-4)


def test_scores_with_nan_or_negatives_are_refused():
    with pytest.raises(ValueError, match="nan"):
        verdict.ratios([[1.0, float("nan")]])
    with pytest.raises(ValueError, match=">= 0"):
        verdict.ratios([[1.0, -0.5]])


# --------------------------------------------------------------------------------------------------
# log_grid, on_edge


def test_the_log_grid_includes_both_ends_exactly_and_is_evenly_spaced_in_log():
    grid = verdict.log_grid(1e-4, 1.0, 5)
    assert grid[0] == 1e-4
    assert grid[-1] == 1.0
    np.testing.assert_allclose(grid, [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)


def test_a_log_grid_of_one_point_is_the_geometric_mean_of_its_ends():
    np.testing.assert_allclose(verdict.log_grid(1e-4, 1.0, 1), [1e-2], rtol=1e-15)


def test_a_log_grid_refuses_a_nonpositive_low_end():
    with pytest.raises(ValueError, match="0 < low"):
        verdict.log_grid(0.0, 1.0, 3)


def test_a_best_value_is_on_the_edge_when_it_is_the_smallest_or_largest_tried():
    grid = verdict.log_grid(1e-3, 1e-1, 5)
    assert verdict.on_edge(grid, grid[0])
    assert verdict.on_edge(grid, grid[-1])
    assert not verdict.on_edge(grid, grid[2])
    assert verdict.on_edge(grid, float(repr(float(grid[-1]))))  # through text, as an MLflow param


# --------------------------------------------------------------------------------------------------


def test_core_verdict_imports_without_scipy_mlflow_or_click():
    blocked = "import sys; sys.modules.update(scipy=None, mlflow=None, click=None); import core.verdict"
    subprocess.run([sys.executable, "-c", blocked], cwd=ROOT, check=True)


def test_epochs_to_target_with_stay_counts_only_a_run_that_stays_at_the_target_to_its_end():
    from core.verdict import epochs_to_target

    epochs = [0, 1, 2, 3, 4]
    # touches the target at 1, leaves it, settles from 3 on
    assert epochs_to_target(epochs, [5.0, 0.5, 2.0, 0.9, 0.8], 1.0) == 1.0
    assert epochs_to_target(epochs, [5.0, 0.5, 2.0, 0.9, 0.8], 1.0, stay=True) == 3.0
    # ends above it: never reached, whatever it touched on the way
    assert math.isinf(epochs_to_target(epochs, [5.0, 0.5, 0.5, 0.5, 2.0], 1.0, stay=True))
    # below from the start; nan (a diverged step) is not below
    assert epochs_to_target(epochs, [0.5] * 5, 1.0, stay=True) == 0.0
    assert math.isinf(epochs_to_target(epochs, [0.5, 0.5, 0.5, 0.5, math.nan], 1.0, stay=True))
    assert math.isinf(epochs_to_target([], [], 1.0, stay=True))
