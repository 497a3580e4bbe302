"""CLIP score of the retained samples against the prompts they were drawn from."""

from __future__ import annotations

from unlearnbench.api import Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import mean_score
from unlearnbench.registry import register


@register("clip_score")
class ClipScore(Metric):
    """``CLIP score = 1/n sum_i 100 * max(cos(f_img(x_i), f_txt(p_i)), 0)`` over the retained samples ``x_i`` and the
    prompts ``p_i`` each was drawn from (Hessel et al. 2021's form before its weight, as torchmetrics computes it),
    with the testbed's own CLIP scorer: on text16 the second open_clip model it ships, trained apart from the text
    encoder that conditions the UNet, so a method that edits what the prompt means to the UNet is not scored by the
    same representation. Higher is better: the retained prompts still produce what they say. No row on a testbed
    without a scorer (digits16).
    """

    rows = (
        Row(
            "clip_score",
            "retain",
            "max",
            "CLIP score",
            Tolerance(floor=1.0),
            digits=1,
            valid=(0.0, 100.0),
            leaderboard=5.5,
            headline=True,
        ),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        s = samples.retain
        if reference.clip_score is None or s is None or len(s) == 0 or len(samples.retain_prompts) != len(s):
            return []
        return [mean_score("clip_score", "retain", reference.clip_score(s.images, samples.retain_prompts).float())]
