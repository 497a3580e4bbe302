"""The text16 data (coloured, styled digits) and its caption grammar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnbench.data import load_digits16
from unlearnbench.errors import UserError
from unlearnbench.testbeds.text16.data import (
    COLOURS,
    DIGITS,
    GRAMMAR,
    STYLES,
    colour_of,
    grey_digits,
    ink_mass,
    intensity_of,
    make_data,
    stroke,
)
from unlearnbench.testbeds.text16.grammar import load_grammar, vocabulary

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return make_data(seed=0)


@pytest.fixture(scope="module")
def grammar():
    return load_grammar()


def _words_in(phrase: str, text: str) -> bool:
    """Whether the words of ``phrase`` occur consecutively in ``text``."""
    p, t = phrase.split(), text.split()
    return any(t[i : i + len(p)] == p for i in range(len(t) - len(p) + 1))


# -- images ------------------------------------------------------------------------------------------------


def test_make_data_is_deterministic_and_shaped(data):
    assert make_data(seed=0).fingerprint() == data.fingerprint()
    assert make_data(seed=1).fingerprint() != data.fingerprint()
    assert data.images.shape == (7188, 3, 16, 16) and data.images.dtype == torch.float32
    assert data.images.min() >= -1 and data.images.max() <= 1
    for t in (data.digit, data.colour, data.style, data.source):
        assert t.dtype == torch.long and t.shape == (len(data),)
    assert int(data.train.sum()) == 5748 and int(data.test.sum()) == 1440
    # every source image in 4 distinct (colour, style) combinations
    combos = data.colour * len(STYLES) + data.style
    assert torch.equal(torch.bincount(data.source), torch.full((1797,), 4))
    assert len(set(zip(data.source.tolist(), combos.tolist(), strict=True))) == len(data)


def test_every_combination_occurs_in_train_and_in_test(data):
    every = {(d, c, s) for d in range(len(DIGITS)) for c in range(len(COLOURS)) for s in range(len(STYLES))}
    for mask in (data.train, data.test):
        rows = zip(data.digit[mask].tolist(), data.colour[mask].tolist(), data.style[mask].tolist(), strict=True)
        assert set(rows) == every


def test_split_is_by_source_image_and_matches_digits16(data):
    train_src, test_src = set(data.source[data.train].tolist()), set(data.source[data.test].tolist())
    assert not train_src & test_src and len(train_src | test_src) == 1797
    assert torch.equal(data.train, ~data.test)
    # the same sources as load_digits16's train split, and the regular style is its grey image
    d16 = load_digits16(seed=0)
    order = np.array(sorted(train_src))
    rows = data.train & (data.style == STYLES.index("regular"))
    at = torch.from_numpy(np.searchsorted(order, data.source[rows].numpy()))
    assert torch.equal(d16.train_y[at], data.digit[rows])
    assert torch.allclose(intensity_of(data.images[rows]), (d16.train_x[at] + 1) / 2, atol=1e-6)


def test_colour_of_reads_the_ink_exactly_and_noise_tolerantly(data):
    assert torch.equal(colour_of(data.images), data.colour)
    noise = torch.randn(data.images.shape, generator=torch.Generator().manual_seed(0))
    noisy = (data.images + 0.2 * noise).clamp(-1, 1)
    assert (colour_of(noisy) == data.colour).float().mean() > 0.99
    assert colour_of(-torch.ones(2, 3, 16, 16)).shape == (2,)  # blank images do not crash


def test_stroke_weights_order_the_ink_of_every_image_and_separate_per_digit(data):
    grey, digits = grey_digits()
    thin, regular, bold = (ink_mass(stroke(grey, s) * 2 - 1) for s in range(len(STYLES)))
    assert bool((thin < regular).all() and (regular < bold).all())
    # within the data: rows of one source image are ordered by weight
    mass = ink_mass(data.images)
    key = data.source * len(STYLES) + data.style
    per = torch.full((1797 * len(STYLES),), float("nan")).index_put_((key,), mass)
    per = per.view(1797, len(STYLES))
    for a, b in ((0, 1), (1, 2), (0, 2)):
        both = ~per[:, a].isnan() & ~per[:, b].isnan()
        assert bool((per[both, a] < per[both, b]).all())
    # a threshold on the ink mass tells adjacent weights apart for >= 90% of a digit's images
    for d in range(len(DIGITS)):
        for low, high in ((thin, regular), (regular, bold)):
            values = torch.cat([low[digits == d], high[digits == d]])
            labels = torch.cat([torch.zeros(int((digits == d).sum())), torch.ones(int((digits == d).sum()))])
            best = max(((values > t).float() == labels).float().mean().item() for t in values)
            assert best >= 0.9, (d, best)


def test_bad_combos_per_image_is_a_user_error():
    with pytest.raises(UserError, match="must divide 24"):
        make_data(combos_per_image=5)


# -- grammar -----------------------------------------------------------------------------------------------


def test_grammar_concepts_resolve_ids_and_synonyms(grammar):
    assert [c.id for c in grammar.family("object")] == list(DIGITS)
    assert [c.id for c in grammar.family("colour")] == list(COLOURS)
    assert [c.id for c in grammar.family("style")] == list(STYLES)
    assert [c.index for c in grammar.family("colour")] == list(range(len(COLOURS)))
    for name in ("seven", "7", "Number  Seven", "sieben", "sept"):
        assert grammar.concept(name).id == "seven"
    assert grammar.concept("crimson").id == "red" and grammar.concept("thick").id == "bold"
    for c in grammar.concepts:  # neighbours: same family, symmetric
        assert all(
            c.id in grammar.concept(n).neighbours and grammar.concept(n).family == c.family for n in c.neighbours
        )


def test_unknown_concept_says_did_you_mean(grammar):
    with pytest.raises(UserError) as e:
        grammar.concept("sevn")
    msg = str(e.value)
    assert "\n" not in msg and "unknown concept 'sevn'; did you mean 'seven'?" in msg and "(known: zero," in msg


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = GRAMMAR.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "grammar.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ('"ocho", "acht", "huit"]', '"ocho", "acht", "huit", "sept"]', "'sept' belongs to both 'seven' and 'eight'"),
        ('heldout = ["thick",', 'heldout = ["crimson", "thick",', "'crimson' belongs to both 'red' and 'bold'"),
        ('heldout = ["thick",', 'heldout = ["bold", "thick",', "'bold' is listed twice for 'bold'"),
        ("[object.nine]", "[object.seven]", "not valid TOML"),  # a duplicate id
        ("[style.bold]", "[style.heavy]", "style ids must be thin, regular, bold"),
        ('neighbours = ["four", "seven"]', 'neighbours = ["four"]', "neighbours must be symmetric"),
        ('neighbours = ["zero", "five"]', 'neighbours = ["zero", "five", "red"]', "'red' is not another object"),
        ('"a {object}",', '"a {shape}",', "template 'a {shape}'"),
        ('"a {object}",', '"a {object} {object}",', "template 'a {object} {object}'"),
        ('canonical = ["seven"]', 'canonical = ["Seven"]', "not lowercase words"),
        ('canonical = ["seven"]', 'canonical = ["7even"]', "must start with the id 'seven'"),
        ('"a picture of a {object}",', '"a picture of a {object} on a {colour} {colour}",', "{colour}"),
        ('"a picture of a {object}",', '"a small picture of a {colour} {object} in {style} ink on paper",', "12"),
    ],
)
def test_grammar_validation_is_one_line_per_mistake(tmp_path, old, new, expect):
    with pytest.raises(UserError) as e:
        load_grammar(_edited(tmp_path, old, new))
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_a_family_without_templates_cannot_render(tmp_path, grammar):
    text = GRAMMAR.read_text(encoding="utf-8")
    start, end = text.index("[templates]"), text.index("# -- objects")
    styleless = '[templates]\ncanonical = ["a {colour} {object}", "{object}"]\nheldout = ["a {object}"]\n\n'
    path = tmp_path / "grammar.toml"
    path.write_text(text[:start] + styleless + text[end:], encoding="utf-8")
    g = load_grammar(path)
    assert g.render("seven") == "a red seven" and g.render("red") == "a red zero"
    for which in ("canonical", "heldout"):
        with pytest.raises(UserError, match=r"no .*template with a \{style\} slot") as e:
            g.prompts("thick", which)
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="cannot render the style concept 'bold'"):
        g.render("bold")
    assert grammar.render("bold") == "a zero in bold strokes" and grammar.render("seven") == "seven"


def test_prompt_sets_are_fixed_and_canonical_ones_hold_no_heldout_name(grammar):
    heldout_names = [n for c in grammar.concepts for n in c.heldout]
    heldout_words = {w for t in grammar.templates if t.heldout for w in t.text.split() if "{" not in w}
    canonical_words = {w for t in grammar.templates if not t.heldout for w in t.text.split() if "{" not in w}
    heldout_words -= canonical_words | {"an"}
    for c in grammar.concepts:
        canonical = grammar.prompts(c.id, "canonical")
        assert canonical == grammar.prompts(c.heldout[0], "canonical")  # a synonym names the same set
        assert len(set(canonical)) == len(canonical) and c.id in canonical[0].split()
        assert not any(_words_in(n, p) for p in canonical for n in heldout_names)
        assert not any(w in p.split() for p in canonical for w in heldout_words)
        heldout = grammar.prompts(c.id, "heldout")
        assert not set(heldout) & set(canonical)
        assert all(any(_words_in(n, p) for n in c.names) for p in heldout)
        counts = {sum(_words_in(name, p) for p in heldout) for name in c.heldout}
        assert len(counts) == 1 and min(counts) > 1  # every held-out name in every template, as often as the others
        few = grammar.prompts(c.id, "heldout", n=7)
        assert len(few) == 7 and set(few) <= set(heldout) and few == grammar.prompts(c.id, "heldout", n=7)
    assert grammar.prompts("seven")[:4] == ("seven", "a seven", "a red seven", "an orange seven")
    assert len(grammar.prompts("seven")) == 61 and len(grammar.prompts("red")) == 70
    red = grammar.prompts("red", exclude=["7"])  # a retained colour is never asked for with a forgotten digit
    assert len(red) == 63 and not any(_words_in("seven", p) for p in red) and set(red) < set(grammar.prompts("red"))
    assert grammar.prompts("seven", name="sieben")[:3] == ("sieben", "a sieben", "a red sieben")
    with pytest.raises(UserError, match="did you mean 'heldout'"):
        grammar.prompts("seven", "held-out")


def test_captions_draw_from_the_asked_name_sets(data, grammar):
    canonical_words = {w for c in grammar.concepts for n in c.canonical for w in n.split()}
    heldout_names = sorted((n for c in grammar.concepts for n in c.heldout), key=len, reverse=True)
    heldout_words = {w for n in heldout_names for w in n.split()} - canonical_words  # "number seven" has "seven"

    def without_heldout_names(caption: str) -> set[str]:
        text = f" {caption} "
        for n in heldout_names:
            text = text.replace(f" {n} ", " ")
        return set(text.split())

    first = data.captions(np.random.default_rng(0))
    assert len(first) == len(data) and first == data.captions(np.random.default_rng(0))
    used = {w for caption in first for w in caption.split()}
    assert used & canonical_words and used & heldout_words  # training captions use synonyms too
    for caption in data.take(torch.arange(500)).captions(np.random.default_rng(1), names="canonical"):
        assert not set(caption.split()) & heldout_words and not any(_words_in(n, caption) for n in heldout_names)
    for caption in data.take(torch.arange(500)).captions(np.random.default_rng(2), names="heldout"):
        assert not without_heldout_names(caption) & canonical_words, caption
    # a caption names the image's own attributes
    rng = np.random.default_rng(3)
    for _ in range(200):
        caption = grammar.caption(7, COLOURS.index("red"), STYLES.index("bold"), rng)
        named = {c.id for c in grammar.concepts if any(_words_in(n, caption) for n in c.names)}
        assert "seven" in named and named <= {"seven", "red", "bold"}


def test_every_caption_fits_the_text_encoder(grammar):
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()

    def tokens(text: str) -> int:
        return len(tokenizer.encode(text)) + 2  # with the start and end tokens

    # BPE encodes word by word, so a template's longest caption takes each slot's longest name.
    longest = {
        f: max((n for c in grammar.family(f) for n in c.names), key=tokens) for f in ("object", "colour", "style")
    }
    for t in grammar.templates:
        caption = t.fill(**{s: longest[s] for s in t.slots})
        assert tokens(caption) <= 16, (caption, tokens(caption))
    rng = np.random.default_rng(0)
    for _ in range(500):
        d, c, s = int(rng.integers(10)), int(rng.integers(len(COLOURS))), int(rng.integers(len(STYLES)))
        caption = grammar.caption(d, c, s, rng)
        assert tokens(caption) <= 16, caption


def test_vocabulary_holds_every_word_the_grammar_uses(grammar):
    vocab = set(vocabulary())
    assert vocabulary() == grammar.vocabulary() == tuple(sorted(vocab))
    assert {w for c in grammar.concepts for n in (c.id, *c.names) for w in n.split()} <= vocab
    assert {w for t in grammar.templates for w in t.text.split() if "{" not in w} <= vocab
    rng = np.random.default_rng(0)
    for names in ("all", "canonical", "heldout"):
        for _ in range(300):
            caption = grammar.caption(int(rng.integers(10)), int(rng.integers(len(COLOURS))), 2, rng, names=names)
            assert set(caption.split()) <= vocab, caption
    assert {w for c in grammar.concepts for p in grammar.prompts(c.id, "heldout") for w in p.split()} <= vocab
