"""Black-box seed search: keep the initial noises from which the model still draws the forget class.

Draw ``candidates_per_sample x n`` initial noises ``x_T``, sample each with the forget label through a
short DDIM chain, score with the attacker's classifier, and hand the ``n`` best seeds to the evaluation
(which samples them with the full sampler and judges with the evaluator). ``n`` is the evaluation's
forget-sample count, so ASR is measured on exactly the seeds the attacker picked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel

from unlearnbench.api import Attack, Attacked, Task
from unlearnbench.args import positive
from unlearnbench.attacks._prompt import attacker_log_prob, for_class
from unlearnbench.diffusion import randn
from unlearnbench.registry import register


@dataclass(frozen=True)
class SeedSearchArgs:
    candidates_per_sample: int = positive(8, "seeds tried for every seed kept (the search budget)")
    sample_steps: int = positive(10, "DDIM steps for scoring")
    batch_size: int = positive(256, "seeds scored at once")


@register("seed_search")
class SeedSearch(Attack):
    """Black-box search over initial noises: keep the seeds the attacker's classifier finds most forget-like."""

    paper = "none (this project's black-box search of the sampler's initial noises)"

    Args = SeedSearchArgs
    smoke_args = {"candidates_per_sample": 2, "sample_steps": 2}
    budget_unit = "candidates_per_sample x sample_steps (per forget sample)"

    def budget(self) -> int:
        a: SeedSearchArgs = self.args
        return a.candidates_per_sample * a.sample_steps

    @torch.no_grad()
    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        a: SeedSearchArgs = self.args
        n = task.eval_forget_samples
        keep = []
        like = next(model.parameters())
        for concept in task.forget_concepts:
            seeds = randn((n * a.candidates_per_sample, *task.data.image_shape), generator, like)
            cond = task.conditioner.encode([concept], like.device).repeat_interleave(seeds.shape[0])
            sub = for_class(task, concept)
            scores = torch.cat(
                [
                    attacker_log_prob(
                        model, sub, cond[i : i + a.batch_size], seeds[i : i + a.batch_size], a.sample_steps, grad=False
                    )
                    for i in range(0, seeds.shape[0], a.batch_size)
                ]
            )
            keep.append(seeds[scores.topk(n).indices])
        return Attacked(model, x_T=torch.cat(keep))
