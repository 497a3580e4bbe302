"""Time-to-recover under relearning as survival data: Kaplan–Meier curves, medians, restricted means, tests.

A relearning attack records the forget-class attack success rate (ASR) at curve checkpoints. A run *forgot*
when ``ASR(0) < f * ASR(original)``; for such a run the *event* is recovery, at
``T = min { s > 0 : ASR(s) >= f * ASR(original) }`` (the rule of :mod:`unlearnbench.metrics.recovery`), and a
run that never gets there is right-censored at the budget (its last checkpoint). A run that never forgot is
neither an event nor at risk: it is left out (:func:`recovery_time` returns None).

"Survival" here is the fraction of runs not yet recovered: high is good for the unlearning method.

- :func:`recovery_time`: one curve to ``(time, event)``.
- :func:`kaplan_meier`: the Kaplan–Meier curve with a log-log pointwise band (``scipy.stats.ecdf``).
- :func:`median_time`: median time-to-recover, its interval read from the band (Brookmeyer–Crowley style).
- :func:`restricted_mean`: restricted mean survival time (RMST), the area under the curve up to the budget.
- :func:`paired_rmst_difference`: RMST(A) − RMST(B) with a paired cluster bootstrap over forget classes.
- :func:`logrank`: the log-rank test of two methods' curves (``scipy.stats.logrank``).
- :func:`rank_correlation`: Spearman's rho with an (optionally cluster) bootstrap interval.

Pure numpy/scipy: importing this module imports neither torch nor (until first use) scipy.stats.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from unlearnbench.stats import bootstrap

if TYPE_CHECKING:
    from scipy.stats import CensoredData

# The same value as unlearnbench.api.FORGOT_FRACTION (a test checks it); not imported from there because
# unlearnbench.api imports torch and this module must stay light.
FORGOT_FRACTION = 0.8
LEVEL = 0.95
N_BOOT = 2000
SEED = 0
# A product of fractions (5/6 · 3/5) can land a hair above 0.5: "reaches one half" allows this much.
_HALF_TOL = 1e-12


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:g}"


@dataclass(frozen=True)
class RecoveryTime:
    """One run that forgot: ``time`` is the recovery step (``event``) or the budget (censored, not ``event``)."""

    time: float
    event: bool
    budget: float


def recovery_time(
    points: Sequence[tuple[int, float]], original_asr: float, fraction: float = FORGOT_FRACTION
) -> RecoveryTime | None:
    """Time-to-recover of one run from its recovery curve ``[(step, ASR), ...]``, step 0 first.

    With threshold ``θ = fraction * original_asr``: None when ``ASR(0) >= θ`` (the run never forgot: neither
    an event nor at risk); else ``T = min { s > 0 : ASR(s) >= θ }`` with ``event=True``, or ``T = budget``
    (the last step) with ``event=False`` when no checkpoint reaches ``θ``.

    Raises:
        ValueError: empty curve, no step 0, negative or repeated steps, or a NaN/infinite ASR anywhere in the
            curve or in ``original_asr`` (a NaN would silently compare as "not recovered").
    """
    if not math.isfinite(original_asr):
        raise ValueError(f"original ASR is {original_asr}: the recovery threshold is undefined")
    if not points:
        raise ValueError("empty recovery curve: it needs at least the step-0 (pre-attack) point")
    curve = sorted((int(s), float(a)) for s, a in points)
    steps = [s for s, _ in curve]
    if steps[0] != 0:
        raise ValueError(f"the recovery curve has no step 0 (pre-attack ASR); its first step is {steps[0]}")
    if len(set(steps)) != len(steps):
        raise ValueError(f"the recovery curve repeats a step: {steps}")
    bad = [(s, a) for s, a in curve if not math.isfinite(a)]
    if bad:
        raise ValueError(f"the recovery curve has a non-finite ASR at step(s) {[s for s, _ in bad]}: {bad}")
    threshold = fraction * original_asr
    budget = float(steps[-1])
    if not curve[0][1] < threshold:
        return None
    step = next((s for s, a in curve[1:] if a >= threshold), None)
    if step is None:
        return RecoveryTime(time=budget, event=False, budget=budget)
    return RecoveryTime(time=float(step), event=True, budget=budget)


def _survival_data(
    times: Sequence[float] | np.ndarray, events: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, CensoredData]:
    """Checked times and event flags, and their ``CensoredData``: events uncensored, the rest right-censored."""
    t = np.asarray(times, dtype=float).ravel()
    e = np.asarray(events).ravel()
    if t.shape != e.shape:
        raise ValueError(f"{t.size} times but {e.size} event flags")
    if t.size == 0:
        # scipy.stats.ecdf returns an empty curve here without complaint: say so instead
        raise ValueError("no runs: a survival curve needs at least one run that forgot")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"non-finite recovery time(s): {t[~np.isfinite(t)].tolist()}")
    if np.any(t < 0):
        raise ValueError(f"negative recovery time(s): {t[t < 0].tolist()}")
    if e.dtype != bool and not np.all(np.isin(e, (0, 1))):
        raise ValueError(f"event flags must be booleans (or 0/1), got {e.tolist()}")
    e = e.astype(bool)
    from scipy import stats  # here, not at the top: scipy.stats takes half a second to import

    return t, e, stats.CensoredData(uncensored=t[e], right=t[~e])


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class KaplanMeier:
    """A Kaplan–Meier curve of time-to-recover (arrays read-only).

    ``survival[i]`` is ``Ŝ(t[i]) = Π_{t_j <= t[i]} (1 − d_j / n_j)`` (``d_j`` recoveries among ``n_j`` runs
    still at risk), the fraction of runs not yet recovered just after ``t[i]``; ``Ŝ = 1`` before ``t[0]``.
    ``lo``/``hi`` are the pointwise log-log band. ``censored`` holds the censored times (with repeats), for
    marking on a plot.
    """

    t: np.ndarray
    survival: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: int
    n_events: int
    n_censored: int
    censored: np.ndarray
    confidence: float

    def evaluate(self, x: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """``Ŝ(x)`` of the right-continuous step curve (1 before the first time, the last value after)."""
        i = np.searchsorted(self.t, np.asarray(x, dtype=float), side="right")
        return np.concatenate([[1.0], self.survival])[i]


def _band(
    survival: np.ndarray, lo: np.ndarray, hi: np.ndarray, at_risk: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the points where the log-log band is undefined (scipy gives NaN there).

    The band transforms ``log(−log Ŝ)``, undefined at ``Ŝ = 1`` (no recovery yet: the band is ``[1, 1]``, as
    the curve is exactly 1 there) and at ``Ŝ = 0`` (everyone at risk recovered; Greenwood's variance divides
    by zero). There ``lo = 0``, and ``hi`` is the band just before times the exact (Clopper–Pearson) upper bound
    of a share of 0 out of the ``n`` runs then at risk, ``1 − (α/2)^(1/n)``: sixteen runs that all recover by step
    25 put the median at 25 at most (``hi`` 0.21), while a single run that recovers keeps ``hi`` at 0.975: one run
    says nothing about where the median lies.
    """
    lo, hi = lo.copy(), hi.copy()
    one = survival >= 1.0
    lo[one], hi[one] = 1.0, 1.0
    zero = survival <= 0.0
    lo[zero] = 0.0
    last = 1.0
    alpha = 1.0 - confidence
    for i in range(hi.size):
        if zero[i] and (i == 0 or not zero[i - 1]):  # the step where the last runs at risk all recovered
            hi[i] = last * (1.0 - (alpha / 2) ** (1.0 / at_risk[i]))
        elif np.isnan(hi[i]):
            hi[i] = last
        last = hi[i]
    if np.isnan(lo).any():  # not seen in scipy 1.17: only Ŝ in {0, 1} gives NaN; keep the band honest anyway
        lo = np.where(np.isnan(lo), 0.0, lo)
    return lo, hi


