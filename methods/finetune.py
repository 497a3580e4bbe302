"""Fine-tune: keep training on the retained classes only, hoping the forget class fades.

The simple baseline reported by SA, SalUn and EraseDiff: ``L = L_DM(D_r)``. Lineage schedule:
Adam 1e-4, batch 128, 1000 iterations on CIFAR-10 (scaled here by data passes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import positive
from unlearnbench.budget import scaled_steps
from unlearnbench.diffusion import denoising_loss
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class FinetuneArgs:
    steps: int = positive(scaled_steps(1000), "Adam steps (lineage: 1000 on CIFAR-10, scaled by data passes)")
    lr: float = positive(1e-4, "Adam learning rate")
    batch_size: int = positive(128, "retain images per step")


@register("finetune")
class Finetune(UnlearningMethod):
    """Fine-tune with L_DM on the retained classes only."""

    Args = FinetuneArgs
    uses_sampler = False
    paper = "baseline in Heng & Soh 2023 (SA), Fan et al. 2024 (SalUn)"
    upstream_label_dropout = 0.1
    label_dropout_source = (
        "JingWu321/EraseDiff ddpm/runners/diffusion.py::train_ft: the loss's default cond_drop_prob 0.1"
    )
    smoke_args = {"steps": 2, "batch_size": 8}
    search_space = {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "steps": [29, 100, 300]}

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: FinetuneArgs = self.args

        def loss_fn(_step: int) -> Tensor:
            x, y = sample_batch(task.retain_x, task.retain_cond, a.batch_size, generator)
            return denoising_loss(model, task.schedule, x, y, generator=generator)

        optimize(model.parameters(), loss_fn, steps=a.steps, lr=a.lr, desc="finetune", meter=task.meter)
        return model
