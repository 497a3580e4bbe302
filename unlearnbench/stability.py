"""The base model's stability test: does a *neutral* small change leave it as it was?

A base model is only a fair testbed if a harmless edit does not swing its guided regime. The neutral
edit is the ``finetune`` baseline (``L_DM`` on the retained classes only, Adam 1e-4, batch 128) for 29
steps, with forget classes 0, 3 and 7 in turn. The model passes when, at every sampler setting (the
testbed's ``s = 1``, and the papers' ``s = 3``, DDIM ``eta = 1``):

* retained-class accuracy (the evaluator's 10-way judgement) moves by at most ``max_accuracy_change``;
* the retained FID ratio, ``FID(samples, real test) / FID(real train, real test)`` over the retained
  classes in the evaluator's features, moves by at most ``max_fid_ratio_change`` (relative);
* ``null_samples`` samples with the null label, judged 11-way, still hold every digit at least
  ``min_null_per_concept`` times (the unconditional branch that guidance relies on has not collapsed).

The original and the fine-tuned models sample from the same initial noise (common random numbers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from diffusers import DDPMScheduler, UNet2DModel

from unlearnbench.api import SamplerSettings, run_unlearning
from unlearnbench.evaluate import draw, eval_labels, judge
from unlearnbench.metrics.fid import fidelity
from unlearnbench.testbeds import Testbed, default_guidance

PAPERS_SAMPLER = SamplerSettings(guidance_scale=3.0, eta=1.0)


@dataclass(frozen=True)
class StabilitySettings:
    """What the stability test changes, how it measures, and its bars."""

    forget: tuple[str, ...] = ()  # empty: the testbed's own (``Testbed.stability_forget``)
    finetune_steps: int = 29
    per_class: int = 30
    null_samples: int = 200
    samplers: tuple[SamplerSettings, ...] = field(default_factory=lambda: (SamplerSettings(), PAPERS_SAMPLER))
    max_accuracy_change: float = 0.03
    max_fid_ratio_change: float = 0.25
    min_null_per_concept: int = 5
    seed: int = 0


@dataclass
class Figures:
    """One model at one sampler setting: per-class accuracy, and the generated images."""

    class_accuracy: list[float]
    images: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def sample_figures(
    model: UNet2DModel, schedule: DDPMScheduler, tb: Testbed, sampler: SamplerSettings, per_class: int, seed: int
) -> Figures:
    classes = tuple(range(tb.num_classes))
    labels = eval_labels(classes, per_class)
    images = draw(model, schedule, tb.conditioner.encode_ids(labels), sampler, seed, stream=3, desc="stability")
    judged = judge(tb.evaluator, images, labels)
    hits = judged.probs10.argmax(-1) == labels
    return Figures([float(hits[labels == c].float().mean()) for c in classes], images, labels)


def retained_figures(fig: Figures, tb: Testbed, forget: str) -> dict[str, float]:
    """Retained-class accuracy and FID ratio (vs. the held-out real images of the retained classes)."""
    forget_class = tb.conditioner.index(forget)
    keep = fig.labels != forget_class
    retain = tb.retained((forget,))
    train_x, _ = tb.images("train", retain, exclude=(forget,))
    test_x, _ = tb.images("test", retain, exclude=(forget,))
    fid_gen = fidelity(fig.images[keep], test_x, tb.evaluator_path, prc=False)["frechet_inception_distance"]
    fid_real = fidelity(train_x, test_x, tb.evaluator_path, prc=False)["frechet_inception_distance"]
    accuracy = sum(a for c, a in enumerate(fig.class_accuracy) if c != forget_class) / len(retain)
    return {
        "retain_accuracy": accuracy,
        "fid_ratio": fid_gen / fid_real,
        "forget_accuracy": fig.class_accuracy[forget_class],
    }


@torch.no_grad()
def null_counts(model: UNet2DModel, schedule: DDPMScheduler, tb: Testbed, n: int, seed: int) -> list[int]:
    """How many of ``n`` null-label samples the evaluator calls each concept, then "none" (K + 1 counts), read
    within the family of the testbed's first null concept (every concept on a class-conditional testbed)."""
    labels = torch.full((n,), tb.num_classes, dtype=torch.long)
    null = tb.conditioner.null_like(tb.conditioner.encode_ids(labels.new_zeros(n)))
    images = draw(model, schedule, null, SamplerSettings(), seed, stream=4, desc="null samples")
    meant = torch.full_like(labels, tb.conditioner.index(null_concepts(tb)[0]))
    verdict = judge(tb.evaluator, images, labels, concepts=meant).logits.argmax(-1)
    return torch.bincount(verdict, minlength=tb.num_classes + 1).tolist()


