"""Unlearning accuracy (UA) and attack success rate (ASR) on forget-class samples."""

from __future__ import annotations

from unlearnbench.api import RATE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import mean_score, rate_score
from unlearnbench.registry import register


@register("unlearning_accuracy")
class UnlearningAccuracy(Metric):
    """UA: share of forget-class samples the evaluator does not label as the forget class (10- and 11-way).

    For samples ``x_i`` meant to be forget class ``c_i``, with the evaluator's logits ``z(x_i)``:

    - ``UA_10way = 1/n sum_i 1[argmax_{k<10} z_k(x_i) != c_i]``: the papers' 10-way judge, which must
      call every image some digit, so pure noise lands on a digit by chance.
    - ``UA_11way = 1/n sum_i 1[argmax_{k<=10} z_k(x_i) != c_i]``: noise-aware; "none" counts as forgotten.
      The primary criterion (``unlearnbench.defaults.PRIMARY_UA``/``PRIMARY_ASR``): the 10-way head can read
      noise as the forget digit.
    - ``ASR = 1 - UA``: the forget-class share (attack success rate; before an attack, the pre-ASR).
    - ``forget_class_probability = 1/n sum_i softmax_10(z(x_i))_{c_i}``: the papers' mean P(c_f).
    - ``none_rate = 1/n sum_i 1[argmax_{k<=10} z_k(x_i) = none]``: how many samples the judge calls noise.
    """

    _rate = Tolerance(floor=0.03)
    curve_point = True  # the recovery curve is the forget-class rate at each step
    rows = (
        Row(
            "unlearning_accuracy_11way",
            "forget",
            "max",
            "UA11",
            _rate,
            valid=RATE,
            summary=1,
            leaderboard=1,
            headline=True,
        ),
        Row(
            "unlearning_accuracy_10way",
            "forget",
            "max",
            "UA10",
            _rate,
            valid=RATE,
            summary=2,
            leaderboard=2,
            headline=True,
        ),
        Row("asr_10way", "forget", "min", "ASR10", _rate, valid=RATE, robustness=2, before_attack=True),
        Row("asr_11way", "forget", "min", "ASR11", _rate, valid=RATE, robustness=1, before_attack=True),
        Row("forget_class_probability", "forget", "min", "P(forget class)", _rate, valid=RATE),
        Row("none_rate", "forget", "max", "none rate", _rate, valid=RATE),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        s = samples.forget
        if s is None or len(s) == 0 or samples.target is None:
            return []
        target = samples.target
        hit10 = s.probs10.argmax(-1) == target
        pred11 = s.probs11.argmax(-1)
        hit11 = pred11 == target
        none = pred11 == s.logits.shape[-1] - 1
        return [
            rate_score("unlearning_accuracy_10way", "forget", ~hit10),
            rate_score("unlearning_accuracy_11way", "forget", ~hit11),
            rate_score("asr_10way", "forget", hit10),
            rate_score("asr_11way", "forget", hit11),
            mean_score("forget_class_probability", "forget", s.probs10.gather(1, target[:, None])[:, 0]),
            rate_score("none_rate", "forget", none),
        ]
