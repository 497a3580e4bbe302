"""The interfaces a method, an attack and a metric implement, and what they receive and return."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor

from unlearnbench import args as argparse_
from unlearnbench.conditioning import CURRENT_KINDS, Concept, Conditioner, Conditioning
from unlearnbench.cost import Cost, CostMeter
from unlearnbench.data import ImageData
from unlearnbench.errors import UserError
from unlearnbench.models import Classifier


@dataclass(frozen=True)
class SamplerSettings:
    """How samples are drawn: DDIM steps, classifier-free guidance scale, DDIM eta."""

    steps: int = 50
    guidance_scale: float = 1.0
    eta: float = 0.0


@dataclass
class Task:
    """Everything a method or an attack may use. Tensors are on ``device``; images in ``[-1, 1]``.

    The task names the *concepts* to forget and to retain; ``conditioner`` (the testbed's) maps concepts
    to conditionings and gives their null counterpart. ``forget_cond``/``retain_cond`` condition each
    training image of ``forget_x``/``retain_x``.
    """

    data: ImageData
    schedule: DDPMScheduler
    conditioner: Conditioner
    forget_concepts: tuple[Concept, ...]
    retain_concepts: tuple[Concept, ...]
    forget_x: Tensor
    forget_cond: Conditioning
    retain_x: Tensor
    retain_cond: Conditioning
    sampler: SamplerSettings
    attacker: Classifier
    meter: CostMeter
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # The recipe that made the base model (for ``retrain``); None when it is unknown.
    recipe: Any = None
    # How many forget samples the evaluation draws per forget class (seed search returns that many seeds).
    eval_forget_samples: int = 100
    # Cache for per-model priors (see unlearnbench.priors); None computes them every time.
    priors: Any = None
    # Called by attacks every few steps with (step, model, cond) to record a recovery curve.
    checkpoint: Callable[[int, UNet2DModel, Conditioning | None], None] | None = None

    def concept_cond(self, concepts: tuple[Concept, ...] | None = None) -> Conditioning:
        """One conditioning row per concept (default: per forget concept)."""
        return self.conditioner.encode(self.forget_concepts if concepts is None else concepts, self.device)

    @property
    def forget_classes(self) -> tuple[int, ...]:
        """The forget concepts' indices: the judges' (and the attacker classifier's) class indices."""
        return tuple(self.conditioner.index(c) for c in self.forget_concepts)

    @property
    def retain_classes(self) -> tuple[int, ...]:
        return tuple(self.conditioner.index(c) for c in self.retain_concepts)


class _Registered:
    name: ClassVar[str] = ""
    Args: ClassVar[type] = argparse_.NoArgs

    def __init__(self, args: Any = None) -> None:
        self.args = args if isinstance(args, self.Args) else argparse_.parse(self.Args, args, self.label())

    @classmethod
    def label(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def unsupported(cls: type[UnlearningMethod] | type[Attack], conditioner: Conditioner) -> str | None:
    """Why ``cls`` cannot run on a testbed with this conditioner, or None when it can."""
    if conditioner.kind in cls.supports:
        return None
    return f"{cls.label()} supports {', '.join(cls.supports)} conditioning, the testbed's is {conditioner.kind}"


def _require_support(plugin: UnlearningMethod | Attack, task: Task) -> None:
    reason = unsupported(type(plugin), task.conditioner)
    if reason is not None:
        raise UserError(reason)


class UnlearningMethod(_Registered):
    """Base class. Subclasses implement :meth:`unlearn` and declare ``Args``; see ``methods/safemax.py``."""

    paper: ClassVar[str] = ""
    # The conditioning kinds (of the testbed's concepts) this method works with.
    supports: ClassVar[tuple[str, ...]] = CURRENT_KINDS
    # Arguments that make a run take seconds (contract tests, CI smoke runs).
    smoke_args: ClassVar[dict[str, Any]] = {}
    # Knobs and values that ``unlearnbench tune`` searches, the same trial budget for every method.
    search_space: ClassVar[dict[str, list[Any]]] = {}

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        """Return the unlearned model. ``model`` is a private copy of the original: change it freely.

        Count gradient steps with ``task.meter.step()`` (the shared :func:`optimize` does this) and
        wrap preparatory work (Fisher, replay, saliency) in ``with task.meter.prior():``.
        """
        raise NotImplementedError


@dataclass
class Unlearned:
    model: UNet2DModel
    cost: Cost


def run_unlearning(
    method: UnlearningMethod, model: UNet2DModel, task: Task, *, generator: torch.Generator
) -> Unlearned:
    """Copy the model, run the method under a cost meter, and return the result with its cost."""
    _require_support(method, task)
    private = copy.deepcopy(model).to(task.device).train().requires_grad_(True)
    task.meter = CostMeter(task.device)
    with task.meter.measure():
        out = method.unlearn(private, task, generator=generator)
    return Unlearned(out.eval().requires_grad_(False), task.meter.cost)


class Attack(_Registered):
    """Base class. An attack tries to make the model produce the forget class again.

    It returns either a changed model (relearning) or a conditioning input to sample with
    (prompting), never results: the runner evaluates what it returns, with the evaluator.
    """

    changes_weights: ClassVar[bool] = False
    # The conditioning kinds (of the testbed's concepts) this attack works with.
    supports: ClassVar[tuple[str, ...]] = CURRENT_KINDS
    smoke_args: ClassVar[dict[str, Any]] = {}

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        raise NotImplementedError


@dataclass
class Attacked:
    """The attack's result. ``cond`` is the conditioning to sample the "forget class" with (embedding
    vectors or labels: one row per forget class, or one per sample); None means the forget concepts'.
    ``x_T`` are initial noises to sample from instead of fresh ones (seed search)."""

    model: UNet2DModel
    cond: Conditioning | None = None
    x_T: Tensor | None = None
    extra: dict[str, float] = field(default_factory=dict)


def run_attack(attack: Attack, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> tuple[Attacked, Cost]:
    _require_support(attack, task)
    private = copy.deepcopy(model).to(task.device).eval().requires_grad_(attack.changes_weights)
    task.meter = CostMeter(task.device)
    with task.meter.measure():
        out = attack.attack(private, task, generator=generator)
    out.model.eval().requires_grad_(False)
    return out, task.meter.cost


@dataclass(frozen=True)
class Score:
    """One number: ``metric`` on ``split`` (forget | retain | all), optionally for one class."""

    metric: str
    split: str
    value: float
    goal: str  # "min" or "max": which direction is better on this split
    stderr: float = float("nan")
    n: int = 0
    class_id: int | None = None


class Metric(_Registered):
    """Base class. ``compute(samples, reference)`` returns scores; it never trains or samples.

    ``input`` says what ``samples`` is: judged :class:`~unlearnbench.evaluate.Samples` (the default),
    or a :class:`~unlearnbench.cost.Cost` for cost metrics.
    """

    input: ClassVar[str] = "samples"

    def compute(self, samples: Any, reference: Any) -> list[Score]:
        raise NotImplementedError
