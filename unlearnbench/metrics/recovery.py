"""Steps until a relearning attack brings the forget class back (from the recovery curve)."""

from __future__ import annotations

import math

from unlearnbench.api import Metric, RecoveryCurve, Row, Score, Tolerance
from unlearnbench.registry import register


def steps_to_recover(curve: list[tuple[int, float]], original_asr: float, fraction: float) -> list[Score]:
    """First curve step whose ASR reaches ``fraction * original_asr``; NaN (with recovered = 0) if none."""
    threshold = fraction * original_asr
    points = sorted(curve)
    step = next((s for s, asr in points if asr >= threshold), None)
    last = points[-1][0] if points else 0
    return [
        Score("steps_to_recover", "forget", float(step) if step is not None else math.nan, n=last),
        Score("recovered", "forget", 1.0 if step is not None else 0.0, n=last),
        Score("recover_threshold", "forget", threshold),
    ]


@register("recovery")
class Recovery(Metric):
    """Steps until relearning recovers the class: first step with ASR >= fraction x original ASR.

    ``steps_to_recover = min { s : ASR(s) >= f * ASR(original) }`` over the recovery curve's points
    (``f`` = the attack's recovery fraction, default 0.8; ASR as the attack's curve records it);
    NaN and ``recovered = 0`` when the curve never gets there within the budget (``n`` holds the
    budget). Resolution is the attack's ``eval_every``.
    """

    rows = (
        Row("steps_to_recover", "forget", "max", "steps to recover", Tolerance(floor=25.0, relative=0.5), 0, 10),
        Row("recovered", "forget", "min", "recovered", Tolerance(floor=0.5), digits=0),
        Row("recover_threshold", "forget", "max", "recovery threshold", Tolerance(floor=0.1)),
    )

    def on_curve(self, curve: RecoveryCurve) -> list[Score]:
        return steps_to_recover(curve.points, curve.original_asr, curve.settings.fraction)
