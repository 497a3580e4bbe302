"""The original model, unchanged: the reference row."""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.registry import register


@register("noop")
class Noop(UnlearningMethod):
    """The original model, unchanged (reference row)."""

    uses_sampler = False
    uses_seed = False
    reference = "comparison"  # listed first, never a column's best, no cost ratio

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        return model
