"""Shared pieces of the prompting attacks: where the search starts, and the attacker's score."""

from __future__ import annotations

import dataclasses

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task
from unlearnbench.conditioning import Concept, Conditioning
from unlearnbench.diffusion import ddim_sample
from unlearnbench.errors import UserError

STARTS = ("null", "random", "other", "forget")


def start_vector(model: UNet2DModel, task: Task, start: str, generator: torch.Generator) -> Tensor:
    """The initial conditioning vector ``[n_forget, D]``: one per forget concept, in the conditioner's
    embedding space.

    ``null``: the null embedding. ``other``: the embedding of the next retained concept.
    ``random``: Gaussian with the concept embeddings' per-coordinate scale. ``forget``: the forget
    concept's own embedding (the attacker knows the label; withheld by every other start).
    """
    table = task.conditioner.embedding_table(model)  # the concepts' vectors, then the null's
    n = len(task.forget_concepts)
    if start == "null":
        return table[-1].expand(n, -1).clone()
    if start == "forget":
        return table[list(task.forget_classes)].clone()
    if start == "other":
        forget = task.concept_cond()
        others = task.conditioner.other(forget, task.forget_concepts, "next", generator).concepts
        return table[others].clone()
    if start == "random":
        scale = table[:-1].std(0)
        return (torch.randn((n, table.shape[1]), generator=generator).to(table) * scale).clone()
    raise UserError(f"unknown start {start!r} (known: {', '.join(STARTS)})")


def attacker_log_prob(
    model: UNet2DModel,
    task: Task,
    cond: Conditioning,
    x_T: Tensor,
    steps: int,
    *,
    grad: bool,
) -> Tensor:
    """log p_attacker(forget class | x_0) for samples drawn from ``x_T`` with a short DDIM chain."""
    x0 = ddim_sample(
        model,
        task.schedule,
        cond,
        generator=torch.Generator(),
        steps=steps,
        guidance_scale=task.sampler.guidance_scale,
        x_T=x_T,
        grad=grad,
    )
    classes = torch.tensor(task.forget_classes, dtype=torch.long, device=task.device)
    target = classes.repeat_interleave(len(cond) // len(classes))
    return task.attacker(x0).log_softmax(-1).gather(1, target[:, None])[:, 0]


def for_class(task: Task, concept: Concept) -> Task:
    """The same task with one forget concept (the black-box searches score one concept at a time)."""
    return dataclasses.replace(task, forget_concepts=(concept,))
