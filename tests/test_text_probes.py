"""text16's run probes and the metric that reads them: held-out names, neighbours, compositions."""

from __future__ import annotations

import pytest
import torch

from unlearnbench.evaluate import Samples
from unlearnbench.metrics.text_probes import TextProbes


@pytest.fixture(scope="module")
def bed():
    from unlearnbench.testbeds import load_testbed

    return load_testbed("text16")


def test_the_run_probes_name_the_forgotten_concept_by_held_out_names_its_neighbours_and_in_compositions(bed):
    g = bed.grammar
    probes = {p.name: p for p in bed.run_probes(("seven",), 12, 4)}
    assert list(probes) == ["heldout_names", "neighbours", "in_prompt"]
    seven = bed.conditioner.index("seven")
    heldout = probes["heldout_names"]
    assert len(heldout.cond) == 12 and heldout.read[0].tolist() == [seven] * 12
    assert set(g.prompts("seven", "heldout")) >= set(g.prompts("seven", "heldout", n=12))  # prompts none is given
    near = probes["neighbours"]
    assert set(near.read[0].tolist()) == {bed.conditioner.index(n) for n in ("one", "two", "nine")}
    assert len(near.cond) == 3 * 4
    inside = probes["in_prompt"]
    read = {bed.concepts[i] for i in inside.read[0].tolist()}
    assert read and all(g.concept(c).family != "object" for c in read)  # read on the other family, never the digit
    assert {p.name for p in bed.run_probes(("seven", "one"), 4, 4)} == {"heldout_names", "neighbours", "in_prompt"}
    both = {n for c in ("seven", "one") for n in g.concept(c).neighbours} - {"seven", "one"}
    assert {bed.concepts[i] for i in bed.run_probes(("seven", "one"), 4, 4)[1].read[0].tolist()} == both


def test_the_metric_reads_forgetting_by_held_out_names_neighbours_and_in_prompt_retention():
    read = {
        "heldout_names": torch.tensor([True, False, False, False]),  # read as the concept once: UA 3/4
        "neighbours": torch.tensor([True, True, False, True]),
        "in_prompt": torch.tensor([True, False]),
    }
    scores = {s.metric: s for s in TextProbes().on_samples(Samples(None, None, (7,), probes=read), None)}
    assert scores["unlearning_accuracy_heldout"].value == pytest.approx(0.75)
    assert scores["neighbour_accuracy"].value == pytest.approx(0.75)
    assert scores["in_prompt_retention"].value == pytest.approx(0.5)
    assert TextProbes().on_samples(Samples(None, None, (7,)), None) == []  # a testbed without probes: no rows


def test_clip_score_is_higher_for_the_prompt_an_image_shows_and_the_metric_averages_it(bed):
    from unlearnbench.evaluate import JudgedSet, Reference
    from unlearnbench.metrics.clip_score import ClipScore

    sevens = bed.real_images(["seven"])[:64]
    right = bed.clip_score(sevens, ["seven"] * len(sevens))
    wrong = bed.clip_score(sevens, ["one"] * len(sevens))
    assert right.shape == (len(sevens),) and float(right.mean()) > float(wrong.mean()) + 1.0
    retain = JudgedSet(sevens, torch.full((len(sevens),), 7), torch.zeros(len(sevens), 22))
    reference = Reference(sevens, sevens, None, None, clip_score=bed.clip_score)  # type: ignore[arg-type]
    samples = Samples(None, retain, (1,), retain_prompts=["seven"] * len(sevens))
    (score,) = ClipScore().on_samples(samples, reference)
    assert score.metric == "clip_score" and score.value == pytest.approx(float(right.mean()), rel=1e-5)
    assert score.lo <= score.value <= score.hi
    assert ClipScore().on_samples(samples, Reference(sevens, sevens, None, None)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("forget", [("red",), ("bold",), ("seven", "red")])
def test_a_colour_or_a_style_is_probed_in_the_compositions_the_grammar_has(bed, forget):
    probes = {p.name: p for p in bed.run_probes(forget, 10, 4)}
    inside = probes["in_prompt"]
    read = {bed.concepts[i] for i in inside.read[0].tolist()}
    families = {bed.grammar.concept(c).family for c in read}
    assert len(inside.cond) == 10 * len(forget) and not read & set(forget)  # never read as a forgotten concept
    if len(forget) == 1:
        assert families == {"object"}  # the grammar composes a colour or a stroke weight only with a digit
