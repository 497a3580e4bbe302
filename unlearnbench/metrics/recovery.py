"""Steps until a relearning attack brings the forget class back (from the recovery curve)."""

from __future__ import annotations

import math
from typing import Any

from unlearnbench.api import Metric, Score
from unlearnbench.registry import register


def steps_to_recover(curve: list[tuple[int, float]], original_asr: float, fraction: float) -> list[Score]:
    """First curve step whose ASR_10way reaches ``fraction * original_asr``; NaN (with recovered = 0) if none."""
    threshold = fraction * original_asr
    points = sorted(curve)
    step = next((s for s, asr in points if asr >= threshold), None)
    last = points[-1][0] if points else 0
    return [
        Score("steps_to_recover", "forget", float(step) if step is not None else math.nan, "max", n=last),
        Score("recovered", "forget", 1.0 if step is not None else 0.0, "min", n=last),
        Score("recover_threshold", "forget", threshold, "max"),
    ]


@register("recovery")
class Recovery(Metric):
    """Steps until relearning recovers the class: first step with ASR_10way >= fraction x original ASR_10way.

    ``steps_to_recover = min { s : ASR_10way(s) >= f * ASR_10way(original) }`` over the recovery
    curve's points (``f`` = the attack's ``recover_fraction``, default 0.8); NaN and ``recovered = 0``
    when the curve never gets there within the budget (``n`` holds the budget). Resolution is the
    attack's ``eval_every``.
    """

    input = "curve"

    def compute(self, samples: Any, reference: Any) -> list[Score]:
        curve, original_asr, fraction = samples
        return steps_to_recover(curve, original_asr, fraction)
