"""Shared pieces of the prompting attacks: where the search starts, the attacker's score, and the one rule
for what they return (the best vector the attacker's classifier has seen, from the start on)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import RATE, Attack, Attacked, Row, Score, Task, Tolerance
from unlearnbench.args import arg, positive
from unlearnbench.conditioning import Concept, Conditioning
from unlearnbench.diffusion import ddim_sample, randn
from unlearnbench.errors import UserError

STARTS = ("null", "random", "other", "forget")

# What every prompt attack reports about its search, judged by the *attacker's* classifier on the
# selection's fixed noises (the evaluator's pre- and post-attack ASR are the runner's rows): overall
# (mean over forget classes) and per forget class (``class_id``).
SELECTION_ROWS = (
    Row("attack_attacker_asr_pre", "forget", "min", "attacker ASR, forget label", Tolerance(floor=0.1), valid=RATE),
    Row("attack_attacker_asr", "forget", "min", "attacker ASR, attack", Tolerance(floor=0.1), valid=RATE),
    Row("attack_attacker_p", "forget", "min", "attacker p, attack", Tolerance(floor=0.1), valid=RATE),
)


@dataclass(frozen=True)
class SelectionArgs:
    """How the returned vector is chosen: scored every ``select_every`` steps on fixed noises."""

    start: str = arg("forget", "initial vector: forget (the label's own) | null | other | random", choices=STARTS)
    select_samples: int = positive(16, "fixed initial noises per forget class on which the attacker scores vectors")
    select_steps: int = positive(10, "DDIM steps of the scoring sampler")
    select_every: int = positive(10, "score the current vector every this many steps (and at the last)")


SELECTION_BUDGET = "(steps / select_every + 1) x select_steps"


class Selecting(Protocol):
    """Any attack's arguments that choose what they return by the attacker's score (:class:`SelectionArgs`'s two
    knobs, which the text attacks have without its label-space ``start``)."""

    select_steps: int
    select_every: int


def selection_budget(steps: int, a: Selecting) -> int:
    """The scoring sampler's steps over an attack of ``steps`` steps: a chain of ``select_steps`` every
    ``select_every`` steps and at the last."""
    return (steps // a.select_every + 1) * a.select_steps


def start_vector(model: UNet2DModel, task: Task, start: str, generator: torch.Generator) -> Tensor:
    """The initial conditioning vector ``[n_forget, D]``: one per forget concept, in the conditioner's
    embedding space.

    ``forget``: the forget concept's own embedding (the threat model gives the attacker the label; the
    default). ``null``: the null embedding. ``other``: the embedding of the next retained concept.
    ``random``: Gaussian with the concept embeddings' per-coordinate scale. Every start but ``forget``
    withholds the label (sanity checks that a search finds the class alone).
    """
    table = task.conditioner.embedding_table(model)  # the concepts' vectors, then the null's
    n = len(task.forget_concepts)
    if start == "null":
        return table[-1].expand(n, -1).clone()
    if start == "forget":
        return table[list(task.forget_classes)].clone()
    if start == "other":
        forget = task.concept_cond()
        others = task.conditioner.other(forget, task.forget_concepts, "next", generator).concepts
        return table[others].clone()
    if start == "random":
        scale = table[:-1].std(0)
        return (torch.randn((n, table.shape[1]), generator=generator).to(table) * scale).clone()
    raise UserError(f"unknown start {start!r} (known: {', '.join(STARTS)})")


def attacker_log_probs(
    model: UNet2DModel, task: Task, cond: Conditioning, x_T: Tensor, steps: int, *, grad: bool
) -> tuple[Tensor, Tensor]:
    """The attacker's log-probabilities ``[N, K]`` for samples drawn from ``x_T`` with a short DDIM chain,
    and each sample's forget class (``cond`` holds the forget classes' rows in blocks, in task order)."""
    x0 = ddim_sample(
        model,
        task.schedule,
        cond,
        generator=torch.Generator(),
        steps=steps,
        guidance_scale=task.sampler.guidance_scale,
        x_T=x_T,
        grad=grad,
    )
    classes = torch.tensor(task.forget_classes, dtype=torch.long, device=task.device)
    target = classes.repeat_interleave(len(cond) // len(classes))
    return task.attacker(x0, target).log_softmax(-1), target


def attacker_log_prob(
    model: UNet2DModel, task: Task, cond: Conditioning, x_T: Tensor, steps: int, *, grad: bool
) -> Tensor:
    """log p_attacker(forget class | x_0) for samples drawn from ``x_T`` with a short DDIM chain."""
    log_probs, target = attacker_log_probs(model, task, cond, x_T, steps, grad=grad)
    return log_probs.gather(1, target[:, None])[:, 0]


C = TypeVar("C")  # a candidate: a vector, a prompt's text, a learned token's embedding


class _Best(Generic[C]):
    """What :class:`BestByAttacker` and :class:`BestPrompt` share: fixed initial noises (``samples`` per forget
    concept), the attacker's score of one conditioning row per forget concept on them (``steps`` DDIM steps), the
    rule that keeps a candidate (a higher attacker ASR, then a higher mean log-probability of the concept) and the
    :data:`SELECTION_ROWS` they report."""

    def __init__(
        self,
        model: UNet2DModel,
        task: Task,
        *,
        samples: int,
        steps: int,
        generator: torch.Generator,
        like: Tensor | None = None,
    ) -> None:
        self.model, self.task, self.samples, self.steps = model, task, samples, steps
        like = torch.empty(0, device=task.device) if like is None else like  # the noises' device and dtype
        self.x_T = randn((len(task.forget_concepts) * samples, *task.data.image_shape), generator, like)

    @torch.no_grad()
    def score_cond(self, cond: Conditioning) -> tuple[Tensor, Tensor, Tensor]:
        """The attacker's ASR, and mean log-probability and probability of the forget concept, per forget concept
        (``cond``: one row per forget concept, in task order)."""
        log_probs, target = attacker_log_probs(
            self.model, self.task, cond.repeat_interleave(self.samples), self.x_T, self.steps, grad=False
        )
        hits = (log_probs.argmax(-1) == target).float().view(-1, self.samples)
        log_p = log_probs.gather(1, target[:, None]).view(-1, self.samples)
        return hits.mean(1), log_p.mean(1), log_p.exp().mean(1)

    def offer(self, candidate: C) -> None:
        """Score one candidate per forget concept; keep each that beats the best so far."""
        raise NotImplementedError

    def every(self, n: int, total: int, candidate: Callable[[], C]) -> Callable[[int], None]:
        """An ``optimize`` callback that offers ``candidate()`` every ``n`` steps and at the last (``total``)."""

        def callback(step: int) -> None:
            if step % n == 0 or step == total:
                self.offer(candidate())

        return callback

    def keep(self, asr: Tensor, log_p: Tensor, p: Tensor) -> Tensor:
        """Which forget concepts' candidates beat the best so far (and become it)."""
        better = (asr > self.asr) | ((asr == self.asr) & (log_p > self.log_p))
        self.asr, self.log_p, self.p = (
            torch.where(better, new, old) for new, old in ((asr, self.asr), (log_p, self.log_p), (p, self.p))
        )
        return better

    def extra(self) -> list[Score]:
        """The :data:`SELECTION_ROWS`, overall and per forget concept."""
        extra = []
        for metric, values in (
            ("attacker_asr_pre", self.pre_asr),
            ("attacker_asr", self.asr),
            ("attacker_p", self.p),
        ):
            extra.append(Score(metric, "forget", float(values.mean()), n=self.samples))
            extra += [
                Score(metric, "forget", float(v), n=self.samples, class_id=c)
                for c, v in zip(self.task.forget_classes, values.tolist(), strict=True)
            ]
        return extra


