"""Checkpoints: building, saving and safely loading diffusion models and classifiers.

Weights are read from safetensors only; pickle checkpoints are refused. Every file with a recorded
sha256 is checked before use.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from unlearnbench.errors import UserError
from unlearnbench.io import sha256_file

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def verify_sha256(path: str | os.PathLike[str], expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise UserError(
            f"{path}: sha256 {actual[:12]}… does not match the recorded {expected[:12]}…; the file is "
            "corrupt or was replaced (reinstall unlearnbench, or rebuild it with 'unlearnbench pretrain')"
        )


def check_safetensors(path: str | os.PathLike[str]) -> None:
    """One-line errors for a missing, pickled, truncated or corrupt weights file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise UserError(f"{path}: pickle checkpoints are refused (they can run code); convert it to safetensors")
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_slice(key)
        # safe_open reads the header only; a truncated body shows up when the data is mapped.
        from safetensors.torch import load_file

        load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


def _first_lines(e: BaseException) -> str:
    """The gist of a multi-line error on one line (torch's state-dict errors say what only on line 2)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else type(e).__name__)
    return text if len(text) <= 300 else text[:299] + "…"


def check_finite(model: torch.nn.Module, source: str | os.PathLike[str]) -> None:
    """Weights holding NaN or infinity would be scored as a model; refuse them."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(
                f"{source}: weight {name!r} holds {bad} non-finite value(s) (NaN or infinity); "
                "the checkpoint is broken (was it saved after a diverged training?)"
            )


def check_loading_info(info: dict[str, list], weights: str | os.PathLike[str]) -> None:
    """Missing or unexpected keys mean the file holds another network's weights (diffusers only warns and
    initialises the missing ones at random): refuse it."""
    missing, unexpected = list(info.get("missing_keys", [])), list(info.get("unexpected_keys", []))
    mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", [])]
    if missing or unexpected or mismatched:
        parts = [
            f"{len(keys)} {what} (e.g. {sorted(keys)[0]!r})"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched))
            if keys
        ]
        raise UserError(
            f"{weights}: the weights do not fit the model's config.json: {', '.join(parts)} keys; "
            "it holds another network's weights"
        )


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """Silence diffusers' loading warnings for one call (we raise on what they would report)."""
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)


# ---------------------------------------------------------------------------------------------
# Diffusion models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UNetArch:
    """The shape of a class-conditional UNet2DModel (one extra class embedding is the null class)."""

    sample_size: int = 16
    channels: int = 1
    num_classes: int = 10
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = True
    norm_num_groups: int = 8
    # "time": diffusers' UNet2DModel (class embedding added to the time embedding); "block_mlp": the
    # class through its own MLP into every ResNet block (unlearnbench.unets.ClassMLPUNet, as upstream).
    conditioning: str = "time"
    dropout: float = 0.0

    def build(self) -> UNet2DModel:
        depth = len(self.block_out_channels)
        last_down = "AttnDownBlock2D" if self.attention else "DownBlock2D"
        first_up = "AttnUpBlock2D" if self.attention else "UpBlock2D"
        if self.conditioning not in ("time", "block_mlp"):
            raise ValueError(f"unknown conditioning {self.conditioning!r} (known: time, block_mlp)")
        from unlearnbench.unets import ClassMLPUNet

        # ClassMLPUNet has UNet2DModel's call signature and config keys: one set of arguments builds either.
        cls = ClassMLPUNet if self.conditioning == "block_mlp" else UNet2DModel
        return cls(  # type: ignore[return-value]
            sample_size=self.sample_size,
            in_channels=self.channels,
            out_channels=self.channels,
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block,
            down_block_types=("DownBlock2D",) * (depth - 1) + (last_down,),
            up_block_types=(first_up,) + ("UpBlock2D",) * (depth - 1),
            num_class_embeds=self.num_classes + 1,
            norm_num_groups=self.norm_num_groups,
            attention_head_dim=8,
            dropout=self.dropout,
        )


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"


def save_diffusion(model: UNet2DModel, schedule: DDPMScheduler, directory: str | os.PathLike[str]) -> None:
    """diffusers layout: ``DIR/unet`` (config + safetensors) and ``DIR/scheduler``. The scheduler is saved with
    ``clip_sample`` off, as every number here is sampled (diffusers' DDIM loaded from it then samples as the
    runner does; per-step clipping at s = 3 turns digits into other digits)."""
    directory = Path(directory)
    model.save_pretrained(directory / "unet", safe_serialization=True)
    type(schedule).from_config(schedule.config, clip_sample=False).save_pretrained(directory / "scheduler")


def _local_layout(directory: Path) -> tuple[Path, Path]:
    unet_dir = directory / "unet" if (directory / "unet").is_dir() else directory
    for candidate in (directory / "scheduler" / "scheduler_config.json", directory / "scheduler_config.json"):
        if candidate.is_file():
            return unet_dir, candidate
    raise UserError(
        f"{directory}: no scheduler config (expected scheduler/scheduler_config.json); "
        "save the model with its DDPMScheduler"
    )


def unet_class(unet_dir: Path) -> type[UNet2DModel]:
    """The model class a saved config names (``_class_name``): diffusers' ``UNet2DModel`` (class-conditional),
    ``UNet2DConditionModel`` (cross-attention: text testbeds) or the project's ``ClassMLPUNet``."""
    try:
        name = json.loads((unet_dir / "config.json").read_text()).get("_class_name", "UNet2DModel")
    except (OSError, json.JSONDecodeError):
        return UNet2DModel  # from_pretrained reports the missing or broken config
    if name == "ClassMLPUNet":
        from unlearnbench.unets import ClassMLPUNet

        return ClassMLPUNet  # type: ignore[return-value]
    if name == "UNet2DConditionModel":
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel  # type: ignore[return-value]
    return UNet2DModel


