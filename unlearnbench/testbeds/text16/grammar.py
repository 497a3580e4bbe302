"""text16's caption grammar, read from ``grammar.toml``: every concept (digits, colours, stroke weights) with its
canonical and held-out names and its neighbours, and the templates that compose captions. Methods get the
canonical prompt sets; held-out names are the attacks' and the evaluation's (they do appear in training captions,
as synonyms do in a web-trained model)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from unlearnbench.errors import UserError, suggest
from unlearnbench.testbeds.text16.data import COLOURS, DIGITS, FAMILIES, GRAMMAR, STYLES

NAME_SETS = ("all", "canonical", "heldout")
# How often a training caption names a concept by a canonical name rather than a held-out synonym.
CANONICAL_SHARE = 0.5
# The encoder reads 16 BPE tokens including start and end: a cheap guard at load time (most words are one token;
# the test counts real tokens).
MAX_WORDS = 12
_NAME = re.compile(r"[a-z0-9]+( [a-z0-9]+)*")
_SLOT = re.compile(r"\{([^{}]*)\}")


def _needs_an(word: str) -> bool:
    # "an" before a vowel sound: vowels and "8" ("an eight", "an 8"), but "a one" (sounds "wun").
    return word[0] in "aeiou8" and not word.startswith("one")


def _with_articles(text: str) -> str:
    words = text.split()
    for i, w in enumerate(words[:-1]):
        if w in ("a", "an"):
            words[i] = "an" if _needs_an(words[i + 1]) else "a"
    return " ".join(words)


@dataclass(frozen=True)
class Concept:
    """One concept: its ``id`` (the name users type), ``family`` (object/colour/style), ``index`` (its label in
    :class:`Text16Data`: the digit, palette entry or style), names and confusable ``neighbours`` (ids)."""

    id: str
    family: str
    index: int
    canonical: tuple[str, ...]
    heldout: tuple[str, ...]
    neighbours: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.canonical + self.heldout

    def names_for(self, which: str) -> tuple[str, ...]:
        """``"all"``, ``"canonical"`` or ``"heldout"`` names."""
        return {"all": self.names, "canonical": self.canonical, "heldout": self.heldout}[which]


@dataclass(frozen=True)
class Template:
    """A caption pattern such as ``"a {colour} {object}"``; ``slots`` are the families it names, in order."""

    text: str
    slots: tuple[str, ...]
    heldout: bool

    def fill(self, **names: str) -> str:
        return _with_articles(self.text.format(**names))


def _check_which(which: str, allowed: tuple[str, ...], what: str) -> None:
    if which not in allowed:
        raise UserError(f"unknown {what} {which!r}{suggest(which, allowed)} (known: {', '.join(allowed)})")


@dataclass(frozen=True)
class Grammar:
    """The concepts and caption templates of ``grammar.toml`` (see :func:`load_grammar`)."""

    concepts: tuple[Concept, ...]
    templates: tuple[Template, ...]
    path: str
    _by_name: MappingProxyType[str, Concept] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {n: c for c in self.concepts for n in (c.id, *c.names)}
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))

    def family(self, family: str) -> tuple[Concept, ...]:
        """The concepts of ``family`` in label order."""
        return tuple(c for c in self.concepts if c.family == family)

    def concept(self, name: str) -> Concept:
        """The concept named ``name``: its id or any of its synonyms (case and spacing do not matter)."""
        key = " ".join(str(name).lower().split())
        if key in self._by_name:
            return self._by_name[key]
        ids = ", ".join(c.id for c in self.concepts)
        raise UserError(f"unknown concept {name!r}{suggest(key, self._by_name)} (known: {ids})")

    def caption(
        self, digit: int, colour: int, style: int, rng: np.random.Generator, names: str = "all", naming: str = ""
    ) -> str:
        """A caption of a ``digit`` inked in ``colour`` in ``style`` (label indices): a random template naming any
        subset of the three, filled with random names.

        ``names="all"`` (training captions) draws from every template, and a canonical name with probability
        ``CANONICAL_SHARE`` (else a held-out one); ``"canonical"`` from the canonical templates and names only;
        ``"heldout"`` from every template with held-out names only. ``naming`` (a family) keeps the templates
        that name it.
        """
        _check_which(names, NAME_SETS, "name set")
        labels = {"object": digit, "colour": colour, "style": style}
        # ``naming``: a family the caption must name (a forget set's captions name the forgotten concept)
        templates = [
            t for t in self.templates if (names != "canonical" or not t.heldout) and (not naming or naming in t.slots)
        ]
        template = templates[rng.integers(len(templates))]
        filled = {}
        for slot in template.slots:
            c = self.family(slot)[labels[slot]]
            options = c.names_for(names)
            if names == "all":  # the canonical name as often as all synonyms together, as a common word would be
                options = c.canonical if rng.random() < CANONICAL_SHARE else c.heldout
            filled[slot] = options[rng.integers(len(options))]
        return template.fill(**filled)

    def prompts(
        self,
        concept: str,
        which: str = "canonical",
        n: int | None = None,
        name: str | None = None,
        exclude: Sequence[str] = (),
    ) -> tuple[str, ...]:
        """The prompts naming ``concept`` (an id or synonym), in a fixed order.

        ``"canonical"``: its canonical names in every canonical template that names its family, the other slots
        filled with every other concept's first canonical name (e.g. "seven", "a seven", "a red seven", ...).
        ``"heldout"``: everything naming it that no canonical set holds: its held-out names in every template,
        and its canonical names in the held-out templates. ``n`` keeps a fixed spread-out subset of ``n``.
        ``name``: the canonical set's compositions with this one name of the concept in its place (``testbed
        check`` asks for a digit by each held-out name: "a red sieben"). ``exclude``: concepts the other slots
        never name (a run's retained "red" is asked for without its forgotten "seven": no "a red seven").
        """
        _check_which(which, ("canonical", "heldout"), "prompt set")
        c = self.concept(concept)
        if n is not None and n < 1:
            raise UserError(f"a prompt set needs n >= 1, got {n}")
        templates = self._templates_for(c, heldout=which == "heldout")
        out: dict[str, None] = {}  # ordered set
        excluded = {self.concept(e).id for e in exclude}
        for t in templates:
            names = c.canonical if which == "canonical" else c.names if t.heldout else c.heldout
            names = names if name is None else (name,)
            others = [s for s in t.slots if s != c.family]
            fillers = [[o for o in self.family(s) if o.id not in excluded] for s in others]
            for own, rest in product(names, product(*fillers)):
                fills = {c.family: own, **{s: o.canonical[0] for s, o in zip(others, rest, strict=True)}}
                out[t.fill(**fills)] = None
        prompts = tuple(out)
        if n is None or n >= len(prompts):
            return prompts
        keep = np.sort(np.random.default_rng(0).choice(len(prompts), size=n, replace=False))
        return tuple(prompts[i] for i in keep)

    def composition(self, families: tuple[str, ...]) -> Template:
        """The canonical template that names exactly ``families`` (``("colour", "object")``: "a {colour} {object}")."""
        for t in self.templates:
            if not t.heldout and set(t.slots) == set(families) and len(t.slots) == len(families):
                return t
        raise UserError(f"the grammar {self.path} has no canonical template naming exactly {', '.join(families)}")

    def render(self, concept: str) -> str:
        """The concept's first canonical prompt (e.g. ``"seven"``, ``"a red zero"``)."""
        return self.prompts(concept, "canonical")[0]

    def _templates_for(self, c: Concept, heldout: bool) -> tuple[Template, ...]:
        templates = tuple(t for t in self.templates if c.family in t.slots and (heldout or not t.heldout))
        if not heldout and not templates:
            raise UserError(
                f"the grammar {self.path} has no canonical template with a {{{c.family}}} slot, "
                f"so it cannot render the {c.family} concept {c.id!r}"
            )
        if not templates:
            raise UserError(f"the grammar {self.path} has no template with a {{{c.family}}} slot ({c.id!r})")
        return templates

    def vocabulary(self) -> tuple[str, ...]:
        """Every word a caption can contain (template words, every name's words, "a"/"an"), sorted: the searchable
        vocabulary that prompt attacks are limited to."""
        words = {w for c in self.concepts for n in c.names for w in n.split()}
        for t in self.templates:
            words.update(w for w in _SLOT.sub(" ", t.text).split())
        if "a" in words:
            words.add("an")
        return tuple(sorted(words))


def _fail(path: Path, message: str) -> UserError:
    return UserError(f"grammar {path}: {message}")


def _names(path: Path, where: str, value: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, f"{where} must be a list of strings, got {value!r}")
    if not value and not allow_empty:
        raise _fail(path, f"{where} is empty")
    for v in value:
        if not _NAME.fullmatch(v):
            raise _fail(path, f"{where}: {v!r} is not lowercase words (a-z, 0-9) separated by single spaces")
    return tuple(value)


def _parse_concepts(path: Path, raw: dict[str, Any]) -> tuple[Concept, ...]:
    expected = {"object": DIGITS, "colour": COLOURS, "style": STYLES}
    concepts = []
    for family in FAMILIES:
        table = raw.get(family)
        if not isinstance(table, dict):
            raise _fail(path, f"no [{family}.<id>] tables")
        want = expected[family]
        missing, extra = [i for i in want if i not in table], [i for i in table if i not in want]
        if missing or extra:
            raise _fail(path, f"{family} ids must be {', '.join(want)} (missing: {missing}, unknown: {extra})")
        for cid in want:
            entry = table[cid]
            where = f"[{family}.{cid}]"
            if not isinstance(entry, dict):
                raise _fail(path, f"{where} must be a table")
            unknown = set(entry) - {"canonical", "heldout", "neighbours"}
            if unknown:
                raise _fail(path, f"{where} has unknown keys {sorted(unknown)} (known: canonical, heldout, neighbours)")
            canonical = _names(path, f"{where} canonical", entry.get("canonical"))
            if canonical[0] != cid:
                raise _fail(path, f"{where} canonical must start with the id {cid!r}, got {canonical[0]!r}")
            neighbours = _names(path, f"{where} neighbours", entry.get("neighbours", []), allow_empty=True)
            for nb in neighbours:
                if nb not in want or nb == cid:
                    raise _fail(path, f"{where} neighbour {nb!r} is not another {family}{suggest(nb, want)}")
            heldout = _names(path, f"{where} heldout", entry.get("heldout"))
            concepts.append(Concept(cid, family, want.index(cid), canonical, heldout, neighbours))
    owner: dict[str, str] = {}
    for c in concepts:
        for name in c.names:
            if owner.get(name) == c.id:
                raise _fail(path, f"the name {name!r} is listed twice for {c.id!r}")
            if name in owner:
                raise _fail(path, f"the name {name!r} belongs to both {owner[name]!r} and {c.id!r}")
            owner[name] = c.id
    by_id = {c.id: c for c in concepts}
    for c in concepts:
        for nb in c.neighbours:
            if c.id not in by_id[nb].neighbours:
                raise _fail(path, f"neighbours must be symmetric: {c.id!r} lists {nb!r} but not the reverse")
    return tuple(concepts)


def _parse_templates(path: Path, raw: Any, concepts: tuple[Concept, ...]) -> tuple[Template, ...]:
    if not isinstance(raw, dict) or set(raw) - {"canonical", "heldout"} or "canonical" not in raw:
        raise _fail(path, "[templates] needs a 'canonical' list (and optionally a 'heldout' list), nothing else")
    longest = {f: max(len(n.split()) for c in concepts if c.family == f for n in c.names) for f in FAMILIES}
    templates, seen = [], set()
    for kind in ("canonical", "heldout"):
        texts = raw.get(kind, [])
        if (
            not isinstance(texts, list)
            or not all(isinstance(t, str) for t in texts)
            or (kind == "canonical" and not texts)
        ):
            raise _fail(path, f"templates.{kind} must be a non-empty list of strings")
        for text in texts:
            slots = tuple(_SLOT.findall(text))
            bad = [s for s in slots if s not in FAMILIES]
            if bad or not slots or len(set(slots)) != len(slots) or text in seen:
                raise _fail(
                    path,
                    f"template {text!r} must name each of some of {{object}}, {{colour}}, {{style}} once, "
                    f"and only once in the file",
                )
            seen.add(text)
            fixed = _SLOT.sub(" ", text)
            if "{" in fixed or "}" in fixed or not all(_NAME.fullmatch(w) for w in fixed.split()):
                raise _fail(path, f"template {text!r}: the words around the slots must be lowercase a-z, 0-9")
            words = len(fixed.split()) + sum(longest[s] for s in slots)
            if words > MAX_WORDS:
                raise _fail(path, f"template {text!r} can make a {words}-word caption (at most {MAX_WORDS})")
            templates.append(Template(text, slots, kind == "heldout"))
    return tuple(templates)


def load_grammar(path: str | Path | None = None) -> Grammar:
    """Parse and check a caption grammar (``grammar.toml`` next to this module by default): the concepts' ids match
    the data's labels, no name belongs to two concepts, neighbours are symmetric and every template renders."""
    return _load_grammar(str(Path(path) if path is not None else GRAMMAR))


@lru_cache(maxsize=8)
def _load_grammar(path_str: str) -> Grammar:
    path = Path(path_str)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"grammar {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise _fail(path, f"not valid TOML ({e})") from None
    unknown = set(raw) - {"templates", *FAMILIES}
    if unknown:
        raise _fail(path, f"unknown top-level keys {sorted(unknown)} (known: templates, {', '.join(FAMILIES)})")
    concepts = _parse_concepts(path, raw)
    templates = _parse_templates(path, raw.get("templates"), concepts)
    grammar = Grammar(concepts, templates, str(path))
    for t in templates:  # every template renders with every family's names
        t.fill(**{s: grammar.family(s)[0].canonical[0] for s in t.slots})
    return grammar


def vocabulary() -> tuple[str, ...]:
    """The shipped grammar's vocabulary (:meth:`Grammar.vocabulary`)."""
    return load_grammar().vocabulary()
