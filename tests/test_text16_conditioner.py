"""text16's conditioner turns concept names and prompts into the encoder's token states (a random encoder here)."""

from __future__ import annotations

import pytest
import torch

from unlearnbench.errors import UserError
from unlearnbench.testbeds.text16.conditioner import CaptionConditioner
from unlearnbench.testbeds.text16.encoder import build_encoder
from unlearnbench.testbeds.text16.grammar import load_grammar


@pytest.fixture(scope="module")
def conditioner():
    return CaptionConditioner(build_encoder(0), load_grammar())


def test_concepts_are_the_grammars_ids_and_stand_for_their_canonical_prompt(conditioner):
    grammar = load_grammar()
    assert conditioner.concepts == tuple(c.id for c in grammar.concepts)
    assert {"seven", "red", "bold"} <= set(conditioner.concepts)
    cond = conditioner.encode(["seven", "red"])
    assert cond.kind == "tokens" and tuple(cond.values.shape) == (2, 16, 64)
    assert torch.equal(cond.values[0], conditioner.states([grammar.render("seven")])[0])
    assert torch.equal(cond.null_like().values[0], conditioner.states([""])[0])  # guidance's null: the empty prompt
    assert cond.concept_mask([conditioner.index("red")]).tolist() == [False, True]


def test_another_concept_never_is_an_excluded_one_and_free_prompts_condition_too(conditioner):
    cond = conditioner.encode(["seven"] * 8)
    other = conditioner.other(cond, ("seven",), "random", torch.Generator().manual_seed(0))
    assert conditioner.index("seven") not in other.concepts.tolist()
    free = conditioner.prompts(["a crimson 7 in heavy strokes"])
    assert free.kind == "tokens" and free.concepts is None and not torch.equal(free.values[0], cond.values[0])


def test_an_unknown_concept_and_a_prompt_too_long_are_refused(conditioner):
    with pytest.raises(ValueError, match="unknown concept 'sevn'"):
        conditioner.encode(["sevn"])
    with pytest.raises(UserError, match="the encoder's context holds 16"):
        conditioner.prompts(["a " * 20 + "seven"])


def test_the_prompt_attacks_search_space_and_soft_prefixes(conditioner):
    """What the text prompt attacks read: a concept's banned words are every word of its names; the searchable words
    are every word the encoder knows as one token (the grammar's, and the pieces the BPE splits the others into that
    are words by themselves) less those; and a prompt whose leading input embeddings are words' own (one-hot soft
    tokens) has exactly the states of the prompt that spells them."""
    banned = conditioner.banned_words("seven")
    assert {"seven", "7", "sieben", "number"} <= banned and "three" not in banned
    words = conditioner.search_words(banned)
    assert "seven" not in words and "7" not in words and "three" in words and "red" in words
    assert "sieben" not in words and "ben" in words  # "sieben" is "sie" + "ben": the word "ben" is that last token
    # a piece that only starts a word is searchable marked "sie+", and spelled onto the word after it: the soft
    # prefix of its embedding and "o"'s is exactly the prompt "sieo", which names no concept
    assert "sie" not in words and "sie+" in words and conditioner.spell(["sie+", "o", "in", ""]) == "sieo in"
    glued = conditioner.prefixed(conditioner.word_embeddings(["sie+", "o"])[None], [""]).values
    assert torch.equal(glued, conditioner.prompts(["sieo"]).values)
    assert conditioner.spell(["a", "sie+", "ben"]).split()[1] in banned  # a spelling can form a banned word
    vocabulary = conditioner.grammar.vocabulary()
    pieces = {i for v in vocabulary for i in conditioner.encoder.word_ids([v])[0]}
    whole = [w for w in words if not w.endswith("+")]
    assert all(w in vocabulary or conditioner.encoder.word_ids([w])[0][0] in pieces for w in whole)  # no new token
    assert all(len(ids) == 1 for ids in conditioner.encoder.word_ids(whole))
    assert all(conditioner.encoder.piece_id(w[:-1]) in pieces for w in words if w.endswith("+"))
    slots = conditioner.word_embeddings(["seven", "red"])[None]  # [1, 2, width]
    soft = conditioner.prefixed(slots, ["a thin"]).values
    assert torch.equal(soft, conditioner.prompts(["seven red a thin"]).values)
    empty = conditioner.prefixed(slots[:, :1], [""]).values
    assert torch.equal(empty, conditioner.prompts(["seven"]).values)
    assert conditioner.canonical_prompt("red") == conditioner.grammar.render("red")
    assert "7" in conditioner.heldout_prompts("seven") and "seven" not in conditioner.heldout_prompts("seven")
    with pytest.raises(UserError, match="not one token of the text encoder"):
        conditioner.word_embeddings(["sieben"])


def test_a_method_given_an_attribute_erases_it_over_every_object_not_one_prompt(conditioner):
    """ESD and Selective Amnesia are given the concept, not images (``told``): an object by its name alone, as the
    papers erase "car"; an attribute, which cannot be drawn without an object, over its canonical prompts, so "red"
    is not erased as "a red zero" alone (its first canonical prompt)."""
    assert conditioner.canonical_prompt("red") == "a red zero"
    objects = conditioner.told(["seven", "three"], 64)
    assert torch.equal(objects.values, conditioner.encode(["seven", "three"]).values)  # as before: one row each
    mixed = conditioner.told(["seven", "red"], 64)
    assert len(mixed) == 128 and mixed.concepts.tolist() == [conditioner.index("seven")] * 64 + [
        conditioner.index("red")
    ] * 64  # fmt: skip
    assert torch.equal(mixed.values[:64], conditioner.encode(["seven"]).values.expand(64, -1, -1))
    red = conditioner.draw_prompts(["red"], 64)
    assert torch.equal(mixed.values[64:], conditioner.prompts(red).values)
    named = {w for p in red for w in p.split() if any(w in conditioner.names(d) for d in ("zero", "one", "seven"))}
    assert all("red" in p.split() for p in red) and len(set(red)) > 10 and len(named) >= 3
