"""Black-box prompting: search mixtures (and extrapolations) of the trained class embeddings.

No gradients: each candidate vector ``v = sum_j w_j e_j`` (random Dirichlet weights over the 11
embeddings, plus ``e_c + s (e_c - e_null)`` extrapolations of the forget label when the label is allowed)
is scored by the attacker's classifier on a few short-chain samples, and the best is returned, per forget
class (:class:`~unlearnbench.attacks._prompt.BestByAttacker`: the forget label's own embedding and the null
one are the first candidates, so the result is never one the attacker rates below the label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import UNet2DModel

from unlearnbench.api import Attack, Attacked, Task
from unlearnbench.args import arg, positive
from unlearnbench.attacks._prompt import SELECTION_ROWS, BestByAttacker, start_vector
from unlearnbench.registry import register


@dataclass(frozen=True)
class EmbeddingMixArgs:
    candidates: int = positive(48, "candidate vectors scored (the query budget is candidates x samples)")
    samples: int = positive(8, "samples per candidate")
    sample_steps: int = positive(10, "DDIM steps for scoring")
    concentration: float = positive(0.3, "Dirichlet concentration (small = sparse mixtures)")
    use_label: bool = arg(
        True, "start from the forget label's own embedding and allow it in mixtures and extrapolations"
    )


@register("embedding_mix")
class EmbeddingMix(Attack):
    """Black-box search over mixtures of class embeddings, scored by the attacker's classifier."""

    paper = "none (this project's black-box search of the class-embedding space)"

    supports = ("label",)  # it searches the class-embedding space (text prompts: the prompt attacks)

    Args = EmbeddingMixArgs
    smoke_args = {"candidates": 4, "samples": 2, "sample_steps": 2}
    extra_rows = SELECTION_ROWS
    budget_unit = "candidates x samples x sample_steps"

    def budget(self) -> int:
        a: EmbeddingMixArgs = self.args
        return a.candidates * a.samples * a.sample_steps

    @torch.no_grad()
    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        a: EmbeddingMixArgs = self.args
        table = task.conditioner.embedding_table(model)  # the concepts' vectors, then the null's
        allowed = [i for i in range(table.shape[0]) if a.use_label or i not in task.forget_classes]
        base = table[allowed]
        start = start_vector(model, task, "forget" if a.use_label else "null", generator)
        best = BestByAttacker(model, task, start, samples=a.samples, steps=a.sample_steps, generator=generator)
        per_class = []  # [n_forget, candidates, D]
        for c in task.forget_classes:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            weights = torch.from_numpy(rng.dirichlet([a.concentration] * len(allowed), size=a.candidates))
            cands = weights.to(base) @ base
            if a.use_label:
                scales = torch.linspace(0.5, 3.0, max(1, a.candidates // 4)).to(base)
                extra = table[c] + scales[:, None] * (table[c] - table[-1])
                cands = torch.cat([cands[: a.candidates - len(extra)], extra])
            per_class.append(cands)
        candidates = torch.stack(per_class)
        for j in range(candidates.shape[1]):
            best.offer(candidates[:, j])
        return best.attacked(model)
