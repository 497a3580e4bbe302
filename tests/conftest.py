from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("UNLEARNBENCH_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd
import pytest
import torch

from unlearnbench.models import UNetArch

torch.set_num_threads(2)

TINY = UNetArch(block_out_channels=(8, 16), layers_per_block=1, attention=False, norm_num_groups=4)


def tiny_cross_attention_unet(sample_size: int, width: int, seed: int = 0):
    """A tiny ``UNet2DConditionModel`` (one channel) that reads token states of ``width`` through cross-attention."""
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=1,
            out_channels=1,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=width,
            attention_head_dim=2,
            norm_num_groups=4,
        ).eval()


@pytest.fixture
def tiny_unet():
    torch.manual_seed(0)
    return TINY.build().eval()


@pytest.fixture
def schedule():
    from unlearnbench.pretrain import DiffusionRecipe

    return DiffusionRecipe().schedule()


@pytest.fixture(scope="session")
def testbed():
    from unlearnbench.testbeds import load_testbed

    return load_testbed("digits16")


def make_task(forget=(3,), device="cpu", sampler_steps=3):
    """A digits16 task around the tiny UNet, with an untrained tiny attacker classifier."""
    from unlearnbench.api import SamplerSettings, Task
    from unlearnbench.conditioning import ClassConditioner
    from unlearnbench.cost import CostMeter
    from unlearnbench.data import load_digits16
    from unlearnbench.models import ClassifierArch
    from unlearnbench.pretrain import DiffusionRecipe

    data = load_digits16()
    conditioner = ClassConditioner(data.num_classes)
    retain = data.retain_classes(forget)
    fx, fy = data.subset("train", forget)
    rx, ry = data.subset("train", retain)
    torch.manual_seed(0)
    attacker = ClassifierArch(widths=(4, 8), feature_dim=8).build().eval().requires_grad_(False)
    return Task(
        data=data,
        schedule=DiffusionRecipe().schedule(),
        conditioner=conditioner,
        forget_concepts=tuple(str(c) for c in forget),
        retain_concepts=tuple(str(c) for c in retain),
        forget_x=fx,
        forget_cond=conditioner.encode_ids(fy),
        retain_x=rx,
        retain_cond=conditioner.encode_ids(ry),
        sampler=SamplerSettings(steps=sampler_steps),
        attacker=attacker,
        meter=CostMeter(device),
        recipe=DiffusionRecipe(arch=TINY, steps=2, batch_size=8),
        eval_forget_samples=4,
    )


def check_store(store: Path) -> pd.DataFrame:
    """Every file readable, no temporary leftovers, no partial run, each run in exactly one file."""
    runs = store / "runs"
    assert not list(runs.glob("*.tmp")) and not list(runs.glob(".*.tmp")), "a temporary file survived"
    assert not list(runs.glob(".probe.*")), "a store probe survived"
    frames = []
    for parquet in runs.glob("*.parquet"):
        df = pd.read_parquet(parquet)  # raises if partial
        assert len(df) and df.run_id.nunique() == 1 and df.run_id.iloc[0] == parquet.stem
        assert (runs / f"{parquet.stem}.json").is_file()
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_id"])


def rewrite_rows(path: Path, df: pd.DataFrame) -> None:
    """Replace a stored run's rows as another result would be stored, hashes recorded again (a damaged or edited
    file is left out of every read): for tests that need a store holding other values than its runs produced."""
    from unlearnbench.results import Store

    df.to_parquet(path, index=False)
    Store(path.parent.parent).seal(path.name.removesuffix(".parquet"))
