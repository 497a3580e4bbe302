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
- :func:`combine_runs`: the interval of a mean over runs: resample the forget concepts with replacement (a
  cluster bootstrap: a drawn concept brings every seed's run; with one concept, the runs) and redraw each
  chosen run's value from its own sample interval (a normal with the run's bootstrap standard error,
  ``(hi − lo) / (2 · 1.96)``), so the interval holds both the spread between concepts and seeds and each
  run's sampling error, clipped to the runs' own range. A run without an interval counts as exact.
- :func:`paired_difference`: two rows' difference on the runs they share (same concept and seed), with the
  same cluster bootstrap: the leaderboard calls two rows tied on a column when this interval holds 0.
- :func:`overlap`: two intervals overlap (the two judges' reading of the same runs; two rows that share no
  run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
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


def _cluster_weights(clusters: Sequence[Hashable] | None, n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` weights of ``n`` runs in each replicate: how often each run is drawn. With ``clusters``
    (a label per run: its forget concept) the clusters are drawn with replacement and a drawn cluster brings all
    its runs (a cluster bootstrap: two seeds of one concept are not two independent observations); without, or
    with a single cluster (nothing to resample between), the runs themselves are drawn."""
    if clusters is None or len({str(c) for c in clusters}) < 2:
        return _counts(rng.integers(0, n, size=(n_boot, n)), n)
    _, member = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    k = int(member.max()) + 1
    return _counts(rng.integers(0, k, size=(n_boot, k)), k)[:, member]


def _counts(draws: np.ndarray, k: int) -> np.ndarray:
    """How often each of ``k`` indices appears in each row of ``draws``."""
    out = np.zeros((draws.shape[0], k))
    np.add.at(out, (np.arange(draws.shape[0])[:, None], draws), 1.0)
    return out


def _redraw(
    v: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Each run's value redrawn from its own interval (normal, its half-width / z as the standard error; exact
    where it has none), once per replicate."""
    se = np.where(np.isfinite(hi - lo), (hi - lo) / (2 * _z(level)), 0.0)
    return v + se * rng.standard_normal(shape)


def combine_runs(
    values: Sequence[float],
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
    *,
    clusters: Sequence[Hashable] | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> Interval:
    """Interval of the mean over runs: runs resampled (with ``clusters``, a label per run, the clusters: every
    run of a drawn cluster), each run's value redrawn from its own interval.

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
    rng = np.random.default_rng(seed)
    kept = None if clusters is None else [c for c, k in zip(clusters, keep, strict=True) if k]
    weights = _cluster_weights(kept, v.size, n_boot, rng)
    reps = (weights * _redraw(v, lo_, hi_, level, weights.shape, rng)).sum(axis=1) / weights.sum(axis=1)
    ci = percentile_interval(reps, level)
    # the normal redraw can leave the runs' own range (a rate above 1): keep within it
    floor = float(np.nanmin(np.fmin(lo_, v))) if np.isfinite(lo_).any() else float(v.min())
    ceiling = float(np.nanmax(np.fmax(hi_, v))) if np.isfinite(hi_).any() else float(v.max())
    return Interval(max(ci.lo, floor), min(ci.hi, ceiling))


class Paired(NamedTuple):
    """A paired difference ``A − B`` over the runs both rows have (same concept and seed): its mean, its 95%
    interval from a cluster bootstrap over concepts, and how many pairs and concepts it rests on."""

    value: float
    interval: Interval
    n_pairs: int
    n_clusters: int

    @property
    def tie(self) -> bool:
        """The data cannot order A and B: the paired interval holds 0."""
        return self.interval.known and self.interval.lo <= 0 <= self.interval.hi


def paired_difference(
    a: Mapping[tuple[Hashable, Hashable], tuple[float, float, float]],
    b: Mapping[tuple[Hashable, Hashable], tuple[float, float, float]],
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> Paired | None:
    """``A − B`` paired on the runs both have. ``a`` and ``b`` map a run's ``(cluster, seed)`` (its forget
    concept and seed) to its ``(value, lo, hi)``. Each replicate draws the shared clusters with replacement,
    takes every pair of a drawn cluster and redraws each run's value from its own interval (A's and B's
    independently: their samples are); the interval is the central ``level`` share of the replicates' mean
    difference. Concept difficulty that both rows share cancels, which two intervals set side by side cannot
    see. None when the rows share no run."""
    shared = sorted((k for k in a if k in b), key=str)
    if not shared:
        return None
    va, la, ha = (np.array(x, dtype=float) for x in zip(*(a[k] for k in shared), strict=True))
    vb, lb, hb = (np.array(x, dtype=float) for x in zip(*(b[k] for k in shared), strict=True))
    clusters = [k[0] for k in shared]
    value = float((va - vb).mean())
    rng = np.random.default_rng(seed)
    weights = _cluster_weights(clusters, len(shared), n_boot, rng)
    da = _redraw(va, la, ha, level, weights.shape, rng)
    db = _redraw(vb, lb, hb, level, weights.shape, rng)
    reps = (weights * (da - db)).sum(axis=1) / weights.sum(axis=1)
    return Paired(value, percentile_interval(reps, level), len(shared), len(set(map(str, clusters))))


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
    "Paired",
    "paired_difference",
    "percentile_interval",
]
