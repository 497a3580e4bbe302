"""The text16 text encoder: a tiny open_clip CLIP whose text tower conditions the diffusion UNet.

The CLIP model is open_clip's own (config ``unlearnbench-text16.json``, built with ``open_clip.create_model``); this
module only adds what the benchmark needs around it: a length-checked tokenizer, the per-token states that a UNet
cross-attends to (as CLIP's do in Stable Diffusion), the same states from soft token embeddings (for gradient prompt
attacks), CLIP-score features, resumable contrastive training and sha256-checked safetensors save/load.

``open_clip`` takes seconds to import, so it is imported inside functions only: importing this module does not.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearnbench.errors import Diverged, UserError
from unlearnbench.io import atomic_write
from unlearnbench.models import PICKLE_SUFFIXES, check_safetensors, sha256_file

MODEL_NAME = "unlearnbench-text16"
CONFIG_PATH = Path(__file__).resolve().with_name(f"{MODEL_NAME}.json")
# The names of open_clip's own "local-dir:" layout, so a saved folder also opens with
# open_clip.create_model("local-dir:<folder>").
WEIGHTS_FILE = "open_clip_model.safetensors"
CONFIG_FILE = "open_clip_config.json"
# Images are fed as they are, in [-1, 1]: the equivalent of normalising [0, 1] pixels with mean = std = 0.5.
PREPROCESS_CFG = {"mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "resize_mode": "shortest"}
IMAGE_SHAPE = (3, 16, 16)
MAX_LOGIT_SCALE = math.log(100)  # ln(100): CLIP clamps its temperature there so the logits cannot blow up


def model_config() -> dict[str, Any]:
    """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) that ships with the package."""
    return json.loads(CONFIG_PATH.read_text())


def register() -> None:
    """Make ``MODEL_NAME`` known to open_clip (``open_clip.add_model_config``); calling it again does nothing."""
    import open_clip

    # add_model_config appends a search path and rescans; skip it when the registry already holds this config.
    if open_clip.get_model_config(MODEL_NAME) != model_config():
        open_clip.add_model_config(CONFIG_PATH)


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    register()
    import open_clip

    return open_clip.get_tokenizer(MODEL_NAME)


class _DropRandomInitWarning(logging.Filter):
    """open_clip warns on the root logger that a model built with ``pretrained=None`` is random: that is intended."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextmanager
def _quiet_random_init() -> Iterator[None]:
    root = logging.getLogger()
    f = _DropRandomInitWarning()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


