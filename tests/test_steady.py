"""The steady-state measurement (cr2des.simulation.steady): hand-derived cases."""

from __future__ import annotations

import numpy as np
import pytest

from cr2des.simulation.steady import BATCHES, REPEATS, T_975, exact_period, measure, mser_warmup


def _times(intervals) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(intervals)]).astype(np.int64)


def test_t_quantile_is_students():
    special = pytest.importorskip("scipy.special")
    assert pytest.approx(float(special.stdtrit(BATCHES - 1, 0.975)), rel=1e-12) == T_975


def test_an_exact_period_gives_the_exact_mean():
    # a warm-up, then a pattern of 6 intervals (3 cycles of 2 images) repeated 3 times
    pattern = [5, 9, 5, 7, 5, 11]
    intervals = [40, 30, 20] + pattern * REPEATS
    assert exact_period(np.array(intervals), 2) == 6
    steady = measure(_times(intervals), 2)
    assert steady is not None
    assert steady.interval_fs == pytest.approx(np.mean(pattern))
    assert steady.precision == 0 and steady.converged(0.0)
    assert steady.measured == REPEATS * 6 and steady.warmup == 4  # 3 intervals + the first


def test_a_period_must_be_whole_cycles_and_repeat():
    intervals = np.array([1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2])
    assert exact_period(intervals, 1) == 2
    assert exact_period(intervals, 4) == 4  # whole cycles of 4 images
    assert exact_period(intervals, 6) is None  # 3 x 6 intervals are not there
    assert exact_period(np.array([1, 2, 3, 1, 2, 4]), 1) is None
    assert exact_period(np.array([7, 7]), 1) is None  # fewer than REPEATS repeats


def test_a_period_counts_only_after_a_turnover_and_over_another():
    """The fill can repeat too (AlexNet's wpr completed images every 19.5 us for a while,
    1.3x faster than its busiest stage can work, while the work done ahead drained): with
    ``turnover`` images in flight, the equal groups must come after the first ``turnover``
    intervals and span at least ``turnover`` of them."""
    fill = [20, 19] * 6  # 12 intervals that repeat with a period of 2
    assert exact_period(np.array(fill), 1) == 2
    assert exact_period(np.array(fill), 1, turnover=8) is None  # no room for 8 + 8
    settled = [25, 27] * 5  # the steady state: a period of 2 again, after the fill
    intervals = np.array(fill + settled)
    assert exact_period(intervals, 1, turnover=8) == 2  # the last 4 groups of 2, after 14
    assert exact_period(intervals, 1, turnover=11) is None  # 6 groups need 12 + 11 > 22
    steady = measure(_times(intervals), 1, turnover=8)
    assert steady is not None and steady.periodic
    # the mean over the period; 22 - 8 intervals and the first completion discarded
    assert steady.interval_fs == 26 and steady.measured == 8 and steady.warmup == 15


def test_batch_means_without_spread_are_not_a_period():
    # five batches of one cycle with equal means, but no interval repeats in a period
    intervals = [1, 3, 2, 6] * 4 + [3, 1, 6, 2]
    steady = measure(_times(intervals), 4)
    assert steady is not None
    assert steady.precision == 0 and not steady.periodic


def test_mser_discards_a_transient_and_keeps_two_groups():
    transient = [30, 28, 26, 24, 22, 20, 18, 16]
    # a settled tail: the first cut that leaves zero spread is exactly the transient
    assert mser_warmup(np.array(transient + [10] * 40), 4) == 8
    # a noisy tail: at least the transient goes, at most half of the groups
    rng = np.random.default_rng(0)
    cut = mser_warmup(np.concatenate([transient, 10 + rng.standard_normal(40) * 0.1]), 4)
    assert 8 <= cut <= 24
    assert mser_warmup(np.array([50.0, 40, 1, 1]), 2) == 0  # two groups: none removed


def test_batch_means_precision_by_hand():
    # five batches of one cycle (4 intervals) with means 3, 1, 5, 2, 4: MSER keeps all
    # (squared standard errors: 10/25 with none removed, 10/16 and 4.67/9 otherwise)
    means = [3, 1, 5, 2, 4]
    intervals = [m + d for m in means for d in (-0.5, 0.5, -0.25, 0.25)]
    steady = measure(_times(intervals), 4)
    assert steady is not None
    assert steady.warmup == 1 and steady.measured == 20 and steady.batch == 4
    assert steady.interval_fs == pytest.approx(3.0)
    # half-width: t * sd(means) / sqrt(5) = 2.776 * sqrt(2.5) / sqrt(5), relative to 3
    assert steady.precision == pytest.approx(T_975 * np.sqrt(2.5) / np.sqrt(5) / 3)
    assert not steady.converged(0.5) and steady.converged(0.7)


def test_too_few_completions():
    assert measure([0, 10], 1) is None
    steady = measure(_times([10, 12, 14]), 4)
    assert steady is not None and steady.precision is None and not steady.converged(1.0)
    assert steady.interval_fs == pytest.approx(12.0)
