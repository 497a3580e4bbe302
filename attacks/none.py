"""No attack: the unlearned model is only evaluated."""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from unlearnbench.api import Attack, Attacked, Task
from unlearnbench.registry import register


@register("none")
class NoAttack(Attack):
    """No attack (the unlearned model as it is)."""

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        return Attacked(model)
