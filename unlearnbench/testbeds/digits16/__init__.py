"""digits16: scikit-learn's 1,797 digits at 16x16, a class-conditional diffusion model, and its judges.

Everything ships in this folder (sha256-checked through ``manifest.json``): the base model (``unet/``,
``scheduler/``), the evaluator, the attacker classifier and the second judge, the retrained references
(``references/``), Selective Amnesia's prior (``priors/``) and the recipes that made them (``build.py``,
``unlearnbench pretrain``). A concept is a digit, named ``"0"`` … ``"9"`` (its class number). Any other
diffusers class-conditional ``UNet2DModel`` directory or hub id, with ``mnist``/``cifar10`` or ``digits16``
data and an evaluator checkpoint, makes a custom testbed of the same kind (``--model``, ``--dataset``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffusers import UNet2DModel

from unlearnbench.conditioning import ClassConditioner
from unlearnbench.data import ImageData, load_dataset
from unlearnbench.errors import UserError
from unlearnbench.models import Classifier, load_classifier, load_diffusion, sha256_file
from unlearnbench.pretrain import DiffusionRecipe, recipe_sha256
from unlearnbench.priors import ShippedPriors
from unlearnbench.references import References
from unlearnbench.registry import register
from unlearnbench.testbed import Overrides, Testbed, TestbedPlugin

NAME = "digits16"
ROOT = Path(__file__).resolve().parent  # the shipped parts live beside this module


def manifest_path() -> Path:
    return ROOT / "manifest.json"


def read_manifest() -> dict[str, Any]:
    path = manifest_path()
    if not path.is_file():
        raise UserError(
            f"the {NAME} testbed's files are missing ({path}); reinstall unlearnbench or rebuild them "
            "with 'unlearnbench pretrain --ship'"
        )
    return json.loads(path.read_text())


def _recipe(manifest: dict[str, Any], model: str | None) -> DiffusionRecipe | None:
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
    if getattr(cfg, "num_class_embeds", None) != want_classes or getattr(cfg, "class_embed_type", None) is not None:
        raise UserError(
            f"model {source}: has {getattr(cfg, 'num_class_embeds', None)} class embeddings, the {data.name} "
            f"testbed needs {want_classes} ({data.num_classes} classes + the null class for guidance)"
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


@register(NAME)
class Digits16(TestbedPlugin):
    """sklearn digits at 16x16, class-conditional UNet (1.1M), shipped judges and retrained references; offline."""

    pretrain_targets = ("unet", "evaluator", "attacker", "judge2", "all", "retrain", "prior")
    tuning_concepts = ("5", "9")
    glossary = (
        "UA: unlearning accuracy; H: entropy of the 10-way judge (nats, max ln 10 = 2.303); "
        "FID/KID in the evaluator's feature space against every real image of the retained classes; "
        "time and memory of the unlearning (priors included, their time also shown alone)."
    )

    def default_guidance(self, model: str | None = None) -> float:
        """The measured choice for the shipped model; 1.0 (plain conditional sampling) for any other model."""
        return 1.0 if model is not None else float(read_manifest()["sampler"]["guidance_scale"])

    def pretrain(self, args: Any) -> int:
        from unlearnbench.testbeds.digits16.build import pretrain

        return pretrain(args)

    def load(self, parts: Overrides, *, device: str = "cpu", download: bool = False) -> Testbed:
        model, dataset, evaluator, attacker = parts.model, parts.dataset, parts.evaluator, parts.attacker
        manifest = read_manifest()
        files = manifest["files"]
        root = ROOT
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
            name=NAME,
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
            conditioner=ClassConditioner(data.num_classes),  # concepts "0" … "N-1": the class numbers
            manifest=manifest,
            recipe=recipe,
            references=references,
            priors=priors,
            second_judge=None if judge2 is None else judge2.to(device),
            second_judge_sha=judge2_sha,
            stability_forget=("0", "3", "7"),
        )
