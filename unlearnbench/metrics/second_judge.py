"""UA and retained accuracy read by the testbed's second, independently trained evaluator."""

from __future__ import annotations

from unlearnbench.api import RATE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples, judge
from unlearnbench.metrics import rate_score
from unlearnbench.registry import register

# The evaluator's rows that the second judge reads again, (metric, split, label): written as <metric>_judge2.
_READ_AGAIN = (
    ("unlearning_accuracy_10way", "forget", "UA10"),
    ("unlearning_accuracy_11way", "forget", "UA11"),
    ("retain_accuracy_10way", "retain", "retain acc"),
    ("retain_accuracy_11way", "retain", "retain acc 11-way"),
)


@register("second_judge")
class SecondJudge(Metric):
    """The evaluator's UA and retained accuracy, read by the second judge (another architecture and seed,
    the same "none" training; ``judge2`` in the testbed's manifest).

    The formulas are those of ``unlearning_accuracy`` and ``retain_accuracy`` with the second judge's logits
    ``z'``: ``UA'_11way = 1/n sum_i 1[argmax_{k<=10} z'_k(x_i) != c_i]``, ``RA'_10way = 1/n sum_i
    1[argmax_{k<10} z'_k(x_i) = y_i]``, and so on. One judge is a single point of failure: where the two
    judges' intervals do not overlap, the leaderboard flags the number. No rows without a second judge.
    """

    rows = tuple(  # each names the evaluator's row it reads again: the leaderboard sets the two side by side
        Row(
            f"{metric}_judge2",
            split,
            "max",
            f"{label} (judge 2)",
            Tolerance(floor=0.03),
            second_judge_of=metric,
            valid=RATE,
        )
        for metric, split, label in _READ_AGAIN
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        second = None if reference is None else reference.second_judge
        if second is None:
            return []
        rows = []
        f = samples.forget
        if f is not None and len(f) and samples.target is not None:
            j = judge(second, f.images, f.labels, concepts=samples.target)  # an attack's free prompts: labels -1
            rows += [
                rate_score("unlearning_accuracy_10way_judge2", "forget", j.probs10.argmax(-1) != samples.target),
                rate_score("unlearning_accuracy_11way_judge2", "forget", j.probs11.argmax(-1) != samples.target),
            ]
        r = samples.retain
        if r is not None and len(r):
            j = judge(second, r.images, r.labels)
            rows += [
                rate_score("retain_accuracy_10way_judge2", "retain", j.probs10.argmax(-1) == r.labels),
                rate_score("retain_accuracy_11way_judge2", "retain", j.probs11.argmax(-1) == r.labels),
            ]
        return rows
