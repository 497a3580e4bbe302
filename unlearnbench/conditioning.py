"""Conditioning: what a diffusion model is conditioned on, and the testbed's map from concepts to it.

A task names *concepts* to forget and to retain. A :class:`Conditioner` (built by the testbed) maps
concepts to a :class:`Conditioning`, a batch of model inputs that knows how it is fed to the model and
what its null ("unconditional") counterpart is. Methods, attacks and the sampler only see these two, so
a method written against ``predict_noise(model, x_t, t, cond)`` runs on any testbed whose conditioning
kind it supports.

Kinds:

- ``"label"``: class labels ``[B]`` (long), fed as ``class_labels`` of a class-conditional ``UNet2DModel``.
- ``"vector"``: free class-embedding vectors ``[B, D]`` that replace the output of the UNet's
  ``class_embedding`` layer (a forward hook), so attacks can search beyond the trained labels.
- ``"tokens"``: token states ``[B, L, D]`` fed as ``encoder_hidden_states`` (cross-attention; text testbeds).

A concept is a name the testbed defines (a string: ``"3"`` on digits16, ``"circle"`` or ``"seven"`` elsewhere);
an int is read as its decimal name. Its position in the conditioner's concept list is the judges' class
index. On the class-conditional testbed (:class:`ClassConditioner`) the names are ``"0"`` … ``"9"`` and the
position is also the model's label.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from unlearnbench.errors import UserError

KINDS = ("label", "vector", "tokens")
# The kinds a testbed's conditioner produces ("vector" is what the prompt attacks search on a "label" testbed).
TESTBED_KINDS = ("label", "tokens")
# A concept name; ``concept_name`` turns an int (a class number) into its name.
Concept = str


def concept_name(concept: object) -> str:
    """The name of a concept given as a name or as a class number (``3`` -> ``"3"``)."""
    if isinstance(concept, bool) or not isinstance(concept, str | int):
        raise ValueError(f"a concept is a name (or a class number), got {concept!r}")
    return str(concept)


# Label dropout while a method trains (upstream's ``mode='train'`` forwards): (probability, generator).
_TRAINING_DROPOUT: contextvars.ContextVar[tuple[float, torch.Generator] | None] = contextvars.ContextVar(
    "training_label_dropout", default=None
)


@contextlib.contextmanager
def training_label_dropout(probability: float, generator: torch.Generator) -> Iterator[None]:
    """Within this block, every forward of a model in training mode replaces each conditioning row by the
    null one with ``probability`` (drawn from ``generator``), as the SA/SalUn lineage does in every
    ``mode='train'`` forward. Forwards in eval mode (sampling, EMA copies, priors computed in eval mode)
    are untouched. ``probability=0`` is a no-op."""
    token = _TRAINING_DROPOUT.set((probability, generator) if probability > 0 else None)
    try:
        yield
    finally:
        _TRAINING_DROPOUT.reset(token)


@contextlib.contextmanager
def _embedding_override(model: nn.Module, vectors: Tensor) -> Iterator[None]:
    # diffusers adds class_embedding(labels) to the time embedding; replacing that layer's output
    # with free vectors lets any class-conditional UNet2DModel take embedding conditioning.
    handle = model.class_embedding.register_forward_hook(lambda _m, _i, _o: vectors)
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True, eq=False)
class Conditioning:
    """A batch of conditioning inputs of one kind, one row per sample.

    ``null`` says what the null input is: the null label for ``"label"`` and ``"vector"`` (a vector
    conditioning's null is the *fed model's* embedding of that label), the null token states
    ``[L, D]`` for ``"tokens"``. ``concepts`` holds each row's concept index when the rows stand for
    concepts (None for free inputs, such as the vectors an attack found).
    """

    kind: str
    values: Tensor
    null: int | Tensor
    concepts: Tensor | None = None

    def __post_init__(self) -> None:
        dims = {"label": 1, "vector": 2, "tokens": 3}
        if self.kind not in dims:
            raise ValueError(f"unknown conditioning kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.values.dim() != dims[self.kind]:
            shape = tuple(self.values.shape)
            raise ValueError(f"{self.kind} conditioning needs {dims[self.kind]}-d values, got shape {shape}")
        if (self.kind == "label") == self.values.is_floating_point():
            raise ValueError(f"{self.kind} conditioning got {self.values.dtype} values")
        if self.concepts is not None and self.concepts.shape != self.values.shape[:1]:
            raise ValueError(f"{len(self)} rows but {tuple(self.concepts.shape)} concept indices")

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def from_labels(cls, labels: Tensor, null: int, *, concepts: Tensor | None = None) -> Conditioning:
        return cls("label", labels, null, concepts)

    @classmethod
    def from_vectors(cls, vectors: Tensor, null: int) -> Conditioning:
        return cls("vector", vectors, null)

    @classmethod
    def from_tokens(cls, states: Tensor, null: Tensor, *, concepts: Tensor | None = None) -> Conditioning:
        return cls("tokens", states, null, concepts)

    # -- batching ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def labels(self) -> Tensor:
        """The class labels of a ``"label"`` conditioning."""
        if self.kind != "label":
            raise TypeError(f"a {self.kind} conditioning has no labels")
        return self.values

    def _new(self, values: Tensor, concepts: Tensor | None) -> Conditioning:
        return dataclasses.replace(self, values=values, concepts=concepts)

    def __getitem__(self, index: slice | Tensor | Sequence[int]) -> Conditioning:
        """Rows by slice, index tensor or list (an int would drop the batch dimension: use ``[i : i + 1]``)."""
        if isinstance(index, int):
            raise TypeError("index a Conditioning with a slice, a list or a tensor, not an int")
        return self._new(self.values[index], None if self.concepts is None else self.concepts[index])

    @staticmethod
    def cat(items: Sequence[Conditioning]) -> Conditioning:
        """Rows of several conditionings of one kind, in order (the first one's null)."""
        kinds = {c.kind for c in items}
        if len(kinds) != 1:
            raise ValueError(f"cannot concatenate conditionings of kinds {sorted(kinds)}")
        concepts = [c.concepts for c in items]
        return items[0]._new(
            torch.cat([c.values for c in items]),
            None if any(k is None for k in concepts) else torch.cat(concepts),  # type: ignore[arg-type]
        )

    def expand(self, n: int) -> Conditioning:
        """One row, viewed ``n`` times."""
        if len(self) != 1:
            raise ValueError(f"expand needs one row, got {len(self)}")
        rest = self.values.shape[1:]
        return self._new(self.values.expand(n, *rest), None if self.concepts is None else self.concepts.expand(n))

    def repeat_interleave(self, repeats: int) -> Conditioning:
        """Each row ``repeats`` times in a block."""
        concepts = None if self.concepts is None else self.concepts.repeat_interleave(repeats)
        return self._new(self.values.repeat_interleave(repeats, dim=0), concepts)

    def replaced(self, mask: Tensor, other: Conditioning) -> Conditioning:
        """``other``'s rows where ``mask`` is true, these rows elsewhere (label dropout)."""
        if other.kind != self.kind:
            raise ValueError(f"cannot mix {self.kind} and {other.kind} conditioning")
        wide = mask.view(-1, *([1] * (self.values.dim() - 1)))
        concepts = None
        if self.concepts is not None and other.concepts is not None:
            concepts = torch.where(mask, other.concepts, self.concepts)
        return self._new(torch.where(wide, other.values, self.values), concepts)

    def to(self, device: torch.device | str) -> Conditioning:
        null = self.null.to(device) if isinstance(self.null, Tensor) else self.null
        concepts = None if self.concepts is None else self.concepts.to(device)
        return dataclasses.replace(self, values=self.values.to(device), null=null, concepts=concepts)

    def detach(self) -> Conditioning:
        return self._new(self.values.detach(), self.concepts)

    def concept_mask(self, indices: Sequence[int]) -> Tensor:
        """Which rows stand for one of the concepts at ``indices``."""
        if self.concepts is None:
            raise ValueError("these rows stand for no concept (free conditioning)")
        return torch.isin(self.concepts, torch.tensor(list(indices), dtype=self.concepts.dtype, device=self.device))

    # -- the model ---------------------------------------------------------------------------

    def null_like(self, model: nn.Module | None = None) -> Conditioning:
        """The null conditioning, one row per row of this one, in the same kind.

        A vector conditioning's null is ``model``'s embedding of the null label, so it needs ``model``.
        """
        n = len(self)
        if self.kind == "label":
            values = torch.full((n,), int(self.null), dtype=torch.long, device=self.device)
        elif self.kind == "vector":
            if model is None:
                raise ValueError("the null of a vector conditioning is the model's null embedding: pass the model")
            values = model.class_embedding.weight[int(self.null)].detach().expand(n, -1)
        else:
            assert isinstance(self.null, Tensor)
            values = self.null.to(self.values).expand(n, *self.null.shape)
        return dataclasses.replace(self, values=values, concepts=None)

    def dropped(self, probability: float, generator: torch.Generator, model: nn.Module | None = None) -> Conditioning:
        """Each row replaced by the null one with ``probability`` (one draw per row from ``generator``)."""
        draws = torch.rand(len(self), generator=generator, device=generator.device).to(self.device)
        return self.replaced(draws < probability, self.null_like(model))

    def predict(self, model: nn.Module, x_t: Tensor, t: Tensor) -> Tensor:
        """``model``'s noise prediction for ``x_t`` at ``t`` under this conditioning (with the training
        label dropout of :func:`training_label_dropout` when ``model`` is in training mode)."""
        dropout = _TRAINING_DROPOUT.get()
        if dropout is not None and model.training:
            return self.dropped(*dropout, model)._forward(model, x_t, t)
        return self._forward(model, x_t, t)

    def _forward(self, model: nn.Module, x_t: Tensor, t: Tensor) -> Tensor:
        if self.kind == "label":
            return model(x_t, t, class_labels=self.values).sample
        if self.kind == "vector":
            dummy = torch.zeros(len(self), dtype=torch.long, device=self.device)
            with _embedding_override(model, self.values.to(x_t.dtype)):
                return model(x_t, t, class_labels=dummy).sample
        return model(x_t, t, encoder_hidden_states=self.values.to(x_t.dtype)).sample


class Conditioner:
    """The testbed's map from concepts to conditionings, and its conditioning space.

    Subclasses set ``kind`` and implement :meth:`encode_ids`, :meth:`embedding_table` and
    :meth:`vectors`; the concept bookkeeping here is shared.
    """

    kind: str = ""

    def __init__(self, concepts: Sequence[Concept]) -> None:
        self.concepts = tuple(concept_name(c) for c in concepts)
        if len(set(self.concepts)) != len(self.concepts):
            raise ValueError(f"concept names repeat: {list(self.concepts)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.concepts)} concepts, kind={self.kind!r})"

    def index(self, concept: Concept) -> int:
        """A concept's position in the concept list (the judges' class index)."""
        try:
            return self.concepts.index(concept_name(concept))
        except ValueError:
            raise ValueError(f"unknown concept {concept!r}") from None

    def encode(self, concepts: Sequence[Concept], device: torch.device | str = "cpu") -> Conditioning:
        """One conditioning row per concept."""
        return self.encode_ids(torch.tensor([self.index(c) for c in concepts], dtype=torch.long, device=device))

    def encode_ids(self, ids: Tensor) -> Conditioning:
        """One conditioning row per concept index in ``ids``."""
        raise NotImplementedError

    def told(self, concepts: Sequence[Concept], per_concept: int) -> Conditioning:
        """What a method that is given the concepts, not images of them, conditions on (ESD, Selective Amnesia):
        one row per concept here; a text testbed whose concepts cannot all be asked for by name alone spreads
        each over its canonical prompts, ``per_concept`` rows each (see the text16 conditioner)."""
        return self.encode(concepts)

    def draws(self, concepts: Sequence[Concept], per_concept: int, exclude: Sequence[Concept] = ()) -> Conditioning:
        """What ``per_concept`` evaluation samples of each concept are conditioned on, in blocks by concept: the
        concept's row repeated; a testbed with prompt sets spreads each block over the concept's prompts, none of
        which names a concept of ``exclude`` (a run's forget concepts)."""
        return self.encode(concepts).repeat_interleave(per_concept)

    def names(self, concept: Concept) -> tuple[str, ...]:
        """The names of a concept that a method may be given (a text testbed's canonical names: "seven", "7"; never
        its held-out ones). A testbed whose concepts are not named in prompts has none: one line."""
        raise UserError(f"{type(self).__name__}: its concepts are not named in prompts")

    def family(self, concept: Concept) -> str:
        """The family a concept belongs to (text16: object, colour, style); one unnamed family by default."""
        return ""

    def neighbours(self, concept: Concept) -> tuple[str, ...]:
        """The concepts the testbed declares close to ``concept`` (a visually similar digit, a nearby hue); none
        by default."""
        return ()

    def prompt_pairs(self, concept: Concept, instead: Concept) -> list[tuple[str, str]]:
        """The concept's canonical prompts, each beside the same prompt naming ``instead`` in its place ("a red
        seven", "a red one"): what maps one concept onto another. A testbed without prompts has none: one line."""
        raise UserError(f"{type(self).__name__}: its concepts are not named in prompts")

    def prompts(self, prompts: Sequence[str], concepts: Tensor | None = None) -> Conditioning:
        """Free prompts as a conditioning (``concepts``: the concept each row stands for, when it stands for one).
        A testbed without prompts has none: one line."""
        raise UserError(f"{type(self).__name__}: its concepts are not named in prompts")

    def prompt_states(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Free prompts as the text encoder's token states ``[N, L, D]``, with each prompt's position of its last
        token before the end token ``[N]`` (what an edit of the cross-attention projections reads)."""
        raise UserError(f"{type(self).__name__}: its conditioning is not a text encoder's token states")

    def canonical_prompt(self, concept: Concept) -> str:
        """The prompt behind the concept's one row (:meth:`encode`): its first canonical prompt. A testbed without
        prompts has none: one line."""
        raise UserError(f"{type(self).__name__}: its concepts are not named in prompts")

    def heldout_prompts(self, concept: Concept) -> list[str]:
        """Every prompt that asks for the concept by a held-out name or phrasing (numerals, synonyms, other
        languages: what no method is given), in a fixed order. A testbed without prompts has none: one line."""
        raise UserError(f"{type(self).__name__}: its concepts are not named in prompts")

    def banned_words(self, concept: Concept) -> frozenset[str]:
        """Every word of every name of the concept, canonical and held-out (what a search with the concept's names
        banned may not choose). A testbed without prompts has none: one line."""
        raise UserError(f"{type(self).__name__}: its concepts are not named in prompts")

    def search_words(self, banned: Collection[str] = ()) -> tuple[str, ...]:
        """The words a token search may choose (the testbed's searchable vocabulary, each one token of its text
        encoder), but those in ``banned``. A testbed without prompts has none: one line."""
        raise UserError(f"{type(self).__name__}: its conditioning is not a text encoder's")

    def spell(self, words: Sequence[str]) -> str:
        """The text of a prompt whose words a token search chose (``search_words``' entries, in order): joined by
        spaces here; a testbed whose searchable words include pieces that start a word glues those on."""
        return " ".join(w for w in words if w).strip()

    def word_embeddings(self, words: Sequence[str]) -> Tensor:
        """The text encoder's input embeddings ``[len(words), width]`` of single-token words (the rows a soft token
        mixes). A testbed without a text encoder has none: one line."""
        raise UserError(f"{type(self).__name__}: its conditioning is not a text encoder's")

    def prefixed(self, slots: Tensor, base: Sequence[str]) -> Conditioning:
        """Prompts whose first ``P`` tokens are free input embeddings ``slots`` ``[B, P, width]`` (a soft or learned
        token: differentiable), followed by the words of ``base[b]``. A testbed without a text encoder: one line."""
        raise UserError(f"{type(self).__name__}: its conditioning is not a text encoder's")

    def draw_prompts(self, concepts: Sequence[Concept], per_concept: int, exclude: Sequence[Concept] = ()) -> list[str]:
        """The prompt behind each row of :meth:`draws` (a text testbed's; none where concepts are not prompts)."""
        return []

    def null_like(self, cond: Conditioning, model: nn.Module | None = None) -> Conditioning:
        """The null conditioning for guidance, shaped like ``cond`` (see :meth:`Conditioning.null_like`)."""
        return cond.null_like(model)

    def other(
        self, cond: Conditioning, exclude: Sequence[Concept], how: str, generator: torch.Generator
    ) -> Conditioning:
        """Another concept for each row of ``cond``, never one of ``exclude`` (random label's ``c'``).

        ``how="next"``: the next concept in the list (cyclically) that is not excluded. ``"random"``: a
        uniformly drawn concept that is not excluded (one draw per row from ``generator``).
        """
        if cond.concepts is None:
            raise ValueError("'another concept' needs rows that stand for concepts")
        ids, n = cond.concepts, len(self.concepts)
        excluded = [self.index(c) for c in exclude]
        if how == "next":
            out = (ids + 1) % n
            banned = torch.tensor(excluded, dtype=torch.long, device=ids.device)
            for _ in range(n):
                clash = torch.isin(out, banned)
                if not clash.any():
                    break
                out = torch.where(clash, (out + 1) % n, out)
            return self.encode_ids(out)
        if how == "random":
            allowed = torch.tensor([i for i in range(n) if i not in excluded], device=ids.device)
            pick = torch.randint(0, len(allowed), ids.shape, generator=generator).to(ids.device)
            return self.encode_ids(allowed[pick])
        raise ValueError(f"unknown choice {how!r} of another concept (known: next, random)")

    def embedding_table(self, model: nn.Module) -> Tensor:
        """The conditioning space's trained vectors ``[len(concepts) + 1, D]``: the concepts', then the null's."""
        raise NotImplementedError

    def vectors(self, vectors: Tensor) -> Conditioning:
        """Free vectors of the embedding space (what the prompt attacks search) as a conditioning."""
        raise NotImplementedError


class ClassConditioner(Conditioner):
    """A class-conditional ``UNet2DModel``: the ``i``-th concept (named ``"i"`` unless ``names`` says otherwise)
    is label ``i``; the null label comes last."""

    kind = "label"

    def __init__(self, num_classes: int, names: Sequence[str] | None = None) -> None:
        if names is not None and len(names) != num_classes:
            raise ValueError(f"{num_classes} classes but {len(names)} names")
        super().__init__(range(num_classes) if names is None else names)
        self.null_label = num_classes

    @classmethod
    def for_model(cls, model: Any) -> ClassConditioner:
        """The conditioner of a class-conditional UNet with ``num_class_embeds`` labels, the last one null."""
        return cls(int(model.config.num_class_embeds) - 1)

    def encode_ids(self, ids: Tensor) -> Conditioning:
        return Conditioning.from_labels(ids, self.null_label, concepts=ids)

    def embedding_table(self, model: nn.Module) -> Tensor:
        table = model.class_embedding.weight.detach()
        if table.shape[0] != self.null_label + 1:
            raise ValueError(f"the model has {table.shape[0]} class embeddings, the testbed {self.null_label + 1}")
        return table

    def vectors(self, vectors: Tensor) -> Conditioning:
        return Conditioning.from_vectors(vectors, self.null_label)
