"""The text16 testbed's recipes: the two text encoders (open_clip, trained contrastively here), and how well each
reads the concepts. The conditioning encoder feeds the UNet's cross-attention; the second, from another seed,
scores CLIP score, so that attacks optimised against the first are not judged by it.

    unlearnbench pretrain --testbed text16 --what encoder --out DIR     # resumable: rerun continues
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnbench.errors import UserError
from unlearnbench.testbeds.text16.data import COLOURS, DIGITS, STYLES, Text16Data, load_grammar, make_data


@dataclass(frozen=True)
class EncoderRecipe:
    """Contrastive training of one text encoder on the training split's (image, caption) pairs; every step draws
    new captions (random templates and synonyms, held-out names included, as a web-trained encoder saw them)."""

    seed: int = 0
    steps: int = 4000
    batch_size: int = 64
    lr: float = 1e-3
    data_seed: int = 0

    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


ENCODER = EncoderRecipe(seed=0)
CLIP_SCORER = EncoderRecipe(seed=1)  # the second encoder: CLIP score only


def captions_for(data: Text16Data) -> Any:
    """``captions_fn`` for :func:`~unlearnbench.testbeds.text16.encoder.train_contrastive`: random captions of the
    drawn images, from a numpy stream seeded by the torch generator (so a resumed run draws the same ones)."""
    grammar = load_grammar()

    def captions(generator: torch.Generator, indices: torch.Tensor) -> list[str]:
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        return data.take(indices).captions(rng, names="all", grammar=grammar)

    return captions


def train_encoder(recipe: EncoderRecipe, out: Path, *, steps: int | None = None, progress: bool = True) -> str:
    """Train (or resume) one encoder with ``recipe`` and save it to ``out`` (open_clip's local layout and
    ``recipe.json``); returns its weights' sha256. The checkpoint lives in ``out/checkpoint``."""
    from unlearnbench.testbeds.text16.encoder import build_encoder, save_encoder, train_contrastive

    data = make_data(recipe.data_seed)
    train = data.take(data.train)
    model = build_encoder(recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    train_contrastive(
        model,
        train.images,
        captions_for(train),
        steps=steps or recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=recipe.seed,
        checkpoint_path=out / "checkpoint" / "state.safetensors",
        progress=progress,
    )
    sha = save_encoder(model, out)
    record = {**asdict(recipe), "steps": steps or recipe.steps, "sha256": recipe.sha256()}
    (out / "recipe.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return sha


@torch.no_grad()
def zero_shot(encoder: Any, data: Text16Data) -> dict[str, float]:
    """How well an encoder reads each attribute: the share of images whose features are closest to the canonical
    name of their own digit, colour and style among that family's names (CLIP's zero-shot classification)."""
    image = encoder.image_features(data.images)
    out = {}
    for family, names, labels in (("digit", DIGITS, data.digit), ("colour", COLOURS, data.colour),
                                  ("style", STYLES, data.style)):  # fmt: skip
        text = encoder.pooled(encoder.tokenize(list(names)))
        out[family] = float(((image @ text.T).argmax(-1) == labels).float().mean())
    return out


def pretrain(args: Any) -> int:
    """``unlearnbench pretrain --testbed text16 --what encoder|clip_scorer --out DIR [--steps N]``."""
    recipes = {"encoder": ENCODER, "clip_scorer": CLIP_SCORER}
    if args.what not in recipes:
        raise UserError(f"--what {args.what}: the text16 testbed builds {', '.join(recipes)}")
    if not args.out:
        raise UserError("give --out DIR")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    out = Path(args.out)
    sha = train_encoder(recipes[args.what], out, steps=args.steps)
    from unlearnbench.testbeds.text16.encoder import load_encoder

    data = make_data(recipes[args.what].data_seed)
    scores = zero_shot(load_encoder(out, expected_sha256=sha), data.take(data.test))
    (out / "zero_shot.json").write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")
    print(f"{args.what}: {out} (sha256 {sha[:12]}); zero-shot on the test split: {scores}")
    return 0
