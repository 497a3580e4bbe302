"""EraseDiff: unlearning as a bi-level problem, solved with first-order (BOME-style) updates.

Wu et al., "EraseDiff: Erasing Data Influence in Diffusion Models" (code: JingWu321/EraseDiff, ddpm/).

    L_f(theta) = E || eps_f - eps_theta(x_t^f, c_f) ||^2,   eps_f ~ U[0, 1)^d builds x_t^f and is the target
    each round:  theta_K = K inner Adam passes over D_f minimising L_f, starting at theta (then theta restored)
                 outer:  theta <- theta - lr * grad [ L_DM(D_r) + lambda (L_f(theta) - sg[L_f(theta_K)]) ]
    lambda = 0.1 fixed, or max(eta - cos(grad L_r, grad q), 0) with eta = 0.1 (``adaptive``)

``forget_loss="random_label"`` switches L_f to the later code's target, sg[eps_theta(x_t, c_rand)]
with c_rand a random *other* class (the code's torch.randint(1, 10) can hit c_f; this one cannot).
Code schedule on CIFAR-10: 4 epochs x 2 rounds, K = 2 passes over the forget set per round, outer
updates over 4,500 retained images per round (36 batches of 128), Adam 1e-4, clip 1. Scaled by data
passes: 8 rounds, each K = 2 passes over the forget set and ceil(4500 x 0.0287 / 128) = 2 outer batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg, positive
from unlearnbench.budget import SCALE
from unlearnbench.conditioning import Conditioning
from unlearnbench.diffusion import add_noise, denoising_loss, per_sample_mse, predict_noise, relabel_loss
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class EraseDiffArgs:
    rounds: int = positive(8, "outer rounds (code: unl_eps 4 x S_steps 2)")
    inner_passes: int = positive(2, "K: passes over the forget set in each inner loop (code: 2)")
    outer_steps: int = positive(max(1, math.ceil(4500 * SCALE / 128)), "outer updates per round (code: 36, scaled)")
    lr: float = positive(1e-4, "Adam learning rate (code: 1e-4)")
    batch_size: int = positive(128, "images per step (code: 128)")
    lam: float = arg(0.1, "lambda on the forget gap (code: 0.1)", low=0)
    adaptive: bool = arg(False, "lambda = max(eta - cos(grad L_r, grad q), 0) instead of fixed")
    eta: float = arg(0.1, "eta of the adaptive rule (code: 0.1)", low=0)
    forget_loss: str = arg(
        "uniform_noise",
        "'uniform_noise' (paper) or 'random_label' (later code)",
        choices=("uniform_noise", "random_label"),
    )
    grad_clip: float = positive(1.0, "gradient-norm clipping on outer steps (code: 1.0)")


def forget_loss(
    model: UNet2DModel, task: Task, a: EraseDiffArgs, x0: Tensor, cond: Conditioning, generator: torch.Generator
) -> Tensor:
    if a.forget_loss == "random_label":
        other = task.conditioner.other(cond, task.forget_concepts, "random", generator)
        return relabel_loss(model, task.schedule, x0, cond, other, generator=generator)
    _x, t, _ = add_noise(task.schedule, x0, generator=generator)
    eps_f = torch.rand(x0.shape, generator=generator).to(x0)
    x_t = task.schedule.add_noise(x0, eps_f, t)
    return per_sample_mse(predict_noise(model, x_t, t, cond), eps_f).mean()


@register("erasediff")
class EraseDiff(UnlearningMethod):
    """Bi-level unlearning: keep L_DM on retained data while pushing the forget loss toward its inner optimum."""

    Args = EraseDiffArgs
    uses_sampler = False
    paper = "Wu et al., arXiv:2401.05779 (EraseDiff)"
    upstream_label_dropout = 0.0
    label_dropout_source = (
        "JingWu321/EraseDiff ddpm/runners/diffusion.py::train_ours mixes: forget-term forwards "
        "at 0.1, the retain term at 0.; not reproduced (one rate for every forward)"
    )
    smoke_args = {"rounds": 1, "outer_steps": 1, "inner_passes": 1, "batch_size": 64}
    budget_unit = "rounds x (outer_steps + inner_passes)"
    search_space = {"lr": [1e-4, 1e-3], "rounds": [8, 30, 100], "lam": [0.1, 1.0]}

    def budget(self) -> int:
        a: EraseDiffArgs = self.args
        return a.rounds * (a.outer_steps + a.inner_passes)

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: EraseDiffArgs = self.args
        params = [p for p in model.parameters() if p.requires_grad]
        inner_steps = a.inner_passes * math.ceil(len(task.forget_x) / a.batch_size)
        adam = torch.optim.Adam(params, lr=a.lr)  # one Adam state for both loops, as in the code
        for r in range(a.rounds):
            saved = [p.detach().clone() for p in params]
            history = optimize(
                params,
                lambda _s: forget_loss(
                    model, task, a, *sample_batch(task.forget_x, task.forget_cond, a.batch_size, generator), generator
                ),
                steps=inner_steps,
                lr=a.lr,
                desc=f"erasediff inner {r + 1}/{a.rounds}",
                meter=task.meter,
                optimizer=adam,
            )
            passes = history[-math.ceil(len(task.forget_x) / a.batch_size) :]
            inner_optimum = sum(passes) / len(passes)  # the code's average L_f over the last pass
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)

            def outer_loss(_step: int, inner_optimum: float = inner_optimum) -> Tensor:
                xr, yr = sample_batch(task.retain_x, task.retain_cond, a.batch_size, generator)
                xf, yf = sample_batch(task.forget_x, task.forget_cond, a.batch_size, generator)
                l_r = denoising_loss(model, task.schedule, xr, yr, generator=generator)
                q = forget_loss(model, task, a, xf, yf, generator) - inner_optimum
                lam = a.lam
                if a.adaptive:
                    g_r = torch.autograd.grad(l_r, params, retain_graph=True, allow_unused=True)
                    g_q = torch.autograd.grad(q, params, retain_graph=True, allow_unused=True)
                    flat_r = torch.cat([g.flatten() for g in g_r if g is not None])
                    flat_q = torch.cat([g.flatten() for g in g_q if g is not None])
                    lam = max(a.eta - float(torch.nn.functional.cosine_similarity(flat_r, flat_q, dim=0)), 0.0)
                return l_r + lam * q

            optimize(
                params,
                outer_loss,
                steps=a.outer_steps,
                lr=a.lr,
                desc=f"erasediff outer {r + 1}/{a.rounds}",
                meter=task.meter,
                grad_clip=a.grad_clip,
                optimizer=adam,
            )
        return model
