"""UCE: Unified Concept Editing, a closed-form edit of the cross-attention key and value projections.

Gandikota, Orgad, Belinkov, Materzyńska & Bau, "Unified Concept Editing in Diffusion Models", WACV 2024
(code: rohitgandikota/unified-concept-editing, ``train-scripts/train_erase.py``). Every cross-attention layer reads
the prompt's token states ``c`` through ``W_k`` and ``W_v``. For each of them, UCE solves

    W' = argmin  sum_e ||W' c_e - v*_e||^2  +  p sum_r ||W' c_r - W c_r||^2  +  lambda ||W' - W||_F^2
       = (lambda W + sum_e v*_e c_e^T + p sum_r W c_r c_r^T) (lambda I + sum_e c_e c_e^T + p sum_r c_r c_r^T)^-1

with ``v*_e = W c*_e`` ("replace"): the erased prompt's token states ``c_e`` are mapped to what the projection gives
the guide prompt's ``c*_e``. As in the paper's script:

- the erased prompts are the concept's names ("seven", "7", ...: the testbed's canonical names, never its held-out
  ones), guided towards the near-empty prompt ``" "``; each pair is aligned from its last word to the end of the
  context (the positions of a causal text encoder that have read the concept);
- the preserved prompts are every token of the retained concepts' names and of the empty prompt;
- ``lambda`` 0.5, erase scale 1, preserve scale 0.1, keys and values both edited.

Nothing trains: the cost is the encoder forwards and one solve per projection. It scales from nothing (a closed
form has no schedule to scale). On the text16 testbed the retained concepts are the other digits, colours and
stroke weights; the paper preserved other objects (or artists) by name in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Task, UnlearningMethod
from unlearnbench.args import arg, positive
from unlearnbench.registry import register

GUIDE = " "  # the script's guide for erasure without a guided concept


@dataclass(frozen=True)
class UCEArgs:
    erase_scale: float = positive(1.0, "weight of the erased names' edit (original: 1)")
    preserve_scale: float = arg(0.1, "weight of the retained names and the empty prompt (original: 0.1)", low=0)
    lamb: float = positive(0.5, "weight keeping each projection near the original (original script: 0.5)")
    keys: bool = arg(True, "edit the key projections too, not only the values (original: yes)")


def cross_attention_projections(model: torch.nn.Module, keys: bool) -> list[torch.nn.Linear]:
    """Every cross-attention layer's value projection (and key projection): the weights that read the prompt."""
    layers = [m for n, m in model.named_modules() if n.endswith("attn2")]
    return [proj for layer in layers for proj in ([layer.to_v, layer.to_k] if keys else [layer.to_v])]


def aligned_from_last_word(states: Tensor, last: Tensor, guide: Tensor, guide_last: Tensor) -> tuple[Tensor, Tensor]:
    """Each erased prompt's token states from its last word to the end of the context, beside the guide prompt's
    from its own last word, cut to a common length: ``(c_e, c*_e)``, each ``[positions, D]``."""
    length = states.shape[1]
    erased, guided = [], []
    for s, k, g, j in zip(states, last.tolist(), guide, guide_last.tolist(), strict=True):
        far = max(k, j)
        erased.append(s[k : length - (far - k)])
        guided.append(g[j : length - (far - j)])
    return torch.cat(erased), torch.cat(guided)


def edit(projection: torch.nn.Linear, erased: Tensor, guided: Tensor, preserved: Tensor, a: UCEArgs) -> None:
    """Replace ``projection``'s weight by UCE's closed form (in float64, for the solve)."""
    w = projection.weight.detach().double()
    c_e, c_g, c_r = erased.double(), guided.double(), preserved.double()
    targets = c_g @ w.T  # v*_e = W c*_e
    identity = torch.eye(w.shape[1], dtype=torch.float64, device=w.device)
    mat1 = a.lamb * w + a.erase_scale * targets.T @ c_e + a.preserve_scale * (w @ c_r.T) @ c_r
    mat2 = a.lamb * identity + a.erase_scale * c_e.T @ c_e + a.preserve_scale * c_r.T @ c_r
    new = torch.linalg.solve(mat2, mat1.T).T  # mat1 @ mat2^-1 (mat2 is symmetric)
    projection.weight.data.copy_(new.to(projection.weight.dtype))


@register("uce")
class UCE(UnlearningMethod):
    """UCE: a closed-form edit of the cross-attention key and value projections (text testbeds)."""

    Args = UCEArgs
    paper = "Gandikota et al., Unified Concept Editing in Diffusion Models, WACV 2024"
    supports = ("tokens",)
    uses_sampler = False
    uses_seed = False
    smoke_args: dict = {}
    search_space = {"preserve_scale": [0.1, 0.3, 1.0], "lamb": [0.1, 0.5]}
    search_note = "six trials, as every method tuned on the text testbed (issue 37)"

    def budget(self) -> int:
        return 0  # no steps: one solve per projection

    @torch.no_grad()
    def unlearn(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> UNet2DModel:
        a: UCEArgs = self.args
        conditioner = task.conditioner
        names = [n for c in task.forget_concepts for n in conditioner.names(c)]
        kept = [n for c in task.retain_concepts for n in conditioner.names(c)] + [""]
        device = next(model.parameters()).device
        states, last = conditioner.prompt_states(names)
        guide, guide_last = conditioner.prompt_states([GUIDE] * len(names))
        erased, guided = aligned_from_last_word(states, last, guide, guide_last)
        preserved = conditioner.prompt_states(kept)[0].flatten(0, 1)
        for projection in cross_attention_projections(model, a.keys):
            edit(projection, erased.to(device), guided.to(device), preserved.to(device), a)
        return model
