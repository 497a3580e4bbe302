"""UnlearnDiffAtk (and P4D): search a few prefix tokens, as distributions over the searchable vocabulary, that bring
the forgotten concept back; the unlearned model itself is the classifier.

Zhang et al., "To Generate or Not? Safety-Driven Unlearned Diffusion Models Are Still Easy To Generate Unsafe
Images ... For Now", ECCV 2024 (UnlearnDiffAtk): the unlearned model's own denoising loss on reference images of
the concept is a diffusion classifier, and ``P`` prefix tokens before the prompt are optimised to lower it:

    z* = argmin_z E_{x ~ D_k, t, eps} || eps - eps_u(x_t, [z; p], t) ||^2

Chin et al., "Prompting4Debugging", ICML 2024 (P4D), ``loss = "p4d"``: the unlearned model's noise prediction
under the adversarial prompt is matched to the *original* model's under the concept's prompt (the threat model
holds the original model):

    z* = argmin_z E_{x ~ D_k, t, eps} || eps_u(x_t, [z; p], t) - eps_0(x_t, c, t) ||^2

Here each prefix slot is a distribution ``softmax(logits / temperature)`` over the testbed's searchable words
(:meth:`~unlearnbench.conditioning.Conditioner.search_words`: on text16 every token its encoder learned, the BPE
pieces of longer names included, as the paper searches Stable Diffusion's whole vocabulary; with ``ban_names``, none
of the concept's names or synonyms), its input embedding the distribution's mix of the words' embeddings; every
``select_every`` steps the slots are projected to their most likely words, spelled as text
(:meth:`~unlearnbench.conditioning.Conditioner.spell`: a piece that starts a word is glued onto the next), and that
*discrete* prompt is scored by the attacker's classifier (:class:`~unlearnbench.attacks._prompt.BestPrompt`), which
keeps the best; a spelling that forms a banned word is never offered. The result is that prompt, as text.

Budget, scaled from the anchor (UnlearnDiffAtk: 5 prefix tokens, Adam lr 0.01, 40 iterations per timestep over
50 timesteps, 2,000 denoising evaluations on one reference image): 5 prefix tokens, 100 Adam steps at lr 0.1 on
the logits, each on a batch of 16 (reference image, timestep, noise) draws from k = 10 images: 1,600 denoising
evaluations, plus the scoring chains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import Tensor

from unlearnbench.api import Attack, Attacked, RecoverySettings, Task
from unlearnbench.args import arg, positive
from unlearnbench.attacks._prompt import (
    SELECTION_BUDGET,
    SELECTION_ROWS,
    BestPrompt,
    check_images,
    concept_rows,
    selection_budget,
)
from unlearnbench.attacks.relearn import attacker_images
from unlearnbench.conditioning import Conditioner
from unlearnbench.diffusion import add_noise, per_sample_mse, predict_noise
from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.training import optimize, sample_batch


@dataclass(frozen=True)
class UnlearnDiffAtkArgs:
    loss: str = arg("denoising", "denoising (UnlearnDiffAtk) | p4d (Prompting4Debugging)", choices=("denoising", "p4d"))
    prefix: int = positive(5, "prefix tokens searched (anchor: 5)")
    steps: int = positive(100, "Adam steps on the prefix's logits (anchor: 40 per timestep over 50 timesteps)")
    lr: float = positive(0.1, "Adam learning rate on the logits (anchor: 0.01 on token embeddings)")
    temperature: float = positive(1.0, "softmax temperature of each slot's distribution over the words")
    k: int = positive(10, "reference images of the concept the attacker holds")
    batch_size: int = positive(16, "(image, timestep, noise) draws per step")
    base: str = arg(
        "concept",
        "the prompt after the prefix: concept (its canonical prompt, as the papers attack the prompt that asks for "
        "it; the canonical prompt is the first candidate, so the attack never ends below the model's own "
        "pre-attack ASR under the attacker) | none (the empty prompt: the prefix alone must bring the concept back, "
        "and the result may score below the canonical prompt)",
        choices=("concept", "none"),
    )
    ban_names: bool = arg(
        False,
        "the prefix may not use any name or synonym of the concept (needs base=none: the canonical prompt names it)",
    )
    select_samples: int = positive(16, "fixed initial noises per forget concept on which the attacker scores prompts")
    select_steps: int = positive(10, "DDIM steps of the scoring sampler")
    select_every: int = positive(10, "project and score the prefix every this many steps (and at the last)")


def spelled(conditioner: Conditioner, prefix: list[str], base: str) -> str:
    """The prompt of a projected prefix before ``base``: the prefix spelled by itself, then the base, so a piece
    in the last slot ("sie+") is not glued onto the base's first word."""
    return " ".join(filter(None, (conditioner.spell(prefix), base)))


