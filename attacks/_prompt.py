"""Shared pieces of the prompting attacks: where the search starts, and the attacker's score."""

from __future__ import annotations

import dataclasses

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task
from unlearnbench.diffusion import class_embeddings, ddim_sample
from unlearnbench.errors import UserError

STARTS = ("null", "random", "other", "forget")


def start_vector(model: UNet2DModel, task: Task, start: str, generator: torch.Generator) -> Tensor:
    """The initial conditioning vector ``[n_forget, D]``: one per forget class.

    ``null``: the null-class embedding. ``other``: the embedding of the next retained class.
    ``random``: Gaussian with the embedding table's per-coordinate scale. ``forget``: the forget label's
    own embedding (the attacker knows the label; withheld by every other start).
    """
    table = class_embeddings(model).detach()
    n = len(task.forget_classes)
    if start == "null":
        return table[task.null_class].expand(n, -1).clone()
    if start == "forget":
        return table[list(task.forget_classes)].clone()
    if start == "other":
        others = [
            min(task.retain_classes, key=lambda r, c=c: (r - c) % task.data.num_classes) for c in task.forget_classes
        ]
        return table[others].clone()
    if start == "random":
        scale = table[: task.data.num_classes].std(0)
        return (torch.randn((n, table.shape[1]), generator=generator).to(table) * scale).clone()
    raise UserError(f"unknown start {start!r} (known: {', '.join(STARTS)})")


def attacker_log_prob(
    model: UNet2DModel,
    task: Task,
    cond: Tensor,
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
    target = task.forget_class_tensor.repeat_interleave(cond.shape[0] // len(task.forget_classes))
    return task.attacker(x0).log_softmax(-1).gather(1, target[:, None])[:, 0]


def for_class(task: Task, c: int) -> Task:
    """The same task with one forget class (the black-box searches score one class at a time)."""
    return dataclasses.replace(task, forget_classes=(c,))
