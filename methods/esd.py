"""ESD (Erased Stable Diffusion), adapted to class conditioning.

Gandikota et al., "Erasing Concepts from Diffusion Models", ICCV 2023 (code: rohitgandikota/erasing).

    target(x_t, t) = eps*(x_t, null) - eta * ( eps*(x_t, c_f) - eps*(x_t, null) )    (eps*: frozen original)
    L = || eps_theta(x_t, c_f, t) - sg[target] ||^2

``x_t`` is not a real image: as in the original script, the model being trained generates from fresh
noise with c_f (guided, DDIM ``sample_steps`` steps) and stops at a random DDIM step; the DDPM ``t`` is
drawn uniformly from that step's interval. Defaults of the original script: eta = 1, lr 1e-5, 1000
iterations at batch 1, Adam. ``params="class_path"`` trains only the class embedding and the layers that
inject it (the analogue of ESD-x's cross-attention); ``"all"`` is ESD-u's analogue here.
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
    params: str = arg("all", "'all' (ESD-u analogue) or 'class_path' (ESD-x analogue)", choices=("all", "class_path"))


def class_path_parameters(model: UNet2DModel) -> list[torch.nn.Parameter]:
    """The class embedding and every layer that adds the (time + class) embedding into the network."""
    return [p for n, p in model.named_parameters() if n.startswith("class_embedding") or "time_emb_proj" in n]


@register("esd")
class ESD(UnlearningMethod):
    """Regress eps(x_t, c_f) onto the frozen model's negatively guided prediction away from c_f."""

    Args = ESDArgs
    paper = "Gandikota et al., ICCV 2023, arXiv:2303.07345 (adapted to class conditioning)"
    smoke_args = {"steps": 2, "sample_steps": 3}
    search_space = {"lr": [1e-5, 1e-4, 1e-3], "eta": [1.0, 2.0]}
    search_note = "a trial samples x_t with DDIM at every step (640 s per run at its defaults): 6 trials"

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: ESDArgs = self.args
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        if a.params == "class_path" and task.conditioner.kind != "label":  # no class embedding to train there
            raise UserError("esd: params='class_path' needs class conditioning; on token conditioning use 'all'")
        trained = class_path_parameters(model) if a.params == "class_path" else list(model.parameters())
        sched = ddim_scheduler(task.schedule)
        sched.set_timesteps(a.sample_steps)
        T = task.schedule.config.num_train_timesteps
        stride = T // a.sample_steps
        shape = (a.batch_size, *task.data.image_shape)
        forget = task.concept_cond()

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
