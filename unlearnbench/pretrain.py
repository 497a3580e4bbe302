"""Recipes that build the testbed's shipped models: the base diffusion model, the evaluator, the attacker.

A recipe is frozen plain data; its sha256 (over canonical JSON) is recorded beside the weights it made.
``retrain`` reuses :func:`train_diffusion` on the retained classes only. Long pretraining can be made
resumable with :class:`Checkpointing`: a stopped run continues from its last checkpoint, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor

from unlearnbench.conditioning import Conditioning
from unlearnbench.cost import CostMeter
from unlearnbench.diffusion import EMA, denoising_loss
from unlearnbench.models import Classifier, ClassifierArch, UNetArch
from unlearnbench.training import optimize, sample_batch


def recipe_sha256(recipe: object) -> str:
    return hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode()).hexdigest()  # type: ignore[call-overload]


@dataclass(frozen=True)
class DiffusionRecipe:
    """Train a class-conditional UNet2DModel with label dropout (for guidance), AdamW, warm-up + cosine, EMA."""

    arch: UNetArch = field(default_factory=UNetArch)
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    steps: int = 8000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    seed: int = 0

    def schedule(self) -> DDPMScheduler:
        return DDPMScheduler(
            num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule, clip_sample=True
        )

    @classmethod
    def from_dict(cls, d: dict) -> DiffusionRecipe:
        d = dict(d)
        d.pop("sha256", None)
        arch = UNetArch(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("arch").items()})
        return cls(arch=arch, **d)

    def scaled(self, **changes: object) -> DiffusionRecipe:
        arch_changes = {k: v for k, v in changes.items() if k in UNetArch.__dataclass_fields__}
        rest = {k: v for k, v in changes.items() if k not in arch_changes}
        return replace(self, arch=replace(self.arch, **arch_changes), **rest)  # type: ignore[arg-type]


class TrainingPaused(Exception):
    """Pretraining stopped at a checkpoint (``stop_at`` or the deadline); the same call resumes it."""

    def __init__(self, step: int, path: Path) -> None:
        super().__init__(f"paused at step {step}; state in {path}")
        self.step = step
        self.path = path


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often :func:`train_diffusion` saves its full state, and when it pauses.

    The state (weights, EMA, optimizer, step, both random generators, wall and CPU seconds so far) goes to
    ``directory/train_state.pt`` every ``every`` steps, written atomically, with ``progress.json`` (step,
    seconds) beside it. ``stop_at`` (a step) and
    ``deadline`` (a ``time.time()`` value) pause the run at the next checkpoint with
    :class:`TrainingPaused`. The file is read with ``weights_only=True`` (no code runs on load).
    """

    directory: Path
    every: int = 250
    stop_at: int | None = None
    deadline: float | None = None

    @property
    def path(self) -> Path:
        return Path(self.directory) / "train_state.pt"


def train_diffusion(
    recipe: DiffusionRecipe,
    images: Tensor,
    labels: Tensor,
    *,
    meter: CostMeter | None = None,
    device: str | torch.device = "cpu",
    desc: str = "pretrain",
    checkpointing: Checkpointing | None = None,
) -> tuple[UNet2DModel, DDPMScheduler]:
    """Train a class-conditional model from scratch (or resume from ``checkpointing``'s state); return the EMA
    model and its schedule. Each step: a batch of (image, label), each label replaced by the null one with
    ``recipe.label_dropout`` (for classifier-free guidance)."""
    torch.manual_seed(recipe.seed)  # parameter initialisation
    model = recipe.arch.build().to(device).train()
    null = recipe.arch.num_classes
    images, labels = images.to(device), labels.to(device)

    def batch(generator: torch.Generator) -> tuple[Tensor, Conditioning]:
        x0, y = sample_batch(images, labels, recipe.batch_size, generator)
        drop = (torch.rand(y.shape, generator=generator) < recipe.label_dropout).to(y.device)
        y = torch.where(drop, torch.full_like(y, null), y)
        return x0, Conditioning.from_labels(y, null)

    model = fit_denoiser(
        model,
        recipe.schedule(),
        recipe,
        batch,
        recipe_sha256(recipe),
        meter=meter,
        desc=desc,
        checkpointing=checkpointing,
    )
    return model, recipe.schedule()