def kaplan_meier(
    times: Sequence[float] | np.ndarray, events: Sequence[bool] | np.ndarray, *, confidence: float = LEVEL
) -> KaplanMeier:
    """Kaplan–Meier curve of time-to-recover with a pointwise ``confidence`` band.

    ``scipy.stats.ecdf(CensoredData(uncensored=event times, right=censored times)).sf`` gives the curve and
    ``.confidence_interval(confidence, method="log-log")`` the band: ``exp(−exp(log(−log Ŝ) ± z·σ))`` with
    Greenwood's ``σ² = Σ d_j / (n_j (n_j − d_j)) / (log Ŝ)²``. At a time where a recovery and a censoring tie,
    the recovery counts first (the censored run is still at risk then).

    Every run censored: ``Ŝ = 1`` throughout and the band is ``[1, 1]`` (scipy returns a NaN band and warns;
    see :func:`_band`, which also bounds the band where every run still at risk recovers). One run works too.

    Raises:
        ValueError: no runs, or a NaN, infinite or negative time.
    """
    t, e, data = _survival_data(times, events)
    from scipy import stats

    sf = stats.ecdf(data).sf
    with warnings.catch_warnings():
        # "The confidence interval is undefined at some observations": where Ŝ is 0 or 1, handled in _band
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = sf.confidence_interval(confidence, method="log-log")
    survival = np.asarray(sf.probabilities, dtype=float)
    at_risk = np.array([np.sum(t >= q) for q in sf.quantiles], dtype=float)  # censored at q: still at risk at q
    low, high = (np.asarray(c.probabilities, dtype=float) for c in (ci.low, ci.high))
    lo, hi = _band(survival, low, high, at_risk, confidence)
    return KaplanMeier(
        t=_frozen(sf.quantiles),
        survival=_frozen(survival),
        lo=_frozen(lo),
        hi=_frozen(hi),
        n=int(t.size),
        n_events=int(e.sum()),
        n_censored=int((~e).sum()),
        censored=_frozen(np.sort(t[~e])),
        confidence=confidence,
    )


