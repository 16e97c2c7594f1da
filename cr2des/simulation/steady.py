"""The steady-state completion interval of a stream of images, with its precision.

A pipelined chip's completions are not evenly spaced even once it is full: rows are dealt
round-robin over replicas, so which replica serves which row repeats only after many
images, and the images' counts cycle over the testing set.  The intervals therefore vary
around their long-run mean in patterns several images long.  Comparing two short windows
(as a fixed tolerance on consecutive windows does) either stops on a lucky pair or never
stops, and a window shorter than the pattern reports one phase of it (up to 10 % off on
ResNet-50).  Two standard tools of steady-state simulation output analysis are used
instead (Law, *Simulation Modeling and Analysis*, 5th ed., sections 9.4-9.5):

- **An exact period** first: the simulation is deterministic, so once the chip's state
  repeats, so do the intervals.  When the last runs of ``P`` intervals are equal (integer
  femtoseconds), ``P`` a whole number of cycles of the testing images, the smallest such
  ``P`` is the period and the mean over it is the long-run mean exactly (precision 0).
  The equal runs are at least :data:`REPEATS`, and with ``turnover`` images in flight
  they span at least ``turnover`` intervals, all after the first ``turnover``: a
  pipeline's fill can repeat too.  Small networks settle this way.
- **Warm-up by MSER** (White, Cobb and Spratt, 2000): the intervals are grouped in
  batches of one cycle of the testing images; the warm-up is the number of leading
  batches, at most half of them and leaving at least two, whose removal minimizes the
  squared standard error of the mean of the rest, ``sum((Z_i - mean)^2) / (n - d)^2``.
- **Batch means**: the intervals after the warm-up are cut into :data:`BATCHES` batches of
  equal size, a whole number of cycles each (the latest intervals are kept); the mean
  interval is their mean, and its 95 % confidence half-width is
  ``T_975 * std(batch means) / sqrt(BATCHES)``.  The *precision* is that half-width
  relative to the mean; the steady state is *converged* when it is at most the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: batches of the batch-means method (Law recommends 10 to 30 for large runs; the row
#: budget of a deep network allows a few dozen completions, so 5)
BATCHES = 5
#: periods that must repeat exactly before the intervals are taken as periodic
REPEATS = 3
#: Student's t 97.5 % quantile with BATCHES - 1 = 4 degrees of freedom (two-sided 95 %)
T_975 = 2.7764451051977934


@dataclass(frozen=True)
class Steady:
    """The measured steady state.

    Attributes
    ----------
    interval_fs
        Mean completion interval over the batches (integer femtoseconds per image, as a
        float).
    warmup
        Completions discarded as warm-up (the first completion is always one: intervals
        start after it).
    measured
        Completions the mean is taken over (``BATCHES x batch``).
    batch
        Completions per batch (a whole number of cycles).
    precision
        95 % confidence half-width relative to the mean; ``None`` with fewer than
        :data:`BATCHES` whole cycles after the warm-up (the mean is then over all
        intervals after it).
    periodic
        Whether the intervals repeat exactly (``batch`` is then the period and the
        precision 0); batch means whose spread is zero are not a period.
    """

    interval_fs: float
    warmup: int
    measured: int
    batch: int
    precision: float | None
    periodic: bool = False

    def converged(self, tolerance: float) -> bool:
        return bool(self.precision is not None and self.precision <= tolerance)


def mser_warmup(intervals: np.ndarray, batch: int) -> int:
    """Leading intervals to discard (a whole number of ``batch``-sized groups, at most
    half of them): MSER on the group means (module docstring)."""
    groups = len(intervals) // batch
    if groups < 2:
        return 0
    means = intervals[:groups * batch].reshape(groups, batch).mean(axis=1)
    best, cut = np.inf, 0
    for d in range(min(groups // 2, groups - 2) + 1):  # at least two groups stay
        rest = means[d:]
        score = float(((rest - rest.mean()) ** 2).sum()) / len(rest) ** 2
        if score < best:
            best, cut = score, d
    return cut * batch


def measure(completions: list[int] | np.ndarray, cycle: int, turnover: int = 0
            ) -> Steady | None:
    """The steady state of completion times ``completions`` (fs, in order), whose
    images' counts repeat every ``cycle`` images; ``None`` with fewer than three
    completions.  An exact period counts only after the first ``turnover`` intervals and
    over at least ``turnover`` of them (:func:`exact_period`)."""
    times = np.asarray(completions, dtype=np.int64)
    if len(times) < 3:
        return None
    whole = np.diff(times)
    period = exact_period(whole, cycle, turnover)
    if period is not None:
        span = repeats(period, turnover) * period
        return Steady(float(whole[-period:].mean()), len(whole) - span + 1, span, period, 0.0,
                      periodic=True)
    intervals = whole.astype(np.float64)
    cut = mser_warmup(intervals, max(1, cycle))
    rest = intervals[cut:]
    size = len(rest) // BATCHES // cycle * cycle
    if size == 0:
        return Steady(float(rest.mean()), cut + 1, len(rest), len(rest), None)
    used = rest[len(rest) - BATCHES * size:]
    means = used.reshape(BATCHES, size).mean(axis=1)
    mean = float(used.mean())
    half = T_975 * float(means.std(ddof=1)) / float(np.sqrt(BATCHES))
    return Steady(mean, len(intervals) - len(used) + 1, len(used), size,
                  half / mean if mean > 0 else None)


def exact_period(intervals: np.ndarray, cycle: int, turnover: int = 0) -> int | None:
    """The smallest whole number of cycles ``P`` such that the last
    :func:`repeats` ``(P, turnover)`` groups of ``P`` intervals are equal and all come after
    the first ``turnover`` intervals, or ``None``."""
    n = len(intervals)
    step = max(1, cycle)
    for period in range(step, n // REPEATS + 1, step):
        span = repeats(period, turnover) * period
        if span + turnover > n:
            continue
        tail = intervals[n - span:].reshape(-1, period)
        if (tail == tail[0]).all():
            return period
    return None


def repeats(period: int, turnover: int) -> int:
    """How many equal groups of ``period`` intervals make a period: :data:`REPEATS`, and
    enough to span ``turnover`` intervals."""
    return max(REPEATS, -(-turnover // period))
