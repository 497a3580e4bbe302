"""Random label: SalUn's loss without the saliency mask.

Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024
(code: OPTML-Group/Unlearn-Saliency, DDPM/runners/diffusion.py, run without --mask_path).

    L = || eps_theta(x_t, c_f) - sg[eps_theta(x_t, c')] ||^2  +  alpha * L_DM^sum(D_r),   c' = (c_f + 1) mod 10

``c'`` comes from the testbed's conditioner: the next concept in its list that is not forgotten (the
code's ``(c_f + 1) mod 10`` on digits), or with ``relabel="random"`` a random retained one.

The first term is a per-pixel mean and the retain term a per-pixel *sum*, as in the code: with alpha =
1e-3 the retain term weighs 1e-3 x 256 = 0.26 of a mean-reduced term on 16x16 images (3.07 on CIFAR-10).
CIFAR-10 schedule: 1000 iterations, batch 128, Adam 1e-4, gradient clipping at 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg, positive
from unlearnbench.budget import scaled_steps
from unlearnbench.diffusion import denoising_loss, relabel_loss
from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class RelabelArgs:
    steps: int = positive(scaled_steps(1000), "Adam steps (paper: 1000 on CIFAR-10, scaled by data passes)")
    lr: float = positive(1e-4, "Adam learning rate (paper: 1e-4)")
    batch_size: int = positive(128, "forget and retain images per step (paper: 128 each)")
    alpha: float = arg(1e-3, "weight of the pixel-summed retain loss (paper: 1e-3; must be > 0)", low=0, low_open=True)
    relabel: str = arg(
        "next", "c': 'next' = (c_f + 1) mod 10 (code), 'random' = a random retained class", choices=("next", "random")
    )
    grad_clip: float = positive(1.0, "gradient-norm clipping (code: 1.0)")


def relabel_unlearn(
    model: UNet2DModel,
    task: Task,
    a: RelabelArgs,
    generator: torch.Generator,
    desc: str,
    grad_masks: dict[Tensor, Tensor] | None = None,
) -> UNet2DModel:
    """The random-label loop shared by ``random_label`` and ``salun`` (which adds its mask)."""
    if a.alpha <= 0:
        raise UserError(f"{desc}: alpha must be > 0 (alpha = 0 drops the retain term and unlearns every class)")

    def loss_fn(_step: int) -> Tensor:
        xf, cf = sample_batch(task.forget_x, task.forget_cond, a.batch_size, generator)
        other = task.conditioner.other(cf, task.forget_concepts, a.relabel, generator)
        forget = relabel_loss(model, task.schedule, xf, cf, other, generator=generator)
        xr, cr = sample_batch(task.retain_x, task.retain_cond, a.batch_size, generator)
        return forget + a.alpha * denoising_loss(model, task.schedule, xr, cr, generator=generator, reduction="sum")

    optimize(
        model.parameters(),
        loss_fn,
        steps=a.steps,
        lr=a.lr,
        desc=desc,
        meter=task.meter,
        grad_clip=a.grad_clip,
        grad_masks=grad_masks,
    )
    return model


@register("random_label")
class RandomLabel(UnlearningMethod):
    """SalUn's random-label loss without the saliency mask: eps(x_t, c_f) -> sg[eps(x_t, c')] + alpha L_DM(D_r)."""

    Args = RelabelArgs
    uses_sampler = False
    paper = "Fan et al., ICLR 2024 (SalUn), the 'RL' baseline"
    upstream_label_dropout = 0.1
    label_dropout_source = (
        "OPTML-Group/Unlearn-Saliency DDPM/runners/diffusion.py::saliency_unlearn: "
        "every mode='train' forward, cond_drop_prob 0.1 (configs/cifar10_saliency_unlearn.yml)"
    )
    smoke_args = {"steps": 2, "batch_size": 8}
    search_space = {"lr": [1e-4, 3e-4, 1e-3], "steps": [29, 100], "alpha": [1e-3, 1e-2]}

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        return relabel_unlearn(model, task, self.args, generator, "random_label")
