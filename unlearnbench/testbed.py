"""The testbed interface: what a testbed plugin loads, and what the runner, the methods and the judges read.

A testbed is a plugin (``unlearnbench list testbeds``): a :class:`TestbedPlugin` subclass registered with
``@register("name")``, in one module or folder under ``unlearnbench/testbeds/`` or an outside package's
``unlearnbench.testbeds`` entry point. It owns its data, its conditioner (concept names to conditionings), its
judges (evaluator, attacker classifier, second judge), its fit checks, its quality bars and default sampler
setting, its retrain references and its pretrain recipes. :meth:`TestbedPlugin.load` returns a
:class:`Testbed`, the loaded, read-only bundle every run shares.

Everything above this interface speaks of *concepts* (names, ``"3"`` or ``"circle"``): which images show a
concept and how they are conditioned is the testbed's business (:meth:`Testbed.images`). The judges read a
concept as its position in the conditioner's concept list (``Conditioner.index``), with one more output,
"none", for noise-like samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from unlearnbench.api import _Registered
from unlearnbench.conditioning import Conditioner, Conditioning, concept_name
from unlearnbench.data import ImageData
from unlearnbench.errors import UserError, suggest
from unlearnbench.models import Classifier


@dataclass(frozen=True)
class QualityBars:
    """The bars ``unlearnbench testbed check`` holds a testbed's shipped model and judges to, at its default
    sampler setting: conditional accuracy (overall and its worst concept), the FID ratio (generated against
    held-out real, over real train against held-out real), and the judges' held-out accuracy and "none" rate
    on Gaussian and uniform noise."""

    model_accuracy: float = 0.95
    model_min_class_accuracy: float = 0.85
    fid_ratio: float = 3.0
    evaluator_accuracy: float = 0.98
    evaluator_gaussian_none: float = 0.99
    evaluator_uniform_none: float = 0.99


@dataclass(frozen=True)
class Probe:
    """One more figure ``testbed check`` measures on a testbed: samples drawn from ``cond``, each right when the
    evaluator reads every concept of ``read`` (one ``[N]`` tensor of concept indices per attribute: a composition
    such as "a red seven" must be read as seven *and* as red). ``groups`` labels the rows (a held-out name), and the
    worst group's accuracy is reported beside the overall one; ``bar`` holds the overall one (and the worst group's
    when ``bar_every_group``)."""

    name: str
    cond: Conditioning
    read: tuple[Tensor, ...]
    bar: float | None = None
    groups: tuple[str, ...] = ()
    bar_every_group: bool = False


@dataclass(frozen=True)
class Testbed:
    """A loaded testbed. Cached and shared (one per device): never change it in place; methods and attacks get
    private copies of the model (:func:`unlearnbench.api.run_unlearning`)."""

    name: str
    model_source: str | None  # the --model it was loaded from; None for the shipped model
    data: ImageData
    model: torch.nn.Module
    schedule: Any  # a diffusers DDPMScheduler
    model_sha: str
    conditioner: Conditioner
    evaluator: Classifier
    evaluator_path: Path
    evaluator_sha: str
    attacker: Classifier
    attacker_sha: str
    manifest: dict[str, Any] = field(default_factory=dict)
    # The recipe that made the base model (what ``retrain`` reruns); None when it is unknown.
    recipe: Any = None
    # The second evaluator (independently trained: another architecture and seed), when the testbed ships one
    # for its own dataset; its UA and retained accuracy are reported beside the evaluator's.
    second_judge: Classifier | None = None
    second_judge_sha: str = ""
    # sha256 of the model behind the CLIP score (:meth:`clip_score`), when the testbed has one.
    clip_scorer_sha: str = ""
    # The gold-standard results it ships for its own base model (retrained models); None for a custom model.
    references: Any = None
    # The method priors it ships for its own base model (Selective Amnesia's Fisher and replay); None likewise.
    priors: Any = None
    bars: QualityBars = field(default_factory=QualityBars)
    # The concepts the stability test forgets in turn (its neutral fine-tune keeps the others); () skips it.
    stability_forget: tuple[str, ...] = ()
    # The concepts the unconditional branch (the null prompt) must still produce, read within the first one's family
    # (guidance needs it); () means every concept.
    null_concepts: tuple[str, ...] = ()

    @property
    def concepts(self) -> tuple[str, ...]:
        return self.conditioner.concepts

    @property
    def num_classes(self) -> int:
        """How many concepts the judges tell apart (their outputs, "none" aside)."""
        return len(self.conditioner.concepts)

    def concept(self, name: object) -> str:
        """The concept a user named (a name, or a class number), or one line with the closest names."""
        try:
            text = concept_name(name)
        except ValueError as e:
            raise UserError(str(e)) from None
        if text in self.concepts:
            return text
        known = ", ".join(self.concepts)
        raise UserError(
            f"unknown concept {text!r} on the {self.name} testbed{suggest(text, self.concepts)} (known: {known})"
        )

    def retained(self, forget: Sequence[str]) -> tuple[str, ...]:
        """The concepts a run keeps when it forgets ``forget``."""
        return tuple(c for c in self.concepts if c not in set(forget))

    def check_forget(self, forget: Sequence[str]) -> tuple[str, ...]:
        """``forget`` as the testbed's concept names, or one line: none given, unknown, repeated, or all of them."""
        if not forget:
            raise UserError("nothing to forget; pass --forget CONCEPT")
        names = tuple(self.concept(c) for c in forget)
        if len(set(names)) != len(names):
            raise UserError(f"forget concepts repeat: {list(names)}")
        if not self.retained(names):
            raise UserError("cannot forget every concept: at least one must be retained")
        return names

    def images(self, split: str, concepts: Sequence[str], exclude: Sequence[str] = ()) -> tuple[Tensor, Conditioning]:
        """The ``split`` ('train' or 'test') images that show any of ``concepts`` and none of ``exclude``, each
        with its conditioning (a run's retain set excludes its forget concepts: on a testbed whose images show
        several concepts at once, a red seven shows "red" too).

        The default reads a labelled dataset whose label is the concept's index (one concept per image, so
        ``exclude`` changes nothing there); a testbed whose images show several concepts (captions) overrides this.
        """
        keep = [c for c in concepts if c not in set(exclude)]
        x, y = self.data.subset(split, [self.conditioner.index(c) for c in keep])
        return x, self.conditioner.encode_ids(y)

    def probes(self, per_concept: int) -> list[Probe]:
        """Figures ``testbed check`` measures beyond every concept's conditional accuracy (none by default; a text
        testbed adds held-out names and compositions)."""
        return []

    def clip_score(self, images: Tensor, prompts: list[str]) -> Tensor:
        """Per-pair CLIP score ``[N]`` of images against their prompts, with the testbed's own scorer; a testbed
        without one raises (``has_clip_score`` says which)."""
        raise UserError(f"the {self.name} testbed has no CLIP scorer")

    @property
    def has_clip_score(self) -> bool:
        return type(self).clip_score is not Testbed.clip_score

    def run_probes(self, forget: Sequence[str], forget_n: int, retain_n: int) -> list[Probe]:
        """What every run also samples and judges at its original and unlearned phases, for the metrics that read
        around the forgotten concepts (none by default; text16: the forgotten concepts by their held-out names, their
        declared neighbours, and compositions that name them beside a concept of another family, read on that one).
        ``forget_n`` and ``retain_n`` are the run's samples per forgotten and per retained concept."""
        return []

    def real_images(self, concepts: Sequence[str], exclude: Sequence[str] = ()) -> Tensor:
        """Every real image of ``concepts`` (none of ``exclude``), train and test: FID's and KID's real side.
        FID's error shrinks with both sets' size, and the held-out images alone (about 36 per class on digits16)
        are too few."""
        return torch.cat([self.images(split, concepts, exclude)[0] for split in ("train", "test")])


