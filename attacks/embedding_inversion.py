"""Embedding inversion: the class-conditional analogue of textual inversion / Concept Inversion.

Pham et al., "Circumventing Concept Erasure Methods For Text-to-Image Generative Models", ICLR 2024.
Optimise a free conditioning vector ``v`` (not one of the trained labels) to lower the denoising loss on
``k`` forget-class images, with the model frozen:

    v* = argmin_v E_{x in D_k, t, eps} || eps - eps_theta(x_t, v, t) ||^2

The anchor (text-to-image) uses 25 images, 5000 steps, lr 5e-3; on this 16x16 testbed the default
budget is 300 steps at lr 2e-2 (the sanity check in tests/ shows it recovers the class on the original model
from the null embedding). The search starts from the forget label's own embedding (the threat model gives
the attacker the label) and returns the best iterate by the attacker's classifier
(:class:`~unlearnbench.attacks._prompt.BestByAttacker`), never one it rates below the label.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Attack, Attacked, RecoverySettings, Task
from unlearnbench.args import positive
from unlearnbench.attacks._prompt import (
    SELECTION_BUDGET,
    SELECTION_ROWS,
    BestByAttacker,
    SelectionArgs,
    concept_rows,
    selection_budget,
    start_vector,
)
from unlearnbench.attacks.relearn import attacker_images
from unlearnbench.diffusion import denoising_loss
from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class EmbeddingInversionArgs(SelectionArgs):
    k: int = positive(25, "forget-class images the attacker holds (anchor: 25)")
    steps: int = positive(300, "Adam steps on the vector (anchor: 5000 in text-to-image)")
    lr: float = positive(2e-2, "Adam learning rate (anchor: 5e-3)")
    batch_size: int = positive(32, "images per step, drawn with replacement from the k")
    select_every: int = positive(25, "score the current vector every this many steps (and at the last)")


@register("embedding_inversion")
class EmbeddingInversion(Attack):
    """Optimise a free conditioning vector to lower the denoising loss on k forget images (Concept Inversion)."""

    paper = (
        "Pham et al., Circumventing Concept Erasure Methods For Text-to-Image Generative Models, ICLR 2024 "
        "(its analogue in the class-embedding space)"
    )

    supports = ("label",)  # it searches the class-embedding space (text prompts: the prompt attacks)

    Args = EmbeddingInversionArgs
    smoke_args = {"k": 3, "steps": 3, "batch_size": 4, "select_samples": 2, "select_steps": 2, "select_every": 2}
    extra_rows = SELECTION_ROWS
    budget_unit = f"steps + {SELECTION_BUDGET}"

    def budget(self) -> int:
        a: EmbeddingInversionArgs = self.args
        return a.steps + selection_budget(a.steps, a)

    def check(self, task: Task) -> None:
        if self.args.k > len(task.forget_x):
            raise UserError(f"{self.name}: k = {self.args.k} images, but the forget class has {len(task.forget_x)}")

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        a: EmbeddingInversionArgs = self.args
        x, c = attacker_images(task.forget_x, task.forget_cond, a.k, generator)
        vectors = torch.nn.Parameter(start_vector(model, task, a.start, generator))
        best = BestByAttacker(model, task, vectors, samples=a.select_samples, steps=a.select_steps, generator=generator)

        def loss_fn(_step: int) -> Tensor:
            xb, cb = sample_batch(x, c, a.batch_size, generator)
            cond = task.conditioner.vectors(vectors[concept_rows(task, cb)])
            return denoising_loss(model, task.schedule, xb, cond, generator=generator)

        callback = best.every(a.select_every, a.steps, lambda: vectors)
        optimize(
            [vectors], loss_fn, steps=a.steps, lr=a.lr, desc="embedding_inversion", meter=task.meter, callback=callback
        )
        return dataclasses.replace(best.attacked(model), recovery=RecoverySettings(a.steps))
