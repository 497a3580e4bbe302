"""Shipped gold-standard references: the retrained model for each class of the shipped base model.

``retrain`` (train from scratch without the forget class, with the base model's own recipe) is the
benchmark's gold standard and its most expensive method: about an hour of one core per class on digits16.
The testbed ships the result for every class, built once by ``scripts/build_references.py`` with exactly
the retrain method's training call (same recipe, same data, same seed), so a run loads it instead.

A reference is used only when it was made from *this* base model (its weights' sha256) with *this* recipe
(its sha256); otherwise it is ignored and ``retrain`` trains. The run's cost rows then carry the
reference's **recorded** training cost, not the load time, and ``cost_recorded`` = 1 marks them, so cost
ratios against retrain stay honest.

Layout, under the testbed's assets: ``references/retrain-<class>/`` holds ``config.json``,
``diffusion_pytorch_model.safetensors`` (weights as stored: float16 when that leaves the judged scores
unchanged, see the README) and ``reference.json`` (what it was made from, its recorded cost and the
environment that measured it). The manifest's ``files`` holds each weight file's sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel

from unlearnbench.cost import Cost
from unlearnbench.models import unet_class, verify_sha256

WEIGHTS = "diffusion_pytorch_model.safetensors"


def reference_name(forget: tuple[str, ...]) -> str:
    """Folder name of the reference that forgets the concepts ``forget`` (one concept per shipped reference)."""
    return "retrain-" + "-".join(sorted(str(c) for c in forget))


@dataclass(frozen=True)
class ShippedReference:
    """One shipped retrained model: where it is, what it was made from and what making it cost."""

    folder: Path
    forget: tuple[str, ...]
    base_model_sha: str
    recipe_sha256: str
    cost: Cost
    record: dict[str, Any]

    def load(self, sha256: str, device: torch.device | str = "cpu") -> UNet2DModel:
        """The model in float32 on ``device``, after checking its weights against ``sha256`` (the manifest's)."""
        verify_sha256(self.folder / WEIGHTS, sha256)
        model = unet_class(self.folder).from_pretrained(str(self.folder), use_safetensors=True, low_cpu_mem_usage=False)
        return model.float().to(device).eval().requires_grad_(False)


def read_reference(folder: Path) -> ShippedReference:
    record = json.loads((folder / "reference.json").read_text())
    return ShippedReference(
        folder=folder,
        forget=tuple(str(c) for c in record["forget_classes"]),
        base_model_sha=record["base_model_sha"],
        recipe_sha256=record["recipe_sha256"],
        cost=Cost(**{k: v for k, v in record["cost"].items() if k in Cost.__dataclass_fields__}),
        record=record,
    )


class References:
    """The references a testbed ships, looked up by what they must match (given to methods as ``task.references``)."""

    def __init__(self, root: Path, files: dict[str, str], model_sha: str, recipe_sha256: str | None) -> None:
        self.root = root
        self.files = files  # manifest: relative path -> sha256
        self.model_sha = model_sha
        self.recipe_sha256 = recipe_sha256

    def _matching(self, forget: tuple[str, ...]) -> tuple[ShippedReference, str] | None:
        name = reference_name(forget)
        folder = self.root / name
        sha = self.files.get(f"references/{name}/{WEIGHTS}")
        if sha is None or self.recipe_sha256 is None or not (folder / "reference.json").is_file():
            return None
        ref = read_reference(folder)
        if ref.base_model_sha != self.model_sha or ref.recipe_sha256 != self.recipe_sha256:
            return None
        return ref, sha

    def has(self, forget: tuple[str, ...]) -> bool:
        """Whether a reference for ``forget`` ships for this base model and recipe (weights not read)."""
        return self._matching(forget) is not None

    def retrain(self, forget: tuple[str, ...], device: torch.device | str = "cpu") -> tuple[UNet2DModel, Cost] | None:
        """The shipped retrained model for ``forget`` and its recorded cost, or None when there is
        none for this base model and recipe (then ``retrain`` trains)."""
        found = self._matching(forget)
        if found is None:
            return None
        ref, sha = found
        return ref.load(sha, device), ref.cost

    def available(self) -> list[str]:
        return sorted(p.split("/")[1] for p in self.files if p.startswith("references/") and p.endswith(WEIGHTS))
