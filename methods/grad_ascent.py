"""Gradient ascent (NegGrad): maximise the denoising loss on the forget class.

``L = -L_DM(D_f) + retain_weight * L_DM(D_r)``; the baselines of SA/SalUn/EraseDiff use
``retain_weight = 0`` (SalUn's ``--method ga`` adds its alpha). It usually destroys the model; the
benchmark reports it anyway. Lineage schedule: Adam 1e-4, batch 128, 1000 iterations on CIFAR-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg, positive
from unlearnbench.budget import scaled_steps
from unlearnbench.diffusion import denoising_loss
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class GradAscentArgs:
    steps: int = positive(scaled_steps(1000), "Adam steps (lineage: 1000 on CIFAR-10, scaled by data passes)")
    lr: float = positive(1e-4, "Adam learning rate")
    batch_size: int = positive(128, "images per step")
    retain_weight: float = arg(0.0, "weight of an L_DM retain term (0 = plain NegGrad)", low=0)


@register("grad_ascent")
class GradAscent(UnlearningMethod):
    """NegGrad: gradient ascent on the forget class's denoising loss (usually collapses the model)."""

    Args = GradAscentArgs
    uses_sampler = False
    paper = "NegGrad baseline (Golatkar et al. 2020; in SA, SalUn, EraseDiff)"
    upstream_label_dropout = 0.1
    label_dropout_source = (
        "OPTML-Group/Unlearn-Saliency DDPM/runners/diffusion.py::saliency_unlearn --method ga: "
        "every mode='train' forward, cond_drop_prob 0.1 (configs/cifar10_saliency_unlearn.yml)"
    )
    smoke_args = {"steps": 2, "batch_size": 8}
    search_space = {"lr": [1e-5, 3e-5, 1e-4], "steps": [10, 29], "retain_weight": [0.0, 1.0]}

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: GradAscentArgs = self.args

        def loss_fn(_step: int) -> Tensor:
            xf, yf = sample_batch(task.forget_x, task.forget_cond, a.batch_size, generator)
            loss = -denoising_loss(model, task.schedule, xf, yf, generator=generator)
            if a.retain_weight > 0:
                xr, yr = sample_batch(task.retain_x, task.retain_cond, a.batch_size, generator)
                loss = loss + a.retain_weight * denoising_loss(model, task.schedule, xr, yr, generator=generator)
            return loss

        optimize(model.parameters(), loss_fn, steps=a.steps, lr=a.lr, desc="grad_ascent", meter=task.meter)
        return model
