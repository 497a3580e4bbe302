"""The shipped testbed: its judges meet their bars, its model round-trips, and any model directory loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from unlearnbench.api import SamplerSettings
from unlearnbench.data import from_arrays
from unlearnbench.diffusion import ddim_sample
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings
from unlearnbench.models import (
    ClassifierArch,
    UNetArch,
    load_classifier,
    load_diffusion,
    save_classifier,
    save_diffusion,
    sha256_file,
)
from unlearnbench.results import Store
from unlearnbench.runner import Runner
from unlearnbench.spec import RunSpec
from unlearnbench.testbed_check import bars, classifier_figures
from unlearnbench.testbeds import load_testbed
from unlearnbench.testbeds.digits16 import ROOT, read_manifest


def test_evaluator_meets_its_bars(testbed):
    figures, limits = classifier_figures(testbed.evaluator, testbed), bars(testbed)
    assert figures["accuracy"] >= limits["evaluator_accuracy"][1]
    assert figures["gaussian_none"] >= limits["evaluator_gaussian_none"][1]
    assert figures["uniform_none"] >= limits["evaluator_uniform_none"][1]


def test_attacker_is_a_different_network_and_a_decent_classifier(testbed):
    assert testbed.attacker.arch != testbed.evaluator.arch
    assert testbed.attacker_sha != testbed.evaluator_sha
    assert classifier_figures(testbed.attacker, testbed)["accuracy"] >= 0.95


def test_second_judge_is_trained_independently_and_meets_the_evaluators_bars(testbed):
    from unlearnbench.pretrain import EVALUATOR_RECIPE, JUDGE2_RECIPE

    judge2 = testbed.second_judge
    assert judge2 is not None and len(testbed.second_judge_sha) == 64
    assert judge2.arch not in (testbed.evaluator.arch, testbed.attacker.arch)
    assert JUDGE2_RECIPE.seed not in (EVALUATOR_RECIPE.seed, 1)
    assert JUDGE2_RECIPE.noise_fraction == EVALUATOR_RECIPE.noise_fraction  # the same "none" training
    figures = classifier_figures(judge2, testbed)
    assert figures["accuracy"] >= 0.98 and figures["gaussian_none"] >= 0.99 and figures["uniform_none"] >= 0.99
    assert read_manifest()["recipes"]["judge2"]["seed"] == JUDGE2_RECIPE.seed


def test_shipped_files_match_the_manifest_and_recipes_are_recorded():
    manifest = read_manifest()
    for rel, digest in manifest["files"].items():
        assert sha256_file(ROOT / rel) == digest, rel
    for part in ("unet", "evaluator", "attacker", "judge2"):
        assert len(manifest["recipes"][part]["sha256"]) == 64
    assert manifest["sampler"]["guidance_scale"] == 1.0


def test_shipped_model_round_trips_through_save_and_load(testbed, tmp_path):
    save_diffusion(testbed.model, testbed.schedule, tmp_path / "copy")
    model, schedule, sha = load_diffusion(tmp_path / "copy")
    for a, b in zip(model.state_dict().values(), testbed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert schedule.config == testbed.schedule.config
    labels = testbed.conditioner.encode([0, 5, 9])
    one = ddim_sample(model, schedule, labels, generator=torch.Generator().manual_seed(3), steps=4)
    two = ddim_sample(testbed.model, testbed.schedule, labels, generator=torch.Generator().manual_seed(3), steps=4)
    torch.testing.assert_close(one, two)
    assert sha == sha256_file(tmp_path / "copy" / "unet" / "diffusion_pytorch_model.safetensors")


def test_classifier_round_trip_keeps_architecture_and_outputs(testbed, tmp_path):
    save_classifier(testbed.attacker, tmp_path / "a.safetensors")
    again = load_classifier(tmp_path / "a.safetensors")
    x = testbed.data.test_x[:8]
    torch.testing.assert_close(again(x), testbed.attacker(x))


def cifar_like(n_train: int = 60, n_test: int = 20):
    rng = np.random.default_rng(0)
    return from_arrays(
        "cifar10",
        rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        np.arange(n_train) % 10,
        rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        np.arange(n_test) % 10,
        tuple(f"class{i}" for i in range(10)),
    )


def test_generic_loader_runs_a_synthetic_cifar_shaped_stand_in(tmp_path, monkeypatch):
    """Any class-conditional UNet2DModel directory, CIFAR-shaped data and custom judges, end to end."""
    import unlearnbench.testbeds as testbeds
    from unlearnbench.testbeds import digits16

    torch.manual_seed(0)
    arch = UNetArch(sample_size=32, channels=3, block_out_channels=(8, 16), attention=False, norm_num_groups=4)
    save_diffusion(arch.build(), DDPMScheduler(num_train_timesteps=1000), tmp_path / "tiny")
    judge = ClassifierArch(channels=3, image_size=32, widths=(4, 8), feature_dim=8)
    save_classifier(judge.build().eval(), tmp_path / "evaluator.safetensors")
    save_classifier(
        ClassifierArch(channels=3, image_size=32, widths=(4,), feature_dim=8).build().eval(),
        tmp_path / "attacker.safetensors",
    )
    monkeypatch.setattr(digits16, "load_dataset", lambda name, download=False: cifar_like())
    testbeds.load_testbed.cache_clear()
    spec = RunSpec(
        method="safemax",
        attack="relearn",
        forget=(4,),
        method_args={"steps": 2, "batch_size": 4},
        attack_args={"steps": 2, "k": 2, "batch_size": 2, "eval_every": 1},
        model=str(tmp_path / "tiny"),
        dataset="cifar10",
        evaluator=str(tmp_path / "evaluator.safetensors"),
        attacker=str(tmp_path / "attacker.safetensors"),
        eval=EvalSettings(forget_samples=3, retain_samples=1, curve_samples=2, sampler=SamplerSettings(steps=2)),
    )
    try:
        df = Runner(Store(tmp_path / "store")).run(spec)
    finally:
        testbeds.load_testbed.cache_clear()
    assert set(df.phase) == {"original", "unlearned", "attacked"} and (df.status == "ok").all()
    assert df.dataset.iloc[0] == "cifar10"
    samples = np.load(tmp_path / "store" / "runs" / f"{df.run_id.iloc[0]}.samples.npz")
    assert samples["unlearned.forget"].shape[1:] == (3, 32, 32)


def test_shipped_judges_refuse_another_dataset(monkeypatch):
    import unlearnbench.testbeds as testbeds
    from unlearnbench.testbeds import digits16

    monkeypatch.setattr(digits16, "load_dataset", lambda name, download=False: cifar_like())
    testbeds.load_testbed.cache_clear()
    try:
        with pytest.raises(UserError, match="model \\(shipped\\): takes 1x16x16 images"):
            load_testbed("digits16", dataset="cifar10")
    finally:
        testbeds.load_testbed.cache_clear()


def test_manifest_is_valid_json_with_training_times():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    assert manifest["training"]["unet"]["seconds"] > 60 and manifest["training"]["unet"]["params"] == 1_114_209
