"""SalUn: random-label unlearning restricted to the most salient half of the weights.

Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024
(code: OPTML-Group/Unlearn-Saliency, DDPM/).

    g = sum_batches clip_1( grad_theta L_DM(D_f) ) at the original weights (guided output, eval mode)
    m = 1[ |g| >= median(|g|) ]                    (top 50%, ranked over all parameters at once)
    theta <- theta - lr * m (.) Adam( grad L_RL ),  L_RL as in ``random_label``

The mask is computed from every forget-class training image in batches of 128, each batch's gradient
clipped to norm 1 before summing, with the classifier-free-guided output (the code uses its sampling
guidance; here the testbed's). Its cost is reported as prior cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg
from unlearnbench.diffusion import add_noise, guided_noise, per_sample_mse
from unlearnbench.methods.random_label import RelabelArgs, relabel_unlearn
from unlearnbench.registry import register


@dataclass(frozen=True)
class SalUnArgs(RelabelArgs):
    mask_fraction: float = arg(
        0.5, "share of weights updated: the top fraction by |gradient| (paper: 0.5)", low=0, low_open=True, high=1
    )


def saliency_masks(
    model: UNet2DModel, task: Task, fraction: float, batch_size: int, generator: torch.Generator
) -> dict[Tensor, Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    model.eval()
    for lo in range(0, len(task.forget_x), batch_size):
        x0, cond = task.forget_x[lo : lo + batch_size], task.forget_cond[lo : lo + batch_size]
        x_t, t, eps = add_noise(task.schedule, x0, generator=generator)
        eps_pred = guided_noise(model, x_t, t, cond, task.sampler.guidance_scale)
        loss = (per_sample_mse(eps_pred, eps) * x0[0].numel()).mean()
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        scale = min(1.0, 1.0 / (float(norm) + 1e-6))
        for acc, g in zip(total, grads, strict=True):
            acc.add_(g, alpha=scale)
        task.meter.step()
    model.train()
    flat = torch.cat([g.abs().flatten() for g in total])
    threshold = flat.kthvalue(max(1, int((1 - fraction) * flat.numel()))).values
    return {p: (g.abs() >= threshold).to(p.dtype) for p, g in zip(params, total, strict=True)}


@register("salun")
class SalUn(UnlearningMethod):
    """Random-label unlearning that only updates the 50% most forget-salient weights (gradient mask)."""

    Args = SalUnArgs
    paper = "Fan et al., ICLR 2024, arXiv:2310.12508"
    upstream_label_dropout = 0.1
    label_dropout_source = (
        "OPTML-Group/Unlearn-Saliency DDPM/runners/diffusion.py::saliency_unlearn: "
        "every mode='train' forward, cond_drop_prob 0.1 (configs/cifar10_saliency_unlearn.yml)"
    )
    published_cost = (11.8, 23.23)  # SAFEMax poster: minutes without priors, GPU GB
    smoke_args = {"steps": 2, "batch_size": 64}
    search_space = {"lr": [1e-4, 3e-4, 1e-3], "steps": [29, 100], "alpha": [1e-3, 1e-2]}

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: SalUnArgs = self.args
        with task.meter.prior():
            masks = saliency_masks(model, task, a.mask_fraction, a.batch_size, generator)
        return relabel_unlearn(model, task, a, generator, "salun", grad_masks=masks)