def fit_denoiser(
    model: torch.nn.Module,
    schedule: DDPMScheduler,
    recipe: Any,
    batch: Callable[[torch.Generator], tuple[Tensor, Conditioning]],
    sha: str,
    *,
    meter: CostMeter | None = None,
    desc: str = "pretrain",
    checkpointing: Checkpointing | None = None,
) -> Any:
    """The one pretraining loop: ``L_DM`` on ``batch(generator)`` (images and their conditioning, with whatever
    dropout the caller applies) for ``recipe.steps`` steps of AdamW (``lr``, ``weight_decay``, ``warmup`` then
    cosine, ``grad_clip``), an EMA copy (``ema_decay``) and the run's generator seeded by ``recipe.seed``;
    checkpointed and resumable bit for bit through ``checkpointing`` (the state is refused when ``sha``, the
    recipe's hash, differs). Returns the EMA model in eval mode. ``model`` is built by the caller, after
    ``torch.manual_seed``, so its initialisation is the recipe's."""
    model.train()
    generator = torch.Generator(device="cpu").manual_seed(recipe.seed)
    ema = EMA(model, recipe.ema_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    start, seconds_before, cpu_before = 0, 0.0, 0.0
    if checkpointing is not None and checkpointing.path.is_file():
        state = torch.load(checkpointing.path, map_location="cpu", weights_only=True)
        if state["recipe_sha256"] != sha:
            raise ValueError(f"{checkpointing.path}: saved by another recipe ({state['recipe_sha256'][:12]}…)")
        model.load_state_dict(state["model"])
        ema.shadow.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
        start, seconds_before = int(state["step"]), float(state["seconds"])
        cpu_before = state.get("cpu_seconds")  # None: saved before CPU time was recorded
    t0, cpu0 = time.perf_counter(), time.process_time()

    def save(step: int) -> None:
        assert checkpointing is not None
        state = {
            "recipe_sha256": sha,
            "step": step,
            "seconds": seconds_before + time.perf_counter() - t0,
            "cpu_seconds": None if cpu_before is None else cpu_before + time.process_time() - cpu0,
            "model": model.state_dict(),
            "ema": ema.shadow.state_dict(),
            "optimizer": opt.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        checkpointing.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkpointing.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, checkpointing.path)
        cpu = state["cpu_seconds"]
        progress = {
            "step": step,
            "steps": recipe.steps,
            "seconds": round(state["seconds"], 1),
            "cpu_seconds": None if cpu is None else round(cpu, 1),
            "recipe_sha256": sha,
        }
        (checkpointing.path.parent / "progress.json").write_text(json.dumps(progress) + "\n")

    def on_step(step: int) -> None:
        if checkpointing is None or step == recipe.steps:
            return
        pause = step == checkpointing.stop_at or (
            checkpointing.deadline is not None and time.time() >= checkpointing.deadline
        )
        if pause or step % checkpointing.every == 0:
            save(step)
        if pause:
            raise TrainingPaused(step, checkpointing.path)

    def loss_fn(_step: int) -> Tensor:
        x0, cond = batch(generator)
        return denoising_loss(model, schedule, x0, cond, generator=generator)

    optimize(
        params,
        loss_fn,
        steps=recipe.steps,
        lr=recipe.lr,
        desc=desc,
        meter=meter,
        optimizer=opt,
        warmup=recipe.warmup,
        lr_schedule="cosine",
        grad_clip=recipe.grad_clip,
        ema=(ema, model),
        callback=on_step,
        start=start,
    )
    if checkpointing is not None:
        save(recipe.steps)
    return ema.shadow.eval()


# ---------------------------------------------------------------------------------------------
# Classifiers
# ---------------------------------------------------------------------------------------------


def noise_images(n: int, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Images that contain no digit: Gaussian, uniform, smoothed, sparse and flat noise, in ``[-1, 1]``."""
    kinds = torch.randint(0, 6, (n,), generator=generator)
    out = torch.empty((n, *shape))
    for i, kind in enumerate(kinds.tolist()):
        if kind == 0:  # Gaussian with a random scale and offset
            sigma = 0.2 + 1.8 * torch.rand((), generator=generator)
            mu = 0.6 * (torch.rand((), generator=generator) - 0.5)
            img = mu + sigma * torch.randn(shape, generator=generator)
        elif kind == 1:  # uniform over [-1, 1]
            img = torch.rand(shape, generator=generator) * 2 - 1
        elif kind == 2:  # uniform over a random sub-range
            lo, hi = sorted((torch.rand(2, generator=generator) * 2 - 1).tolist())
            img = lo + (hi - lo) * torch.rand(shape, generator=generator)
        elif kind == 3:  # spatially smoothed Gaussian
            img = torch.randn((1, *shape), generator=generator)
            k = int(torch.randint(1, 3, (), generator=generator)) * 2 + 1
            img = torch.nn.functional.avg_pool2d(img, k, stride=1, padding=k // 2)[0]
            img = img / img.std().clamp_min(1e-6) * (0.3 + torch.rand((), generator=generator))
        elif kind == 4:  # sparse salt and pepper on a flat background
            img = torch.full(shape, float(torch.rand((), generator=generator) * 2 - 1))
            mask = torch.rand(shape, generator=generator) < 0.1 + 0.4 * torch.rand((), generator=generator)
            img[mask] = torch.rand(int(mask.sum()), generator=generator) * 2 - 1
        else:  # flat image
            img = torch.full(shape, float(torch.rand((), generator=generator) * 2 - 1))
        out[i] = img
    return out.clamp(-1, 1)


def augment(x: Tensor, generator: torch.Generator, max_shift: float = 0.12, max_rot: float = 0.2) -> Tensor:
    """Random small affine warps (shift, rotation, scale) so the judge is not brittle on generated digits."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * max_rot
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * max_shift
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


@dataclass(frozen=True)
class ClassifierRecipe:
    """Train a judge with an extra "none" output fed on noise images (one noise image per ``noise_every`` digits)."""

    arch: ClassifierArch = field(default_factory=ClassifierArch)
    steps: int = 1500
    batch_size: int = 128
    noise_fraction: float = 0.15
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


EVALUATOR_RECIPE = ClassifierRecipe()
ATTACKER_RECIPE = ClassifierRecipe(
    arch=ClassifierArch(
        widths=(24, 48), kernel_size=5, batch_norm=False, activation="gelu", feature_dim=64, dropout=0.2
    ),
    seed=1,
)
# The second judge: trained like the evaluator (the same "none" training and steps), independently: another
# architecture (two stages of 48 and 96 channels, SiLU) and another seed. It reports UA and retained accuracy
# beside the evaluator's, so that no number rests on one network's errors.
JUDGE2_RECIPE = ClassifierRecipe(
    arch=ClassifierArch(widths=(48, 96), kernel_size=3, batch_norm=True, activation="silu", feature_dim=96),
    seed=2,
)


def train_classifier(recipe: ClassifierRecipe, images: Tensor, labels: Tensor, desc: str = "classifier") -> Classifier:
    torch.manual_seed(recipe.seed)
    model = recipe.arch.build().train()
    generator = torch.Generator().manual_seed(recipe.seed)
    none_label = recipe.arch.num_outputs - 1
    n_noise = max(1, round(recipe.batch_size * recipe.noise_fraction))

    def loss_fn(_step: int) -> Tensor:
        x, y = sample_batch(images, labels, recipe.batch_size - n_noise, generator)
        x = augment(x, generator)
        noise = noise_images(n_noise, tuple(images.shape[1:]), generator)
        x = torch.cat([x, noise])
        y = torch.cat([y, torch.full((n_noise,), none_label, dtype=torch.long)])
        return torch.nn.functional.cross_entropy(model(x), y)

    optimize(
        model.parameters(),
        loss_fn,
        steps=recipe.steps,
        lr=recipe.lr,
        desc=desc,
        weight_decay=recipe.weight_decay,
        warmup=50,
        lr_schedule="cosine",
    )
    return model.eval().requires_grad_(False)
