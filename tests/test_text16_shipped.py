"""The shipped text16 testbed: both encoders load through open_clip's own API (the registered config, its
tokenizer, the shipped weights) with the network off, their token-embedding entry point gives exactly the token-id
path's states, every shipped file matches the manifest, and bad input on this testbed is one line."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from unlearnbench.cli import main
from unlearnbench.testbeds.text16 import SHIPPED, read_manifest

PROMPTS = ["a crimson sieben in bold strokes", "7", "a picture of a blue nought", ""]


@pytest.fixture
def offline(monkeypatch):
    """Any socket use fails: nothing may be fetched from a hub."""

    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name", ["encoder", "clip_scorer"])
def test_each_shipped_encoder_loads_through_open_clip_and_its_embedding_path_is_exact(name, offline):
    import open_clip

    from unlearnbench.models import sha256_file
    from unlearnbench.testbeds.text16.encoder import MODEL_NAME, WEIGHTS_FILE, TextEncoder, register

    folder = SHIPPED / name
    assert sha256_file(folder / WEIGHTS_FILE) == read_manifest()["files"][f"{name}/{WEIGHTS_FILE}"]
    register()  # the tiny config, registered with open_clip.add_model_config
    clip = open_clip.create_model(MODEL_NAME, pretrained=str(folder / WEIGHTS_FILE)).eval()
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)  # open_clip's BPE vocabulary, shipped in its package
    encoder = TextEncoder(clip).freeze()
    ids = tokenizer(PROMPTS)
    assert torch.equal(ids, encoder.tokenize(PROMPTS))
    with torch.no_grad():
        states = encoder.encode(ids)
        assert torch.equal(encoder.encode_embeds(clip.token_embedding(ids), ids), states)
        assert torch.equal(encoder.pooled(ids), clip.encode_text(ids, normalize=True))
        other = open_clip.create_model(f"local-dir:{folder}").eval()  # open_clip's own local layout
        assert torch.equal(TextEncoder(other).encode(ids), states)


def test_the_two_encoders_are_independent_models():
    from unlearnbench.testbeds.text16.encoder import load_encoder

    manifest = read_manifest()
    assert manifest["recipes"]["encoder"]["seed"] != manifest["recipes"]["clip_scorer"]["seed"]
    a, b = load_encoder(SHIPPED / "encoder"), load_encoder(SHIPPED / "clip_scorer")
    ids = a.tokenize(PROMPTS[:1])
    assert not torch.allclose(a.pooled(ids), b.pooled(ids))
    assert all(v >= 0.95 for v in manifest["zero_shot"]["clip_scorer"].values())


def test_the_shipped_testbed_loads_and_its_manifest_holds_recipes_figures_and_the_vocabulary(offline):
    from unlearnbench.testbeds import default_guidance, load_testbed

    tb = load_testbed("text16")
    manifest = read_manifest()
    assert tb.model_sha == manifest["files"]["unet/unet/diffusion_pytorch_model.safetensors"]
    assert default_guidance("text16") == manifest["sampler"]["guidance_scale"] == 1.0
    assert manifest["parameters"]["unet"] == sum(p.numel() for p in tb.model.parameters())
    assert manifest["training"]["unet"]["steps"] == 12000 and manifest["recipes"]["unet"]["caption_dropout"] == 0.1
    vocabulary = set(manifest["vocabulary"])
    assert {"seven", "sieben", "crimson", "bold"} <= vocabulary and "unicorn" not in vocabulary
    assert json.loads((SHIPPED / "unet" / "scheduler" / "scheduler_config.json").read_text())["clip_sample"] is False


def run_fails(capsys, tmp_path, *args: str) -> str:
    code = main(["run", "--testbed", "text16", "--method", "noop", *args, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    assert not (tmp_path / "s").exists()
    return err


def test_an_unknown_concept_is_one_line_with_the_closest_name_or_synonym(capsys, tmp_path):
    assert "did you mean 'seven'" in run_fails(capsys, tmp_path, "--forget", "sevn")
    assert "did you mean 'scarlet'" in run_fails(capsys, tmp_path, "--forget", "scarlett")


def test_a_concept_forgotten_twice_by_two_of_its_names_is_one_line(capsys, tmp_path):
    assert "forget concepts repeat: ['seven', 'seven']" in run_fails(capsys, tmp_path, "--forget", "seven", "sieben")


def test_forgetting_every_concept_is_one_line(capsys, tmp_path):
    from unlearnbench.testbeds.text16.grammar import load_grammar

    every = [c.id for c in load_grammar().concepts]
    assert "at least one must be retained" in run_fails(capsys, tmp_path, "--forget", *every)


def test_a_prompt_longer_than_the_encoders_context_is_one_line():
    from unlearnbench.errors import UserError
    from unlearnbench.testbeds import load_testbed

    tb = load_testbed("text16")
    with pytest.raises(UserError, match="context") as e:
        tb.conditioner.prompts(["a red seven " * 10])
    assert "\n" not in str(e.value)


def test_an_empty_prompt_set_and_a_concept_the_grammar_cannot_render_are_one_line(tmp_path):
    from unlearnbench.errors import UserError
    from unlearnbench.testbeds.text16.grammar import load_grammar

    grammar = load_grammar()
    with pytest.raises(UserError, match="n >= 1"):
        grammar.prompts("seven", n=0)
    from unlearnbench.testbeds import load_testbed

    with pytest.raises(UserError, match="no prompts given"):
        load_testbed("text16").conditioner.prompts([])
    text = grammar.path and open(grammar.path).read()
    bad = tmp_path / "grammar.toml"
    bad.write_text(text.replace('"a {object} in {style} strokes",', "").replace('"a {style} {colour} {object}",', "")
                   .replace('"a {colour} {object} in {style} strokes",', ""))  # fmt: skip
    with pytest.raises(UserError, match="cannot render the style concept 'thin'"):
        load_grammar(bad).render("thin")


def test_retrain_loads_the_shipped_reference_for_seven_with_its_recorded_cost(offline):
    """The gold standard on text: a UNet trained with the base recipe on every caption that shows no seven."""
    from unlearnbench.api import run_unlearning
    from unlearnbench.registry import get
    from unlearnbench.runner import build_task, resolve
    from unlearnbench.spec import RunSpec
    from unlearnbench.testbeds import load_testbed

    tb = load_testbed("text16")
    record = json.loads((SHIPPED / "references" / "retrain-seven" / "reference.json").read_text())
    assert record["forget_classes"] == ["seven"] and record["base_model_sha"] == tb.model_sha
    assert record["cost"]["steps"] == 12000 and record["cost"]["cpu_s"] > 0
    assert tb.references.has(("seven",)) and not tb.references.has(("one",))
    spec = resolve(RunSpec(method="retrain", forget=("seven",), testbed="text16")).spec
    task = build_task(spec, tb, torch.device("cpu"))
    method = get("method", "retrain")({})
    assert method.shipped(tb.references, ("seven",))
    out = run_unlearning(method, tb.model, task, generator=torch.Generator().manual_seed(0))
    assert type(out.model).__name__ == "UNet2DConditionModel" and out.cost.recorded == 1
    assert out.cost.steps == 12000 and out.cost.wall_s >= record["cost"]["wall_s"]  # the recorded cost, plus the load
    base = dict(tb.model.named_parameters())
    assert any(not torch.equal(p, base[n]) for n, p in out.model.named_parameters())
