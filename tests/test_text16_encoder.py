"""The text16 text encoder: open_clip's tiny CLIP as a cross-attention conditioner, trained contrastively."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from unlearnbench.errors import UserError
from unlearnbench.testbeds.text16.encoder import (
    WEIGHTS_FILE,
    TextEncoder,
    build_encoder,
    load_encoder,
    parameter_counts,
    register,
    save_encoder,
    train_contrastive,
)

PROMPTS = ["a red seven", "blue 3 on green", ""]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Bit-exact comparisons hold within one thread count; one thread also keeps the shared CPUs free.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return build_encoder(seed=0).freeze()


def squares(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy 3x16x16 squares in [-1, 1], alternately red (label 0) and blue (label 1)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.full((n, 3, 16, 16), -1.0)
    colour = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])[labels]  # [n, 3]: red or blue
    images[:, :, 4:12, 4:12] = colour[:, :, None, None]
    images += 0.2 * torch.randn(images.shape, generator=g)
    return images.clamp(-1, 1), labels


def colour_captions(labels: torch.Tensor):
    words = (("red", "a red square", "crimson"), ("blue", "a blue square", "navy"))

    def captions(gen: torch.Generator, idx: torch.Tensor) -> list[str]:
        pick = torch.randint(0, 3, (len(idx),), generator=gen)  # synonyms redrawn every step
        return [words[int(labels[i])][int(j)] for i, j in zip(idx, pick, strict=True)]

    return captions


def test_import_does_not_import_open_clip():
    code = "import unlearnbench.testbeds.text16.encoder, sys; assert 'open_clip' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_register_is_idempotent():
    import open_clip
    from open_clip import factory

    register()
    paths = len(factory._MODEL_CONFIG_PATHS)
    register()
    assert len(factory._MODEL_CONFIG_PATHS) == paths
    assert open_clip.list_models().count("unlearnbench-text16") == 1


def test_shapes_and_parameter_counts(encoder):
    ids = encoder.tokenize(PROMPTS)
    assert ids.shape == (3, 16) and ids.dtype == torch.long
    assert encoder.encode(ids).shape == (3, 16, 64)
    assert encoder.pooled(ids).shape == (3, 64)
    assert torch.allclose(encoder.pooled(ids).norm(dim=-1), torch.ones(3))
    assert encoder.token_embedding.weight.shape == (49408, 64)
    counts = parameter_counts(encoder)
    assert counts["token_table"] == 49408 * 64
    assert 3_000_000 < counts["text"] < 3_500_000 and counts["vision"] < 200_000


def test_tokenize_refuses_too_long_and_empty(encoder):
    encoder.tokenize(["one two three four five six seven eight nine ten eleven twelve thirteen fourteen"])  # 14 + 2
    with pytest.raises(UserError, match=r"is 17 tokens, the encoder's context holds 16 \(with start and end tokens\)"):
        encoder.tokenize(["ok", "one two three four five six seven eight nine ten eleven twelve thirteen fourteen x"])
    with pytest.raises(UserError, match="no prompts"):
        encoder.tokenize([])


def test_encode_embeds_equals_encode_and_takes_gradients(encoder):
    ids = encoder.tokenize(PROMPTS)
    embeds = encoder.token_embedding(ids).detach().requires_grad_(True)
    states = encoder.encode_embeds(embeds, ids)
    assert torch.equal(states, encoder.encode(ids))
    states.square().sum().backward()  # a soft-token attack optimises embeds through the frozen encoder
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_matches_open_clips_own_outputs(encoder):
    ids = encoder.tokenize(PROMPTS)
    images = squares(4)[0][:3]
    clip = encoder.clip
    with torch.no_grad():
        out = clip.forward_intermediates(
            text=ids, text_indices=1, normalize_intermediates=True, intermediates_only=True
        )
        assert torch.equal(encoder.encode(ids), out["text_intermediates"][-1])
        assert torch.equal(encoder.pooled(ids), clip.encode_text(ids, normalize=True))
        assert torch.equal(encoder.image_features(images), clip.encode_image(images, normalize=True))
        cos = (clip.encode_image(images, normalize=True) * clip.encode_text(ids, normalize=True)).sum(-1)
        assert torch.allclose(encoder.clip_score(images, ids), 100 * cos.clamp(min=0))
        assert torch.equal(encoder.null_states(), encoder.encode(ids[2:]))
        assert not torch.equal(encoder.null_states(), encoder.encode(ids[:1]))


def test_save_load_round_trip_through_open_clip(encoder, tmp_path):
    import open_clip

    sha = save_encoder(encoder, tmp_path / "enc")
    loaded = load_encoder(tmp_path / "enc", expected_sha256=sha)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    ids = encoder.tokenize(PROMPTS)
    with torch.no_grad():
        assert torch.equal(loaded.encode(ids), encoder.encode(ids))
        assert torch.equal(loaded.pooled(ids), encoder.pooled(ids))
        # The folder is open_clip's own "local-dir:" layout too: the same weights, bit for bit. open_clip builds its
        # own modules around them, whose kernels may order a sum differently on another CPU (1 ulp on an AMD EPYC):
        # the outputs agree to float32 rounding, not bitwise.
        other = open_clip.create_model(f"local-dir:{tmp_path / 'enc'}").eval()
        mine = encoder.clip.state_dict()
        assert mine.keys() == other.state_dict().keys()
        assert all(torch.equal(v, mine[k]) for k, v in other.state_dict().items())
        torch.testing.assert_close(TextEncoder(other).encode(ids), encoder.encode(ids), rtol=1e-5, atol=1e-5)

    with pytest.raises(UserError, match="does not match the recorded"):
        load_encoder(tmp_path / "enc", expected_sha256="0" * 64)
    (tmp_path / "pickled").mkdir()
    torch.save(encoder.clip.state_dict(), tmp_path / "pickled" / "model.pt")
    with pytest.raises(UserError, match="pickle checkpoints are refused"):
        load_encoder(tmp_path / "pickled")
    with pytest.raises(UserError, match="pickle checkpoints are refused"):
        load_encoder(tmp_path / "pickled" / "model.pt")
    (tmp_path / "enc" / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_encoder(tmp_path / "enc")


def test_training_resumes_bit_for_bit(tmp_path):
    images, labels = squares(16)
    kwargs = dict(steps=6, batch_size=8, lr=1e-3, seed=3, progress=False)

    whole = build_encoder(seed=1)
    losses = train_contrastive(whole, images, colour_captions(labels), **kwargs)

    calls = 0
    captions = colour_captions(labels)

    def crash_after_three(gen, idx):
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt  # a kill after the checkpoint of step 3
        return captions(gen, idx)

    ckpt = tmp_path / "ckpt.safetensors"
    first = build_encoder(seed=1)
    with pytest.raises(KeyboardInterrupt):
        train_contrastive(first, images, crash_after_three, checkpoint_path=ckpt, checkpoint_every=3, **kwargs)
    # A fresh process would build a differently seeded model: the checkpoint must overwrite it all.
    resumed = build_encoder(seed=2)
    resumed_losses = train_contrastive(resumed, images, captions, checkpoint_path=ckpt, checkpoint_every=3, **kwargs)

    assert resumed_losses == losses
    a, b = whole.clip.state_dict(), resumed.clip.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # A finished checkpoint returns at once; other settings are refused rather than mixed in.
    assert train_contrastive(build_encoder(seed=2), images, captions, checkpoint_path=ckpt, **kwargs) == losses
    with pytest.raises(UserError, match="was made with"):
        train_contrastive(build_encoder(), images, captions, checkpoint_path=ckpt, **{**kwargs, "lr": 2e-3})


def test_contrastive_training_matches_colours_to_captions():
    images, labels = squares(256)
    encoder = build_encoder(seed=0)
    losses = train_contrastive(encoder, images, colour_captions(labels), steps=40, batch_size=32, lr=2e-3, seed=0,
                               progress=False)  # fmt: skip
    assert sum(losses[-5:]) < sum(losses[:5])
    encoder.freeze()
    test_images, test_labels = squares(32, seed=1)
    with torch.no_grad():
        text = encoder.pooled(encoder.tokenize(["red", "blue"]))
        sims = encoder.image_features(test_images) @ text.T  # [32, 2]
    matching = sims[torch.arange(32), test_labels]
    mismatched = sims[torch.arange(32), 1 - test_labels]
    assert (matching > mismatched).all(), matching - mismatched
