"""Concepts instead of class numbers, testbeds as plugins, and flags a user can trust (issue 33)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from unlearnbench.cli import build_parser, main
from unlearnbench.errors import UserError
from unlearnbench.results import load_results
from unlearnbench.runner import resolve
from unlearnbench.spec import RunSpec

ROOT = Path(__file__).resolve().parent.parent


def run_id_of(capsys, *flags: str) -> str:
    """The run id ``run`` reports for these flags (its plan: the run is not executed)."""
    args = build_parser().parse_args(["run", "--method", "noop", *flags])
    spec = RunSpec(method="noop", forget=tuple(args.forget))
    return resolve(spec).run_id


def test_forget_and_forget_class_are_one_run(capsys):
    assert run_id_of(capsys, "--forget", "3") == run_id_of(capsys, "--forget-class", "3")
    assert run_id_of(capsys, "--forget", "3", "5") == run_id_of(capsys, "--forget", "3,5")
    assert run_id_of(capsys, "--forget", "3") != run_id_of(capsys, "--forget", "4")


def test_a_class_numbered_concept_hashes_as_the_class_did():
    """Stores written before concepts had names (``forget_classes``: ints) keep their run ids."""
    named = RunSpec(method="safemax", forget=("3",))
    stored = named.to_dict()
    stored["forget_classes"] = [3]
    del stored["forget"]
    assert RunSpec.from_dict(stored).run_id == named.run_id == RunSpec(method="safemax", forget=(3,)).run_id
    assert '"forget_classes":[3]' in named.canonical() and '"forget"' not in named.canonical()
    assert '"forget":["circle"]' in RunSpec(method="safemax", forget=("circle",)).canonical()
    assert RunSpec(method="noop", forget=("03",)).forget_class is None  # "03" is a name, not class 3


def committed_stores() -> list[Path]:
    return sorted(p.parent for p in ROOT.glob("results/**/runs") if any(p.glob("*.parquet")))


# 24 early trials in the tuning store that the grid tuning's specs never ask for (their ids predate later
# settings); superseded stores are not under results/ (docs/architecture.md says where git keeps them).
HISTORY = {"results/tune/store": 24}


@pytest.mark.parametrize("store", committed_stores(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_store_keeps_its_run_ids(store):
    """A resumed sweep finds a stored run by the id of its spec: a change to hashing that orphans a store
    (so that every run would be redone) fails here. Every store under results/ is checked."""
    runs = sorted((store / "runs").glob("*.json"))
    orphans = [p.name for p in runs if RunSpec.from_dict(json.loads(p.read_text())["spec"]).run_id != p.stem]
    assert len(orphans) <= HISTORY.get(str(store.relative_to(ROOT)), 0), orphans[:5]


def test_rows_from_before_concepts_read_as_today():
    """``forget_class`` was a comma-joined string: it is read into ``forget_concept`` and ``n_forget``, and is a
    nullable integer filled only for one class, so ``df.forget_class == 3`` selects what it says."""
    df = load_results(ROOT / "results" / "ci" / "store")
    assert str(df.forget_class.dtype) == "Int64" and str(df.n_forget.dtype) == "Int64"
    one = df[df.n_forget == 1]
    assert (one.forget_class.astype(str) == one.forget_concept).all()
    assert df[df.n_forget > 1].forget_class.isna().all()
    assert "precision" not in df.columns and set(df.sampler_precision.dropna()) <= {"float32", "bfloat16"}
    assert set(df.protocol) <= {"testbed", "papers", "custom"}


def test_list_testbeds_names_digits16_with_its_description(capsys):
    assert main(["list", "testbeds"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digits16") and "sklearn digits at 16x16" in out


def test_flags_are_not_abbreviated_and_suggestions_ignore_case(capsys):
    assert main(["run", "--method", "noop", "--forget-c", "3"]) == 2
    assert "unrecognized arguments: --forget-c" in capsys.readouterr().err
    assert main(["run", "--method", "SAFEMax", "--out", "/nonexistent/never"]) == 2
    assert "did you mean 'safemax'" in capsys.readouterr().err


def test_every_list_flag_takes_spaces_or_commas():
    parse = build_parser().parse_args
    a = parse(["sweep", "--methods", "safemax", "salun", "--forget", "1", "--seeds", "0", "1"])
    b = parse(["sweep", "--methods", "safemax,salun", "--forget-class", "1", "--seeds", "0,1"])
    assert (a.methods, a.forget, a.seeds) == (b.methods, ["1"], [0, 1]) and b.forget == [1]
    with pytest.raises(UserError, match="--seeds: 'x' is not int"):
        parse(["sweep", "--seeds", "0,x"])


def test_an_unknown_testbed_is_one_line(capsys):
    assert main(["run", "--method", "noop", "--testbed", "digit16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown testbed 'digit16'; did you mean 'digits16'?" in err


def test_the_shipped_scheduler_samples_as_the_runner_does(testbed):
    """diffusers' own DDIM, loaded from the shipped scheduler folder with no override, the runner's initial noise
    and a plain guidance loop give the runner's samples at the papers' guidance (s = 3): the shipped files say
    what the numbers were measured with (per-step clipping off)."""
    from diffusers import DDIMScheduler, UNet2DModel

    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import FORGET_STREAM, draw
    from unlearnbench.testbeds.digits16 import ROOT as SHIPPED

    scheduler = DDIMScheduler.from_pretrained(SHIPPED / "scheduler")
    assert scheduler.config.clip_sample is False
    unet = UNet2DModel.from_pretrained(SHIPPED / "unet").eval()
    labels = torch.arange(10).repeat_interleave(2)
    cond = testbed.conditioner.encode_ids(labels)
    ours = draw(
        testbed.model,
        testbed.schedule,
        cond,
        SamplerSettings(steps=50, guidance_scale=3.0, precision="float32"),
        0,
        FORGET_STREAM,
    )
    x = torch.randn((len(labels), 1, 16, 16), generator=torch.Generator().manual_seed(FORGET_STREAM))
    scheduler.set_timesteps(50)
    null = torch.full_like(labels, 10)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps_c, eps_0 = unet(x, t, class_labels=labels).sample, unet(x, t, class_labels=null).sample
            x = scheduler.step(eps_0 + 3.0 * (eps_c - eps_0), t, x).prev_sample
    assert (x.clamp(-1, 1) - ours).abs().max() < 1e-4


def test_a_saved_model_keeps_the_sampler_unclipped(tmp_path, testbed):
    from unlearnbench.models import save_diffusion

    save_diffusion(testbed.model, testbed.schedule, tmp_path)
    assert json.loads((tmp_path / "scheduler" / "scheduler_config.json").read_text())["clip_sample"] is False


def test_frame_columns_do_not_clash_with_metric_names():
    from unlearnbench import registry
    from unlearnbench.results import SCHEMA

    metrics = {metric for metric, _ in registry.rows()}
    assert not metrics & set(SCHEMA), metrics & set(SCHEMA)
    assert isinstance(pd.DataFrame(columns=list(SCHEMA)), pd.DataFrame)
