"""Shared diffusion mechanics: noise prediction under a conditioning, classifier-free guidance, the
noise schedule, the denoising loss, EMA and the DDIM sampler.

Every method, attack and recipe calls these; none re-implements them. They take a
:class:`~unlearnbench.conditioning.Conditioning` (labels, embedding vectors or token states), which knows
how it is fed to the model and what its null counterpart is.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import Tensor, nn

from unlearnbench.conditioning import Conditioning
from unlearnbench.progress import bar, check_interrupt


def randn(shape: tuple[int, ...] | torch.Size, generator: torch.Generator, like: Tensor) -> Tensor:
    """Gaussian noise drawn on the generator's device (CPU), then moved: identical on CPU and GPU."""
    return torch.randn(tuple(shape), generator=generator).to(device=like.device, dtype=like.dtype)


def predict_noise(model: UNet2DModel, x_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    """``eps_theta(x_t, c, t)`` under any kind of conditioning."""
    return cond.predict(model, x_t, t)


def guided_noise(
    model: UNet2DModel, x_t: Tensor, t: Tensor, cond: Conditioning, guidance_scale: float | None
) -> Tensor:
    """Classifier-free guidance: ``eps_null + s * (eps_cond - eps_null)``.

    At ``s == 1`` this is exactly the conditional prediction and the null pass is skipped. ``None`` (a
    library call with no testbed to resolve the default from; a run always resolves it) is ``s = 1``.
    """
    if guidance_scale is None or guidance_scale == 1.0:
        return predict_noise(model, x_t, t, cond)
    both = Conditioning.cat([cond, cond.null_like(model)])
    eps_cond, eps_null = predict_noise(model, torch.cat([x_t, x_t]), torch.cat([t, t]), both).chunk(2)
    return eps_null + guidance_scale * (eps_cond - eps_null)


# ---------------------------------------------------------------------------------------------
# Noise schedule and losses
# ---------------------------------------------------------------------------------------------


def add_noise(
    schedule: DDPMScheduler, x0: Tensor, *, generator: torch.Generator, t: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Sample ``t ~ U{0..T-1}`` and ``eps ~ N(0, I)``; return ``(x_t, t, eps)``.

    ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.
    """
    n = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.config.num_train_timesteps, (n,), generator=generator).to(x0.device)
    eps = randn(x0.shape, generator, x0)
    return schedule.add_noise(x0, eps, t), t, eps


def per_sample_mse(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


def denoising_loss(
    model: UNet2DModel,
    schedule: DDPMScheduler,
    x0: Tensor,
    cond: Conditioning,
    *,
    generator: torch.Generator,
    reduction: str = "mean",
) -> Tensor:
    """``L_DM = E_{t, eps} || eps - eps_theta(x_t, c, t) ||^2`` (epsilon prediction).

    ``reduction="mean"`` averages over pixels; ``"sum"`` sums over pixels (then averages over the batch),
    as the DDPM code of SA and SalUn does: it matters where two terms with different reductions are mixed.
    """
    x_t, t, eps = add_noise(schedule, x0, generator=generator)
    per_sample = per_sample_mse(predict_noise(model, x_t, t, cond), eps)
    if reduction == "sum":
        per_sample = per_sample * x0[0].numel()
    return per_sample.mean()


def relabel_loss(
    model: UNet2DModel,
    schedule: DDPMScheduler,
    x0: Tensor,
    cond: Conditioning,
    other: Conditioning,
    *,
    generator: torch.Generator,
) -> Tensor:
    """``|| eps_theta(x_t, c) - sg[eps_theta(x_t, c')] ||^2`` at the same ``x_t``: the random-label loss
    (SalUn, EraseDiff). The target is the current model's own prediction under ``c'``, without gradient."""
    x_t, t, _eps = add_noise(schedule, x0, generator=generator)
    with torch.no_grad():
        target = predict_noise(model, x_t, t, other)
    return per_sample_mse(predict_noise(model, x_t, t, cond), target).mean()


def ddim_scheduler(schedule: DDPMScheduler, clip_sample: bool = False) -> DDIMScheduler:
    """DDIM on the training schedule. ``clip_sample`` clips the predicted x0 at every step; upstream's
    sampler does not (at s = 3 the per-step clipping turns digits into other digits, README)."""
    return DDIMScheduler.from_config(schedule.config, clip_sample=clip_sample)


# ---------------------------------------------------------------------------------------------
# EMA
# ---------------------------------------------------------------------------------------------


class EMA:
    """Exponential moving average of a model's parameters (``shadow = d*shadow + (1-d)*param``)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), model.parameters(), strict=True):
            s.lerp_(p.detach(), 1.0 - self.decay)
        for s, b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            s.copy_(b)


# ---------------------------------------------------------------------------------------------
# DDIM sampler
# ---------------------------------------------------------------------------------------------

PRECISIONS = ("float32", "bfloat16")


def forward_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The context model forwards run in (the sampler's, and a method's training steps): nothing for float32,
    bfloat16 autocast otherwise."""
    if precision == "float32":
        return contextlib.nullcontext()
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r} for model forwards (known: {', '.join(PRECISIONS)})")


def compiled_network(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` with dynamic shapes, what the evaluation's sampler calls under ``--compile``
    (one graph for every batch size; later models of the same architecture reuse it, so a process pays the
    compilation once: 30 to 140 s cold on this 2-core machine, about 10 s from inductor's disk cache). A
    machine setting like the thread count: float32 forwards agree with eager ones to about 1e-6, so it is
    recorded beside every number (``compiled``) but is not part of the run id. Only the evaluation's draws
    compile (``evaluate.draw``): sampling inside a method's or an attack's measured cost (Selective Amnesia's
    replay, an attack's candidate scoring) stays eager, so no compilation time is charged to them."""
    import warnings

    warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")
    return torch.compile(model, dynamic=True)  # type: ignore[return-value]


def bfloat16_is_native(device: torch.device | str = "cpu") -> bool:
    """Whether the device computes bfloat16 in hardware (CUDA with bf16 support; a CPU with AVX-512 BF16 or
    AMX). Elsewhere bfloat16 autocast is emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


# ---------------------------------------------------------------------------------------------
# DDIM sampler (the function)
# ---------------------------------------------------------------------------------------------


def ddim_sample(
    model: UNet2DModel,
    schedule: DDPMScheduler,
    cond: Conditioning,
    *,
    generator: torch.Generator,
    steps: int = 50,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    clip_sample: bool = False,
    precision: str = "float32",
    batch_size: int = 512,
    x_T: Tensor | None = None,
    grad: bool = False,
    progress: bool = False,
    desc: str = "sampling",
    check: Callable[[Tensor], None] | None = None,
    compile: bool = False,
) -> Tensor:
    """Sample one image per entry of ``cond`` with DDIM and classifier-free guidance.

    All random draws (initial noise, and the per-step noise when ``eta > 0``) are made for the whole
    set before it is split into batches, so the samples do not depend on ``batch_size``.
    With ``grad=True`` the whole chain is differentiable (for attacks; keep ``steps`` small).
    ``precision="bfloat16"`` runs the model's forwards under bfloat16 autocast (:func:`forward_precision`);
    the DDIM update and the sample stay float32. ``check`` sees every (guided) noise prediction before the
    update uses it (the evaluation's finiteness check); ``compile`` samples through :func:`compiled_network`
    (not with ``grad``). Returns images in ``[-1, 1]``.
    """
    device = next(model.parameters()).device
    cfg = model.config
    n = len(cond)
    shape = (n, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    scheduler = ddim_scheduler(schedule, clip_sample)
    scheduler.set_timesteps(steps)
    cond = cond.to(device)
    like = torch.empty((), device=device)
    x = randn(shape, generator, like) if x_T is None else x_T.to(device)
    was_training = model.training
    model.eval()
    net = compiled_network(model) if compile and not grad else model
    context = contextlib.nullcontext() if grad else torch.no_grad()
    try:
        with context:
            for t in bar(scheduler.timesteps, desc=desc) if progress else scheduler.timesteps:
                check_interrupt()
                noise = randn(shape, generator, like) if eta > 0 else None
                outs = []
                for lo in range(0, n, batch_size):
                    xb, cb = x[lo : lo + batch_size], cond[lo : lo + batch_size]
                    tb = torch.full((xb.shape[0],), int(t), device=device, dtype=torch.long)
                    with forward_precision(precision, device):
                        eps = guided_noise(net, xb, tb, cb, guidance_scale).float()
                    if check is not None:
                        check(eps)
                    nb = None if noise is None else noise[lo : lo + batch_size]
                    outs.append(scheduler.step(eps, int(t), xb, eta=eta, variance_noise=nb).prev_sample)
                x = torch.cat(outs)
    finally:
        model.train(was_training)
    return x.clamp(-1, 1)
