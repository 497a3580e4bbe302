"""Shared pieces of the prompting attacks: where the search starts, the attacker's score, and the one rule
for what they return (the best vector the attacker's classifier has seen, from the start on)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import RATE, Attacked, Row, Score, Task, Tolerance
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


def selection_budget(steps: int, a: SelectionArgs) -> int:
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


class BestByAttacker:
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
        self.model, self.task, self.samples, self.steps = model, task, samples, steps
        table = task.conditioner.embedding_table(model)
        n = len(task.forget_concepts)
        self.x_T = randn((n * samples, *task.data.image_shape), generator, table)
        self.pre_asr = self.score(table[list(task.forget_classes)])[0]
        self.vectors = start.detach().clone()
        self.asr, self.log_p, self.p = self.score(self.vectors)
        self.offer(table[-1].expand(n, -1))

    @torch.no_grad()
    def score(self, vectors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The attacker's ASR, and mean log-probability and probability of the forget class, per forget concept."""
        cond = self.task.conditioner.vectors(vectors.detach()).repeat_interleave(self.samples)
        log_probs, target = attacker_log_probs(self.model, self.task, cond, self.x_T, self.steps, grad=False)
        hits = (log_probs.argmax(-1) == target).float().view(-1, self.samples)
        log_p = log_probs.gather(1, target[:, None]).view(-1, self.samples)
        return hits.mean(1), log_p.mean(1), log_p.exp().mean(1)

    def offer(self, vectors: Tensor) -> None:
        """Score one candidate per forget concept ``[n_forget, D]``; keep each that beats the best so far."""
        asr, log_p, p = self.score(vectors)
        better = (asr > self.asr) | ((asr == self.asr) & (log_p > self.log_p))
        self.vectors[better] = vectors.detach()[better]
        self.asr, self.log_p, self.p = (
            torch.where(better, new, old) for new, old in ((asr, self.asr), (log_p, self.log_p), (p, self.p))
        )

    def every(self, n: int, total: int, vectors: Tensor) -> Callable[[int], None]:
        """An ``optimize`` callback that offers ``vectors`` every ``n`` steps and at the last (``total``)."""

        def callback(step: int) -> None:
            if step % n == 0 or step == total:
                self.offer(vectors)

        return callback

    def attacked(self, model: UNet2DModel) -> Attacked:
        """The kept vectors as the attack's result, with the :data:`SELECTION_ROWS` (overall and per class)."""
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
        return Attacked(model, cond=self.task.conditioner.vectors(self.vectors), extra=extra)


def for_class(task: Task, concept: Concept) -> Task:
    """The same task with one forget concept (the black-box searches score one concept at a time)."""
    return dataclasses.replace(task, forget_concepts=(concept,))
