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
from unlearnbench.cost import Cost, CostMeter
from unlearnbench.data import ImageData
from unlearnbench.models import Classifier


@dataclass(frozen=True)
class SamplerSettings:
    """How samples are drawn: DDIM steps, classifier-free guidance scale, DDIM eta."""

    steps: int = 50
    guidance_scale: float = 1.0
    eta: float = 0.0


@dataclass
class Task:
    """Everything a method or an attack may use. Tensors are on ``device``; images in ``[-1, 1]``."""

    data: ImageData
    schedule: DDPMScheduler
    forget_classes: tuple[int, ...]
    retain_classes: tuple[int, ...]
    forget_x: Tensor
    forget_y: Tensor
    retain_x: Tensor
    retain_y: Tensor
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
    checkpoint: Callable[[int, UNet2DModel, Tensor | None], None] | None = None

    @property
    def null_class(self) -> int:
        return self.data.num_classes

    @property
    def forget_class_tensor(self) -> Tensor:
        return torch.tensor(self.forget_classes, dtype=torch.long, device=self.device)


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


class UnlearningMethod(_Registered):
    """Base class. Subclasses implement :meth:`unlearn` and declare ``Args``; see ``methods/safemax.py``."""

    paper: ClassVar[str] = ""
    # Published unlearning cost, (minutes without priors, GPU memory in GB), as the SAFEMax poster reports it
    # (CIFAR-10, mean over forget classes); the leaderboard sets it beside the measured cost ratios.
    published_cost: ClassVar[tuple[float, float] | None] = None
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
    smoke_args: ClassVar[dict[str, Any]] = {}

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        raise NotImplementedError


@dataclass
class Attacked:
    """The attack's result. ``cond`` is the conditioning to sample the "forget class" with (embedding
    vectors or labels: one row per forget class, or one per sample); None means the forget labels.
    ``x_T`` are initial noises to sample from instead of fresh ones (seed search)."""

    model: UNet2DModel
    cond: Tensor | None = None
    x_T: Tensor | None = None
    extra: dict[str, float] = field(default_factory=dict)


def run_attack(attack: Attack, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> tuple[Attacked, Cost]:
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
