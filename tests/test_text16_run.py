"""text16 end to end on a small stand-in build folder made here (two training steps of every part): the testbed
loads through its plugin, every run reads concepts by their names and synonyms, bad input is one line, the judges
read each image within its concept's family, and ``testbed check`` runs its text probes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from unlearnbench.cli import main

SMOKE = ["--forget-samples", "4", "--retain-samples", "1", "--curve-samples", "2", "--sample-steps", "2"]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """A build folder in the shipped layout: two steps of each encoder, a narrow UNet and every judge."""
    from unlearnbench.testbeds.text16 import JUDGES
    from unlearnbench.testbeds.text16.build import ENCODER, UNET, train_encoder, train_judge, train_unet

    out = tmp_path_factory.mktemp("text16-build")
    for name, seed in (("encoder", 0), ("clip_scorer", 1)):
        train_encoder(replace(ENCODER, seed=seed, batch_size=8), out / name, steps=2, progress=False)
    narrow = replace(UNET, block_out_channels=(8, 16), attention_head_dim=2, batch_size=4, warmup=1)
    train_unet(narrow, out / "encoder", out / "unet", steps=2)
    for name in JUDGES:
        train_judge(name, out / "judges", steps=2)
    return out


@pytest.fixture(scope="module")
def bed(build):
    from unlearnbench.testbeds import load_testbed

    return load_testbed("text16", model=str(build))


def test_the_testbed_loads_from_a_build_folder_with_names_and_synonyms(bed):
    assert bed.name == "text16" and len(bed.concepts) == 21 and bed.concepts[:2] == ("zero", "one")
    assert type(bed.model).__name__ == "UNet2DConditionModel" and bed.conditioner.kind == "tokens"
    assert (
        bed.concept("7") == "seven"
        and bed.concept("Crimson") == "red"
        and bed.check_forget(["7", "bold"])
        == (
            "seven",
            "bold",
        )
    )
    assert bed.clip_scorer is not None and bed.clip_scorer_sha != bed.model_sha


def test_evaluation_spreads_a_concepts_samples_over_its_canonical_prompts(bed):
    cond = bed.conditioner.draws(["seven", "red"], 6)
    assert len(cond) == 12 and cond.concepts.tolist() == [7] * 6 + [10] * 6
    prompts = bed.grammar.prompts("seven", "canonical", n=6)
    assert torch.equal(cond.values[:6], bed.conditioner.states(prompts))
    assert len({tuple(v.flatten().tolist()) for v in cond.values[:6]}) == 6  # six different prompts


def test_the_judge_reads_each_image_within_its_concepts_family(bed):
    from unlearnbench.testbeds.text16.data import paint
    from unlearnbench.testbeds.text16.judge import OUTSIDE

    data = bed.text.take(bed.text.test)
    red = data.take((data.colour == 0).nonzero()[:8, 0])
    meant = torch.full((8,), bed.conditioner.index("red"))
    logits = bed.evaluator(red.images, meant)
    assert logits.shape == (8, 22) and (logits.argmax(-1) == meant).all()  # colour is exact from the pixels
    colours = [bed.conditioner.index(c.id) for c in bed.grammar.family("colour")]
    outside = [i for i in range(21) if i not in colours]
    assert (logits[:, outside] == OUTSIDE).all() and torch.isfinite(logits).all()
    probs = logits.softmax(-1)
    assert torch.allclose(probs[:, colours].sum(-1) + probs[:, -1], torch.ones(8))
    # the same images meant as a digit are read over the ten digits and "none" only
    as_digit = bed.evaluator(red.images, torch.full((8,), 7))
    assert (as_digit[:, 10:21] == OUTSIDE).all() and (as_digit[:, :10] > OUTSIDE).all()
    # orange ink is read as orange, not red: the palette's closest pair
    orange = paint(torch.ones(1, 1, 16, 16), torch.tensor([1]))
    assert bed.evaluator(orange, torch.tensor([10])).argmax(-1).item() == bed.conditioner.index("orange")
    with pytest.raises(ValueError, match="within the family"):
        bed.evaluator(red.images)


def test_the_main_command_runs_on_text16_for_an_object_and_a_colour(build, tmp_path, capsys):
    store = tmp_path / "store"
    args = ["run", "--testbed", "text16", "--model", str(build), "--method", "safemax", "--attack", "relearn"]
    smoke = ["--method-args", '{"steps": 2, "batch_size": 4}', "--attack-args", '{"steps": 2, "curve_steps": [1]}']
    assert main([*args, "--forget", "7", *smoke, *SMOKE, "--out", str(store)]) == 0
    assert main([*args, "--forget", "crimson", *smoke, *SMOKE, "--out", str(store)]) == 0
    rows = pd.concat(pd.read_parquet(p) for p in (store / "runs").glob("*.parquet"))
    assert set(rows.forget_concept) == {"seven", "red"} and set(rows.testbed) == {"text16"}
    ua = rows[(rows.metric == "unlearning_accuracy_11way") & (rows.phase == "unlearned")]
    assert len(ua) == 2 and ua.value.between(0, 1).all()
    err = capsys.readouterr().err
    assert "forget seven, testbed text16" in err and "forget red, testbed text16" in err


def test_a_synonym_is_the_same_run_as_the_concepts_id(build, tmp_path, capsys):
    args = ["run", "--testbed", "text16", "--model", str(build), "--method", "noop", *SMOKE]
    assert main([*args, "--forget", "seven", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--forget", "sieben", "--out", str(tmp_path / "b")]) == 0
    names = [sorted(p.name for p in (tmp_path / s / "runs").glob("*.json")) for s in "ab"]
    assert names[0] == names[1] and len(names[0]) == 1
    spec = json.loads((tmp_path / "b" / "runs" / names[1][0]).read_text())["spec"]
    assert spec["forget"] == ["seven"]


@pytest.mark.parametrize(
    ("forget", "expect"),
    [
        (["sevn"], "did you mean 'seven'"),
        (["crimsn"], "did you mean 'crimson'"),
        (["seven", "7"], "forget concepts repeat"),
    ],
)
def test_bad_concepts_are_one_line_and_write_nothing(build, tmp_path, capsys, forget, expect):
    code = main(["run", "--testbed", "text16", "--model", str(build), "--method", "noop", "--forget", *forget,
                 "--out", str(tmp_path / "s")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and expect in err, err
    assert not (tmp_path / "s").exists()


def test_testbed_check_measures_the_text_probes(bed):
    from unlearnbench.api import SamplerSettings
    from unlearnbench.testbed_check import probe_checks

    checks = {c.name.split(" (")[0]: c for c in probe_checks(bed, 10, SamplerSettings(steps=2, guidance_scale=3.0), 0)}
    assert set(checks) == {
        "digit_accuracy",
        "heldout_digit_accuracy",
        "heldout_digit_accuracy_worst",
        "composition_accuracy",
        "colour_accuracy",
        "style_accuracy",
    }
    assert all(0 <= c.value <= 1 for c in checks.values())
    assert checks["digit_accuracy"].bar == (">=", 0.95) and checks["heldout_digit_accuracy_worst"].bar == (">=", 0.9)
    assert checks["heldout_digit_accuracy_worst"].value <= checks["heldout_digit_accuracy"].value


def test_shipping_a_build_records_every_file_and_a_changed_file_is_refused(build, tmp_path, capsys):
    from unlearnbench.testbeds.text16 import read_manifest
    from unlearnbench.testbeds.text16.build import ship

    manifest = ship(build, guidance=2.0, destination=tmp_path / "model")
    assert read_manifest(tmp_path / "model") == manifest and manifest["sampler"] == {"guidance_scale": 2.0}
    assert len(manifest["files"]) == 8 and all(len(sha) == 64 for sha in manifest["files"].values())
    assert manifest["parameters"]["encoder"]["token_table"] == 49408 * 64 and manifest["parameters"]["unet"] > 0
    assert "sieben" in manifest["vocabulary"] and manifest["concepts"]["seven"]["family"] == "object"
    args = ["run", "--testbed", "text16", "--model", str(tmp_path / "model"), "--method", "noop", "--forget", "one"]
    assert main([*args, *SMOKE, "--out", str(tmp_path / "s")]) == 0
    weights = tmp_path / "model" / "judges" / "evaluator.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    from unlearnbench.testbeds import load_testbed

    load_testbed.cache_clear()
    assert main([*args, "--seed", "1", *SMOKE, "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "evaluator.safetensors" in err and "sha256" in err and not (tmp_path / "t").exists()


def test_a_shipped_prior_enters_the_manifest_and_a_reship_keeps_it_only_while_its_bytes_match(build, tmp_path, capsys):
    import torch

    from unlearnbench.cost import CostMeter
    from unlearnbench.priors import TENSORS, PriorCache
    from unlearnbench.testbeds.text16 import read_manifest
    from unlearnbench.testbeds.text16.build import ship, ship_priors

    destination = tmp_path / "model"
    base = ship(build, guidance=2.0, destination=destination)["files"]["unet/unet/diffusion_pytorch_model.safetensors"]
    cache = tmp_path / "store" / "cache" / "priors"
    for model_sha in (base, "another model"):
        meter = CostMeter()
        with meter.measure():
            PriorCache(cache, model_sha).get("selective_amnesia", {"n": 1}, lambda m: {"w": torch.ones(2)}, meter)
    (name,) = ship_priors(cache, destination=destination)
    assert "made from another base model" in capsys.readouterr().out
    rel = f"priors/{name}/{TENSORS}"
    assert rel in read_manifest(destination)["files"]
    assert rel in ship(build, guidance=2.0, destination=destination)["files"]  # a re-ship keeps it
    (destination / rel).write_bytes((destination / rel).read_bytes() + b"\0")
    assert rel not in ship(build, guidance=2.0, destination=destination)["files"]  # not with other bytes
    assert "not the one the manifest recorded" in capsys.readouterr().out
