"""Mean Shannon entropy of the evaluator's 10-way prediction on forget-class samples."""

from __future__ import annotations

from unlearnbench.api import NONNEGATIVE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import mean_score
from unlearnbench.registry import register


@register("entropy")
class Entropy(Metric):
    """Mean entropy (nats) of the 10-way evaluator softmax on forget samples; ln 10 = 2.303 is the maximum on
    digits16 (on text16 the judge reads within the concept's family: ln 10 for a digit, ln 8 for a colour, ln 3
    for a stroke weight, so compare entropies within one family).

    ``H = 1/n sum_i ( - sum_{k<10} p_k(x_i) ln p_k(x_i) )`` with ``p = softmax`` over the digit logits.
    SAFEMax maximises it; by Fano's inequality a higher H raises the lower bound on the judge's error.
    """

    rows = (
        Row(
            "entropy",
            "forget",
            "max",
            "H",
            Tolerance(floor=0.05),
            digits=2,
            summary=3,
            leaderboard=3,
            valid=NONNEGATIVE,
        ),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        s = samples.forget
        if s is None or len(s) == 0:
            return []
        p = s.probs10.clamp_min(1e-12)
        h = -(p * p.log()).sum(-1)
        return [mean_score("entropy", "forget", h)]