@dataclass(frozen=True)
class MedianTime:
    """Median time-to-recover and its interval; ``inf`` where the curve (or a band) never reaches one half."""

    value: float
    lo: float
    hi: float
    budget: float

    def _one(self, x: float) -> str:
        return f"> {_fmt(self.budget)}" if math.isinf(x) else _fmt(x)

    def text(self) -> str:
        """E.g. ``"50 [25, 100]"``, or ``"> 300 [100, > 300]"`` when more than half the runs never recover."""
        return f"{self._one(self.value)} [{self._one(self.lo)}, {self._one(self.hi)}]"


def _first_at_or_below_half(t: np.ndarray, s: np.ndarray) -> float:
    hit = np.flatnonzero(s <= 0.5 + _HALF_TOL)
    return float(t[hit[0]]) if hit.size else math.inf


def median_time(km: KaplanMeier, budget: float) -> MedianTime:
    """Median time-to-recover ``min { t : Ŝ(t) <= 1/2 }`` with its interval read from the band.

    Brookmeyer–Crowley style: the interval is ``[min { t : lo(t) <= 1/2 }, min { t : hi(t) <= 1/2 }]``, the
    times where the lower and the upper band cross one half. A value or bound never reached within the
    observed times is ``inf`` (rendered ``"> budget"``): more than half the runs are still unrecovered.
    The first time at or below one half is taken, not the midpoint of a flat stretch at exactly 1/2.
    """
    return MedianTime(
        value=_first_at_or_below_half(km.t, km.survival),
        lo=_first_at_or_below_half(km.t, km.lo),
        hi=_first_at_or_below_half(km.t, km.hi),
        budget=float(budget),
    )


def _area(t: np.ndarray, s: np.ndarray, budget: float) -> float:
    """``∫_0^budget Ŝ(u) du`` of a step curve (1 before ``t[0]``, its last value carried on to the budget)."""
    knots = np.minimum(np.concatenate([[0.0], t, [budget]]), budget)
    return float(np.sum(np.concatenate([[1.0], s]) * np.diff(knots)))


def restricted_mean(times: Sequence[float] | np.ndarray, events: Sequence[bool] | np.ndarray, budget: float) -> float:
    """Restricted mean time-to-recover: ``RMST = ∫_0^budget Ŝ(u) du`` under the Kaplan–Meier curve.

    The expected number of steps, capped at ``budget``, before a run recovers. When the last observed time is
    censored before the budget, the curve's last value is carried on to the budget. Every run censored at
    the budget gives exactly ``budget``.

    Raises:
        ValueError: no runs, a bad time, or a budget that is negative or not finite.
    """
    if not (math.isfinite(budget) and budget >= 0):
        raise ValueError(f"budget must be a finite step count >= 0, got {budget}")
    from scipy import stats

    sf = stats.ecdf(_survival_data(times, events)[2]).sf
    return _area(np.asarray(sf.quantiles, dtype=float), np.asarray(sf.probabilities, dtype=float), float(budget))