class TextEncoder(nn.Module):
    """An open_clip ``CLIP`` (``self.clip``) seen as a text encoder for cross-attention conditioning."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip
        self.context_length: int = clip.context_length
        self.width: int = clip.token_embedding.embedding_dim

    @property
    def token_embedding(self) -> nn.Embedding:
        """The token table (``.weight`` is [vocab, width]); ``token_embedding(ids)`` gives [B, context, width]."""
        return self.clip.token_embedding

    @property
    def device(self) -> torch.device:
        return self.clip.token_embedding.weight.device

    def tokenize(self, prompts: list[str]) -> Tensor:
        """open_clip's tokenizer, refusing (not truncating) a prompt longer than the context: [B, context] int64."""
        if isinstance(prompts, str):
            raise TypeError("tokenize takes a list of prompts, not one string")
        if not prompts:
            raise UserError("no prompts given: give at least one prompt")
        tok = _tokenizer()
        for p in prompts:
            # open_clip truncates silently; count with its own encode (after its cleaning) plus start and end tokens.
            n = len(tok.encode(p)) + 2
            if n > self.context_length:
                raise UserError(
                    f"prompt {p!r} is {n} tokens, the encoder's context holds {self.context_length} "
                    "(with start and end tokens)"
                )
        return tok(list(prompts)).to(self.device)

    def word_ids(self, words: list[str]) -> list[list[int]]:
        """Each word's BPE token ids (without the start and end tokens)."""
        tok = _tokenizer()
        return [list(tok.encode(w)) for w in words]

    def start_pieces(self, ids: list[int]) -> list[str]:
        """The tokens among ``ids`` that only start a word ("sie" of "sieben"), as the BPE spells them."""
        tok = _tokenizer()
        return [tok.decoder[i] for i in ids if not tok.decoder[i].endswith("</w>")]

    def piece_id(self, piece: str) -> int:
        """The token id of a piece that starts a word ("sie")."""
        return int(_tokenizer().encoder[piece])

    def word_pieces(self, ids: list[int]) -> list[str]:
        """The tokens among ``ids`` that end a word ("ben</w>"), as the words they spell alone ("ben"), where that
        word is exactly that one token again; a token that only starts a word ("sie") is none."""
        tok = _tokenizer()
        pieces = [tok.decoder[i][: -len("</w>")] for i in ids if tok.decoder[i].endswith("</w>")]
        return [
            p
            for p, i in zip(pieces, self.word_ids(pieces), strict=True)
            if len(i) == 1 and tok.decoder[i[0]] == p + "</w>"
        ]

    def _check_ids(self, ids: Tensor) -> None:
        if ids.ndim != 2 or ids.shape[1] != self.context_length or ids.dtype != torch.long:
            raise ValueError(f"token ids must be int64 [B, {self.context_length}], got {ids.dtype} {list(ids.shape)}")

    def encode_embeds(self, embeds: Tensor, ids: Tensor) -> Tensor:
        """Per-token states [B, context, width] after the final layer norm, from token embeddings [B, context, width].

        The same computation as open_clip's ``CLIP.encode_text`` up to ``ln_final``, so ``encode(ids)`` equals
        ``encode_embeds(token_embedding(ids), ids)`` exactly. The causal mask is fixed, so the states depend on
        ``ids`` only through ``embeds``; ``ids`` is checked against ``embeds`` and gives the end-of-text position to
        :meth:`pooled`.
        """
        self._check_ids(ids)
        if embeds.shape != (*ids.shape, self.width):
            raise ValueError(
                f"embeds must be [B, context, width] = {[*ids.shape, self.width]}, got {list(embeds.shape)}"
            )
        clip = self.clip
        cast_dtype = clip.transformer.get_cast_dtype()
        x = embeds.to(cast_dtype) + clip.positional_embedding.to(cast_dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        return clip.ln_final(x)

    def encode(self, ids: Tensor) -> Tensor:
        """Per-token states [B, context, width]: the cross-attention conditioning of the diffusion UNet."""
        return self.encode_embeds(self.token_embedding(ids), ids)

    forward = encode

    def pooled(self, ids: Tensor, embeds: Tensor | None = None) -> Tensor:
        """CLIP's normalised text features [B, embed_dim] (from ``embeds`` instead of ``ids``' own, if given)."""
        from open_clip.transformer import text_global_pool

        clip = self.clip
        x = self.encode_embeds(self.token_embedding(ids) if embeds is None else embeds, ids)
        x = text_global_pool(x, ids, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        if clip.text_projection is not None:
            x = clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection
        return F.normalize(x, dim=-1)

    def image_features(self, images: Tensor) -> Tensor:
        """CLIP's normalised image features [B, embed_dim] of images [B, 3, 16, 16] in [-1, 1]."""
        if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"images must be [B, {', '.join(map(str, IMAGE_SHAPE))}], got {list(images.shape)}")
        return self.clip.encode_image(images, normalize=True)

    def clip_score(self, images: Tensor, ids: Tensor) -> Tensor:
        """Per-pair CLIP score [B]: 100 * max(cos(image, text), 0), as torchmetrics defines it (before its mean)."""
        if images.shape[0] != ids.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {ids.shape[0]} prompts")
        cos = (self.image_features(images) * self.pooled(ids)).sum(dim=-1)
        return 100.0 * cos.clamp(min=0)

    def null_states(self) -> Tensor:
        """The states [1, context, width] of the empty prompt: the null conditioning of classifier-free guidance."""
        return self.encode(self.tokenize([""]))

    def freeze(self) -> TextEncoder:
        """Eval mode, no gradients to the weights (gradients still flow to soft token embeddings)."""
        self.eval().requires_grad_(False)
        return self


def build_encoder(seed: int = 0) -> TextEncoder:
    """A randomly initialised encoder: ``open_clip.create_model(MODEL_NAME, pretrained=None)``, seeded."""
    register()
    import open_clip

    # fork_rng: the seed decides the weights without moving the caller's global RNG.
    with torch.random.fork_rng(devices=[]), _quiet_random_init():
        torch.manual_seed(seed)
        clip = open_clip.create_model(MODEL_NAME, pretrained=None)
    return TextEncoder(clip)


# --- contrastive training -------------------------------------------------------------------------------------------

CaptionsFn = Callable[[torch.Generator, Tensor], list[str]]


def _sidecar(checkpoint_path: Path) -> Path:
    return checkpoint_path.with_name(checkpoint_path.name + ".json")


def _save_checkpoint(
    path: Path, model: TextEncoder, opt: torch.optim.Optimizer, gen: torch.Generator, record: dict[str, Any]
) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.clip.state_dict().items()}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"optim.{i}.{k}"] = v.detach().contiguous()
    tensors["generator"] = gen.get_state()
    atomic_write(path, lambda p: save_file(tensors, str(p)))
    # The json is written second and names the tensors' sha256: a crash between the two writes is detected on
    # resume instead of pairing new tensors with an old step count.
    record = {**record, "tensors_sha256": sha256_file(path)}
    atomic_write(_sidecar(path), lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))


