"""Retained accuracy within the forgotten concept's family and across the others (UnlearnCanvas's IRA and CRA)."""

from __future__ import annotations

import torch

from unlearnbench.api import RATE, Metric, Row, Score, Tolerance
from unlearnbench.evaluate import Reference, Samples
from unlearnbench.metrics import rate_score
from unlearnbench.registry import register


@register("retention_by_family")
class RetentionByFamily(Metric):
    """Retained accuracy split by concept family: in-domain (the forgotten concepts' families) and cross-domain.

    On a testbed whose concepts come in families (text16: objects, colours, stroke weights), a retained sample is
    *in-domain* when its concept shares a family with a forgotten one (the other digits when "seven" is erased)
    and *cross-domain* otherwise (the colours and the stroke weights), as UnlearnCanvas's in-domain and
    cross-domain retain accuracy (IRA, CRA): ``IRA = 1/|R_in| sum_{i in R_in} 1[argmax_k z_k(x_i) = y_i]``, the same
    over ``R_cross`` for CRA (the judge reads each image within its concept's family). A testbed with one family
    (digits16) has no cross-domain and gets no rows: its retained accuracy is the in-domain one.
    """

    rows = (
        Row(
            "retain_accuracy_in_domain",
            "retain",
            "max",
            "IRA",
            Tolerance(floor=0.03),
            valid=RATE,
            leaderboard=4.1,
            headline=True,
        ),
        Row(
            "retain_accuracy_cross_domain",
            "retain",
            "max",
            "CRA",
            Tolerance(floor=0.03),
            valid=RATE,
            leaderboard=4.2,
            headline=True,
        ),
    )

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        s, families = samples.retain, reference.families
        if s is None or len(s) == 0 or len(set(families)) < 2:
            return []
        forgotten = {families[c] for c in samples.forget_classes}
        same = torch.tensor([families[int(c)] in forgotten for c in s.labels.tolist()], dtype=torch.bool)
        hit = s.probs10.argmax(-1) == s.labels
        out = []
        for metric, mask in (("retain_accuracy_in_domain", same), ("retain_accuracy_cross_domain", ~same)):
            if bool(mask.any()):
                out.append(rate_score(metric, "retain", hit[mask.to(hit.device)]))
        return out