def load_unet(unet_dir: Path, *, expected_sha256: str | None = None) -> UNet2DModel:
    """A UNet folder (config and safetensors), with every check a loaded model gets (``--model``, a cached
    unlearned model): no pickles, a well-formed safetensors file, the expected sha256 when one is recorded, every
    weight present and used, every weight finite. Anything wrong is one :class:`UserError` line."""
    weights = unet_dir / UNET_WEIGHTS
    if not weights.is_file():
        pickles = [p.name for p in unet_dir.iterdir() if p.suffix in PICKLE_SUFFIXES] if unet_dir.is_dir() else []
        if pickles:
            raise UserError(
                f"{unet_dir}: only pickle weights ({', '.join(pickles)}); pickle checkpoints are refused, "
                "save the model with safe_serialization=True"
            )
        raise UserError(f"{unet_dir}: missing {UNET_WEIGHTS}")
    check_safetensors(weights)
    if expected_sha256 is not None:
        verify_sha256(weights, expected_sha256)
    try:
        with _quiet_diffusers():  # its missing/unexpected-key warnings become our one-line error
            model, info = unet_class(unet_dir).from_pretrained(
                str(unet_dir), use_safetensors=True, low_cpu_mem_usage=False, output_loading_info=True
            )
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        raise UserError(f"{unet_dir}: cannot load the model ({_first_lines(e)})") from None
    check_loading_info(info, weights)
    check_finite(model, weights)
    return model.eval()


def load_diffusion(
    source: str | os.PathLike[str], *, expected_sha256: str | None = None, allow_hub: bool = True
) -> tuple[UNet2DModel, DDPMScheduler, str]:
    """Load ``(unet, schedule, weights_sha256)`` from a local diffusers directory or a hub id.

    A hub id (``owner/name``) is tried only when no local directory of that name exists, and
    offline it fails with one line.
    """
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{path}: expected a diffusers model directory, got a file")
        unet_dir, sched_file = _local_layout(path)
        model = load_unet(unet_dir, expected_sha256=expected_sha256)
        try:
            schedule = DDPMScheduler.from_pretrained(str(sched_file.parent))
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: cannot load the model ({_first_lines(e)})") from None
        return model, schedule, sha256_file(unet_dir / UNET_WEIGHTS)
    if not allow_hub or str(source).count("/") != 1 or str(source).startswith((".", "/")):
        raise UserError(f"model {str(source)!r}: no such directory")
    return _load_from_hub(str(source))


def _load_from_hub(repo_id: str) -> tuple[UNet2DModel, DDPMScheduler, str]:
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"])
    except Exception as e:  # hub errors vary (offline, 404, auth); all mean "could not fetch it"
        raise UserError(
            f"could not download model {repo_id!r} from the Hugging Face Hub (offline?): "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    return load_diffusion(local, allow_hub=False)


# ---------------------------------------------------------------------------------------------
# Classifiers (the evaluator, the attacker's classifier)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierArch:
    """A small CNN: conv stages (each conv-[BN]-act x2, then 2x2 pooling), a feature layer, logits."""

    channels: int = 1
    image_size: int = 16
    num_outputs: int = 11
    widths: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 3
    batch_norm: bool = True
    activation: str = "relu"
    feature_dim: int = 128
    dropout: float = 0.3

    def build(self) -> Classifier:
        return Classifier(self)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClassifierArch:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known})


class Classifier(torch.nn.Module):
    def __init__(self, arch: ClassifierArch) -> None:
        super().__init__()
        self.arch = arch
        act = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU}[arch.activation]
        layers: list[torch.nn.Module] = []
        c_in, size = arch.channels, arch.image_size
        for i, width in enumerate(arch.widths):
            for c in (c_in, width):
                layers.append(torch.nn.Conv2d(c, width, arch.kernel_size, padding=arch.kernel_size // 2))
                if arch.batch_norm:
                    layers.append(torch.nn.BatchNorm2d(width))
                layers.append(act())
            if i < len(arch.widths) - 1:
                layers.append(torch.nn.MaxPool2d(2))
                size //= 2
            c_in = width
        self.body = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
        self.feature = torch.nn.Sequential(
            torch.nn.Dropout(arch.dropout), torch.nn.Linear(c_in * 4, arch.feature_dim), act()
        )
        self.head = torch.nn.Linear(arch.feature_dim, arch.num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (the FID/KID feature space)."""
        return self.feature(self.body(x))

    def forward(self, x: torch.Tensor, concepts: torch.Tensor | None = None) -> torch.Tensor:
        """Logits over the testbed's concepts and "none". ``concepts`` (the concept each image is meant to show)
        is the judge interface's: a classifier's outputs are the concept list already, so it reads none of it; a
        testbed whose images show several concepts at once judges each within its concept's family
        (``unlearnbench.testbeds.text16.judge``)."""
        return self.head(self.features(x))


def save_classifier(model: Classifier, path: str | os.PathLike[str]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"arch": model.arch.to_json()})


def load_classifier(path: str | os.PathLike[str], *, expected_sha256: str | None = None) -> Classifier:
    from safetensors import safe_open
    from safetensors.torch import load_file

    check_safetensors(path)
    if expected_sha256 is not None:
        verify_sha256(path, expected_sha256)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "arch" not in meta:
        raise UserError(f"{path}: no 'arch' metadata; not an unlearnbench classifier")
    model = ClassifierArch.from_json(meta["arch"]).build()
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit the recorded architecture ({_first_lines(e)})") from None
    check_finite(model, path)
    return model.eval().requires_grad_(False)
