"""Metrics, one file each. Every file registers one :class:`~unlearnbench.api.Metric` with its formula."""

from __future__ import annotations

import math

from torch import Tensor

from unlearnbench.api import Score
from unlearnbench.stats import bootstrap_mean


def binomial_stderr(hits: Tensor) -> float:
    n = hits.numel()
    p = float(hits.float().mean()) if n else float("nan")
    return math.sqrt(p * (1 - p) / n) if n else float("nan")


def mean_stderr(values: Tensor) -> tuple[float, float]:
    n = values.numel()
    if n == 0:
        return float("nan"), float("nan")
    std = float(values.float().std()) if n > 1 else 0.0
    return float(values.float().mean()), std / math.sqrt(n)


def mean_score(metric: str, split: str, values: Tensor, *, class_id: int | None = None) -> Score:
    """The mean of per-sample ``values`` with its standard error (binomial for 0/1 values) and its 95%
    bootstrap interval over the samples."""
    v = values.detach().float().flatten().cpu()
    binary = v.dtype == bool or bool(((v == 0) | (v == 1)).all())
    mean, se = mean_stderr(v)
    if binary:
        se = binomial_stderr(v)
    interval = bootstrap_mean(v.numpy())
    return Score(metric, split, mean, se, v.numel(), class_id, interval.lo, interval.hi)


def rate_score(metric: str, split: str, hits: Tensor, *, class_id: int | None = None) -> Score:
    """A share of samples (``hits`` a boolean per sample), with its interval."""
    return mean_score(metric, split, hits.float(), class_id=class_id)
