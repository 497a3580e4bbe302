"""The interfaces a method, an attack and a metric implement, and what they receive and return."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor

from unlearnbench import args as argparse_
from unlearnbench.conditioning import TESTBED_KINDS, Concept, Conditioner, Conditioning, training_label_dropout
from unlearnbench.cost import Cost, CostMeter
from unlearnbench.data import ImageData
from unlearnbench.errors import UserError
from unlearnbench.models import Classifier
from unlearnbench.timing import part
from unlearnbench.training import training_precision

# The label-dropout stream's seed is the run generator's plus this offset.
DROPOUT_SEED_OFFSET = 7919

if TYPE_CHECKING:
    from unlearnbench.evaluate import Reference, Samples


@dataclass(frozen=True)
class SamplerSettings:
    """How samples are drawn: DDIM steps, classifier-free guidance scale, DDIM eta.

    Guidance is ``eps_null + s * (eps_cond - eps_null)`` (the diffusers convention; upstream's
    ``(1 + w) eps_cond - w eps_null`` is ``s = 1 + w``). ``guidance_scale=None`` means "the testbed's
    default": the runner resolves it once (:func:`unlearnbench.testbeds.default_guidance`) before the
    run is hashed, so a spec that states the default and one that leaves it out are the same run.
    """

    steps: int = 50
    guidance_scale: float | None = None
    eta: float = 0.0
    # Clip the predicted x0 to [-1, 1] at every step (diffusers' ``clip_sample``). Upstream's sampler
    # (``generalized_steps`` in the SA/SalUn DDPM code) does not; only the final image is clamped.
    clip_sample: bool = False
    # The model forwards' arithmetic: "bfloat16" autocast (the default since it moved no judged score outside its
    # interval: results/perf/precision.md; 1.7-1.9x faster on processors with AVX-512 BF16 or AMX) or "float32".
    # Runs stored before the default changed say which they used (a spec without it used float32).
    precision: str = "bfloat16"


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
    # The testbed's shipped gold-standard results (unlearnbench.references.References); None when it has none.
    references: Any = None
    # Share of training forwards whose conditioning is replaced by the null one while the method unlearns
    # (applied by :func:`run_unlearning` to forwards in training mode; see ``conditioning.training_label_dropout``).
    label_dropout: float = 0.0
    # The arithmetic of the method's gradient steps (applied by :func:`run_unlearning` to every ``optimize``
    # inside it): "float32", or "bfloat16" autocast (a run's ``unlearn_precision``).
    unlearn_precision: str = "float32"
    # The base model before any unlearning (shared and read-only: never train it), for an attack whose threat model
    # holds it (P4D matches the attacked model's noise prediction to it); None where the task has none.
    original_model: Any = None
    # Called by attacks every few steps with (step, model, cond) to record a recovery curve.
    checkpoint: Callable[[int, UNet2DModel, Conditioning | None], None] | None = None

    def concept_cond(self, concepts: tuple[Concept, ...] | None = None) -> Conditioning:
        """One conditioning row per concept (default: per forget concept)."""
        return self.conditioner.encode(self.forget_concepts if concepts is None else concepts, self.device)

    def told_cond(self, per_concept: int = 64) -> Conditioning:
        """The forget concepts as a method that is given them by name conditions on (``Conditioner.told``): one
        row per concept on a class-conditional testbed; on a text testbed an attribute spread over its prompts."""
        return self.conditioner.told(self.forget_concepts, per_concept).to(self.device)

    @property
    def forget_classes(self) -> tuple[int, ...]:
        """The forget concepts' positions in the concept list: the judges' (and the attacker classifier's)
        class indices, and the rows of the conditioner's embedding table."""
        return tuple(self.conditioner.index(c) for c in self.forget_concepts)

    @property
    def retain_classes(self) -> tuple[int, ...]:
        """The retained concepts' positions (see :attr:`forget_classes`)."""
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


class _Budgeted(_Registered):
    """A method or an attack: it declares an upper bound on its work, checked when its arguments are parsed
    (before any work; one line naming the bound), so that no set of arguments that each pass their own range
    (:func:`unlearnbench.args.implied_high`) multiplies into a run that takes weeks."""

    # What :meth:`budget` counts (the arguments' formula) and the most it may be. The default counts the
    # ``steps`` argument (0 where there is none); a method or attack whose work is driven by other arguments
    # (rounds, sampler steps per step, candidates scored) says so.
    budget_unit: ClassVar[str] = "steps"
    max_budget: ClassVar[int] = argparse_.MAX_STEPS

    def __init__(self, args: Any = None) -> None:
        super().__init__(args)
        used = self.budget()
        if used > self.max_budget:
            raise UserError(
                f"{self.label()}: budget {self.budget_unit} = {used:,} exceeds its bound of {self.max_budget:,}"
            )

    def budget(self) -> int:
        """The steps or queries these arguments ask for, as ``budget_unit`` says."""
        steps = getattr(self.args, "steps", 0)
        return steps if isinstance(steps, int) else 0


def unsupported(cls: type[UnlearningMethod] | type[Attack], conditioner: Conditioner) -> str | None:
    """Why ``cls`` cannot run on a testbed with this conditioner, or None when it can."""
    if conditioner.kind in cls.supports:
        return None
    return f"{cls.label()} supports {', '.join(cls.supports)} conditioning, the testbed's is {conditioner.kind}"


def _require_support(plugin: UnlearningMethod | Attack, task: Task) -> None:
    reason = unsupported(type(plugin), task.conditioner)
    if reason is not None:
        raise UserError(reason)


class UnlearningMethod(_Budgeted):
    """Base class. Subclasses implement :meth:`unlearn` and declare ``Args``; see ``safemax.py`` in
    ``methods/``."""

    paper: ClassVar[str] = ""
    # The conditioning kinds (of the testbed's concepts) this method works with: every kind, since a method
    # trains through ``predict_noise`` and the conditioner; one that needs labels or a class recipe says so.
    supports: ClassVar[tuple[str, ...]] = TESTBED_KINDS
    # Published unlearning cost, (minutes without priors, GPU memory in GB), as the SAFEMax poster reports it
    # (CIFAR-10, mean over forget classes); the leaderboard sets it beside the measured cost ratios.
    published_cost: ClassVar[tuple[float, float] | None] = None
    # Arguments that make a run take seconds (contract tests, CI smoke runs).
    smoke_args: ClassVar[dict[str, Any]] = {}
    # The grid ``unlearnbench tune`` searches: every combination is one trial, after the paper default. The
    # same budget for every method: 12 combinations (``unlearnbench.tune.TRIALS``); a method whose trials are
    # expensive may have 6, with ``search_note`` saying why (tests check both).
    search_space: ClassVar[dict[str, list[Any]]] = {}
    search_note: ClassVar[str] = ""
    # Named variants tuned as their own rows (label -> their grid, which replaces ``search_space``), e.g.
    # SAFEMax with a retain term: a different method from the published one, never a knob of it.
    search_variants: ClassVar[dict[str, dict[str, list[Any]]]] = {}
    # Label dropout while unlearning, as the method's upstream code does it (the default of a run's
    # ``label_dropout``), and where upstream sets it; 0 and "" when upstream trains without it or has no code.
    upstream_label_dropout: ClassVar[float] = 0.0
    label_dropout_source: ClassVar[str] = ""
    # Whether ``unlearn`` reads ``task.sampler`` (guided replay, guided saliency, guided x_t). A method that
    # does not gives the same model at every sampler setting, so runs at the testbed's and the papers'
    # settings share one unlearning (tests/test_contract.py checks the claim for every method making it).
    uses_sampler: ClassVar[bool] = True
    # Whether ``unlearn`` draws from the run's ``generator``. A method that does not (retrain follows its
    # recipe's own seed) gives the same model for every run seed, so a grid's seeds share one unlearning and
    # differ in their sampling only (the same contract test checks this claim).
    uses_seed: ClassVar[bool] = True
    # A reference row rather than an unlearning method to rank: every table and figure lists the references
    # first. "comparison" (noop: it changes nothing) is shown for comparison only, never a column's best and
    # given no cost ratio; "gold standard" (retrain: exact unlearning) competes like any method.
    reference: ClassVar[Literal["", "comparison", "gold standard"]] = ""

    def resolved(self) -> Any:
        """The arguments with whatever the method derives from them before the run is hashed (``given``: its
        folder's sha256); the default returns them unchanged."""
        return self.args

    def shipped(self, references: Any, forget: tuple[Concept, ...]) -> bool:
        """Whether this setting's result ships with the testbed (``references``: ``task.references``), so that
        ``unlearn`` loads it rather than computing it (a sweep's plan then counts no unlearning time)."""
        return False

    def prior(self, sampler: SamplerSettings) -> tuple[str, dict[str, Any]] | None:
        """The prior ``unlearn`` reads through ``task.priors.get`` at this sampler setting, as its (name, key);
        None (the default) for a method with none. A sweep sends out one run that needs an uncomputed prior and
        holds back the others that need it until that run ends, so no worker waits on another's prior while
        other work is queued."""
        return None

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
    # Its own stream, so switching dropout on or off leaves the method's random draws as they were.
    dropout_generator = torch.Generator().manual_seed(generator.initial_seed() + DROPOUT_SEED_OFFSET)
    with (
        part("unlearning"),
        task.meter.measure(),
        training_label_dropout(task.label_dropout, dropout_generator),
        training_precision(task.unlearn_precision),
    ):
        out = method.unlearn(private, task, generator=generator)
    return Unlearned(out.eval().requires_grad_(False), task.meter.cost)


class Attack(_Budgeted):
    """Base class. An attack tries to make the model produce the forget class again.

    It returns either a changed model (relearning) or a conditioning input to sample with
    (prompting), never results: the runner evaluates what it returns, with the evaluator.
    Numbers an attack reports about itself (``Attacked.extra``, scores named ``<name>``) are declared in
    ``extra_rows`` as ``attack_<name>``, the name the runner writes them under; attacks that share rows (the
    prompt attacks) declare the same :class:`Row` objects.
    """

    changes_weights: ClassVar[bool] = False
    # The paper the attack (or the text-to-image attack it is the analogue of) comes from; "" for this project's own.
    paper: ClassVar[str] = ""
    # The conditioning kinds (of the testbed's concepts) this attack works with (the searches of the class
    # embedding space say "label").
    supports: ClassVar[tuple[str, ...]] = TESTBED_KINDS
    smoke_args: ClassVar[dict[str, Any]] = {}
    extra_rows: ClassVar[tuple[Row, ...]] = ()
    # Arguments that choose another attack of the same file (UnlearnDiffAtk's ``loss = "p4d"``: P4D), not a budget:
    # the page names such a run ``attack[arg=value]`` and reads it at its default budget beside the others.
    variant_args: ClassVar[tuple[str, ...]] = ()

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        raise NotImplementedError

    def check(self, task: Task) -> None:
        """Raise :class:`~unlearnbench.errors.UserError` when the budget asks for more than the task holds
        (called before any work); the default checks nothing."""


# A run *forgot* when its forget-class rate is below this share of the original model's; relearning has
# *recovered* it once the rate is back at or above it (``metrics.recovery``; relearn's default fraction).
FORGOT_FRACTION = 0.8


@dataclass(frozen=True)
class RecoverySettings:
    """How an attack's recovery curve is read: its last step, and the share of the original model's
    forget-class rate that counts as "recovered"."""

    final_step: int
    fraction: float = FORGOT_FRACTION


@dataclass
class Attacked:
    """The attack's result. ``cond`` is the conditioning to sample the "forget class" with (embedding
    vectors or labels: one row per forget class, or one per sample); None means the forget concepts'.
    ``x_T`` are initial noises to sample from instead of fresh ones (seed search). ``recovery`` is set
    by attacks that record a curve (through ``task.checkpoint``). ``prompts``: what a discrete prompt attack found,
    as text (``cond`` is their encoding)."""

    model: UNet2DModel
    cond: Conditioning | None = None
    x_T: Tensor | None = None
    extra: list[Score] = field(default_factory=list)
    recovery: RecoverySettings | None = None
    # The prompt a discrete prompt attack found, as text, one per forget concept (the ``attack_prompt`` column).
    prompts: tuple[str, ...] = ()


def run_attack(attack: Attack, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> tuple[Attacked, Cost]:
    _require_support(attack, task)
    private = copy.deepcopy(model).to(task.device).eval().requires_grad_(attack.changes_weights)
    task.meter = CostMeter(task.device)
    with part("attack"), task.meter.measure():
        out = attack.attack(private, task, generator=generator)
    out.model.eval().requires_grad_(False)
    return out, task.meter.cost


# ---------------------------------------------------------------------------------------------
# Metrics: what a metric declares, what it receives, what it returns
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far a number may move in its worse direction before ``unlearnbench check`` calls it a regression.

    ``allowed = max(floor, relative * |baseline|, z * sqrt(se_baseline^2 + se_result^2))``: the
    standard-error term makes the tolerance follow each number's measured error (a missing standard
    error counts as 0); the floor keeps a deterministic number from failing on float noise.
    """

    floor: float
    relative: float = 0.0
    z: float = 3.0

    def allowed(self, baseline: float, se_baseline: float = math.nan, se_result: float = math.nan) -> float:
        se_b = 0.0 if math.isnan(se_baseline) else se_baseline
        se_r = 0.0 if math.isnan(se_result) else se_result
        return max(self.floor, self.relative * abs(baseline), self.z * math.hypot(se_b, se_r))


RATE = (0.0, 1.0)  # a share of samples or runs
NONNEGATIVE = (0.0, math.inf)  # a distance, a time, a count


@dataclass(frozen=True)
class Row:
    """One kind of number a metric (or an attack) writes, and everything the project knows about it.

    The run summary, the leaderboard's columns and the regression gate read these declarations; nothing
    else keeps its own copy. ``goal``: which direction is better on this split. ``summary``: position in
    the run summary (0: not shown). ``machine_dependent``: compared by ``check`` only with
    ``--include-cost``. ``headline``: a quality-table column that the README's copy of the leaderboard keeps.
    ``robustness``: position in the leaderboard's robustness table (0: not a column), read after the attack;
    ``before_attack``: there also before it, in the column before (the pre-attack ASR). ``second_judge_of``:
    the metric (on the same split) that this row reads again with the testbed's second judge, which the
    leaderboard sets beside it.
    """

    metric: str
    split: str
    goal: str
    label: str
    tolerance: Tolerance
    digits: int = 3
    summary: int = 0
    machine_dependent: bool = False
    leaderboard: float = 0  # position in the leaderboard's quality table (0: not a column; shown where a run has it)
    headline: bool = False
    robustness: int = 0
    before_attack: bool = False
    second_judge_of: str = ""
    # Whether a table may mark this column's best: not where every row has the same value by design (an
    # attack's step budget) or where the number is not comparable across rows (a mean over the runs that
    # happened to recover, beside runs censored at the budget: the survival table orders those instead).
    ranked: bool = True
    # Whether a table marks this column's best among the rows that forgot (in at least half their runs) only: a
    # cost, where the cheapest row that kept the concept did nothing useful.
    best_among_forgetting: bool = False
    # The values this number can take (``RATE``, ``NONNEGATIVE``, ...): a stored value, or an interval end,
    # outside it is damage or a hand edit, and the store refuses the run that holds it (unlearnbench.integrity).
    valid: tuple[float, float] = (-math.inf, math.inf)

    def __post_init__(self) -> None:
        if not self.valid[0] < self.valid[1]:
            raise ValueError(f"row {self.metric!r}: valid must be a (low, high) range, got {self.valid!r}")
        if self.goal not in ("min", "max"):
            raise ValueError(f"row {self.metric!r}: goal must be 'min' or 'max', got {self.goal!r}")
        if self.split not in ("forget", "retain", "all"):
            raise ValueError(f"row {self.metric!r}: split must be forget, retain or all, got {self.split!r}")
        if not isinstance(self.tolerance, Tolerance):
            raise ValueError(f"row {self.metric!r}: needs a Tolerance, got {self.tolerance!r}")


@dataclass(frozen=True)
class Score:
    """One number: ``metric`` on ``split`` (forget | retain | all), optionally for one class. Its goal,
    label and tolerance are those of the :class:`Row` its metric declares. ``lo``/``hi``: its 95%
    bootstrap interval over the samples behind it (:mod:`unlearnbench.stats`); NaN where none is defined."""

    metric: str
    split: str
    value: float
    stderr: float = float("nan")
    n: int = 0
    class_id: int | None = None
    lo: float = float("nan")
    hi: float = float("nan")


@dataclass(frozen=True)
class RecoveryCurve:
    """A relearning attack's recovery curve: ``(step, ASR)`` points (``asr_metric``), the original model's
    ASR, and the attack's own recovery settings."""

    points: list[tuple[int, float]]
    original_asr: float
    settings: RecoverySettings
    asr_metric: str


class Metric(_Registered):
    """Base class. A metric declares its ``rows`` and implements the hooks for the inputs it reads;
    the runner calls every hook of every metric, through the registry. A metric never trains or samples.

    - ``on_samples(samples, reference)``: judged samples of one phase (original, unlearned, attacked);
    - ``on_cost(cost, attack=...)``: the measured cost of the unlearning (or of the attack);
    - ``on_curve(curve)``: a relearning attack's recovery curve.

    ``curve_point``: its ``on_samples`` is also called at every recovery-curve point (the forget-class
    rates); the other metrics (FID, entropy, ...) run only at the three phases.
    """

    rows: ClassVar[tuple[Row, ...]] = ()
    curve_point: ClassVar[bool] = False

    def on_samples(self, samples: Samples, reference: Reference) -> list[Score]:
        return []

    def on_cost(self, cost: Cost, *, attack: bool) -> list[Score]:
        return []

    def on_curve(self, curve: RecoveryCurve) -> list[Score]:
        return []
