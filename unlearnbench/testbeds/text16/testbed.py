"""The loaded text16 testbed: its images show three concepts at once (a digit, a colour, a stroke weight), so
which images a concept set selects, and how each is conditioned, is the testbed's own (:meth:`Text16Testbed.images`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unlearnbench.conditioning import Conditioning
from unlearnbench.data import ImageData
from unlearnbench.errors import UserError
from unlearnbench.testbed import Probe, QualityBars, Testbed
from unlearnbench.testbeds.text16.data import Text16Data, make_data
from unlearnbench.testbeds.text16.grammar import Grammar, load_grammar

FAMILY_LABELS = {"object": "digit", "colour": "colour", "style": "style"}


@dataclass(frozen=True)
class Text16Testbed(Testbed):
    """A :class:`~unlearnbench.testbed.Testbed` whose data are :class:`Text16Data` and whose conditioner is the
    caption conditioner; ``caption_seed`` fixes which canonical caption each selected image gets."""

    text: Any = None  # Text16Data
    grammar: Any = None  # Grammar
    caption_seed: int = 0
    clip_scorer: Any = None  # the second TextEncoder: CLIP score only

    def concept(self, name: object) -> str:
        """The concept a user named, by its id or any synonym (``"7"``, ``"crimson"``), as its id; or one line
        with the closest of every name and synonym."""
        try:
            return str(self.grammar.concept(str(name)).id)
        except UserError as e:
            raise UserError(f"{e} on the {self.name} testbed") from None

    def shows(self, concepts: Sequence[str], rows: Text16Data | None = None) -> Tensor:
        """``[N, len(concepts)]``: whether each image shows each concept."""
        data: Text16Data = rows if rows is not None else self.text
        grammar: Grammar = self.grammar
        columns = []
        for name in concepts:
            c = grammar.concept(name)
            columns.append(getattr(data, FAMILY_LABELS[c.family]) == c.index)
        return torch.stack(columns, dim=1) if columns else torch.zeros(len(data), 0, dtype=torch.bool)

    def probes(self, per_concept: int) -> list[Probe]:
        """The text bars beyond every concept's conditional accuracy: digits with canonical prompts, digits by every
        held-out name (in the canonical compositions), and colour-digit compositions (both must be read)."""
        g: Grammar = self.grammar
        digits = g.family("object")
        drawn = self.conditioner.draws([d.id for d in digits], per_concept)
        assert drawn.concepts is not None
        probes = [Probe("digit_accuracy", drawn, (drawn.concepts,), bar=DIGIT_ACCURACY)]
        prompts: list[str] = []
        meant: list[int] = []
        groups: list[str] = []
        per_name = per_concept  # every held-out name is held to the bar: as many samples as a concept gets
        for d in digits:
            for name in d.heldout:
                own = g.prompts(d.id, "canonical", n=per_name, name=name)
                prompts += [own[i % len(own)] for i in range(per_name)]
                meant += [self.conditioner.index(d.id)] * per_name
                groups += [f"{d.id}: {name}"] * per_name
        ids = torch.tensor(meant, dtype=torch.long)
        heldout = self.conditioner.prompts(prompts, concepts=ids)
        probes.append(Probe("heldout_digit_accuracy", heldout, (ids,), HELDOUT_ACCURACY, tuple(groups), True))
        template = g.composition(("colour", "object"))
        per_pair = max(1, per_concept // 10)
        pairs = [(c, d) for c in g.family("colour") for d in digits for _ in range(per_pair)]
        text = [template.fill(colour=c.canonical[0], object=d.canonical[0]) for c, d in pairs]
        digit_ids = torch.tensor([self.conditioner.index(d.id) for _, d in pairs], dtype=torch.long)
        colour_ids = torch.tensor([self.conditioner.index(c.id) for c, _ in pairs], dtype=torch.long)
        both = self.conditioner.prompts(text, concepts=digit_ids)
        probes.append(Probe("composition_accuracy", both, (digit_ids, colour_ids), COMPOSITION_ACCURACY))
        for family in ("colour", "style"):
            drawn = self.conditioner.draws([c.id for c in g.family(family)], per_concept)
            assert drawn.concepts is not None
            probes.append(Probe(f"{family}_accuracy", drawn, (drawn.concepts,), ATTRIBUTE_ACCURACY))
        return probes

    @torch.no_grad()
    def clip_score(self, images: Tensor, prompts: list[str]) -> Tensor:
        scorer = self.clip_scorer
        return scorer.clip_score(images.to(scorer.device), scorer.tokenize(prompts)).cpu()

    def run_probes(self, forget: Sequence[str], forget_n: int, retain_n: int) -> list[Probe]:
        g: Grammar = self.grammar
        index = self.conditioner.index
        heldout: list[str] = []
        heldout_ids: list[int] = []
        near: list[str] = []
        inside: list[str] = []
        inside_read: list[int] = []
        for c in (g.concept(f) for f in forget):
            own = g.prompts(c.id, "heldout", n=forget_n, exclude=forget)
            heldout += [own[i % len(own)] for i in range(forget_n)]
            heldout_ids += [index(c.id)] * forget_n
            near += [n for n in c.neighbours if n not in forget and n not in near]
            templates = {}  # the other families a canonical template composes with this one ("a red seven")
            for family in dict.fromkeys(x.family for x in g.concepts if x.family != c.family):
                with contextlib.suppress(UserError):
                    templates[family] = g.composition((c.family, family))
            pairs = [(f, o) for f in templates for o in g.family(f) if o.id not in forget]
            for i in range(forget_n if pairs else 0):  # "a crimson seven": is the colour right with "seven" erased?
                family, other = pairs[i % len(pairs)]
                inside.append(templates[family].fill(**{c.family: c.canonical[0], family: other.canonical[0]}))
                inside_read.append(index(other.id))
        probes = [Probe("heldout_names", self.conditioner.prompts(heldout, concepts=torch.tensor(heldout_ids)),
                        (torch.tensor(heldout_ids),))]  # fmt: skip
        if near:
            drawn = self.conditioner.draws(near, retain_n, exclude=forget)
            assert drawn.concepts is not None
            probes.append(Probe("neighbours", drawn, (drawn.concepts,)))
        if inside:
            read = torch.tensor(inside_read)
            probes.append(Probe("in_prompt", self.conditioner.prompts(inside, concepts=read), (read,)))
        return probes

    def images(self, split: str, concepts: Sequence[str], exclude: Sequence[str] = ()) -> tuple[Tensor, Conditioning]:
        """The ``split`` images showing any of ``concepts`` and none of ``exclude``, each with a canonical caption
        that names the first of ``concepts`` it shows (drawn once, from ``caption_seed``); the conditioning's
        concept is that one."""
        data: Text16Data = self.text
        rows = data.take(data.train if split == "train" else data.test)
        hits = self.shows(concepts, rows)
        keep = hits.any(dim=1) & ~self.shows(exclude, rows).any(dim=1) if exclude else hits.any(dim=1)
        chosen = rows.take(keep)
        first = hits[keep].float().argmax(dim=1)  # which of ``concepts`` each kept image stands for
        rng = np.random.default_rng(self.caption_seed)
        captions = []
        for i, k in enumerate(first.tolist()):
            family = self.grammar.concept(concepts[k]).family
            labels = (int(chosen.digit[i]), int(chosen.colour[i]), int(chosen.style[i]))
            captions.append(self.grammar.caption(*labels, rng, names="canonical", naming=family))
        ids = torch.tensor([self.conditioner.index(concepts[k]) for k in first.tolist()], dtype=torch.long)
        return chosen.images, self.conditioner.prompts(captions, concepts=ids)


# The bars ``testbed check`` holds text16 to (the issue's): digit accuracy with canonical prompts (model_accuracy)
# and with held-out names, attribute accuracy, composition accuracy, the FID ratio; the judges' as on digits16,
# except the evaluator's held-out bar, which the digit classifier meets on 16x16 colour images at 0.99.
# model_accuracy and model_min_class_accuracy hold every concept's accuracy (digits, colours and stroke weights, each
# read within its family) to the attribute bar; the digit probe holds the digits alone to DIGIT_ACCURACY.
TEXT16_BARS = QualityBars(model_accuracy=0.90, model_min_class_accuracy=0.85, fid_ratio=3.0, evaluator_accuracy=0.98)
DIGIT_ACCURACY = 0.95
HELDOUT_ACCURACY = 0.90
ATTRIBUTE_ACCURACY = 0.90
COMPOSITION_ACCURACY = 0.85


def _image_data(data: Text16Data) -> ImageData:
    """The images as a labelled split whose label is the digit (the object family's concept index)."""
    tr, te = data.take(data.train), data.take(data.test)
    from unlearnbench.testbeds.text16.data import DIGITS

    return ImageData("text16", tr.images, tr.digit, te.images, te.digit, len(DIGITS), DIGITS)


def load_folder(folder: Path, manifest: dict[str, Any], *, model_source: str | None, device: str) -> Text16Testbed:
    """The testbed from a build folder (``encoder/``, ``clip_scorer/``, ``unet/``, ``judges/``), each file checked
    against ``manifest["files"]`` when the manifest lists it."""
    from unlearnbench.models import load_classifier, load_diffusion, sha256_file
    from unlearnbench.testbeds.text16.conditioner import CaptionConditioner
    from unlearnbench.testbeds.text16.encoder import WEIGHTS_FILE, load_encoder
    from unlearnbench.testbeds.text16.judge import FamilyJudge

    files: dict[str, str] = manifest.get("files", {})
    grammar = load_grammar()
    encoder = load_encoder(folder / "encoder", files.get(f"encoder/{WEIGHTS_FILE}"))
    scorer_file = f"clip_scorer/{WEIGHTS_FILE}"
    scorer = load_encoder(folder / "clip_scorer", files.get(scorer_file))
    unet_file = "unet/unet/diffusion_pytorch_model.safetensors"
    unet, schedule, model_sha = load_diffusion(folder / "unet", expected_sha256=files.get(unet_file), allow_hub=False)
    conditioner = CaptionConditioner(encoder, grammar)
    width = conditioner.null.shape[-1]
    if getattr(unet.config, "cross_attention_dim", None) != width:
        raise UserError(f"{folder / 'unet'}: its cross-attention reads {unet.config.cross_attention_dim}-wide states, "
                        f"the encoder gives {width}")  # fmt: skip
    families = [c.family for c in grammar.concepts]
    positions = [c.index for c in grammar.concepts]

    def classifier(name: str) -> tuple[Any, Path, str]:
        path = folder / "judges" / f"{name}.safetensors"
        sha = files.get(f"judges/{name}.safetensors")
        return load_classifier(path, expected_sha256=sha), path, sha or sha256_file(path)

    digit, ev_path, ev_sha = classifier("evaluator")
    style, _, style_sha = classifier("style_judge")
    at_digit, _, at_sha = classifier("attacker")
    at_style, _, at_style_sha = classifier("attacker_style")
    judge2, _, judge2_sha = classifier("judge2")
    data = make_data()
    references, priors = None, None
    if model_source is None:  # shipped references were retrained from the shipped model's recipe
        from unlearnbench.priors import ShippedPriors
        from unlearnbench.references import References
        from unlearnbench.testbeds.text16.build import UNET

        references = References(folder / "references", files, model_sha, UNET.sha256())
        priors = ShippedPriors(folder / "priors", files)  # made from the shipped model (pretrain --what prior)
    return Text16Testbed(
        name="text16",
        model_source=model_source,
        data=_image_data(data),
        model=unet.requires_grad_(False).to(device),
        schedule=schedule,
        model_sha=model_sha,
        conditioner=conditioner,
        evaluator=FamilyJudge(digit, style, families, positions).eval().to(device),
        evaluator_path=ev_path,
        evaluator_sha=f"{ev_sha[:32]}{style_sha[:32]}",
        attacker=FamilyJudge(at_digit, at_style, families, positions).eval().to(device),
        attacker_sha=f"{at_sha[:32]}{at_style_sha[:32]}",
        manifest=manifest,
        recipe=None,
        second_judge=FamilyJudge(judge2, style, families, positions).eval().to(device),
        second_judge_sha=f"{judge2_sha[:32]}{style_sha[:32]}",
        bars=TEXT16_BARS,
        references=references,
        priors=priors,
        stability_forget=("three", "seven"),
        null_concepts=tuple(c.id for c in grammar.family("object")),
        text=data,
        grammar=grammar,
        clip_scorer=scorer,
        clip_scorer_sha=files.get(scorer_file) or sha256_file(folder / scorer_file),
    )
