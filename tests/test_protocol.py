"""Issue 12 item 1: the block-conditioned UNet, resumable pretraining, and the stability test."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from tests.conftest import TINY
from unlearnbench.api import SamplerSettings
from unlearnbench.conditioning import Conditioning
from unlearnbench.diffusion import guided_noise, predict_noise
from unlearnbench.models import load_diffusion, save_diffusion
from unlearnbench.pretrain import Checkpointing, DiffusionRecipe, TrainingPaused, train_diffusion
from unlearnbench.unets import ClassMLPUNet

BLOCK = replace(TINY, conditioning="block_mlp", dropout=0.1)


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 16, 16, generator=g).clamp(-1, 1), torch.randint(0, 10, (n,), generator=g)


def test_block_mlp_unet_saves_and_loads_as_a_diffusers_model(tmp_path, schedule):
    torch.manual_seed(0)
    model = BLOCK.build().eval()
    assert isinstance(model, ClassMLPUNet)
    save_diffusion(model, schedule, tmp_path)
    assert json.loads((tmp_path / "unet" / "config.json").read_text())["_class_name"] == "ClassMLPUNet"
    loaded, _, sha = load_diffusion(tmp_path)
    assert isinstance(loaded, ClassMLPUNet) and len(sha) == 64
    x, t, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 10, 500, 999]), torch.tensor([0, 3, 9, 10])
    with torch.no_grad():
        assert torch.equal(model(x, t, class_labels=y).sample, loaded(x, t, class_labels=y).sample)


def test_block_mlp_unet_takes_labels_and_embedding_vectors_alike():
    torch.manual_seed(0)
    model = BLOCK.build().eval()
    x, t, y = torch.randn(3, 1, 16, 16), torch.tensor([5, 50, 900]), torch.tensor([1, 2, 10])
    labels = Conditioning.from_labels(y, null=10)
    vectors = Conditioning.from_vectors(model.class_embedding.weight[y].detach(), null=10)
    with torch.no_grad():
        by_label = predict_noise(model, x, t, labels)
        assert torch.allclose(by_label, predict_noise(model, x, t, vectors), atol=1e-6)
        # the class matters, and guidance at s = 1 is the conditional prediction
        assert not torch.allclose(by_label, predict_noise(model, x, t, labels.null_like(model)))
        assert torch.equal(guided_noise(model, x, t, labels, 1.0), by_label)


@pytest.mark.parametrize("arch", [TINY, BLOCK], ids=["time", "block_mlp"])
def test_pretraining_resumes_bit_for_bit(tmp_path, arch):
    x, y = _data()
    recipe = DiffusionRecipe(arch=arch, steps=6, batch_size=8, warmup=2)
    straight, _ = train_diffusion(recipe, x, y)
    with pytest.raises(TrainingPaused) as paused:
        train_diffusion(recipe, x, y, checkpointing=Checkpointing(tmp_path, every=2, stop_at=3))
    assert paused.value.step == 3
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 3
    resumed, _ = train_diffusion(recipe, x, y, checkpointing=Checkpointing(tmp_path, every=2))
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 6


def test_resume_refuses_another_recipes_state(tmp_path):
    x, y = _data()
    recipe = DiffusionRecipe(arch=TINY, steps=4, batch_size=8, warmup=1)
    with pytest.raises(TrainingPaused):
        train_diffusion(recipe, x, y, checkpointing=Checkpointing(tmp_path, every=2, stop_at=2))
    with pytest.raises(ValueError, match="another recipe"):
        train_diffusion(
            DiffusionRecipe(arch=TINY, steps=4, batch_size=8, warmup=1, lr=1e-3),
            x,
            y,
            checkpointing=Checkpointing(tmp_path),
        )


def test_stability_test_reports_every_setting_and_its_verdict(testbed):
    from unlearnbench.stability import StabilitySettings, stability_test

    samplers = (SamplerSettings(steps=3), SamplerSettings(steps=3, guidance_scale=3.0, eta=1.0))
    settings = StabilitySettings(forget=("3",), finetune_steps=1, per_class=2, null_samples=12, samplers=samplers)
    result = stability_test(testbed, settings)
    assert [(r["forget"], r["guidance"]) for r in result["rows"]] == [("3", 1.0), ("3", 3.0)]
    for row in result["rows"]:
        assert row["ok"] == (abs(row["retain_accuracy_change"]) <= 0.03 and abs(row["fid_ratio_change"]) <= 0.25)
    assert [sum(r["counts"]) for r in result["null"]] == [12, 12]
    assert all(not r["ok"] for r in result["null"])  # 12 samples cannot hold every digit 5 times
    assert result["passed"] is False


@pytest.mark.slow
def test_shipped_model_passes_the_stability_test(testbed):
    """29 finetune steps on forget class 0, 3, 7 leave the shipped model as it was, at s = 1 and s = 3 (eta 1)."""
    from unlearnbench.stability import stability_test

    result = stability_test(testbed)
    failed = [r for r in result["rows"] if not r["ok"]] + [r for r in result["null"] if not r["ok"]]
    assert result["passed"], failed


# At the papers' guidance the shipped model meets every accuracy bar; its FID ratio misses the bar of 3, as
# guided sampling trades diversity for fidelity (README, "Guidance convention"). Guarded at the measured
# value (30 samples per class, seed 0) with room for the figure's sampling error.
PAPERS_FID_RATIO = {0.0: 9.91, 1.0: 8.17}


@pytest.mark.slow
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_shipped_model_at_the_papers_guidance(testbed, eta):
    """``unlearnbench testbed check --guidance 3``: every bar but the FID ratio's is met, and the FID ratio is
    the README's figure (within 30%)."""
    from unlearnbench.testbed_check import run_checks

    checks = {
        c.name: c for c in run_checks(testbed, per_class=30, sampler=SamplerSettings(guidance_scale=3.0, eta=eta))
    }
    assert [name for name, c in checks.items() if not c.ok and name != "fid_ratio"] == []
    assert abs(checks["fid_ratio"].value / PAPERS_FID_RATIO[eta] - 1) <= 0.3, checks["fid_ratio"].value
