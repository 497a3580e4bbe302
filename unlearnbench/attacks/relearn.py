"""Relearning attacks: fine-tune the unlearned model on a few images and watch the class come back.

``relearn`` fine-tunes with ``L_DM`` on ``k`` images of the forget class (Meta-Unlearning uses 50 to
100 steps). ``relearn_benign`` fine-tunes on ``k`` images of the *retained* classes only, to test whether
the forgotten class resurges without ever being shown (concept resurgence; DiMRA). Both report the
forget class's UA/ASR every ``eval_every`` steps: the recovery curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import FORGOT_FRACTION, Attack, Attacked, RecoverySettings, Task
from unlearnbench.args import arg, positive
from unlearnbench.conditioning import Conditioning
from unlearnbench.diffusion import denoising_loss
from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class RelearnArgs:
    k: int = positive(10, "images the attacker fine-tunes on (a seeded subset of the training split)")
    steps: int = positive(100, "Adam steps (Meta-Unlearning: 50-100)")
    lr: float = positive(1e-4, "Adam learning rate")
    batch_size: int = positive(16, "images per step, drawn with replacement from the k")
    eval_every: int = arg(25, "record UA/ASR every this many steps (0 = only at the end)", low=0)
    recover_fraction: float = arg(
        FORGOT_FRACTION,
        "'recovered' once the curve's ASR reaches this fraction of the original model's",
        low=0,
        low_open=True,
        high=1,
    )


def attacker_images(x: Tensor, cond: Conditioning, k: int, generator: torch.Generator) -> tuple[Tensor, Conditioning]:
    """A seeded subset of ``k`` images and their conditioning (all of them if fewer)."""
    idx = torch.randperm(x.shape[0], generator=generator)[: min(k, x.shape[0])].to(x.device)
    return x[idx], cond[idx]


def fine_tune(
    model: UNet2DModel,
    task: Task,
    x: Tensor,
    cond: Conditioning,
    a: RelearnArgs,
    generator: torch.Generator,
    desc: str,
) -> None:
    def loss_fn(_step: int) -> Tensor:
        xb, cb = sample_batch(x, cond, a.batch_size, generator)
        return denoising_loss(model, task.schedule, xb, cb, generator=generator)

    def checkpoint(step: int) -> None:
        if task.checkpoint is not None and a.eval_every and step % a.eval_every == 0 and step < a.steps:
            with task.meter.excluded():
                task.checkpoint(step, model, None)

    model.train()
    optimize(model.parameters(), loss_fn, steps=a.steps, lr=a.lr, desc=desc, meter=task.meter, callback=checkpoint)


@register("relearn")
class Relearn(Attack):
    """Fine-tune on k forget-class images for n steps; recovery curve of UA/ASR."""

    Args = RelearnArgs
    changes_weights = True
    smoke_args = {"k": 3, "steps": 4, "batch_size": 4, "eval_every": 2}
    source = "forget"  # which training images the attacker holds

    def check(self, task: Task) -> None:
        available = len(task.forget_x if self.source == "forget" else task.retain_x)
        if self.args.k > available:
            raise UserError(f"{self.name}: k = {self.args.k} images, but the attacker holds only {available}")

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        if self.source == "forget":
            images, cond = task.forget_x, task.forget_cond
        else:
            images, cond = task.retain_x, task.retain_cond
        x, c = attacker_images(images, cond, self.args.k, generator)
        fine_tune(model, task, x, c, self.args, generator, self.name)
        return Attacked(model, recovery=RecoverySettings(self.args.steps, self.args.recover_fraction))


@register("relearn_benign")
class RelearnBenign(Relearn):
    """Fine-tune on k retained-class images only: does the forgotten class resurge unprompted?"""

    source = "retain"
