"""The text16 encoders' recipe: trained contrastively here, resumable, saved through open_clip, scored zero-shot."""

from __future__ import annotations

import json
from dataclasses import replace

from unlearnbench.cli import main
from unlearnbench.testbeds.text16.build import ENCODER, train_encoder, zero_shot
from unlearnbench.testbeds.text16.data import make_data


def test_an_encoder_trains_resumes_and_reads_the_concepts_zero_shot(tmp_path):
    recipe = replace(ENCODER, batch_size=8)
    sha = train_encoder(recipe, tmp_path / "enc", steps=3, progress=False)
    assert sha == train_encoder(recipe, tmp_path / "enc", steps=3, progress=False)  # a finished run resumes as is
    assert json.loads((tmp_path / "enc" / "recipe.json").read_text())["steps"] == 3
    from unlearnbench.testbeds.text16.encoder import load_encoder

    data = make_data()
    scores = zero_shot(load_encoder(tmp_path / "enc", expected_sha256=sha), data.take(data.test[:]).take(slice(0, 32)))
    assert set(scores) == {"digit", "colour", "style"} and all(0.0 <= v <= 1.0 for v in scores.values())


def test_text16_says_in_one_line_what_a_build_folder_lacks(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    given = ["run", "--method", "noop", "--testbed", "text16", "--model", str(tmp_path / "empty")]
    assert main([*given, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lacks encoder/open_clip_model.safetensors" in err
    assert main(["pretrain", "--testbed", "text16", "--what", "judges", "--out", str(tmp_path / "u")]) == 2
    assert "the text16 testbed builds encoder, clip_scorer, unet, retrain, evaluator" in capsys.readouterr().err
    assert main(["pretrain", "--testbed", "text16", "--what", "unet", "--out", str(tmp_path / "u")]) == 2
    assert "no trained encoder in" in capsys.readouterr().err
    assert main(["pretrain", "--testbed", "text16", "--ship", "--out", str(tmp_path / "u")]) == 2
    assert "give --out BUILD_DIR and --guidance S" in capsys.readouterr().err
    assert main(["pretrain", "--testbed", "text16", "--what", "prior"]) == 2
    assert "give --ship and --cache STORE/cache/priors" in capsys.readouterr().err
    assert main(["pretrain", "--testbed", "text16", "--what", "prior", "--ship", "--cache", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.strip().endswith("(a store's cache/priors folder, or one prior's folder in it)")
    assert not (tmp_path / "s").exists() and not (tmp_path / "u").exists()


def test_the_unet_trains_on_encoded_captions_resumes_and_saves_a_diffusers_folder(tmp_path):
    """Two steps of a narrow UNet on a random encoder's captions; resumed from its checkpoint it is the same."""
    import torch

    from unlearnbench.models import load_diffusion
    from unlearnbench.testbeds.text16.build import UNET, train_unet
    from unlearnbench.testbeds.text16.encoder import build_encoder, save_encoder

    save_encoder(build_encoder(0), tmp_path / "encoder")
    recipe = replace(UNET, block_out_channels=(8, 16), attention_head_dim=2, batch_size=4, warmup=1)
    first = train_unet(recipe, tmp_path / "encoder", tmp_path / "unet", steps=2)
    again = train_unet(recipe, tmp_path / "encoder", tmp_path / "unet", steps=2)  # the finished state, read back
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True))
    model, schedule, sha = load_diffusion(tmp_path / "unet")
    assert type(model).__name__ == "UNet2DConditionModel" and model.config.cross_attention_dim == 64
    assert schedule.config.clip_sample is False and len(sha) == 64


def test_listing_the_testbeds_does_not_import_open_clip():
    """open_clip (3 s, and transformers where installed) is imported when a text testbed is used, not before."""
    import subprocess
    import sys

    code = (
        "import sys, unlearnbench.cli; from unlearnbench import registry; registry.names('testbed'); "
        "assert 'open_clip' not in sys.modules, 'open_clip imported'"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_every_judge_trains_saves_and_reports_its_figures(tmp_path):
    from unlearnbench.models import load_classifier
    from unlearnbench.testbeds.text16.build import judge_recipes, train_judge

    for name, (recipe, _reads) in judge_recipes().items():
        figures = train_judge(name, tmp_path, steps=2)
        assert set(figures) == {"accuracy", "gaussian_none", "training_seconds", "threads"}
        assert 0 <= figures["accuracy"] <= 1 and 0 <= figures["gaussian_none"] <= 1 and figures["training_seconds"] > 0
        judge = load_classifier(tmp_path / f"{name}.safetensors")
        assert judge.arch.channels == 3 and judge.arch.num_outputs == recipe.arch.num_outputs
    assert judge_recipes()["style_judge"][1] == "style" and judge_recipes()["evaluator"][0].arch.num_outputs == 11
