"""Bootstrap intervals, written once: over samples inside a run, and over runs (classes, seeds) in a table.

Every interval is a two-sided 95% percentile bootstrap with a fixed seed, so the same data always give
the same interval.

- :func:`bootstrap_mean`: resample the per-sample values of one run with replacement; the interval of
  their mean (UA, ASR, retained accuracy, entropy: every rate and mean a metric reports).
- :func:`bootstrap`: the same for any statistic of one or more sample sets, each resampled on its own
  (FID, KID: generated and real features). ``centred=True`` recentres the replicates' spread on the
  full-data estimate (``[θ + q_lo(θ* − mean θ*), θ + q_hi(θ* − mean θ*)]``), for statistics that a
  resample with repeated points biases (FID and KID grow when points repeat).
- :func:`subsample`: for statistics that repeated points distort (FID, KID: a with-replacement resample
  of 180 points in 128 dimensions inflates FID, and its spread with it): replicates on random subsets of
  ``m`` of each set's ``n`` points, drawn without replacement. For a mean a subset's variance around the
  full-set value is ``σ²/m · (1 − m/n)``, so deviations scaled by ``sqrt(m / (n − m))`` have the full-set
  estimator's spread; the interval is the estimate plus their central quantiles (centring removes the
  smaller sets' bias).
- :func:`combine_runs`: the interval of a mean over runs: resample the runs with replacement and redraw
  each chosen run's value from its own sample interval (a normal with the run's bootstrap standard
  error, ``(hi − lo) / (2 · 1.96)``), so the interval holds both the spread between classes and seeds
  and each run's sampling error, clipped to the runs' own range. A run without an interval counts as exact.
- :func:`overlap`: two intervals overlap: the leaderboard calls such methods tied on that column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

LEVEL = 0.95
N_BOOT = 1000
SEED = 0


class Interval(NamedTuple):
    lo: float
    hi: float

    @property
    def known(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))


NO_INTERVAL = Interval(math.nan, math.nan)


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> Interval:
    """The central ``level`` share of bootstrap replicates (NaN replicates dropped)."""
    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return NO_INTERVAL
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(lo), float(hi))


def bootstrap_mean(
    values: Sequence[float] | np.ndarray, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = SEED
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (one run's per-sample values)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return NO_INTERVAL
    rng = np.random.default_rng(seed)
    reps = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    return percentile_interval(reps, level)


def bootstrap(
    statistic: Callable[..., float],
    *samples: np.ndarray,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
    centred: bool = False,
) -> tuple[Interval, float]:
    """Interval of ``statistic(*samples)``, each sample set (rows) resampled independently; also returns
    the replicates' standard deviation (the bootstrap standard error)."""
    rng = np.random.default_rng(seed)
    reps = np.array(
        [statistic(*(s[rng.integers(0, len(s), size=len(s))] for s in samples)) for _ in range(n_boot)], dtype=float
    )
    se = float(np.nanstd(reps, ddof=1)) if n_boot > 1 else math.nan
    if not centred:
        return percentile_interval(reps, level), se
    estimate = float(statistic(*samples))
    shift = percentile_interval(reps - np.nanmean(reps), level)
    return Interval(estimate + shift.lo, estimate + shift.hi), se


def subsample(
    statistic: Callable[..., float],
    *samples: np.ndarray,
    strata: Sequence[np.ndarray | None] | None = None,
    fraction: float = 0.5,
    n_rep: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
    estimate: float | None = None,
) -> tuple[Interval, float]:
    """Interval of ``statistic(*samples)`` (or of ``estimate``, the value reported for them when it is
    computed otherwise) from ``n_rep`` replicates on random subsets (``fraction`` of every
    set, without replacement; within each stratum where ``strata`` gives a label per point, as the samples
    were drawn: a fixed number per class): the estimate plus the central quantiles of the replicates'
    deviations from their median, scaled by ``sqrt(m / (n - m))`` (1 for halves); also returns the scaled
    standard error. The median, not the mean: a few extreme replicates (KID on small subsets can be very
    negative) pulled the mean so far that the estimate fell outside its own interval (KID of the original
    model, -6.66 with [-0.06, 13.79], before 2026-11-29)."""
    rng = np.random.default_rng(seed)
    estimate = float(statistic(*samples)) if estimate is None else float(estimate)
    strata = list(strata) if strata is not None else [None] * len(samples)
    groups = [
        [np.arange(len(s))] if labels is None else [np.flatnonzero(labels == v) for v in np.unique(labels)]
        for s, labels in zip(samples, strata, strict=True)
    ]

    def pick(s: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
        # a stratum of one point cannot be split: it stays whole
        keep = [
            p if len(p) < 2 else rng.permutation(p)[: min(len(p) - 1, max(1, round(fraction * len(p))))] for p in parts
        ]
        return s[np.sort(np.concatenate(keep))]

    reps = np.array(
        [statistic(*(pick(s, g) for s, g in zip(samples, groups, strict=True))) for _ in range(n_rep)], dtype=float
    )
    deviations = (reps - np.nanmedian(reps)) * math.sqrt(fraction / (1 - fraction))
    shift = percentile_interval(deviations, level)
    se = float(np.nanstd(deviations, ddof=1)) if n_rep > 1 else math.nan
    return Interval(estimate + shift.lo, estimate + shift.hi), se


def combine_runs(
    values: Sequence[float],
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> Interval:
    """Interval of the mean over runs: runs resampled, each run's value redrawn from its own interval.

    Runs whose interval is unknown count as exact. A single run keeps its own interval (none if it has
    none). The result stays within the runs' own range (their values and intervals), which the normal redraw
    could leave (a rate above 1).
    """
    v = np.asarray(values, dtype=float)
    keep = np.isfinite(v)
    v = v[keep]
    if v.size == 0:
        return NO_INTERVAL
    lo_ = np.full(keep.shape, np.nan) if lo is None else np.asarray(lo, dtype=float)
    hi_ = np.full(keep.shape, np.nan) if hi is None else np.asarray(hi, dtype=float)
    lo_, hi_ = lo_[keep], hi_[keep]
    if v.size == 1:  # one run: its own interval over its samples (none if it has none)
        return Interval(float(lo_[0]), float(hi_[0])) if np.isfinite(lo_[0]) and np.isfinite(hi_[0]) else NO_INTERVAL
    se = (hi_ - lo_) / (2 * _z(level))
    se = np.where(np.isfinite(se), se, 0.0)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, v.size, size=(n_boot, v.size))
    reps = (v[pick] + se[pick] * rng.standard_normal(pick.shape)).mean(axis=1)
    ci = percentile_interval(reps, level)
    # the normal redraw can leave the runs' own range (a rate above 1): keep within it
    floor = float(np.nanmin(np.fmin(lo_, v))) if np.isfinite(lo_).any() else float(v.min())
    ceiling = float(np.nanmax(np.fmax(hi_, v))) if np.isfinite(hi_).any() else float(v.max())
    return Interval(max(ci.lo, floor), min(ci.hi, ceiling))


def overlap(a: Interval, b: Interval) -> bool:
    """Whether two known intervals share a point (unknown intervals never overlap)."""
    return a.known and b.known and a.lo <= b.hi and b.lo <= a.hi


__all__ = [
    "LEVEL",
    "N_BOOT",
    "NO_INTERVAL",
    "Interval",
    "bootstrap",
    "bootstrap_mean",
    "combine_runs",
    "subsample",
    "overlap",
    "percentile_interval",
]
