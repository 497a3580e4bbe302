"""Concept Ablation on the shipped text16 testbed: the target prompts learn the frozen model's anchor predictions,
through the cross-attention keys and values only; prompt pairs swap one name and keep the rest."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from unlearnbench.api import SamplerSettings, run_unlearning
from unlearnbench.diffusion import add_noise, ddim_sample, per_sample_mse, predict_noise
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings
from unlearnbench.methods.concept_ablation import ConceptAblation, interleaved
from unlearnbench.runner import build_task, resolve
from unlearnbench.spec import RunSpec


@pytest.fixture(scope="module")
def bed():
    from unlearnbench.testbeds import load_testbed

    return load_testbed("text16")


def test_prompt_pairs_swap_the_concept_for_its_anchor_and_keep_the_rest(bed):
    pairs = bed.conditioner.prompt_pairs("seven", "one")
    assert ("a red seven", "a red one") in pairs and ("an orange seven", "an orange one") in pairs
    assert all(re.sub(r"\ban one\b", "a one", t.replace("seven", "one")) == a for t, a in pairs)
    assert not any("one" in t for t, _ in pairs)  # the anchor never fills another slot of a target prompt
    with pytest.raises(UserError, match="cannot stand in for 'seven': a colour"):
        bed.conditioner.prompt_pairs("seven", "red")


def test_the_target_prompts_learn_the_anchor_predictions_through_keys_and_values_only(bed):
    args = {"steps": 40, "lr": 1e-3, "batch_size": 8, "anchor_images": 16}
    sampler = SamplerSettings(steps=5, precision="float32")
    spec = resolve(RunSpec(method="concept_ablation", forget=("seven",), testbed="text16", method_args=args)).spec
    spec = RunSpec(**{**spec.__dict__, "eval": EvalSettings(sampler=sampler)})
    task = build_task(spec, bed, torch.device("cpu"))
    method = ConceptAblation(args)
    assert method.anchor_of(task, "seven") == "one"  # its first declared neighbour
    out = run_unlearning(method, bed.model, task, generator=torch.Generator().manual_seed(0)).model

    generator = torch.Generator().manual_seed(1)
    pairs = bed.conditioner.prompt_pairs("seven", "one")[:8]
    targets = bed.conditioner.prompts([t for t, _ in pairs])
    anchors = bed.conditioner.prompts([a for _, a in pairs])
    images = ddim_sample(bed.model, bed.schedule, anchors, generator=generator, steps=5)
    x_t, t, _ = add_noise(bed.schedule, images, generator=generator)
    with torch.no_grad():
        goal = predict_noise(bed.model, x_t, t, anchors)
        gap_before = per_sample_mse(predict_noise(bed.model, x_t, t, targets), goal).mean()
        gap_after = per_sample_mse(predict_noise(out, x_t, t, targets), goal).mean()
    assert gap_after < 0.5 * gap_before
    before = dict(bed.model.named_parameters())
    changed = {n for n, p in out.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith(("attn2.to_k.weight", "attn2.to_v.weight")) for n in changed)
    assert copy.deepcopy(task.meter.cost).prior_wall_s > 0  # the anchor images are charged as a prior


def test_several_concepts_share_the_anchor_images_alike(bed):
    """With five objects forgotten at once, every one gets pairs among the first anchor_images (200): listed
    concept by concept, 61 pairs each, the fifth got none."""
    conditioner = bed.conditioner
    objects = ["seven", "three", "zero", "one", "four"]
    groups = [conditioner.prompt_pairs(c, "two") for c in objects]
    first = interleaved(groups)[:200]
    counts = [sum(p in set(g) for p in first) for g in groups]
    assert min(counts) >= 200 // 5 - 1 and sum(counts) == 200
    assert interleaved(groups[:1]) == groups[0]  # one concept: its order, as before


def test_the_method_trains_on_the_interleaved_pairs(bed, monkeypatch):
    """Forgetting two objects with 4 anchor images: the pairs the method encodes start seven, three, seven, three
    (concept by concept, all 4 were seven's)."""
    args = ConceptAblation.smoke_args
    spec = resolve(RunSpec(method="concept_ablation", forget=("seven", "three"), testbed="text16", method_args=args))
    task = build_task(spec.spec, bed, torch.device("cpu"))
    seen: list[list[str]] = []
    prompts = task.conditioner.prompts
    monkeypatch.setattr(
        task.conditioner, "prompts", lambda texts, **kw: seen.append(list(texts)) or prompts(texts, **kw)
    )
    method = ConceptAblation(args)
    run_unlearning(method, bed.model, task, generator=torch.Generator().manual_seed(0))
    targets = seen[0][:4]
    seven, three = (bed.conditioner.prompt_pairs(c, method.anchor_of(task, c)) for c in ("seven", "three"))
    assert [any(t == p[0] for p in seven) for t in targets] == [True, False, True, False]
    assert [any(t == p[0] for p in three) for t in targets] == [False, True, False, True]
