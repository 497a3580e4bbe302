"""text16's conditioner: concept names (every grammar id: the digits, the colours, the stroke weights) and free
prompts to the frozen text encoder's token states, which condition the UNet through cross-attention, as CLIP's do
in Stable Diffusion. A concept's one row is its first canonical prompt (``Grammar.render``: ``"seven"``, ``"a red
zero"``); evaluation spreads a concept's samples over its whole canonical prompt set (:meth:`draws`); the null
conditioning of classifier-free guidance is the empty prompt's states."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import Tensor

from unlearnbench.conditioning import Conditioner, Conditioning
from unlearnbench.errors import UserError
from unlearnbench.testbeds.text16.encoder import TextEncoder
from unlearnbench.testbeds.text16.grammar import Grammar


class CaptionConditioner(Conditioner):
    """Concepts and prompts to token states ``[L, D]`` of the frozen ``encoder``."""

    kind = "tokens"

    def __init__(self, encoder: TextEncoder, grammar: Grammar) -> None:
        super().__init__([c.id for c in grammar.concepts])
        self.encoder = encoder.freeze()
        self.grammar = grammar
        self.null = self.states([""])[0]
        self.table = self.states([grammar.render(c) for c in self.concepts])  # one canonical prompt per concept

    @torch.no_grad()
    def states(self, prompts: Sequence[str]) -> Tensor:
        """``[len(prompts), L, D]``: each prompt's token states (one line for a prompt longer than the context)."""
        return self.encoder.encode(self.encoder.tokenize(list(prompts)))

    def names(self, concept: str) -> tuple[str, ...]:
        return self.grammar.concept(concept).canonical

    def family(self, concept: str) -> str:
        return self.grammar.concept(concept).family

    def neighbours(self, concept: str) -> tuple[str, ...]:
        return self.grammar.concept(concept).neighbours

    def prompt_pairs(self, concept: str, instead: str) -> list[tuple[str, str]]:
        own, other = self.grammar.concept(concept), self.grammar.concept(instead)
        if own.family != other.family:
            raise UserError(f"{instead!r} cannot stand in for {concept!r}: a {other.family}, not a {own.family}")
        pairs = []
        for name in own.canonical:  # the same templates and fillers in the same order, one name swapped
            targets = self.grammar.prompts(own.id, "canonical", name=name, exclude=(instead,))
            anchors = self.grammar.prompts(own.id, "canonical", name=other.canonical[0], exclude=(instead,))
            pairs += list(zip(targets, anchors, strict=True))
        return pairs

    @torch.no_grad()
    def prompt_states(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        ids = self.encoder.tokenize(list(prompts))
        last = (ids != 0).sum(dim=1) - 2  # open_clip pads with 0 after the start, the words and the end token
        return self.encoder.encode(ids), last

    def prompts(self, prompts: Sequence[str], concepts: Tensor | None = None) -> Conditioning:
        """Free prompts (captions, an attack's found prompt) as a conditioning; ``concepts`` says which concept
        each row stands for, when it stands for one."""
        return Conditioning.from_tokens(self.states(prompts), self.null, concepts=concepts)

    def canonical_prompt(self, concept: str) -> str:
        return self.grammar.render(concept)

    def heldout_prompts(self, concept: str) -> list[str]:
        return list(self.grammar.prompts(concept, "heldout"))

    def banned_words(self, concept: str) -> frozenset[str]:
        return frozenset(w for name in self.grammar.concept(concept).names for w in name.split())

    GLUE = "+"  # marks a searchable piece that starts a word: "sie+" is spelled onto the word after it

    def search_words(self, banned: Collection[str] = ()) -> tuple[str, ...]:
        """Every token the encoder learned, as a word a prompt can spell, but ``banned``: the grammar's single-token
        words; the pieces its BPE splits the others into that are words by themselves (the word "ben" is the token
        that ends "sieben"); and the pieces that only start a word, marked ``"sie+"``, which :meth:`spell` glues onto
        the next word ("sie+" "o" is the text "sieo"). As UnlearnDiffAtk searches Stable Diffusion's whole
        vocabulary, a name's pieces stay searchable when they are not names themselves; a found prompt is that
        text, the attacker and the evaluator read it re-encoded, and a spelling that forms a banned word is never
        offered (the attack checks it)."""
        return tuple(w for w in self._searchable() if w not in banned)

    def _searchable(self) -> tuple[str, ...]:
        vocabulary = self.grammar.vocabulary()
        ids = [i for word_ids in self.encoder.word_ids(list(vocabulary)) for i in word_ids]
        pieces = set(self.encoder.word_pieces(ids))  # the pieces that are words: "ben" of "sieben"
        words = sorted({*vocabulary, *pieces})
        whole = [w for w, i in zip(words, self.encoder.word_ids(words), strict=True) if len(i) == 1]
        starts = sorted({p + self.GLUE for p in self.encoder.start_pieces(ids)})  # "sie+" of "sieben"
        return (*whole, *starts)

    def spell(self, words: Sequence[str]) -> str:
        text = ""
        for w in words:
            if not w:
                continue
            text += w[: -len(self.GLUE)] if w.endswith(self.GLUE) else w + " "
        return text.strip()

    def word_embeddings(self, words: Sequence[str]) -> Tensor:
        whole = [w for w in words if not w.endswith(self.GLUE)]
        ids = dict(zip(whole, self.encoder.word_ids(whole), strict=True))
        several = [w for w, i in ids.items() if len(i) != 1]
        if several:
            raise UserError(f"not one token of the text encoder each: {', '.join(several)}")
        rows = [self.encoder.piece_id(w[: -len(self.GLUE)]) if w.endswith(self.GLUE) else ids[w][0] for w in words]
        return self.encoder.token_embedding.weight[torch.tensor(rows)].detach()

    def prefixed(self, slots: Tensor, base: Sequence[str]) -> Conditioning:
        if slots.ndim != 3 or slots.shape[0] != len(base) or slots.shape[2] != self.encoder.width:
            raise ValueError(f"slots must be [{len(base)}, P, {self.encoder.width}], got {list(slots.shape)}")
        p = slots.shape[1]
        ids = self.encoder.tokenize(list(base))
        words = (ids != 0).sum(dim=1) - 1  # the start token, the words, the end token
        if int(words.max()) + p > self.encoder.context_length:
            raise UserError(f"{p} soft tokens and {base[int(words.argmax())]!r} do not fit the encoder's context")
        filler = ids[:, 1:2].clone()  # any id: the fixed causal mask makes the states depend on the embeddings only
        ids = torch.cat([ids[:, :1], filler.expand(-1, p), ids[:, 1 : ids.shape[1] - p]], dim=1)
        table = self.encoder.token_embedding
        embeds = torch.cat([table(ids[:, :1]), slots.to(table.weight), table(ids[:, 1 + p :])], dim=1)
        return Conditioning.from_tokens(self.encoder.encode_embeds(embeds, ids), self.null)

    def told(self, concepts: Sequence[str], per_concept: int) -> Conditioning:
        """An object is given by its name alone ("seven": the papers erase the concept's own prompt, "Van Gogh",
        "car"). An attribute cannot be drawn without an object, and its first canonical prompt names one ("a red
        zero"): a concept list with an attribute is spread over each concept's canonical prompts, ``per_concept``
        rows each (an object's name repeated), so "red" is erased over every digit and never as "a red zero"
        alone."""
        alone = [self.canonical_prompt(c) in self.names(c) for c in concepts]
        if all(alone):
            return self.encode(concepts)
        return Conditioning.cat(
            [
                self.encode([c]).repeat_interleave(per_concept) if bare else self.draws([c], per_concept)
                for c, bare in zip(concepts, alone, strict=True)
            ]
        )

    def draws(self, concepts: Sequence[str], per_concept: int, exclude: Sequence[str] = ()) -> Conditioning:
        """Each concept's block of ``per_concept`` rows spread over its canonical prompt set ("seven", "a red seven",
        "a thin blue seven", ...: a fixed spread-out subset when the set is larger, cycled when smaller), so that
        evaluation asks for the concept in every composition a method was given, not in one prompt; none names a
        concept of ``exclude`` (a retained "red" is not asked for as "a red seven" when "seven" is forgotten)."""
        ids = [self.index(c) for c in concepts for _ in range(per_concept)]
        prompts = self.draw_prompts(concepts, per_concept, exclude)
        return self.prompts(prompts, concepts=torch.tensor(ids, dtype=torch.long))

    def draw_prompts(self, concepts: Sequence[str], per_concept: int, exclude: Sequence[str] = ()) -> list[str]:
        prompts: list[str] = []
        for c in concepts:
            own = self.grammar.prompts(c, "canonical", n=per_concept, exclude=exclude)
            prompts += [own[i % len(own)] for i in range(per_concept)]
        return prompts

    def encode_ids(self, ids: Tensor) -> Conditioning:
        return Conditioning.from_tokens(self.table[ids.cpu()].to(ids.device), self.null.to(ids.device), concepts=ids)
