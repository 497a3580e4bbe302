"""ESD (Erased Stable Diffusion), adapted to class conditioning.

Gandikota et al., "Erasing Concepts from Diffusion Models", ICCV 2023 (code: rohitgandikota/erasing).

    target(x_t, t) = eps*(x_t, null) - eta * ( eps*(x_t, c_f) - eps*(x_t, null) )    (eps*: frozen original)
    L = || eps_theta(x_t, c_f, t) - sg[target] ||^2

``x_t`` is not a real image: as in the original script, the model being trained generates from fresh
noise with c_f (guided, DDIM ``sample_steps`` steps) and stops at a random DDIM step; the DDPM ``t`` is
drawn uniformly from that step's interval. Defaults of the original script: eta = 1, lr 1e-5, 1000
iterations at batch 1, Adam. Which parameters train (``params``), as the paper's two variants:

- text conditioning (cross-attention to token states): ``"cross_attention"`` is ESD-x (only the cross-attention
  layers, ``attn2``: erase what a prompt names, leave the rest), ``"non_cross_attention"`` is ESD-u (everything
  but them, the time embedding and the output layers, as the original script's ``noxattn``: erase the concept
  whatever the prompt);
- class conditioning: ``"class_path"`` (the class embedding and the layers that inject it) is ESD-x's analogue;
- ``"all"``: every parameter (the default, as the adaptation to class conditioning was measured).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg, positive
from unlearnbench.diffusion import ddim_scheduler, guided_noise, per_sample_mse, predict_noise, randn
from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.training import optimize


@dataclass(frozen=True)
class ESDArgs:
    eta: float = arg(1.0, "negative guidance eta (original script: 1; later diffusers script: 2)", low=0)
    steps: int = positive(1000, "Adam iterations (original: 1000)")
    lr: float = positive(1e-5, "Adam learning rate (original: 1e-5)")
    batch_size: int = positive(1, "partially denoised images per step (original: 1)")
    sample_steps: int = positive(50, "DDIM steps of the x_t generator (original: 50)")
    params: str = arg(
        "all",
        "'all'; text: 'cross_attention' (ESD-x) or 'non_cross_attention' (ESD-u); class labels: 'class_path'",
        choices=("all", "class_path", "cross_attention", "non_cross_attention"),
    )


def class_path_parameters(model: UNet2DModel) -> list[torch.nn.Parameter]:
    """The class embedding and every layer that adds the (time + class) embedding into the network."""
    return [p for n, p in model.named_parameters() if n.startswith("class_embedding") or "time_emb_proj" in n]


def trained_parameters(model: UNet2DModel, params: str, kind: str) -> list[torch.nn.Parameter]:
    """The parameters ESD trains: ``params`` on a model conditioned by ``kind`` (one line when they do not fit)."""
    if params == "all":
        return list(model.parameters())
    if params == "class_path":
        if kind != "label":  # no class embedding to train there
            raise UserError("esd: params='class_path' needs class conditioning; on text use 'cross_attention'")
        return class_path_parameters(model)
    if kind != "tokens":
        raise UserError(f"esd: params={params!r} needs cross-attention to a prompt; on class labels use 'class_path'")
    if params == "cross_attention":
        return [p for n, p in model.named_parameters() if ".attn2." in n]
    # ESD-u as the original script's 'noxattn': neither cross-attention, nor the time embedding, nor the output layers
    skip = (".attn2.", "time_embedding.", "conv_norm_out.", "conv_out.")
    return [p for n, p in model.named_parameters() if not any(k in f".{n}" for k in skip)]


@register("esd")
class ESD(UnlearningMethod):
    """Regress eps(x_t, c_f) onto the frozen model's negatively guided prediction away from c_f."""

    Args = ESDArgs
    paper = "Gandikota et al., ICCV 2023, arXiv:2303.07345 (text: ESD-x/ESD-u; adapted to class conditioning)"
    smoke_args = {"steps": 2, "sample_steps": 3}
    search_space = {"lr": [1e-5, 1e-4, 1e-3], "eta": [1.0, 2.0]}
    search_note = "a trial samples x_t with DDIM at every step (640 s per run at its defaults): 6 trials"
    budget_unit = "steps x sample_steps"

    def budget(self) -> int:
        return self.args.steps * self.args.sample_steps

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: ESDArgs = self.args
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        trained = trained_parameters(model, a.params, task.conditioner.kind)
        sched = ddim_scheduler(task.schedule)
        sched.set_timesteps(a.sample_steps)
        T = task.schedule.config.num_train_timesteps
        stride = T // a.sample_steps
        shape = (a.batch_size, *task.data.image_shape)
        forget = task.told_cond()  # an attribute: over its prompts, not one

        def loss_fn(_step: int) -> Tensor:
            c = forget[torch.randint(0, len(forget), (a.batch_size,), generator=generator).to(task.device)]
            stop = int(torch.randint(0, a.sample_steps, (1,), generator=generator))
            x = randn(shape, generator, task.forget_x)
            model.eval()
            with torch.no_grad():
                for t in sched.timesteps[:stop]:
                    tb = torch.full((a.batch_size,), int(t), device=task.device)
                    x = sched.step(guided_noise(model, x, tb, c, task.sampler.guidance_scale), int(t), x).prev_sample
                model.train()
                t_ddpm = (T - 1 - stop * stride - torch.randint(0, stride, (a.batch_size,), generator=generator)).clamp(
                    0, T - 1
                )
                t_ddpm = t_ddpm.to(task.device)
                null = task.conditioner.null_like(c, frozen)
                e_null = predict_noise(frozen, x, t_ddpm, null)
                e_c = predict_noise(frozen, x, t_ddpm, c)
                target = e_null - a.eta * (e_c - e_null)
            return per_sample_mse(predict_noise(model, x, t_ddpm, c), target).mean()

        optimize(trained, loss_fn, steps=a.steps, lr=a.lr, desc="esd", meter=task.meter)
        return model
