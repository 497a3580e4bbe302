"""text16: text-to-image unlearning on coloured, styled 16x16 digits with captions, offline on a CPU.

A concept is a digit ("seven"), an ink colour ("red") or a stroke weight ("bold"), named by its id or by any of its
synonyms in ``grammar.toml`` ("7", "sieben", "crimson"). The parts (``data.py``, ``grammar.py``, ``encoder.py``,
``conditioner.py``, ``judge.py``, ``testbed.py``) and their recipes (``build.py``, ``unlearnbench pretrain
--testbed text16``); the shipped weights live in ``model/`` (sha256-checked through ``model/manifest.json``), and
``--model DIR`` loads a build folder of the same layout instead (``pretrain --testbed text16 --out DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unlearnbench.errors import UserError
from unlearnbench.registry import register
from unlearnbench.testbed import Overrides, QualityBars, Testbed, TestbedPlugin

NAME = "text16"
ROOT = Path(__file__).resolve().parent
SHIPPED = ROOT / "model"  # the shipped build folder
JUDGES = ("evaluator", "attacker", "judge2", "style_judge", "attacker_style")


def read_manifest(folder: Path = SHIPPED) -> dict[str, Any]:
    """The folder's ``manifest.json`` (files and their sha256, recipes, the default sampler, figures); ``{}``
    for a build folder that has none (its files are then loaded unchecked)."""
    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _missing(folder: Path) -> list[str]:
    needed = [
        "encoder/open_clip_model.safetensors",
        "clip_scorer/open_clip_model.safetensors",
        "unet/unet/diffusion_pytorch_model.safetensors",
        *[f"judges/{j}.safetensors" for j in JUDGES],
    ]
    return [n for n in needed if not (folder / n).is_file()]


@register(NAME)
class Text16(TestbedPlugin):
    """Text-to-image on coloured digits with captions: open_clip text encoder, cross-attention UNet; offline."""

    pretrain_targets = ("encoder", "clip_scorer", "unet", "retrain", *JUDGES, "prior")
    tuning_concepts = ("five", "green")
    glossary = (
        "A concept is a digit (an object), an ink colour or a stroke weight, named in prompts; the judge reads each "
        'image within the concept\'s family (10 digits, 8 colours or 3 weights), so "11-way" means with its '
        '"none" output and "10-way" without it. '
        "UA: the share of the forget concept's samples, prompted with its canonical prompts, that the evaluator does "
        "not read as it; UA held-out names: the same from its held-out names and phrasings (numerals, synonyms, "
        "other languages), which no method is given; H: entropy of the family's judge (nats; compare within a "
        "family); retained accuracy on every other concept, from prompts that do not name a forgotten one; IRA and "
        "CRA: its part within the forgotten concept's family and across the other families; neighbour acc: accuracy "
        "on the concept's declared neighbours; in-prompt retention: the other attribute still right in prompts that "
        'name the forgotten concept (the colour of "a red seven"); CLIP score: the second shipped open_clip '
        "encoder's image-prompt cosine x 100 on the retained samples' prompts; FID/KID in the evaluator's feature "
        "space against real images of the retained concepts; time and memory of the unlearning."
    )

    def default_guidance(self, model: str | None = None) -> float:
        folder = SHIPPED if model is None else Path(model)
        return float(read_manifest(folder).get("sampler", {}).get("guidance_scale", 1.0))

    def concept_family(self, concept: str) -> str:
        from unlearnbench.testbeds.text16.grammar import load_grammar

        families = {load_grammar().concept(c).family for c in concept.split(",")}
        return families.pop() if len(families) == 1 else "mixed"

    def pretrain(self, args: Any) -> int:
        from unlearnbench.testbeds.text16.build import pretrain

        return pretrain(args)

    def load(self, parts: Overrides, *, device: str = "cpu", download: bool = False) -> Testbed:
        Overrides(dataset=parts.dataset, evaluator=parts.evaluator, attacker=parts.attacker).refuse(NAME)
        folder = SHIPPED if parts.model is None else Path(parts.model)
        missing = _missing(folder)
        if missing:
            where = "the shipped text16 model" if parts.model is None else f"--model {folder}"
            raise UserError(
                f"{where} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
                "(build it with 'unlearnbench pretrain --testbed text16 --what encoder|unet|evaluator|... --out DIR')"
            )
        from unlearnbench.testbeds.text16.testbed import load_folder

        return load_folder(folder, read_manifest(folder), model_source=parts.model, device=device)


__all__ = ["JUDGES", "NAME", "SHIPPED", "QualityBars", "Text16", "read_manifest"]