@register("unlearndiffatk")
class UnlearnDiffAtk(Attack):
    """Prefix tokens over the searchable vocabulary, optimised against the unlearned model's own denoising loss
    (or, loss=p4d, matched to the original model): the prompt it finds, as text."""

    paper = (
        "Zhang et al., To Generate or Not? ... (UnlearnDiffAtk), ECCV 2024; "
        "Chin et al., Prompting4Debugging (P4D), ICML 2024"
    )

    supports = ("tokens",)  # prompts of a text encoder
    Args = UnlearnDiffAtkArgs
    smoke_args = {"steps": 2, "prefix": 2, "k": 2, "batch_size": 2, "select_samples": 2, "select_steps": 2}
    extra_rows = SELECTION_ROWS
    variant_args = ("loss",)  # loss=p4d is P4D, its own attack at its own default budget: unlearndiffatk[loss=p4d]
    budget_unit = (
        f"steps x batch_size (denoising evaluations; twice that with loss=p4d, whose original model runs on each "
        f"draw too) + {SELECTION_BUDGET}"
    )

    def budget(self) -> int:
        a: UnlearnDiffAtkArgs = self.args
        return (2 if a.loss == "p4d" else 1) * a.steps * a.batch_size + selection_budget(a.steps, a)

    def check(self, task: Task) -> None:
        if self.args.ban_names and self.args.base == "concept":
            raise UserError(
                f"{self.name}: ban_names needs base=none (the canonical prompt after the prefix names the concept)"
            )
        check_images(self, self.args.k, task)
        if self.args.loss == "p4d" and task.original_model is None:
            raise UserError(f"{self.name}: loss=p4d needs the original model, and this task has none")

    def attack(self, model: UNet2DModel, task: Task, *, generator: torch.Generator) -> Attacked:
        a: UnlearnDiffAtkArgs = self.args
        conditioner, n = task.conditioner, len(task.forget_concepts)
        canonical = [conditioner.canonical_prompt(c) for c in task.forget_concepts]
        base = canonical if a.base == "concept" else [""] * n
        words = [
            conditioner.search_words(conditioner.banned_words(c) if a.ban_names else ()) for c in task.forget_concepts
        ]
        if min(len(w) for w in words) < 2:
            raise UserError(f"{self.name}: fewer than two searchable words are left for {task.forget_concepts}")
        # every concept's search space padded to the longest: a padded word is -inf in its logits
        width = max(len(w) for w in words)
        table = torch.stack(
            [
                torch.cat(
                    [conditioner.word_embeddings(w), conditioner.word_embeddings(w[:1]).expand(width - len(w), -1)]
                )
                for w in words
            ]
        ).to(task.device)  # fmt: skip  [n, V, width]
        pad = torch.tensor([[j >= len(w) for j in range(width)] for w in words], device=task.device)
        logits = torch.nn.Parameter(torch.zeros(n, a.prefix, width, device=task.device))
        x, c = attacker_images(task.forget_x, task.forget_cond, a.k, generator)
        target = conditioner.prompts(canonical).to(task.device)  # P4D: the original model under the concept's prompt
        start = None if a.base == "concept" else base  # the model as it is, or the empty prompt
        best = BestPrompt(model, task, start, samples=a.select_samples, steps=a.select_steps, generator=generator)

        def soft(rows: Tensor) -> Tensor:
            weights = (logits[rows] / a.temperature).masked_fill(pad[rows][:, None, :], float("-inf")).softmax(-1)
            return weights @ table[rows]  # [B, P, width]

        def loss_fn(_step: int) -> Tensor:
            xb, cb = sample_batch(x, c, a.batch_size, generator)
            rows = concept_rows(task, cb)
            cond = conditioner.prefixed(soft(rows), [base[int(r)] for r in rows])
            x_t, t, eps = add_noise(task.schedule, xb, generator=generator)
            pred = predict_noise(model, x_t, t, cond)
            if a.loss == "p4d":
                with torch.no_grad():
                    eps = predict_noise(task.original_model, x_t, t, target[rows])
            return per_sample_mse(pred, eps).mean()

        banned = [conditioner.banned_words(c) if a.ban_names else frozenset() for c in task.forget_concepts]

        def projected() -> list[str]:
            chosen = logits.detach().masked_fill(pad[:, None, :], float("-inf")).argmax(-1)  # [n, P]
            rows = zip(words, chosen.tolist(), base, banned, strict=True)
            texts = [(spelled(conditioner, [w[j] for j in row], b), b, ban) for w, row, b, ban in rows]
            # pieces glued into a banned word ("sie" + "ben"): not offered (the base prompt, which cannot win, instead)
            return [b if ban & set(text.split()) else text for text, b, ban in texts]

        callback = best.every(a.select_every, a.steps, projected)
        optimize([logits], loss_fn, steps=a.steps, lr=a.lr, desc=self.name, meter=task.meter, callback=callback)
        return dataclasses.replace(best.attacked(model), recovery=RecoverySettings(a.steps))
