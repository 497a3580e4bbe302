"""Relearning attacks: fine-tune the unlearned model on a few images and watch the class come back.

``relearn`` fine-tunes with ``L_DM`` on ``k`` images of the forget class (Meta-Unlearning uses 50 to
100 steps). ``relearn_benign`` fine-tunes on ``k`` images of the *retained* classes only, to test whether
the forgotten class resurges without ever being shown (concept resurgence; DiMRA). Both report the
forget class's UA/ASR every ``eval_every`` steps, or at the steps ``curve_steps`` lists (denser early, where
fast recoveries are told apart): the recovery curve, which the survival statistics read.
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
    curve_steps: tuple[int, ...] = arg(
        (), "record UA/ASR at these steps instead (e.g. [5, 10, 25, 50, 100, 200]; empty: every eval_every)"
    )
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

    marks = set(a.curve_steps) if a.curve_steps else None

    def checkpoint(step: int) -> None:
        due = step in marks if marks is not None else bool(a.eval_every) and step % a.eval_every == 0
        if task.checkpoint is not None and due and step < a.steps:
            with task.meter.excluded():
                task.checkpoint(step, model, None)

    model.train()
    optimize(model.parameters(), loss_fn, steps=a.steps, lr=a.lr, desc=desc, meter=task.meter, callback=checkpoint)


@register("relearn")
class Relearn(Attack):
    """Fine-tune on k forget-class images for n steps; recovery curve of UA/ASR."""

    paper = "Gao et al., Meta-Unlearning on Diffusion Models: Preventing Relearning Unlearned Concepts, ICCV 2025"

    Args = RelearnArgs
    changes_weights = True
    smoke_args = {"k": 3, "steps": 4, "batch_size": 4, "eval_every": 2}
    source = "forget"  # which training images the attacker holds

    def check(self, task: Task) -> None:
        if list(self.args.curve_steps) != sorted(set(self.args.curve_steps)):
            raise UserError(
                f"{self.name}: curve_steps must be increasing, without repeats: {list(self.args.curve_steps)}"
            )
        beyond = [s for s in self.args.curve_steps if not 0 < s < self.args.steps]
        if beyond:
            raise UserError(f"{self.name}: curve_steps {beyond} are not between 0 and steps = {self.args.steps}")
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

    paper = (
        "Suriyakumar et al., Unstable Unlearning: The Hidden Risk of Concept Resurgence in Diffusion Models "
        "(arXiv 2410.08074)"
    )

    source = "retain"