@dataclass(frozen=True)
class Overrides:
    """Parts of a testbed a user replaces (``--model``, ``--dataset``, ``--evaluator``, ``--attacker``); a testbed
    that takes none refuses them in one line."""

    model: str | None = None
    dataset: str | None = None
    evaluator: str | None = None
    attacker: str | None = None

    def refuse(self, testbed: str) -> None:
        given = [f"--{k}" for k, v in asdict(self).items() if v is not None]
        if given:
            raise UserError(f"the {testbed} testbed takes no {', '.join(given)}")


class TestbedPlugin(_Registered):
    """Base class of a testbed plugin: ``@register("name") class MyTestbed(TestbedPlugin)``.

    The first line of its docstring is its description in ``unlearnbench list testbeds``. It implements
    :meth:`load`; the rest has defaults a testbed may override.
    """

    # Pretrain targets ``unlearnbench pretrain --testbed NAME --what ...`` accepts (empty: none).
    pretrain_targets: ClassVar[tuple[str, ...]] = ()
    # The concepts ``unlearnbench tune`` chooses settings on by default, which no evaluation table reads.
    tuning_concepts: ClassVar[tuple[str, ...]] = ()
    # What the leaderboard's columns mean on this testbed (its judges, its FID reference), under its section's
    # paragraph on intervals and ties.
    glossary: ClassVar[str] = (
        "UA: unlearning accuracy (the share of the forget concept's samples the evaluator does not read as it); "
        "FID/KID in the evaluator's feature space against real images of the retained concepts; time and memory "
        "of the unlearning."
    )

    def load(self, parts: Overrides, *, device: str = "cpu", download: bool = False) -> Testbed:
        """The testbed on ``device``, with ``parts`` replacing its shipped ones where it takes them."""
        raise NotImplementedError

    def default_guidance(self, model: str | None = None) -> float:
        """The guidance scale a run uses when it does not say (1.0: plain conditional sampling)."""
        return 1.0

    def concept_family(self, concept: str) -> str:
        """The family a concept's judge reads it in (text16: object, colour or style), where scores such as the
        entropy are only comparable within one family; "" for a testbed with one family."""
        return ""

    def pretrain(self, args: Any) -> int:
        """``unlearnbench pretrain --testbed NAME``: rebuild the testbed's models with their recipes."""
        raise UserError(f"the {self.label()} testbed has no pretrain recipes")
