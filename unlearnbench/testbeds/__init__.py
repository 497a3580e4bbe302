"""Testbeds: a dataset, a base diffusion model, the evaluator that judges, and the attacker's classifier.

``digits16`` ships all of them inside the package (sha256-checked). Any other diffusers class-conditional
``UNet2DModel`` directory or hub id, with ``mnist``/``cifar10`` or ``digits16`` data and an evaluator
checkpoint, makes a custom testbed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from unlearnbench.conditioning import ClassConditioner, Conditioner
from unlearnbench.data import ImageData, load_dataset
from unlearnbench.errors import UserError
from unlearnbench.models import Classifier, load_classifier, load_diffusion, sha256_file
from unlearnbench.pretrain import DiffusionRecipe, recipe_sha256
from unlearnbench.priors import ShippedPriors
from unlearnbench.references import References

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TESTBEDS = ("digits16",)


@dataclass(frozen=True)
class Testbed:
    """A loaded testbed. Cached and shared (one per device): never change it in place; methods and
    attacks get private copies of the model (:func:`unlearnbench.api.run_unlearning`)."""

    name: str
    model_source: str | None  # the --model it was loaded from; None for the shipped model
    data: ImageData
    model: UNet2DModel
    schedule: DDPMScheduler
    model_sha: str
    evaluator: Classifier
    evaluator_path: Path
    evaluator_sha: str
    attacker: Classifier
    attacker_sha: str
    manifest: dict
    # The recipe that made the base model (what ``retrain`` reruns); None when it is unknown.
    recipe: DiffusionRecipe | None = None
    # The second evaluator (independently trained: another architecture and seed), when the testbed ships one
    # for its own dataset; its UA and retained accuracy are reported beside the evaluator's.
    second_judge: Classifier | None = None
    second_judge_sha: str = ""
    # The gold-standard results it ships for its own base model (retrained models); None for a custom model.
    references: References | None = None
    # The method priors it ships for its own base model (Selective Amnesia's Fisher and replay); None likewise.
    priors: ShippedPriors | None = None

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def conditioner(self) -> Conditioner:
        """Maps the testbed's concepts (here: class labels) to conditionings for its model."""
        return ClassConditioner(self.data.num_classes)


def manifest_path(name: str = "digits16") -> Path:
    return ASSETS / name / "manifest.json"


def read_manifest(name: str = "digits16") -> dict:
    if name not in TESTBEDS:  # before touching the file system with an arbitrary name
        from unlearnbench.errors import suggest

        raise UserError(f"unknown testbed {name!r}{suggest(name, TESTBEDS)} (known: {', '.join(TESTBEDS)})")
    path = manifest_path(name)
    if not path.is_file():
        raise UserError(
            f"the {name} testbed's files are missing ({path}); reinstall unlearnbench or rebuild them "
            "with 'unlearnbench pretrain --ship'"
        )
    return json.loads(path.read_text())


def default_guidance(name: str = "digits16", model: str | None = None) -> float:
    """The guidance scale a run uses when it does not say: the testbed's measured choice for its shipped
    model, 1.0 (plain conditional sampling) for any other model."""
    if model is not None:
        return 1.0
    return float(read_manifest(name)["sampler"]["guidance_scale"])


def _recipe(manifest: dict, model: str | None) -> DiffusionRecipe | None:
    if model is None:
        recipe = manifest.get("recipes", {}).get("unet")
        return DiffusionRecipe.from_dict(recipe) if recipe else None
    path = Path(model) / "unet.recipe.json"  # written by 'unlearnbench pretrain --out DIR'
    return DiffusionRecipe.from_dict(json.loads(path.read_text())) if path.is_file() else None


