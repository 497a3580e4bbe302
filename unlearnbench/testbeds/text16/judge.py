"""text16's judges: each image shows a digit, a colour and a stroke weight at once, so an image is read within the
family of the concept it is meant to show. A sample prompted with "seven" is read by a digit classifier, one
prompted with "red" by the pixels, one prompted with "bold" by the style classifier.

:class:`FamilyJudge` keeps the judge interface every metric and attack reads (``judge(images, concepts)`` ->
logits over the testbed's concept list and one more output, "none"): for an image meant to show a concept of
family F, every output outside F and "none" is :data:`OUTSIDE` (a probability of exactly 0 after a softmax), so
"the argmax is the meant concept", the entropy and the forget-class probability are all read within F.

- object: the digit classifier's ten digit logits and its "none" logit, as on digits16;
- style: the style classifier's three logits and its "none";
- colour: exact, from the pixels (``data.colour_of``'s cosine to each palette direction, over a temperature of
  :data:`COLOUR_TEMPERATURE`), and "none" with the digit classifier's probability that the image is noise:
  ``p(colour k) = (1 - p_none) softmax(cos / T)_k``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unlearnbench.models import Classifier
from unlearnbench.testbeds.text16.data import colour_cosines

OUTSIDE = -1.0e4  # a logit whose softmax weight is exactly 0 in float32, yet finite (no 0 * log 0 = NaN)
COLOUR_TEMPERATURE = 0.02  # cosine units: red and orange (22.5 degrees apart, cosine 0.924) differ by 3.8 logits
FAMILY_IDS = {"object": 0, "colour": 1, "style": 2}


class FamilyJudge(nn.Module):
    """Logits ``[N, K + 1]`` over the testbed's K concepts and "none", each image read within the family of the
    concept it is meant to show (``concepts``, indices into the concept list; ``families[k]`` is concept k's family,
    ``positions[k]`` its label within that family). ``features`` (FID/KID's space) are the digit classifier's."""

    def __init__(self, digit: Classifier, style: Classifier, families: list[str], positions: list[int]) -> None:
        super().__init__()
        self.digit = digit
        self.style = style
        self.register_buffer("family", torch.tensor([FAMILY_IDS[f] for f in families], dtype=torch.long))
        self.register_buffer("position", torch.tensor(positions, dtype=torch.long))
        self.num_concepts = len(families)

    def features(self, x: Tensor) -> Tensor:
        return self.digit.features(x)

    def forward(self, x: Tensor, concepts: Tensor | None = None) -> Tensor:
        if concepts is None:
            raise ValueError("the text16 judge reads an image within the family of the concept it is meant to show")
        if concepts.shape != x.shape[:1]:
            raise ValueError(f"{len(x)} images but {tuple(concepts.shape)} concepts")
        if len(concepts) and (int(concepts.min()) < 0 or int(concepts.max()) >= self.num_concepts):
            raise ValueError(f"concept indices must be in [0, {self.num_concepts}), got {concepts.unique().tolist()}")
        family: Tensor = self.family[concepts]
        out = x.new_full((len(x), self.num_concepts + 1), OUTSIDE, dtype=torch.float32)
        digit = self.digit(x).float()  # [N, 11]: ten digits, none
        for fam, logits in (
            (FAMILY_IDS["object"], digit),
            (FAMILY_IDS["style"], self.style(x).float()),
            (FAMILY_IDS["colour"], self._colour(x, digit)),
        ):
            rows = family == fam
            if not bool(rows.any()):
                continue
            columns = torch.nonzero(self.family == fam)[:, 0]  # this family's concepts, in label order
            order = columns[self.position[columns].argsort()]
            out[rows.nonzero()[:, 0][:, None], order[None, :]] = logits[rows, :-1]
            out[rows, -1] = logits[rows, -1]
        return out

    @staticmethod
    def _colour(x: Tensor, digit: Tensor) -> Tensor:
        """Log-probabilities ``[N, 8 + 1]``: the colour read from the pixels, "none" from the digit classifier."""
        log_none = digit.log_softmax(-1)[:, -1:]
        log_some = torch.log1p(-log_none.exp().clamp(max=1 - 1e-6))
        colour = (colour_cosines(x) / COLOUR_TEMPERATURE).log_softmax(-1)
        return torch.cat([colour + log_some, log_none], dim=1)
