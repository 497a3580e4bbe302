"""The loaded text16 testbed: its images show three concepts at once (a digit, a colour, a stroke weight), so
which images a concept set selects, and how each is conditioned, is the testbed's own (:meth:`Text16Testbed.images`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unlearnbench.conditioning import Conditioning
from unlearnbench.testbed import Testbed
from unlearnbench.testbeds.text16.data import Text16Data
from unlearnbench.testbeds.text16.grammar import Grammar

FAMILY_LABELS = {"object": "digit", "colour": "colour", "style": "style"}


@dataclass(frozen=True)
class Text16Testbed(Testbed):
    """A :class:`~unlearnbench.testbed.Testbed` whose data are :class:`Text16Data` and whose conditioner is the
    caption conditioner; ``caption_seed`` fixes which canonical caption each selected image gets."""

    text: Any = None  # Text16Data
    grammar: Any = None  # Grammar
    caption_seed: int = 0

    def shows(self, concepts: Sequence[str], rows: Text16Data | None = None) -> Tensor:
        """``[N, len(concepts)]``: whether each image shows each concept."""
        data: Text16Data = rows if rows is not None else self.text
        grammar: Grammar = self.grammar
        columns = []
        for name in concepts:
            c = grammar.concept(name)
            columns.append(getattr(data, FAMILY_LABELS[c.family]) == c.index)
        return torch.stack(columns, dim=1) if columns else torch.zeros(len(data), 0, dtype=torch.bool)

    def images(self, split: str, concepts: Sequence[str], exclude: Sequence[str] = ()) -> tuple[Tensor, Conditioning]:
        """The ``split`` images showing any of ``concepts`` and none of ``exclude``, each with a canonical caption
        that names the first of ``concepts`` it shows (drawn once, from ``caption_seed``); the conditioning's
        concept is that one."""
        data: Text16Data = self.text
        rows = data.take(data.train if split == "train" else data.test)
        hits = self.shows(concepts, rows)
        keep = hits.any(dim=1) & ~self.shows(exclude, rows).any(dim=1) if exclude else hits.any(dim=1)
        chosen = rows.take(keep)
        first = hits[keep].float().argmax(dim=1)  # which of ``concepts`` each kept image stands for
        rng = np.random.default_rng(self.caption_seed)
        captions = []
        for i, k in enumerate(first.tolist()):
            family = self.grammar.concept(concepts[k]).family
            labels = (int(chosen.digit[i]), int(chosen.colour[i]), int(chosen.style[i]))
            captions.append(self.grammar.caption(*labels, rng, names="canonical", naming=family))
        ids = torch.tensor([self.conditioner.index(concepts[k]) for k in first.tolist()], dtype=torch.long)
        return chosen.images, self.conditioner.prompts(captions, concepts=ids)
