"""Turn a model into judged samples, and judged samples into scores.

Sampling uses the shared DDIM sampler. Every phase of a run (original, unlearned, attacked) draws its
samples from the *same* initial noise (common random numbers), so differences between phases are the
model's, not the seed's. Judging uses the frozen evaluator; attacks never see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor

from unlearnbench.api import SamplerSettings, Score
from unlearnbench.diffusion import ddim_sample
from unlearnbench.errors import Diverged
from unlearnbench.models import Classifier


@dataclass(frozen=True)
class EvalSettings:
    """What is sampled to score a model. Recorded beside every number."""

    forget_samples: int = 100  # per forget class
    retain_samples: int = 20  # per retained class
    curve_samples: int = 50  # per forget class, at each recovery-curve point
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    seed: int = 0


@dataclass
class JudgedSet:
    """Generated images, the class each was conditioned on (-1 for free conditioning), evaluator logits."""

    images: Tensor
    labels: Tensor
    logits: Tensor

    @property
    def probs11(self) -> Tensor:
        return self.logits.softmax(-1)

    @property
    def probs10(self) -> Tensor:
        """The papers' judge: the same network restricted to the digit classes (no "none")."""
        return self.logits[:, :-1].softmax(-1)

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class Samples:
    forget: JudgedSet | None
    retain: JudgedSet | None
    forget_classes: tuple[int, ...]
    # The class each forget sample is meant to be; differs from ``forget.labels`` when an attack prompts
    # with a free embedding.
    target: Tensor | None = None


@dataclass
class Reference:
    """Held-out real images, and the evaluator (as a module and as a file for torch-fidelity)."""

    retain_real: Tensor
    forget_real: Tensor
    evaluator: Classifier
    evaluator_path: Path


@torch.no_grad()
def judge(evaluator: Classifier, images: Tensor, labels: Tensor, batch_size: int = 1024) -> JudgedSet:
    device = next(evaluator.parameters()).device
    logits = torch.cat(
        [evaluator(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    )
    check_finite(logits, "judging", "evaluator output")
    return JudgedSet(images.cpu(), labels.cpu(), logits)


def eval_labels(classes: tuple[int, ...], per_class: int, device: torch.device | str = "cpu") -> Tensor:
    return torch.tensor(classes, dtype=torch.long, device=device).repeat_interleave(per_class)


def draw(
    model: UNet2DModel,
    schedule: DDPMScheduler,
    cond: Tensor,
    sampler: SamplerSettings,
    seed: int,
    stream: int,
    *,
    x_T: Tensor | None = None,
    desc: str = "sampling",
) -> Tensor:
    """Seeded samples: ``stream`` separates the forget and retain draws so neither shifts the other."""
    # torch seeds are 64-bit; any seed below 2**63 must work (small seeds keep their historical streams)
    generator = torch.Generator(device="cpu").manual_seed((seed * 1000 + stream) % 2**64)
    # The sampler clamps its result to [-1, 1], which would turn an infinite noise prediction into a
    # saturated image that scores as a (bad) model: check every prediction before that can happen.
    handle = model.register_forward_hook(lambda _m, _i, out: check_finite(_prediction(out), desc, "noise prediction"))
    try:
        images = ddim_sample(
            model,
            schedule,
            cond,
            generator=generator,
            steps=sampler.steps,
            guidance_scale=sampler.guidance_scale,
            eta=sampler.eta,
            x_T=x_T,
            progress=True,
            desc=desc,
        )
    finally:
        handle.remove()
    check_finite(images, desc, "sample")
    return images


def _prediction(out: object) -> Tensor:
    return out.sample if hasattr(out, "sample") else out[0]  # type: ignore[attr-defined,index]


def check_finite(values: Tensor, desc: str, what: str) -> None:
    """Non-finite samples are never scored: :class:`Diverged` makes the run ``failed`` with this reason."""
    finite = torch.isfinite(values.detach()).flatten(1).all(dim=1)
    if not bool(finite.all()):
        raise Diverged(
            f"{desc}: {int((~finite).sum())} of {len(values)} {what}s hold NaN or infinity "
            "(the model diverged); nothing was scored"
        )


FORGET_STREAM, RETAIN_STREAM = 1, 2


def sample_and_judge(
    model: UNet2DModel,
    schedule: DDPMScheduler,
    evaluator: Classifier,
    settings: EvalSettings,
    forget_classes: tuple[int, ...],
    retain_classes: tuple[int, ...],
    *,
    forget_cond: Tensor | None = None,
    forget_x_T: Tensor | None = None,
    include_retain: bool = True,
    desc: str = "",
) -> Samples:
    """Sample the forget classes (or ``forget_cond``, an attack's prompt, from ``forget_x_T``, an attack's
    seeds) and the retained classes."""
    target = eval_labels(forget_classes, settings.forget_samples)
    cond = target if forget_cond is None else _expand(forget_cond, len(target))
    forget_imgs = draw(
        model, schedule, cond, settings.sampler, settings.seed, FORGET_STREAM, x_T=forget_x_T, desc=f"{desc} forget"
    )
    labels = target if forget_cond is None else torch.full_like(target, -1)
    forget = judge(evaluator, forget_imgs, labels)
    retain = None
    if include_retain and retain_classes and settings.retain_samples > 0:
        r_labels = eval_labels(retain_classes, settings.retain_samples)
        r_imgs = draw(model, schedule, r_labels, settings.sampler, settings.seed, RETAIN_STREAM, desc=f"{desc} retain")
        retain = judge(evaluator, r_imgs, r_labels)
    return Samples(forget=forget, retain=retain, forget_classes=forget_classes, target=target)


def _expand(cond: Tensor, n: int) -> Tensor:
    if cond.shape[0] == n:
        return cond
    if cond.shape[0] == 1:
        return cond.expand(n, *cond.shape[1:])
    # one prompt per forget class: repeat each for its block of samples
    return cond.repeat_interleave(n // cond.shape[0], dim=0)


def score(samples: Samples, reference: Reference, metric_names: list[str] | None = None) -> list[Score]:
    """Run every (or the named) registered sample metric."""
    from unlearnbench import registry

    scores: list[Score] = []
    for name in metric_names or registry.names("metric"):
        metric_cls = registry.get("metric", name)
        if getattr(metric_cls, "input", "samples") != "samples":
            continue
        scores.extend(metric_cls().compute(samples, reference))
    return scores
