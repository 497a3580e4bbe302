"""Other names: ask for the forgotten concept by every name and phrasing no method was given (black box).

A method erasing "seven" is given the concept's canonical prompts; a user can still type "7", "sieben" or "a
picture of a seven". This attack asks the unlearned model for the concept by its held-out names and phrasings
(the testbed's :meth:`~unlearnbench.conditioning.Conditioner.heldout_prompts`), scores each prompt with the
*attacker's* classifier on fixed noises and returns, per forget concept, the best one as text (never one the
attacker rates below the concept's own canonical prompt, the first candidate: :class:`BestPrompt`). The evaluator
judges the returned prompt on fresh samples.

Budget: no paper fixes one (the held-out-name probes of Six-CD and of UnlearnCanvas's "other names" ask every
name once); here ``prompts`` candidates per concept (a fixed, spread-out subset of its held-out prompt set when
the set is larger: text16 has 10 to 30 held-out names and phrasings per object alone, hundreds in compositions),
each scored on ``select_samples`` noises with a ``select_steps``-step DDIM chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import UNet2DModel

from unlearnbench.api import Attack, Attacked, Task
from unlearnbench.args import arg, positive
from unlearnbench.attacks._prompt import SELECTION_ROWS, BestPrompt
from unlearnbench.registry import register


@dataclass(frozen=True)
class OtherNamesArgs:
    prompts: int = positive(64, "held-out prompts scored per forget concept (all of them when it has fewer)")
    select_samples: int = positive(16, "fixed initial noises per forget concept on which the attacker scores prompts")
    select_steps: int = positive(10, "DDIM steps of the scoring sampler")
    keep_canonical: bool = arg(
        True,
        "the concept's canonical prompt is the first candidate, so the result is never below the model as it is "
        "(false: held-out prompts only, the sanity check of the search itself)",
    )


def spread(prompts: list[str], n: int) -> list[str]:
    """``n`` of ``prompts`` (all when there are fewer), a fixed spread-out subset in their order."""
    if len(prompts) <= n:
        return prompts
    keep = np.sort(np.random.default_rng(0).choice(len(prompts), size=n, replace=False))
    return [prompts[i] for i in keep]


@register("other_names")
class OtherNames(Attack):
    """Ask for the concept by every held-out name and phrasing; keep the one the attacker's classifier rates best."""

    paper = "none (this project's black-box search of the names and phrasings no method is given)"

    supports = ("tokens",)  # a concept named in prompts
    Args = OtherNamesArgs
    smoke_args = {"prompts": 3, "select_samples": 2, "select_steps": 2}
    extra_rows = SELECTION_ROWS
    budget_unit = "prompts x select_samples x select_steps (per forget concept)"

    def budget(self) -> int:
        a: OtherNamesArgs = self.args
        return a.prompts * a.select_samples * a.select_steps

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        a: OtherNamesArgs = self.args
        per_concept = [spread(task.conditioner.heldout_prompts(c), a.prompts) for c in task.forget_concepts]
        start = None if a.keep_canonical else [p[0] for p in per_concept]
        best = BestPrompt(model, task, start, samples=a.select_samples, steps=a.select_steps, generator=generator)
        for j in range(max(len(p) for p in per_concept)):
            # a concept with fewer candidates offers its last again (kept already: the offer changes nothing)
            best.offer([p[min(j, len(p) - 1)] for p in per_concept])
            task.meter.step()
        return best.attacked(model)
