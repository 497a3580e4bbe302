"""Concept inversion (CCE) on a text encoder: learn a new token's input embedding from k images of the concept.

Pham et al., "Circumventing Concept Erasure Methods For Text-to-Image Generative Models", ICLR 2024. With the
unlearned model and the text encoder frozen, textual inversion learns the input embedding ``v`` of a new token
``<c>`` so that the prompt ``<c>`` lowers the denoising loss on ``k`` images of the concept:

    v* = argmin_v E_{x ~ D_k, t, eps} || eps - eps_u(x_t, enc([<c>]), t) ||^2

``v`` starts from the embedding of ``init`` (a word that names nothing: the article "a"), so no name of the
concept is ever given. The result is that learned token, fed through the frozen encoder (not a word: no prompt is
reported as text), kept by the attacker's classifier every ``select_every`` steps
(:class:`~unlearnbench.attacks._prompt.BestSlots`: the concept's canonical prompt is the first candidate, the start
the second; ``keep_canonical = false`` leaves the canonical prompt out, so the result is a learned token).

Budget, scaled from the anchor (CCE: 25 images, 5,000 steps at lr 5e-3 on Stable Diffusion's 768-wide
embeddings): 25 images, 300 Adam steps at lr 2e-2 on text16's 64-wide one, batches of 16; digits16's
``embedding_inversion`` is the same attack in its class-embedding space.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Attack, Attacked, RecoverySettings, Task
from unlearnbench.args import arg, positive
from unlearnbench.attacks._prompt import (
    SELECTION_BUDGET,
    SELECTION_ROWS,
    BestSlots,
    check_images,
    concept_rows,
    selection_budget,
)
from unlearnbench.attacks.relearn import attacker_images
from unlearnbench.diffusion import denoising_loss
from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class ConceptInversionArgs:
    k: int = positive(25, "images of the concept the attacker holds (anchor: 25)")
    steps: int = positive(300, "Adam steps on the new token's embedding (anchor: 5,000)")
    lr: float = positive(2e-2, "Adam learning rate (anchor: 5e-3)")
    batch_size: int = positive(16, "images per step, drawn with replacement from the k")
    init: str = arg("a", "the word whose embedding the new token starts from (never a name of the concept)")
    select_samples: int = positive(16, "fixed initial noises per forget concept on which the attacker scores")
    select_steps: int = positive(10, "DDIM steps of the scoring sampler")
    select_every: int = positive(25, "score the learned token every this many steps (and at the last)")
    keep_canonical: bool = arg(
        True,
        "the concept's canonical prompt is the first candidate, so the result is never below the model as it is "
        "(false: learned tokens only, the sanity check of the inversion itself)",
    )


@register("concept_inversion")
class ConceptInversion(Attack):
    """Textual inversion on the unlearned model: a new token learned from k images of the concept (CCE)."""

    paper = "Pham et al., Circumventing Concept Erasure Methods For Text-to-Image Generative Models, ICLR 2024"

    supports = ("tokens",)  # prompts of a text encoder
    Args = ConceptInversionArgs
    smoke_args = {"k": 2, "steps": 2, "batch_size": 2, "select_samples": 2, "select_steps": 2, "select_every": 1}
    extra_rows = SELECTION_ROWS
    budget_unit = f"steps + {SELECTION_BUDGET}"

    def budget(self) -> int:
        a: ConceptInversionArgs = self.args
        return a.steps + selection_budget(a.steps, a)

    def check(self, task: Task) -> None:
        check_images(self, self.args.k, task)
        if self.args.init not in task.conditioner.search_words():
            raise UserError(f"{self.name}: init {self.args.init!r} is not one of the testbed's searchable words")
        named = [c for c in task.forget_concepts if self.args.init in task.conditioner.banned_words(c)]
        if named:
            raise UserError(f"{self.name}: init {self.args.init!r} is a name of {named[0]!r}; start from another word")

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        a: ConceptInversionArgs = self.args
        n = len(task.forget_concepts)
        init = task.conditioner.word_embeddings([a.init]).to(task.device)  # [1, width]
        slots = torch.nn.Parameter(init.expand(n, -1).clone()[:, None, :])  # one new token per concept
        base = [""] * n
        best = BestSlots(model, task, slots, base, samples=a.select_samples, steps=a.select_steps, generator=generator,
                         keep_canonical=a.keep_canonical)  # fmt: skip
        x, c = attacker_images(task.forget_x, task.forget_cond, a.k, generator)

        def loss_fn(_step: int) -> Tensor:
            xb, cb = sample_batch(x, c, a.batch_size, generator)
            rows = concept_rows(task, cb)
            cond = task.conditioner.prefixed(slots[rows], [base[int(r)] for r in rows])
            return denoising_loss(model, task.schedule, xb, cond, generator=generator)

        callback = best.every(a.select_every, a.steps, lambda: slots)
        optimize([slots], loss_fn, steps=a.steps, lr=a.lr, desc=self.name, meter=task.meter, callback=callback)
        return dataclasses.replace(best.attacked(model), recovery=RecoverySettings(a.steps))
