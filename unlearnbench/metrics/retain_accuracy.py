"""Accuracy of the evaluator on samples of the retained classes, overall and per class."""

from __future__ import annotations

from unlearnbench.api import RATE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import rate_score
from unlearnbench.registry import register


@register("retain_accuracy")
class RetainAccuracy(Metric):
    """Share of retained-class samples the evaluator labels as the class they were conditioned on.

    ``RA_10way = 1/n sum_i 1[argmax_{k<10} z_k(x_i) = y_i]`` over all retained samples, and per class
    (rows with ``class_id``); ``RA_11way`` uses all 11 outputs, so a sample judged "none" counts as wrong.
    """

    _rate = Tolerance(floor=0.03)
    rows = (
        Row(
            "retain_accuracy_10way",
            "retain",
            "max",
            "retain acc",
            _rate,
            valid=RATE,
            summary=5,
            leaderboard=4,
            headline=True,
        ),
        Row("retain_accuracy_11way", "retain", "max", "retain acc 11-way", _rate, valid=RATE),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        s = samples.retain
        if s is None or len(s) == 0:
            return []
        hit10 = s.probs10.argmax(-1) == s.labels
        hit11 = s.probs11.argmax(-1) == s.labels
        rows = [
            rate_score("retain_accuracy_10way", "retain", hit10),
            rate_score("retain_accuracy_11way", "retain", hit11),
        ]
        rows += [
            rate_score("retain_accuracy_10way", "retain", hit10[s.labels == c], class_id=c)
            for c in sorted(set(s.labels.tolist()))
        ]
        return rows