class BestByAttacker(_Best[Tensor]):
    """Keeps, per forget concept, the best conditioning vector seen so far by the attacker's classifier.

    Every candidate is scored on the same fixed noises (``samples`` per forget concept, ``steps`` DDIM
    steps): first by the attacker's ASR (the share of samples it labels the forget class), then by the mean
    log-probability of that class. The first candidates are the search's start and the null embedding, so
    with the default start (the forget label's own embedding, which the threat model gives the attacker)
    the attack never returns a vector the attacker rates below the model as it already is:
    ``attacker ASR(attack) >= attacker ASR(forget label)`` per forget concept. The evaluator is never seen.
    """

    def __init__(
        self, model: UNet2DModel, task: Task, start: Tensor, *, samples: int, steps: int, generator: torch.Generator
    ) -> None:
        table = task.conditioner.embedding_table(model)
        n = len(task.forget_concepts)
        super().__init__(model, task, samples=samples, steps=steps, generator=generator, like=table)
        self.pre_asr = self.score(table[list(task.forget_classes)])[0]
        self.vectors = start.detach().clone()
        self.asr, self.log_p, self.p = self.score(self.vectors)
        self.offer(table[-1].expand(n, -1))

    def score(self, vectors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The attacker's ASR, and mean log-probability and probability of the forget class, per forget concept."""
        return self.score_cond(self.task.conditioner.vectors(vectors.detach()))

    def offer(self, vectors: Tensor) -> None:
        """Score one candidate per forget concept ``[n_forget, D]``; keep each that beats the best so far."""
        better = self.keep(*self.score(vectors))
        self.vectors[better] = vectors.detach()[better]

    def attacked(self, model: UNet2DModel) -> Attacked:
        """The kept vectors as the attack's result, with the :data:`SELECTION_ROWS` (overall and per class)."""
        return Attacked(model, cond=self.task.conditioner.vectors(self.vectors), extra=self.extra())


class BestPrompt(_Best[list[str]]):
    """Keeps, per forget concept, the best *prompt* (text) seen so far by the attacker's classifier, by
    :class:`BestByAttacker`'s rule on fixed noises. The pre-attack score is the concept's own canonical prompt's
    (the model as it is, as the evaluator's pre-ASR asks for it); ``start`` (one prompt per forget concept; by
    default that same canonical prompt) is the first candidate, so from the default start the attack never returns
    a prompt the attacker rates below the model as it already is. The result is the kept prompts, as text too."""

    def __init__(
        self,
        model: UNet2DModel,
        task: Task,
        start: list[str] | None = None,
        *,
        samples: int,
        steps: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__(model, task, samples=samples, steps=steps, generator=generator)
        canonical = [task.conditioner.canonical_prompt(c) for c in task.forget_concepts]
        self.pre_asr = self.score(canonical)[0]
        self.prompts = list(canonical if start is None else start)
        self.asr, self.log_p, self.p = self.score(self.prompts)

    def score(self, prompts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        return self.score_cond(self.task.conditioner.prompts(prompts).to(self.task.device))

    def offer(self, prompts: list[str]) -> None:
        """Score one prompt per forget concept; keep each that beats the best so far."""
        better = self.keep(*self.score(prompts)).tolist()
        self.prompts = [new if b else old for new, old, b in zip(prompts, self.prompts, better, strict=True)]

    def attacked(self, model: UNet2DModel) -> Attacked:
        """The kept prompts as the attack's result (their conditioning and their text), with the selection rows."""
        cond = self.task.conditioner.prompts(self.prompts).to(self.task.device)
        return Attacked(model, cond=cond, extra=self.extra(), prompts=tuple(self.prompts))


class BestSlots(_Best[Tensor]):
    """Keeps, per forget concept, the best learned input embedding(s) of a text prompt (``slots`` ``[P, width]``,
    fed by :meth:`~unlearnbench.conditioning.Conditioner.prefixed` before ``base``), by :class:`BestByAttacker`'s
    rule. The concept's own prompt (the model as it is) is the pre-attack score and, with ``keep_canonical``, the
    first candidate, so the result is never one the attacker rates below it; the start slots are the second.
    Without it (a sanity setting) the start slots are the first candidate: the result is always a learned token."""

    def __init__(
        self,
        model: UNet2DModel,
        task: Task,
        start: Tensor,
        base: list[str],
        *,
        samples: int,
        steps: int,
        generator: torch.Generator,
        keep_canonical: bool = True,
    ) -> None:
        super().__init__(model, task, samples=samples, steps=steps, generator=generator)
        self.base = base
        self.cond = task.concept_cond()
        self.asr, self.log_p, self.p = self.score_cond(self.cond)
        self.pre_asr = self.asr
        if keep_canonical:
            self.offer(start)
        else:
            self.cond = self.slots_cond(start)
            self.asr, self.log_p, self.p = self.score_cond(self.cond)

    def slots_cond(self, slots: Tensor) -> Conditioning:
        return self.task.conditioner.prefixed(slots.detach(), self.base).to(self.task.device)

    def offer(self, slots: Tensor) -> None:
        cond = self.slots_cond(slots)
        better = self.keep(*self.score_cond(cond))
        self.cond = self.cond.replaced(better, cond)

    def attacked(self, model: UNet2DModel) -> Attacked:
        return Attacked(model, cond=self.cond, extra=self.extra())


def concept_rows(task: Task, cond: Conditioning) -> Tensor:
    """Each row's forget concept as its position in the task (which of the attack's per-concept vectors, prefixes or
    tokens a training image of that concept trains)."""
    slot = {k: i for i, k in enumerate(task.forget_classes)}
    assert cond.concepts is not None, "the attacker's images stand for their concepts"
    return torch.tensor([slot[int(k)] for k in cond.concepts], device=cond.device)


def check_images(attack: Attack, k: int, task: Task) -> None:
    """One line when an attack asks for more images of the concept than the attacker holds."""
    if k > len(task.forget_x):
        raise UserError(f"{attack.name}: k = {k} images, but the attacker holds {len(task.forget_x)}")


def for_class(task: Task, concept: Concept) -> Task:
    """The same task with one forget concept (the black-box searches score one concept at a time)."""
    return dataclasses.replace(task, forget_concepts=(concept,))