@dataclass(frozen=True)
class PairedDifference:
    """``RMST(A) − RMST(B)`` with a cluster-bootstrap interval; ``tie`` when the interval holds 0."""

    value: float
    lo: float
    hi: float
    n_clusters: int

    @property
    def tie(self) -> bool:
        """Whether the interval holds 0, or there is no interval (one concept): either way, cannot tell."""
        return not (self.lo > 0.0 or self.hi < 0.0)


Run = tuple[float, bool]


def _split(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([float(r[0]) for r in runs], dtype=float)
    e = np.array([bool(r[1]) for r in runs], dtype=bool)
    return t, e


def paired_rmst_difference(
    a: Mapping[Hashable, Sequence[Run]],
    b: Mapping[Hashable, Sequence[Run]],
    budget: float,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = LEVEL,
) -> PairedDifference:
    """``Δ = RMST(A) − RMST(B)`` over shared clusters, with a paired cluster-bootstrap percentile interval.

    ``a`` and ``b`` map a cluster (forget class) to its runs' ``(time, event)``, the runs that forgot. Only
    clusters with runs under both methods are used (a cluster where one method never forgot has nothing to
    pair). Each replicate draws the clusters with replacement and takes all of a drawn cluster's runs, for
    both methods together, so that class difficulty shared by A and B cancels; ``Δ*`` is recomputed from
    the pooled runs and the interval is the central ``confidence`` share of the replicates (percentile).
    ``Δ > 0``: A's runs take longer to recover (A's unlearning holds better).

    With few clusters (8 forget classes) the bootstrap sees only 8 distinct values per draw and its
    percentile interval is optimistic (too narrow); read it as a screen, not as a calibrated 95%.

    With one shared cluster there is nothing to resample: ``lo`` and ``hi`` are NaN and :attr:`~PairedDifference.tie`
    holds (cannot tell).

    Raises:
        ValueError: no cluster with runs under both methods.
    """
    shared = [k for k in a if k in b and len(a[k]) and len(b[k])]
    if not shared:
        raise ValueError("no cluster (forget class) has runs that forgot under both methods")
    ta, ea = zip(*(_split(a[k]) for k in shared), strict=True)
    tb, eb = zip(*(_split(b[k]) for k in shared), strict=True)

    def delta(pick: np.ndarray) -> float:
        return restricted_mean(np.concatenate([ta[i] for i in pick]), np.concatenate([ea[i] for i in pick]), budget) - (
            restricted_mean(np.concatenate([tb[i] for i in pick]), np.concatenate([eb[i] for i in pick]), budget)
        )

    k = len(shared)
    if k < 2:  # one concept: the bootstrap over concepts has nothing to draw; a zero-width interval would be a lie
        return PairedDifference(value=delta(np.arange(k)), lo=math.nan, hi=math.nan, n_clusters=k)
    # clusters are the rows that stats.bootstrap resamples: each replicate gets a draw of cluster indices
    (lo, hi), _ = bootstrap(delta, np.arange(k), n_boot=n_boot, level=confidence, seed=seed)
    return PairedDifference(value=delta(np.arange(k)), lo=lo, hi=hi, n_clusters=k)


def logrank(
    a_times: Sequence[float] | np.ndarray,
    a_events: Sequence[bool] | np.ndarray,
    b_times: Sequence[float] | np.ndarray,
    b_events: Sequence[bool] | np.ndarray,
) -> tuple[float, float]:
    """Two-sided log-rank test that A's and B's time-to-recover curves are the same: ``(statistic, pvalue)``.

    ``scipy.stats.logrank``: ``Z = Σ_j (O_Aj − E_Aj) / sqrt(Σ_j V_j)`` over recovery times, ``E_Aj =
    d_j n_Aj / n_j``, ``V_j = d_j (n_Aj / n_j)(1 − n_Aj / n_j)(n_j − d_j) / (n_j − 1)``; ``Z > 0`` when A
    recovers sooner than expected (scipy's statistic is this signed ``Z``, the square root of the usual
    chi-square). When there is no information (no recovery in either group, or ``Σ V_j = 0``, e.g. one
    run per group recovering at the same step) scipy returns NaN and warns; then ``O = E`` and this returns
    ``(0.0, 1.0)``: no evidence of a difference.
    """
    x, y = _survival_data(a_times, a_events)[2], _survival_data(b_times, b_events)[2]
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 in the no-information case, handled below
        res = stats.logrank(x, y)
    statistic, pvalue = float(res.statistic), float(res.pvalue)
    if math.isnan(statistic):
        return 0.0, 1.0
    return statistic, pvalue


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho with a bootstrap interval; ``n_clusters`` is None for a run-level bootstrap."""

    rho: float
    lo: float
    hi: float
    n: int
    n_clusters: int | None


# The share of a rank correlation's bootstrap draws that may have no rho (constant in x or y) before it gives no
# interval: one varying cluster of 8 is missed by (7/8)^8 = 34% of draws, two by 10%, three by 2.3%.
UNDEFINED_SHARE = 0.05


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)  # a constant draw: NaN, dropped
        return float(stats.spearmanr(x, y).statistic)


def rank_correlation(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    clusters: Sequence[Hashable] | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = LEVEL,
) -> Correlation:
    """Spearman's rho of ``x`` and ``y`` (``scipy.stats.spearmanr``: Pearson's r of the ranks, ties averaged)
    with a bootstrap interval: pairs resampled with replacement, or, given ``clusters`` (one label per pair),
    whole clusters resampled with replacement. The interval is centred on the estimate
    (``[ρ + q_lo(ρ* − mean ρ*), ρ + q_hi(ρ* − mean ρ*)]``, :func:`unlearnbench.stats.bootstrap`), clipped
    to ``[-1, 1]``.

    For entropy against time-to-recover, pass censored runs at the budget: that is a rank correlation in
    which the censored runs tie at the top rank (they recovered "no sooner than the budget"); runs that
    never forgot have no time and are left out by the caller. Replicates whose draw is constant in ``x`` or
    ``y`` have no rho and are dropped; where more than ``UNDEFINED_SHARE`` of them have none, the interval is NaN:
    the rest are the draws that caught the few clusters whose values vary (a method whose runs all recover at
    one step but one), and an interval from them alone would look precise about that one run. ``rho`` is NaN
    when the data themselves are constant; the interval is NaN given a single cluster (every draw is the data
    again: a zero-width interval would be a lie).

    Raises:
        ValueError: lengths differ, fewer than 2 pairs, or a NaN/infinite value.
    """
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x has {xs.size} values but y has {ys.size}")
    if xs.size < 2:
        raise ValueError(f"a rank correlation needs at least 2 pairs, got {xs.size}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("x and y must be finite (censored times enter at the budget, not as NaN or inf)")
    if clusters is None:
        groups, n_clusters = [np.array([i]) for i in range(xs.size)], None
    else:
        labels = list(clusters)
        if len(labels) != xs.size:
            raise ValueError(f"{len(labels)} cluster labels for {xs.size} pairs")
        groups = [np.array([i for i, c in enumerate(labels) if c == g]) for g in dict.fromkeys(labels)]
        n_clusters = len(groups)

    undefined = 0

    def rho_of(pick: np.ndarray) -> float:
        nonlocal undefined
        rows = np.concatenate([groups[g] for g in pick])
        rho = _spearman(xs[rows], ys[rows])
        undefined += not math.isfinite(rho)
        return rho

    rho = _spearman(xs, ys)
    if len(groups) < 2:
        return Correlation(rho=rho, lo=math.nan, hi=math.nan, n=int(xs.size), n_clusters=n_clusters)
    # centred: a draw repeats points (whole clusters), and the repeats pull the replicates' rho away from the
    # estimate (toward 0 when the correlation lives between clusters), so that a plain percentile interval
    # missed its own estimate (rho 0.967, interval [0.81, 0.963], 8 clusters of 3)
    (lo, hi), _ = bootstrap(rho_of, np.arange(len(groups)), n_boot=n_boot, level=confidence, seed=seed, centred=True)
    lo, hi = max(lo, -1.0), min(hi, 1.0)
    if undefined > UNDEFINED_SHARE * n_boot:
        lo = hi = math.nan
    return Correlation(rho=rho, lo=lo, hi=hi, n=int(xs.size), n_clusters=n_clusters)


__all__ = [
    "FORGOT_FRACTION",
    "Correlation",
    "KaplanMeier",
    "MedianTime",
    "PairedDifference",
    "RecoveryTime",
    "kaplan_meier",
    "logrank",
    "median_time",
    "paired_rmst_difference",
    "rank_correlation",
    "recovery_time",
    "restricted_mean",
]