def check_fit(model: UNet2DModel, data: ImageData, source: str) -> None:
    """The model must be class-conditional over the dataset's classes plus a null class, at its image size."""
    cfg = model.config
    want_classes = data.num_classes + 1
    c, h, _ = data.image_shape
    if cfg.num_class_embeds != want_classes or cfg.class_embed_type is not None:
        raise UserError(
            f"model {source}: has {cfg.num_class_embeds} class embeddings, the {data.name} testbed needs "
            f"{want_classes} ({data.num_classes} classes + the null class for guidance)"
        )
    if cfg.in_channels != c or cfg.out_channels != c or cfg.sample_size != h:
        raise UserError(
            f"model {source}: takes {cfg.in_channels}x{cfg.sample_size}x{cfg.sample_size} images, "
            f"{data.name} has {c}x{h}x{h}"
        )


def check_classifier_fit(clf: Classifier, data: ImageData, source: str) -> None:
    if clf.arch.num_outputs != data.num_classes + 1:
        raise UserError(
            f"classifier {source}: has {clf.arch.num_outputs} outputs, needs {data.num_classes + 1} "
            f"({data.num_classes} classes + 'none')"
        )
    if clf.arch.channels != data.image_shape[0]:
        raise UserError(
            f"classifier {source}: takes {clf.arch.channels} channels, {data.name} has {data.image_shape[0]}"
        )


@lru_cache(maxsize=4)
def load_testbed(
    name: str = "digits16",
    *,
    model: str | None = None,
    dataset: str | None = None,
    evaluator: str | None = None,
    attacker: str | None = None,
    device: str = "cpu",
    download: bool = False,
) -> Testbed:
    """Load a testbed onto ``device``. ``model``/``dataset``/``evaluator``/``attacker`` override the shipped
    parts. Cached: every caller with the same arguments shares one read-only :class:`Testbed`."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here (use --device cpu)")
    if name not in TESTBEDS:
        from unlearnbench.errors import suggest

        raise UserError(f"unknown testbed {name!r}{suggest(name, TESTBEDS)} (known: {', '.join(TESTBEDS)})")
    manifest = read_manifest(name)
    files = manifest["files"]
    root = ASSETS / name
    data = load_dataset(dataset or manifest["dataset"], download=download)
    if model is None:
        unet, schedule, model_sha = load_diffusion(
            root, expected_sha256=files["unet/diffusion_pytorch_model.safetensors"]
        )
    else:
        unet, schedule, model_sha = load_diffusion(model)
    check_fit(unet, data, model or "(shipped)")

    def classifier(override: str | None, shipped: str) -> tuple[Classifier, Path, str]:
        if override is not None:
            clf = load_classifier(override)
            check_classifier_fit(clf, data, override)
            return clf, Path(override), sha256_file(override)
        if data.name != manifest["dataset"]:
            raise UserError(
                f"the shipped {shipped} judges {manifest['dataset']}, not {data.name}; pass --{shipped} "
                f"(train one with 'unlearnbench pretrain --what {shipped} --dataset {data.name}')"
            )
        path = root / f"{shipped}.safetensors"
        return (
            load_classifier(path, expected_sha256=files[f"{shipped}.safetensors"]),
            path,
            files[f"{shipped}.safetensors"],
        )

    ev, ev_path, ev_sha = classifier(evaluator, "evaluator")
    at, _, at_sha = classifier(attacker, "attacker")
    judge2, judge2_sha = None, ""
    if "judge2.safetensors" in files and data.name == manifest["dataset"]:
        judge2, _, judge2_sha = classifier(None, "judge2")
    recipe = _recipe(manifest, model)
    references, priors = None, None
    if model is None and data.name == manifest["dataset"]:
        references = References(
            root / "references", files, model_sha, None if recipe is None else recipe_sha256(recipe)
        )
        priors = ShippedPriors(root / "priors", files)
    return Testbed(
        name=name,
        model_source=model,
        data=data,
        model=unet.requires_grad_(False).to(device),
        schedule=schedule,
        model_sha=model_sha,
        evaluator=ev.to(device),
        evaluator_path=ev_path,
        evaluator_sha=ev_sha,
        attacker=at.to(device),
        attacker_sha=at_sha,
        manifest=manifest,
        recipe=recipe,
        references=references,
        priors=priors,
        second_judge=None if judge2 is None else judge2.to(device),
        second_judge_sha=judge2_sha,
    )
