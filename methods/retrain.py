"""Retrain: train from scratch on the retained classes only, with the base model's own recipe.

The gold standard of exact unlearning, and the most expensive. It reuses the recipe recorded with the
testbed's base model (``unlearnbench pretrain``), so the only difference from the original is the data.
The shipped testbed carries the result for every class (``unlearnbench.references``): when the base model
and the recipe match, the run loads it and its cost rows carry the cost recorded when it was trained
(``cost_recorded`` = 1). ``from_scratch=true`` or a changed ``steps`` trains here instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from diffusers import UNet2DModel

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg
from unlearnbench.errors import UserError
from unlearnbench.pretrain import train_diffusion
from unlearnbench.registry import register


@dataclass(frozen=True)
class RetrainArgs:
    steps: int = arg(0, "training steps; 0 = the base recipe's own (the faithful setting)", low=0)
    from_scratch: bool = arg(False, "train even when the testbed ships this retrained model")


@register("retrain")
class Retrain(UnlearningMethod):
    """Train from scratch on the retained classes with the base model's recipe (exact unlearning)."""

    Args = RetrainArgs
    uses_sampler = False
    uses_seed = False  # the base recipe's seed: every run seed gets the same retrained model
    reference = "gold standard"  # listed first; it competes: its numbers are real unlearning
    paper = "exact unlearning baseline (retrain without D_f)"
    smoke_args = {"steps": 2}

    def shipped(self, references: Any, forget: tuple[str, ...]) -> bool:
        faithful = self.args.steps == 0 and not self.args.from_scratch
        return faithful and references is not None and references.has(forget)

    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        if self.shipped(task.references, task.forget_concepts):
            reference, cost = task.references.retrain(task.forget_concepts, task.device)
            task.meter.charge_recorded(cost)
            return reference
        if task.recipe is None or task.retain_cond.kind != "label":
            shipped = "" if task.references is None else f" (it ships: {', '.join(task.references.available())})"
            raise UserError(
                f"retrain: no retrained reference for {', '.join(task.forget_concepts)} ships with this testbed"
                f"{shipped}, and this run cannot train one (the base model's recipe is recorded for the shipped "
                "class-conditional testbed; a text testbed builds its references with 'unlearnbench pretrain')"
            )
        recipe = task.recipe if self.args.steps == 0 else replace(task.recipe, steps=self.args.steps)
        new, _ = train_diffusion(
            recipe, task.retain_x, task.retain_cond.labels, meter=task.meter, device=task.device, desc="retrain"
        )
        return new
