"""Concept Ablation (model-based): make the target concept's prompts produce the anchor concept's images.

Kumari, Zhang, Wang, Shechtman, Zhang & Zhu, "Ablating Concepts in Text-to-Image Diffusion Models", ICCV 2023
(code: nupurkmr9/concept-ablation, ``diffusers/train.py``). The original model generates images of an anchor
concept (Grumpy Cat -> cat); the model is then fine-tuned so that, on those images noised, its prediction under
the *target* prompt matches the frozen model's under the paired *anchor* prompt:

    L = E_{x ~ p(x | c*), t, eps} || eps_theta(x_t, c, t) - sg[eps_frozen(x_t, c*, t)] ||^2
        (+ w * || eps_theta(x_t, c*, t) - eps ||^2 with prior preservation)

Prompts come in pairs, the target concept's and the same prompt naming the anchor ("a red seven" / "a red one").
The anchor is the concept's first declared neighbour on the testbed (a visually close digit, a nearby hue, the
next stroke weight): the closest concept a text16 prompt can name, as "cat" is to "Grumpy Cat". Defaults are the
repository's for objects and styles: cross-attention keys and values trained, 100 steps at a batch of 8 (4 per
GPU on 2 GPUs), learning rate 2e-6 scaled by that batch (``--scale_lr``: 1.6e-5), 200 anchor images, prior
preservation off (the README adds it for one instance), the anchor images sampled with the run's sampler
setting. Nothing is scaled by data passes: the anchor set is generated, not the training set.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import zip_longest

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg, positive
from unlearnbench.conditioning import Conditioning
from unlearnbench.diffusion import add_noise, ddim_sample, per_sample_mse, predict_noise
from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.training import optimize


def interleaved(groups: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """Every concept's prompt pairs, taken in turn (one concept's order kept): the first ``anchor_images`` of them
    cover every forget concept alike (listed concept by concept, a fifth object got none of 200)."""
    return [p for turn in zip_longest(*groups) for p in turn if p is not None]


PARAMS = ("cross_attention_kv", "cross_attention", "all")


@dataclass(frozen=True)
class ConceptAblationArgs:
    steps: int = positive(100, "Adam steps (original: 100 for objects and styles)")
    lr: float = positive(1.6e-5, "Adam learning rate (original: 2e-6 scaled by the batch of 8, --scale_lr)")
    batch_size: int = positive(8, "anchor images per step (original: 4 per GPU on 2 GPUs)")
    anchor_images: int = positive(200, "anchor images the original model generates (original: 200; paper: 1000)")
    prior_weight: float = arg(0.0, "weight of the anchor prompts' own denoising loss (original: off)", low=0)
    params: str = arg(
        "cross_attention_kv",
        "trained weights: cross-attention keys and values (original's 'cross-attn'), all of cross-attention, or all",
        choices=PARAMS,
    )
    anchor: str = arg("", "the anchor concept (default: the forgotten concept's first declared neighbour)")


def trained_parameters(model: torch.nn.Module, params: str) -> list[torch.nn.Parameter]:
    if params == "all":
        return list(model.parameters())
    keys = (".attn2.to_k.", ".attn2.to_v.") if params == "cross_attention_kv" else (".attn2.",)
    return [p for n, p in model.named_parameters() if any(k in f".{n}" for k in keys)]


@register("concept_ablation")
class ConceptAblation(UnlearningMethod):
    """Concept Ablation (model-based): the concept's prompts learn the anchor concept's predictions (text)."""

    Args = ConceptAblationArgs
    paper = "Kumari et al., Ablating Concepts in Text-to-Image Diffusion Models, ICCV 2023"
    supports = ("tokens",)
    smoke_args = {"steps": 2, "batch_size": 2, "anchor_images": 4}
    search_space = {"lr": [1.6e-5, 1e-4, 1e-3], "steps": [100, 300]}
    search_note = "six trials, as every method tuned on the text testbed (issue 37)"

    def anchor_of(self, task: Task, concept: str) -> str:
        a: ConceptAblationArgs = self.args
        if a.anchor:
            return a.anchor
        neighbours = [n for n in task.conditioner.neighbours(concept) if n not in task.forget_concepts]
        if not neighbours:
            raise UserError(f"concept_ablation: {concept!r} has no declared neighbour to anchor it; set 'anchor'")
        return neighbours[0]

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: ConceptAblationArgs = self.args
        conditioner = task.conditioner
        pairs = interleaved([conditioner.prompt_pairs(c, self.anchor_of(task, c)) for c in task.forget_concepts])
        targets = conditioner.prompts([t for t, _ in pairs]).to(task.device)
        anchors = conditioner.prompts([s for _, s in pairs]).to(task.device)
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        with task.meter.prior():  # the anchor images: generated once, before any step (the repository's first stage)
            which = torch.arange(a.anchor_images, device=task.device) % len(pairs)
            images = ddim_sample(
                frozen,
                task.schedule,
                anchors[which],
                generator=generator,
                steps=task.sampler.steps,
                guidance_scale=task.sampler.guidance_scale,
                eta=task.sampler.eta,
                precision=task.sampler.precision,
                desc="anchor images",
            )

        def loss_fn(_step: int) -> Tensor:
            pick = torch.randint(0, len(images), (a.batch_size,), generator=generator).to(task.device)
            x_t, t, eps = add_noise(task.schedule, images[pick], generator=generator)
            anchor: Conditioning = anchors[which[pick]]
            with torch.no_grad():
                goal = predict_noise(frozen, x_t, t, anchor)
            loss = per_sample_mse(predict_noise(model, x_t, t, targets[which[pick]]), goal).mean()
            if a.prior_weight:
                loss = loss + a.prior_weight * per_sample_mse(predict_noise(model, x_t, t, anchor), eps).mean()
            return loss

        optimize(trained_parameters(model, a.params), loss_fn, steps=a.steps, lr=a.lr, desc="CA", meter=task.meter)
        return model
