"""Turn a model into judged samples, and judged samples into scores.

Sampling uses the shared DDIM sampler. Every phase of a run (original, unlearned, attacked) draws its
samples from the *same* initial noise (common random numbers), so differences between phases are the
model's, not the seed's. Judging uses the frozen evaluator; attacks never see it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor

from unlearnbench.api import SamplerSettings
from unlearnbench.conditioning import Concept, Conditioner, Conditioning
from unlearnbench.diffusion import ddim_sample
from unlearnbench.environment import compile_enabled
from unlearnbench.errors import Diverged, UserError
from unlearnbench.models import Classifier
from unlearnbench.timing import part

if TYPE_CHECKING:
    from unlearnbench.testbed import Probe


@dataclass(frozen=True)
class EvalSettings:
    """What is sampled to score a model. Recorded beside every number."""

    forget_samples: int = 100  # per forget class
    retain_samples: int = 20  # per retained class
    curve_samples: int = 50  # per forget class, at each recovery-curve point
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    seed: int = 0


# Config-file / flag names of the evaluation settings, and where each lives.
EVAL_KEYS = (
    "forget_samples",
    "retain_samples",
    "curve_samples",
    "sample_steps",
    "guidance",
    "eta",
    "clip_sample",
    "precision",
    "protocol",
)

# Named sampling protocols. "papers": SA/SalUn/SAFEMax upstream (clear-nus/selective-amnesia) sample with
# (1 + w) eps_cond - w eps_null at w = 2, DDIM eta = 1; in this project's eps_null + s (eps_cond - eps_null)
# that is s = 1 + w = 3. "testbed": the testbed's measured default guidance, deterministic DDIM (eta 0).
PROTOCOLS: dict[str, dict[str, float | None]] = {
    "testbed": {"guidance": None, "eta": 0.0},
    "papers": {"guidance": 3.0, "eta": 1.0},
}


def protocol_of(sampler: SamplerSettings, testbed_guidance: float) -> str:
    """The named protocol a sampler setting is (its guidance and eta; the ``protocol`` column), or "custom"."""
    for name, values in PROTOCOLS.items():
        guidance = testbed_guidance if values["guidance"] is None else values["guidance"]
        if sampler.guidance_scale == guidance and sampler.eta == values["eta"]:
            return name
    return "custom"


def eval_settings(values: dict[str, Any], seed: int = 0) -> EvalSettings:
    """:class:`EvalSettings` from config/flag names (``sample_steps``, ``guidance``, ``eta`` go to the sampler);
    what is not given keeps its default. A missing guidance stays None: the runner resolves it from the testbed."""
    unknown = sorted(set(values) - set(EVAL_KEYS))
    if unknown:
        raise UserError(f"unknown evaluation setting {unknown[0]!r} (known: {', '.join(EVAL_KEYS)})")
    protocol = values.get("protocol", "testbed")
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown sampling protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    values = {**{k: v for k, v in PROTOCOLS[protocol].items() if v is not None}, **values}  # explicit flags win
    sampler = SamplerSettings(
        steps=values.get("sample_steps", SamplerSettings.steps),
        guidance_scale=values.get("guidance"),
        eta=values.get("eta", SamplerSettings.eta),
        clip_sample=bool(values.get("clip_sample", SamplerSettings.clip_sample)),
        precision=str(values.get("precision", SamplerSettings.precision)),
    )
    counts = {k: values[k] for k in ("forget_samples", "retain_samples", "curve_samples") if k in values}
    return EvalSettings(**counts, sampler=sampler, seed=seed)


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
    # The testbed's run probes (:meth:`unlearnbench.testbed.Testbed.run_probes`): per probe, whether each sample was
    # read as every concept it was meant to show.
    probes: dict[str, Tensor] = field(default_factory=dict)
    # The prompt behind each retained sample, on a text testbed (what the CLIP score compares it with).
    retain_prompts: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """Real images of the retained and the forget classes, and the evaluator (as a module and as a file for
    torch-fidelity). ``noise``: what the run's sampler draws from a model that predicts zero noise
    (:func:`noise_reference`), the meaning of "noise" for ``noise_likeness``. ``second_judge``: the testbed's
    independently trained second evaluator, when it ships one."""

    retain_real: Tensor
    forget_real: Tensor
    evaluator: Classifier
    evaluator_path: Path
    noise: Tensor | None = None
    second_judge: Classifier | None = None
    # CLIP score of images against prompts ``[N]``, with the testbed's own scorer (text16: its second open_clip
    # encoder, trained apart from the one that conditions the model); None on a testbed without one.
    clip_score: Callable[[Tensor, list[str]], Tensor] | None = None
    # The testbed's run probes for this run's forgotten concepts (:meth:`unlearnbench.testbed.Testbed.run_probes`),
    # built once and sampled at the original and unlearned phases.
    probes: list[Probe] = field(default_factory=list)
    # The family of each concept, by its index (text16: object, colour, style); one unnamed family by default.
    families: tuple[str, ...] = ()
    # What metrics derive from the real images once per run (e.g. their evaluator features), by key.
    derived: dict[Any, Any] = field(default_factory=dict)


@torch.no_grad()
def judge(
    evaluator: Classifier, images: Tensor, labels: Tensor, concepts: Tensor | None = None, batch_size: int = 1024
) -> JudgedSet:
    """The evaluator's logits for ``images``; ``concepts``: the concept each is meant to show (``labels``, unless
    the images were drawn from free conditioning), which a judge of several concept families reads."""
    device = next(evaluator.parameters()).device
    meant = labels if concepts is None else concepts
    with part("judging"):
        logits = torch.cat(
            [
                evaluator(images[i : i + batch_size].to(device), meant[i : i + batch_size].to(device)).cpu()
                for i in range(0, len(images), batch_size)
            ]
        )
    check_finite(logits, "judging", "evaluator output")
    return JudgedSet(images.cpu(), labels.cpu(), logits)


def eval_labels(classes: tuple[int, ...], per_class: int, device: torch.device | str = "cpu") -> Tensor:
    return torch.tensor(classes, dtype=torch.long, device=device).repeat_interleave(per_class)


def draw(
    model: UNet2DModel,
    schedule: DDPMScheduler,
    cond: Conditioning,
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
    with part("sampling"):
        images = ddim_sample(
            model,
            schedule,
            cond,
            generator=generator,
            steps=sampler.steps,
            guidance_scale=sampler.guidance_scale,
            eta=sampler.eta,
            clip_sample=sampler.clip_sample,
            precision=sampler.precision,
            x_T=x_T,
            progress=True,
            desc=desc,
            # The sampler clamps its result to [-1, 1], which would turn an infinite noise prediction into a
            # saturated image that scores as a (bad) model: check every prediction before that can happen.
            check=lambda eps: check_finite(eps, desc, "noise prediction"),
            compile=compile_enabled(),
        )
    check_finite(images, desc, "sample")
    return images


def check_finite(values: Tensor, desc: str, what: str) -> None:
    """Non-finite samples are never scored: :class:`Diverged` makes the run ``failed`` with this reason."""
    finite = torch.isfinite(values.detach()).flatten(1).all(dim=1)
    if not bool(finite.all()):
        raise Diverged(
            f"{desc}: {int((~finite).sum())} of {len(values)} {what}s hold NaN or infinity "
            "(the model diverged); nothing was scored"
        )


FORGET_STREAM, RETAIN_STREAM, NOISE_STREAM, PROBE_STREAM = 1, 2, 3, 10  # a run probe i draws from PROBE_STREAM + i


class ZeroNoise(torch.nn.Module):
    """A model that predicts zero noise for every input, shaped like ``like`` (a UNet with its config).

    Under the run's own sampler it gives what "pure noise" means for that run: with DDIM η = 0 a zero
    prediction makes the predicted clean image ``x_t / sqrt(ᾱ_t)`` (clipped to [-1, 1] when the sampler
    clips per step), so the final clamped sample is close to ``sign(x_T)`` (pixels at ±1), not clipped
    N(0, 1); with η = 1 fresh noise enters at every step and the result differs again. This is the output
    a method that drives its forget-class prediction to zero (SAFEMax's target: the mean of fresh noise) is
    aiming at.
    """

    def __init__(self, like: torch.nn.Module) -> None:
        super().__init__()
        self.config = like.config  # type: ignore[assignment]
        self.anchor = torch.nn.Parameter(torch.zeros(0, device=next(like.parameters()).device), requires_grad=False)

    def forward(self, sample: Tensor, timestep: Tensor, *args: Any, **kwargs: Any) -> Any:
        from diffusers.models.unets.unet_2d import UNet2DOutput

        return UNet2DOutput(sample=torch.zeros_like(sample))


def noise_reference(
    model: torch.nn.Module, schedule: DDPMScheduler, sampler: SamplerSettings, seed: int, n: int = 256
) -> Tensor:
    """``n`` samples of :class:`ZeroNoise` (shaped like ``model``) under ``sampler``, from their own noise
    stream: the pixels that ``noise_likeness`` compares forget samples with."""
    zero = ZeroNoise(model)
    # Any conditioning does: the zero model reads none of it (and guidance of zeros is zero).
    cond = Conditioning.from_labels(torch.zeros(n, dtype=torch.long), null=0)
    return draw(zero, schedule, cond, sampler, seed, NOISE_STREAM, desc="noise reference")  # type: ignore[arg-type]


def sample_and_judge(
    model: UNet2DModel,
    schedule: DDPMScheduler,
    evaluator: Classifier,
    settings: EvalSettings,
    forget: Sequence[Concept],
    retain: Sequence[Concept],
    *,
    conditioner: Conditioner,
    forget_cond: Conditioning | None = None,
    forget_x_T: Tensor | None = None,
    include_retain: bool = True,
    probes: Sequence[Probe] = (),
    desc: str = "",
) -> Samples:
    """Sample the ``forget`` concepts (or ``forget_cond``, an attack's prompt, from ``forget_x_T``, an
    attack's seeds) and the ``retain`` concepts, conditioned by the testbed's ``conditioner``; the judges read
    each concept as its position in the conditioner's concept list."""
    forget_classes = tuple(conditioner.index(c) for c in forget)
    target = eval_labels(forget_classes, settings.forget_samples)
    if forget_cond is None:
        cond = conditioner.draws(forget, settings.forget_samples)
    else:
        cond = _expand(forget_cond, len(target))
    forget_imgs = draw(
        model, schedule, cond, settings.sampler, settings.seed, FORGET_STREAM, x_T=forget_x_T, desc=f"{desc} forget"
    )
    labels = target if forget_cond is None else torch.full_like(target, -1)
    forget_set = judge(evaluator, forget_imgs, labels, concepts=target)
    retain_set, retain_prompts = None, []
    if include_retain and retain and settings.retain_samples > 0:
        retain_prompts = conditioner.draw_prompts(retain, settings.retain_samples, exclude=forget)
        r_cond = conditioner.draws(retain, settings.retain_samples, exclude=forget)
        r_imgs = draw(model, schedule, r_cond, settings.sampler, settings.seed, RETAIN_STREAM, desc=f"{desc} retain")
        r_labels = eval_labels(tuple(conditioner.index(c) for c in retain), settings.retain_samples)
        retain_set = judge(evaluator, r_imgs, r_labels)
    read: dict[str, Tensor] = {}
    for i, probe in enumerate(probes):
        images = draw(model, schedule, probe.cond, settings.sampler, settings.seed, PROBE_STREAM + i, desc=probe.name)
        right = torch.ones(len(images), dtype=torch.bool)
        for meant in probe.read:
            right &= judge(evaluator, images, meant).logits.argmax(-1).cpu() == meant.cpu()
        read[probe.name] = right
    return Samples(forget_set, retain_set, forget_classes, target, read, retain_prompts)


def _expand(cond: Conditioning, n: int) -> Conditioning:
    if len(cond) == n:
        return cond
    if len(cond) == 1:
        return cond.expand(n)
    # one prompt per forget class: repeat each for its block of samples
    return cond.repeat_interleave(n // len(cond))
