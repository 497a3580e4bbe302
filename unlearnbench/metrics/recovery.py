"""Whether the unlearned model forgot, and then how many relearning steps bring the class back."""

from __future__ import annotations

import math

from unlearnbench.api import FORGOT_FRACTION, NONNEGATIVE, RATE, Metric, RecoveryCurve, Row, Score, Tolerance
from unlearnbench.registry import register


def forgot(pre_asr: float, original_asr: float, fraction: float = FORGOT_FRACTION) -> bool:
    """Whether a run forgot: its forget-class rate (ASR) below ``fraction`` of the original model's."""
    return pre_asr < fraction * original_asr


def steps_to_recover(curve: list[tuple[int, float]], original_asr: float, fraction: float) -> list[Score]:
    """The recovery rows of one curve; its first point (step 0) is the ASR before the attack.

    A run *forgot* when that pre-attack ASR is below ``fraction * original_asr``. Only then are
    ``recovered`` and ``steps_to_recover`` written: the first later step whose ASR reaches the threshold
    (NaN, with recovered = 0, if none does). A run that never forgot has neither: it has nothing to recover.
    """
    threshold = fraction * original_asr
    points = sorted(curve)
    if not points:
        return []
    (_, pre), last = points[0], points[-1][0]
    did = forgot(pre, original_asr, fraction)
    rows = [Score("recover_threshold", "forget", threshold), Score("forgot", "forget", float(did))]
    if not did:
        return rows
    step = next((s for s, asr in points[1:] if asr >= threshold), None)
    return rows + [
        Score("steps_to_recover", "forget", float(step) if step is not None else math.nan, n=last),
        Score("recovered", "forget", 1.0 if step is not None else 0.0, n=last),
    ]


@register("recovery")
class Recovery(Metric):
    """Steps until relearning recovers the class, for runs that forgot: first step with ASR >= f x original ASR.

    ``forgot = 1[ASR(step 0) < f * ASR(original)]``; for runs that forgot,
    ``steps_to_recover = min { s > 0 : ASR(s) >= f * ASR(original) }`` over the recovery curve's points
    (``f`` = the attack's recovery fraction, default 0.8; ASR as the attack's curve records it, the
    noise-aware 11-way one; every point from the same number of samples), NaN and ``recovered = 0`` when
    the curve never gets there within the budget (``n`` holds the budget). A run that did not forget has no
    ``steps_to_recover`` and no ``recovered`` row, so it never counts as "recovered at step 0"; the
    leaderboard shows ``recovered k/n`` over the runs that forgot. Resolution is the attack's ``eval_every``.
    """

    _steps = Tolerance(floor=25.0, relative=0.5)
    rows = (
        # a mean over the runs that recovered, the censored ones aside: it orders nothing (no best mark); the
        # survival table's median and restricted mean do
        Row(
            "steps_to_recover",
            "forget",
            "max",
            "steps to recover",
            _steps,
            0,
            10,
            robustness=5,
            ranked=False,
            valid=NONNEGATIVE,
        ),
        Row("recovered", "forget", "min", "recovered", Tolerance(floor=0.5), digits=0, valid=RATE),
        Row("forgot", "forget", "max", "forgot", Tolerance(floor=0.5), digits=0, valid=RATE),
        Row("recover_threshold", "forget", "max", "recovery threshold", Tolerance(floor=0.1), valid=RATE),
    )

    def on_curve(self, curve: RecoveryCurve) -> list[Score]:
        return steps_to_recover(curve.points, curve.original_asr, curve.settings.fraction)