def _load_checkpoint(
    path: Path, model: TextEncoder, opt: torch.optim.Optimizer, gen: torch.Generator, settings: dict[str, Any]
) -> dict[str, Any]:
    from safetensors.torch import load_file

    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise UserError(f"checkpoint {str(path)!r} has no {sidecar.name!r} beside it; delete it to start over")
    record = json.loads(sidecar.read_text())
    if record.get("settings") != settings:
        raise UserError(
            f"checkpoint {str(path)!r} was made with {record.get('settings')}, not {settings}; "
            "use the same settings or delete it to start over"
        )
    if sha256_file(path) != record.get("tensors_sha256"):
        raise UserError(f"checkpoint {str(path)!r} does not match {sidecar.name!r} (interrupted save?); delete both")
    tensors = load_file(str(path))
    model.clip.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state: dict[int, dict[str, Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    # Param groups come from the freshly built optimizer: same settings (checked above), same parameter order.
    opt_state = opt.state_dict()
    opt_state["state"] = state
    opt.load_state_dict(opt_state)
    gen.set_state(tensors["generator"])
    return record


def _param_groups(clip: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """open_clip_train's rule: no weight decay on gains, biases, the temperature and other 1-d parameters."""
    decay, no_decay = [], []
    for name, p in clip.named_parameters():
        skip = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_contrastive(
    model: TextEncoder,
    images: Tensor,
    captions_fn: CaptionsFn,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    warmup: int | None = None,
    weight_decay: float = 0.1,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 200,
    progress: bool = True,
) -> list[float]:
    """CLIP's contrastive training on (image, caption) pairs; returns the loss of every step.

    Each step draws ``batch_size`` distinct images with a ``torch.Generator`` seeded by ``seed`` and asks
    ``captions_fn(generator, indices)`` for their captions (so captions can be redrawn, e.g. with synonyms, using the
    same generator). AdamW, linear warm-up (``warmup`` steps, default a tenth) then cosine decay, gradient norm
    clipped at 1.0, open_clip's ``ClipLoss``. With ``checkpoint_path`` (a ``.safetensors`` file, plus a ``.json``
    beside it) the model, optimizer, step and generator are saved every ``checkpoint_every`` steps and at the end,
    and a later call with the same settings resumes from there bit for bit.
    """
    from open_clip import ClipLoss

    from unlearnbench.progress import bar
    from unlearnbench.training import lr_factor

    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"images must be [N, {', '.join(map(str, IMAGE_SHAPE))}], got {list(images.shape)}")
    if steps < 1 or batch_size < 2 or checkpoint_every < 1:
        raise UserError(
            f"need steps >= 1, batch_size >= 2, checkpoint_every >= 1 (got {steps}, {batch_size}, {checkpoint_every})"
        )
    n = images.shape[0]
    batch = min(batch_size, n)
    warmup = steps // 10 if warmup is None else warmup
    settings = {
        "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "warmup": warmup,
        "weight_decay": weight_decay, "images": list(images.shape),
    }  # fmt: skip

    clip = model.clip
    clip.requires_grad_(True)
    opt = torch.optim.AdamW(_param_groups(clip, weight_decay), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = ClipLoss()
    losses: list[float] = []
    start = 0
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and path.exists():
        record = _load_checkpoint(path, model, opt, gen, settings)
        start, losses = record["step"], record["losses"]

    clip.train()
    steps_iter = range(start, steps)
    for step in bar(steps_iter, desc="contrastive") if progress else steps_iter:
        idx = torch.randperm(n, generator=gen)[:batch]
        captions = captions_fn(gen, idx)
        if len(captions) != batch:
            raise ValueError(f"captions_fn gave {len(captions)} captions for {batch} images")
        ids = model.tokenize(captions)
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(step, steps, warmup, "cosine")
        image_f, text_f, logit_scale = clip(images[idx].to(model.device), ids)
        loss = loss_fn(image_f, text_f, logit_scale)
        if not torch.isfinite(loss):
            raise Diverged(f"contrastive loss is {float(loss)} at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        losses.append(float(loss.detach()))
        done = step + 1
        if path is not None and (done % checkpoint_every == 0 or done == steps):
            _save_checkpoint(path, model, opt, gen, {"step": done, "losses": losses, "settings": settings})
    clip.eval()
    return losses


# --- save and load --------------------------------------------------------------------------------------------------


def save_encoder(model: TextEncoder, folder: str | os.PathLike[str]) -> str:
    """Write the weights (safetensors) and the open_clip config into ``folder``; return the weights' sha256.

    The folder is in open_clip's ``local-dir:`` layout.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.clip.state_dict().items()}
    config = {"model_cfg": model_config(), "preprocess_cfg": PREPROCESS_CFG}
    atomic_write(folder / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=1) + "\n"))
    atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(weights, str(p), metadata={"model": MODEL_NAME}))
    return sha256_file(folder / WEIGHTS_FILE)


def load_encoder(folder: str | os.PathLike[str], expected_sha256: str | None = None) -> TextEncoder:
    """Load a saved encoder through open_clip (``create_model(MODEL_NAME, pretrained=<safetensors>)``), frozen.

    Refuses pickle checkpoints, a config other than this package's, and weights whose sha256 is not
    ``expected_sha256`` (when given).
    """
    folder = Path(folder)
    if folder.suffix in PICKLE_SUFFIXES:
        raise UserError(f"{folder}: pickle checkpoints are refused (they can run code); give a save_encoder folder")
    if not folder.is_dir():
        raise UserError(f"text encoder folder {str(folder)!r} does not exist")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        found = f" (found {', '.join(pickles)}: pickle checkpoints are refused)" if pickles else ""
        raise UserError(f"text encoder folder {str(folder)!r} has no {WEIGHTS_FILE}{found}")
    if expected_sha256 is not None:
        actual = sha256_file(weights)
        if actual != expected_sha256:
            raise UserError(
                f"{weights}: sha256 {actual[:12]}… does not match the recorded {expected_sha256[:12]}…; "
                "the file is corrupt or was replaced"
            )
    config_file = folder / CONFIG_FILE
    try:
        saved_cfg = json.loads(config_file.read_text()).get("model_cfg")
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{config_file}: not a readable open_clip config ({e})") from None
    if saved_cfg != model_config():
        raise UserError(f"{config_file}: the encoder was saved with another architecture than {MODEL_NAME!r}")
    check_safetensors(weights)  # one-line errors for a truncated or corrupt file

    register()
    import open_clip

    try:
        clip = open_clip.create_model(MODEL_NAME, pretrained=str(weights))
    except RuntimeError as e:  # strict state-dict loading: missing or unexpected keys, wrong shapes
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise UserError(f"{weights}: does not fit {MODEL_NAME!r} ({first})") from None
    return TextEncoder(clip).freeze()


def parameter_counts(model: TextEncoder) -> dict[str, int]:
    """Parameters of the text tower (with its token table), the token table alone, and the vision tower."""
    clip = model.clip
    vision = sum(p.numel() for p in clip.visual.parameters())
    total = sum(p.numel() for p in clip.parameters())
    return {
        "total": total,
        "text": total - vision - clip.logit_scale.numel(),
        "token_table": clip.token_embedding.weight.numel(),
        "vision": vision,
    }
