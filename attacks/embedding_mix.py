"""Black-box prompting: search mixtures (and extrapolations) of the trained class embeddings.

No gradients: each candidate vector ``v = sum_j w_j e_j`` (random Dirichlet weights over the 11
embeddings, plus ``e_c + s (e_c - e_null)`` extrapolations of the forget label when the label is allowed)
is scored by the attacker's classifier on a few short-chain samples, and the best is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Attack, Attacked, Row, Task, Tolerance
from unlearnbench.args import arg, positive
from unlearnbench.attacks._prompt import attacker_log_prob, for_class
from unlearnbench.diffusion import randn
from unlearnbench.registry import register


@dataclass(frozen=True)
class EmbeddingMixArgs:
    candidates: int = positive(48, "candidate vectors scored (the query budget is candidates x samples)")
    samples: int = positive(8, "samples per candidate")
    sample_steps: int = positive(10, "DDIM steps for scoring")
    concentration: float = positive(0.3, "Dirichlet concentration (small = sparse mixtures)")
    use_label: bool = arg(True, "allow the forget label's own embedding in mixtures and extrapolations")


@register("embedding_mix")
class EmbeddingMix(Attack):
    """Black-box search over mixtures of class embeddings, scored by the attacker's classifier."""

    Args = EmbeddingMixArgs
    smoke_args = {"candidates": 4, "samples": 2, "sample_steps": 2}
    extra_rows = (Row("attack_best_attacker_p", "all", "min", "best attacker p", Tolerance(floor=0.1)),)

    @torch.no_grad()
    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        a: EmbeddingMixArgs = self.args
        vectors = task.conditioner.vectors
        table = task.conditioner.embedding_table(model)  # the concepts' vectors, then the null's
        allowed = [i for i in range(table.shape[0]) if a.use_label or i not in task.forget_classes]
        base = table[allowed]
        best = []
        for concept, c in zip(task.forget_concepts, task.forget_classes, strict=True):
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            weights = torch.from_numpy(rng.dirichlet([a.concentration] * len(allowed), size=a.candidates))
            cands = weights.to(base) @ base
            if a.use_label:
                scales = torch.linspace(0.5, 3.0, max(1, a.candidates // 4)).to(base)
                extra = table[c] + scales[:, None] * (table[c] - table[-1])
                cands = torch.cat([cands[: a.candidates - len(extra)], extra])
            x_T = randn((a.samples, *task.data.image_shape), generator, base)
            sub = for_class(task, concept)

            def score(v: Tensor, sub: Task = sub, x_T: Tensor = x_T) -> Tensor:
                cond = vectors(v[None]).expand(a.samples)
                return attacker_log_prob(model, sub, cond, x_T, a.sample_steps, grad=False).exp().mean()

            scores = torch.stack([score(v) for v in cands])
            best.append(cands[int(scores.argmax())])
        return Attacked(model, cond=vectors(torch.stack(best)), extra={"best_attacker_p": float(scores.max())})
