"""text16's images show a digit, a colour and a stroke weight at once: which images a concept set selects, and
the captions that condition them (a random encoder; no diffusion model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unlearnbench.testbeds.text16.conditioner import CaptionConditioner
from unlearnbench.testbeds.text16.data import make_data
from unlearnbench.testbeds.text16.encoder import build_encoder
from unlearnbench.testbeds.text16.grammar import load_grammar
from unlearnbench.testbeds.text16.testbed import Text16Testbed


@pytest.fixture(scope="module")
def bed():
    grammar = load_grammar()
    conditioner = CaptionConditioner(build_encoder(0), grammar)
    return Text16Testbed(
        name="text16", model_source=None, data=None, model=torch.nn.Identity(), schedule=None, model_sha="",
        conditioner=conditioner, evaluator=None, evaluator_path=Path(), evaluator_sha="", attacker=None,
        attacker_sha="", text=make_data(), grammar=grammar,
    )  # fmt: skip


def test_a_forget_set_holds_the_concepts_images_and_the_retain_set_none_of_them(bed):
    data = bed.text
    x, cond = bed.images("train", ("seven",))
    assert len(x) == int((data.digit[data.train] == 7).sum()) == len(cond)
    assert set(cond.concepts.tolist()) == {bed.conditioner.index("seven")}
    retain = bed.retained(("seven",))
    rx, rc = bed.images("train", retain, exclude=("seven",))
    assert len(rx) == int((data.digit[data.train] != 7).sum())  # a red seven shows red, and stays out
    red, _ = bed.images("train", ("red",))
    assert len(red) == int((data.colour[data.train] == 0).sum())
    again = bed.images("train", ("seven",))[1]
    assert torch.equal(again.values, cond.values)  # the captions are drawn once, from the testbed's seed


def test_a_forget_captions_name_the_forgotten_concept(bed):
    import numpy as np

    grammar = bed.grammar
    rng = np.random.default_rng(0)
    captions = [grammar.caption(7, 0, 1, rng, names="canonical", naming="object") for _ in range(50)]
    assert all("seven" in c for c in captions)
