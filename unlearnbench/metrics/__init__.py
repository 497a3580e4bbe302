"""Metrics, one file each. Every file registers one :class:`~unlearnbench.api.Metric` with its formula."""

from __future__ import annotations

import math

from torch import Tensor


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
