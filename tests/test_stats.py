"""Bootstrap intervals (unlearnbench.stats) against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unlearnbench.stats import (
    Interval,
    bootstrap,
    bootstrap_mean,
    combine_runs,
    overlap,
    paired_difference,
    subsample,
)


@pytest.mark.parametrize(
    ("name", "draw", "true_mean"),
    [
        ("a UA of 0.57 from 100 samples", lambda rng: rng.random(100) < 0.57, 0.57),
        ("a skewed mean from 50 samples", lambda rng: rng.exponential(2.0, 50), 2.0),
    ],
)
def test_bootstrap_interval_covers_the_true_mean_in_at_least_90_of_100_repetitions(name, draw, true_mean):
    covered = 0
    for seed in range(100):
        values = draw(np.random.default_rng(seed)).astype(float)
        lo, hi = bootstrap_mean(values, seed=seed)
        covered += lo <= true_mean <= hi
    assert covered >= 90, f"{name}: covered {covered}/100"


def test_bootstrap_interval_of_a_rate_has_the_binomial_width():
    values = (np.random.default_rng(0).random(100) < 0.57).astype(float)
    lo, hi = bootstrap_mean(values)
    se = math.sqrt(values.mean() * (1 - values.mean()) / 100)  # about 0.05, as the issue says
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_intervals_are_deterministic_and_empty_input_has_none():
    values = np.arange(20.0)
    assert bootstrap_mean(values) == bootstrap_mean(values)
    assert not bootstrap_mean([]).known


def test_centred_bootstrap_brackets_the_estimate_of_a_statistic_that_resampling_biases():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 3))

    def distinct_share(rows):  # repeated rows always lower it: the plain percentile interval misses the estimate
        return len(np.unique(rows, axis=0)) / len(rows)

    plain, _ = bootstrap(distinct_share, x, n_boot=200)
    centred, se = bootstrap(distinct_share, x, n_boot=200, centred=True)
    assert not plain.lo <= 1.0 <= plain.hi
    assert centred.lo <= 1.0 <= centred.hi and se > 0


def test_combining_runs_holds_the_spread_between_runs_and_each_runs_own_error():
    exact = combine_runs([0.1, 0.5, 0.9])
    assert exact.lo < 0.5 < exact.hi and exact.lo >= 0.1 and exact.hi <= 0.9
    # a single run keeps (about) its own interval; without one it has none
    alone = combine_runs([0.5], [0.4], [0.6])
    assert alone.lo == pytest.approx(0.4, abs=0.02) and alone.hi == pytest.approx(0.6, abs=0.02)
    assert not combine_runs([0.5]).known
    # identical runs with wide intervals give a wider interval than identical exact runs
    assert combine_runs([0.5] * 3, [0.3] * 3, [0.7] * 3).hi > combine_runs([0.5] * 3).hi


def test_combined_interval_covers_the_true_mean_of_class_effects_and_samples():
    # three classes whose true rates differ, 100 samples each: the truth is the mean of the class rates
    rates = np.array([0.3, 0.57, 0.8])
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        per_run = [(rng.random(100) < p).astype(float) for p in rates]
        intervals = [bootstrap_mean(v, seed=seed) for v in per_run]
        ci = combine_runs([v.mean() for v in per_run], [i.lo for i in intervals], [i.hi for i in intervals])
        covered += ci.lo <= rates.mean() <= ci.hi
    assert covered >= 90


def test_two_seeds_of_one_concept_are_resampled_together():
    # eight concepts whose effects differ, two seeds each with the same value: 8 observations, not 16
    effects = np.linspace(0.0, 1.0, 8)
    values, concepts = np.repeat(effects, 2), np.repeat([f"c{i}" for i in range(8)], 2)
    clustered = combine_runs(values, clusters=list(concepts))
    as_runs = combine_runs(values)
    of_means = combine_runs(effects, clusters=[f"c{i}" for i in range(8)])
    width = clustered.hi - clustered.lo
    assert width > 1.25 * (as_runs.hi - as_runs.lo)  # treating seeds as independent understates the spread
    assert width == pytest.approx(of_means.hi - of_means.lo, rel=0.15)
    # one concept: nothing to resample between concepts, so its runs (seeds) are resampled
    one = combine_runs([0.2, 0.6, 0.4], clusters=["x", "x", "x"])
    assert one == combine_runs([0.2, 0.6, 0.4])


def test_a_paired_difference_orders_rows_that_overlapping_intervals_cannot():
    # concept difficulty spreads both rows over [0, 1]; A is 0.05 above B on every concept and seed
    effects = np.linspace(0.0, 1.0, 8)
    b = {(f"c{i}", s): (float(e), float(e) - 0.01, float(e) + 0.01) for i, e in enumerate(effects) for s in (0, 1)}
    a = {k: (v + 0.05, lo + 0.05, hi + 0.05) for k, (v, lo, hi) in b.items()}
    d = paired_difference(a, b)
    assert d is not None and d.value == pytest.approx(0.05) and d.n_pairs == 16 and d.n_clusters == 8
    assert 0 < d.interval.lo < 0.05 < d.interval.hi and not d.tie
    side_by_side = [combine_runs(*zip(*x.values(), strict=True), clusters=[k[0] for k in x]) for x in (a, b)]
    assert overlap(*side_by_side)  # set side by side the two intervals overlap: they cannot order A and B
    # a difference that changes sign between concepts is a tie; rows that share no run cannot be paired
    mixed = {k: (v + (0.3 if int(k[0][1]) % 2 else -0.3), lo, hi) for k, (v, lo, hi) in b.items()}
    assert paired_difference(mixed, b).tie
    assert paired_difference(a, {("other", 0): (0.5, 0.4, 0.6)}) is None


def test_overlap():
    assert overlap(Interval(0, 1), Interval(1, 2)) and not overlap(Interval(0, 1), Interval(1.5, 2))
    assert not overlap(Interval(math.nan, math.nan), Interval(0, 1))


def test_subsampling_gives_a_mean_the_spread_of_the_full_sample():
    values = np.random.default_rng(3).standard_normal(400)
    for fraction in (0.5, 0.8):
        interval, se = subsample(np.mean, values, fraction=fraction, n_rep=400)
        assert se == pytest.approx(1 / math.sqrt(400), rel=0.2)  # the full sample's standard error
        assert interval.lo < values.mean() < interval.hi
    # within strata: a mean over two classes of fixed size has only the within-class spread
    labels = np.repeat([0, 1], 200)
    shifted = values + 10 * labels
    _, se = subsample(np.mean, shifted, strata=[labels], n_rep=400)
    assert se == pytest.approx(1 / math.sqrt(400), rel=0.2)
    _, se_mixed = subsample(np.mean, shifted, n_rep=400)
    assert se_mixed > 3 * se  # ignoring the classes lets the class mix vary


def test_a_subsample_interval_holds_its_estimate_when_a_few_replicates_are_extreme():
    """A statistic whose half-sample replicates are near the estimate but, in 4 of 200 (seed 4), hugely
    negative (as KID on small subsets): the interval must still contain the estimate (centred on the
    replicates' mean, it did not: the spikes shifted it up by about 21)."""
    values = np.arange(100, dtype=float)
    spikes = []

    def spiky(x: np.ndarray) -> float:
        if len(x) < len(values) and x.min() > 4:  # subsets without 0..4
            spikes.append(1)
            return -1000.0
        return float(np.mean(x))

    interval, _ = subsample(spiky, values, n_rep=200, seed=4)
    assert len(spikes) == 4
    assert interval.lo <= spiky(values) <= interval.hi