def null_concepts(tb: Testbed) -> tuple[str, ...]:
    return tb.null_concepts or tb.concepts


def null_ok(tb: Testbed, counts: list[int], least: int) -> bool:
    """Every null concept drawn at least ``least`` times."""
    return min(counts[tb.conditioner.index(c)] for c in null_concepts(tb)) >= least


def finetune(tb: Testbed, forget: str, steps: int, seed: int) -> UNet2DModel:
    """The neutral change: the registered ``finetune`` baseline (retained classes only) for ``steps`` steps."""
    from unlearnbench import registry
    from unlearnbench.runner import build_task
    from unlearnbench.spec import RunSpec

    task = build_task(RunSpec(method="finetune", forget=(forget,), testbed=tb.name), tb, torch.device("cpu"))
    method = registry.get("method", "finetune")({"steps": steps})
    generator = torch.Generator().manual_seed(seed)
    return run_unlearning(method, tb.model, task, generator=generator).model


def stability_test(tb: Testbed, settings: StabilitySettings | None = None) -> dict:
    """Run the test on ``tb.model``; return every figure, each check and ``passed``."""
    s = settings or StabilitySettings()
    s = s if s.forget else replace(s, forget=tb.stability_forget)
    # a sampler that leaves guidance out uses the testbed's default, as a run does
    default = default_guidance(tb.name, tb.model_source)
    samplers = tuple(x if x.guidance_scale is not None else replace(x, guidance_scale=default) for x in s.samplers)
    s = replace(s, samplers=samplers)
    device = next(tb.model.parameters()).device
    if device.type != "cpu":
        raise ValueError("the stability test runs on the CPU (its figures are compared across machines)")
    base = {
        i: sample_figures(tb.model, tb.schedule, tb, sampler, s.per_class, s.seed)
        for i, sampler in enumerate(s.samplers)
    }
    base_null = null_counts(tb.model, tb.schedule, tb, s.null_samples, s.seed)
    rows: list[dict] = []
    null_rows: list[dict] = [
        {"forget": None, "counts": base_null, "ok": null_ok(tb, base_null, s.min_null_per_concept)}
    ]
    for c in s.forget:
        tuned = finetune(tb, c, s.finetune_steps, s.seed)
        for i, sampler in enumerate(s.samplers):
            before = retained_figures(base[i], tb, c)
            after = retained_figures(sample_figures(tuned, tb.schedule, tb, sampler, s.per_class, s.seed), tb, c)
            acc_change = after["retain_accuracy"] - before["retain_accuracy"]
            fid_change = after["fid_ratio"] / before["fid_ratio"] - 1
            rows.append(
                {
                    "forget": c,
                    "guidance": sampler.guidance_scale,
                    "eta": sampler.eta,
                    **{f"{k}_before": round(v, 4) for k, v in before.items()},
                    **{f"{k}_after": round(v, 4) for k, v in after.items()},
                    "retain_accuracy_change": round(acc_change, 4),
                    "fid_ratio_change": round(fid_change, 4),
                    "ok": abs(acc_change) <= s.max_accuracy_change and abs(fid_change) <= s.max_fid_ratio_change,
                }
            )
        counts = null_counts(tuned, tb.schedule, tb, s.null_samples, s.seed)
        null_rows.append({"forget": c, "counts": counts, "ok": null_ok(tb, counts, s.min_null_per_concept)})
    settings_record = {**asdict(s), "samplers": [asdict(x) for x in s.samplers]}
    passed = all(r["ok"] for r in rows) and all(r["ok"] for r in null_rows)
    return {"settings": settings_record, "rows": rows, "null": null_rows, "passed": passed}
