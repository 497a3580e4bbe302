"""The text16 testbed's recipes: the two text encoders (open_clip, trained contrastively here) and how well each
reads the concepts, and the cross-attention UNet conditioned by the first. The conditioning encoder feeds the
UNet's cross-attention; the second, from another seed, scores CLIP score, so that attacks optimised against the
first are not judged by it. Every target writes ``DIR/<target>`` and resumes from its checkpoint:

    unlearnbench pretrain --testbed text16 --what encoder --out DIR
    unlearnbench pretrain --testbed text16 --what clip_scorer --out DIR
    unlearnbench pretrain --testbed text16 --what unet --out DIR [--deadline HH:MM]   # reads DIR/encoder
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnbench.errors import UserError
from unlearnbench.testbeds.text16.data import COLOURS, DIGITS, STYLES, Text16Data, make_data
from unlearnbench.testbeds.text16.grammar import load_grammar


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
    scores = zero_shot(model, data.take(data.test))
    (out / "zero_shot.json").write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")
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


@dataclass(frozen=True)
class UNetRecipe:
    """The text-to-image model: a pixel-space ``UNet2DConditionModel`` whose cross-attention reads the frozen
    encoder's token states, trained on the training split's images with random captions (every template, held-out
    names included), 10% of them replaced by the empty prompt so that classifier-free guidance works; AdamW,
    warm-up then cosine, an EMA copy."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention_head_dim: int = 8
    steps: int = 12000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    seed: int = 0
    data_seed: int = 0

    def build(self, width: int) -> Any:
        from diffusers import UNet2DConditionModel

        depth = len(self.block_out_channels)
        return UNet2DConditionModel(
            sample_size=16,
            in_channels=3,
            out_channels=3,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            down_block_types=("DownBlock2D", *["CrossAttnDownBlock2D"] * (depth - 1)),
            up_block_types=(*["CrossAttnUpBlock2D"] * (depth - 1), "UpBlock2D"),
            cross_attention_dim=width,
            attention_head_dim=self.attention_head_dim,
            norm_num_groups=8,
        )

    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


UNET = UNetRecipe()


def _judge(base: Any, outputs: int) -> Any:
    from dataclasses import replace

    return replace(base, arch=replace(base.arch, channels=3, num_outputs=outputs))


def judge_recipes() -> dict[str, tuple[Any, str]]:
    """The judges, each ``(ClassifierRecipe, the label it reads)``, trained as digits16's are (a "none" output fed
    on noise images): the evaluator and, independently, the second judge read the digit; the attacker's
    classifiers (another architecture and seed) read the digit and the stroke weight for the attacks; the style
    judge reads the stroke weight. Colour needs no network: ``data.colour_of`` reads it exactly from the pixels."""
    from unlearnbench.pretrain import ATTACKER_RECIPE, EVALUATOR_RECIPE, JUDGE2_RECIPE

    return {
        "evaluator": (_judge(EVALUATOR_RECIPE, len(DIGITS) + 1), "digit"),
        "attacker": (_judge(ATTACKER_RECIPE, len(DIGITS) + 1), "digit"),
        "judge2": (_judge(JUDGE2_RECIPE, len(DIGITS) + 1), "digit"),
        "style_judge": (_judge(EVALUATOR_RECIPE, len(STYLES) + 1), "style"),
        "attacker_style": (_judge(ATTACKER_RECIPE, len(STYLES) + 1), "style"),
    }


def train_judge(name: str, out: Path, *, steps: int | None = None) -> dict[str, float]:
    """Train the judge ``name`` on the training split, save it to ``out/<name>.safetensors`` with its recipe, and
    return its held-out accuracy (the "none" output aside) and the share of Gaussian noise it calls "none"."""
    from dataclasses import replace

    from unlearnbench.models import save_classifier
    from unlearnbench.pretrain import train_classifier

    recipe, attribute = judge_recipes()[name]
    recipe = replace(recipe, steps=steps or recipe.steps)
    data = make_data()
    train, test = data.take(data.train), data.take(data.test)
    started = time.perf_counter()
    model = train_classifier(recipe, train.images, getattr(train, attribute), desc=name)
    seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    save_classifier(model, out / f"{name}.safetensors")
    with torch.no_grad():
        accuracy = float((model(test.images).argmax(-1) == getattr(test, attribute)).float().mean())
        noise = torch.randn(500, 3, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
        none = float((model(noise).argmax(-1) == recipe.arch.num_outputs - 1).float().mean())
    figures = {"accuracy": accuracy, "gaussian_none": none, "training_seconds": round(seconds, 1),
               "threads": torch.get_num_threads()}  # fmt: skip
    record = {"recipe": json.loads(json.dumps(asdict(recipe))), "reads": attribute, "figures": figures}
    (out / f"{name}.recipe.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return figures


def without(data: Text16Data, forget: tuple[str, ...]) -> Text16Data:
    """The rows of ``data`` that show none of the concepts ``forget`` (a retrained reference's training data)."""
    grammar = load_grammar()
    keep = torch.ones(len(data), dtype=torch.bool)
    for name in forget:
        c = grammar.concept(name)
        keep &= getattr(data, {"object": "digit"}.get(c.family, c.family)) != c.index
    return data.take(keep)


def train_unet(
    recipe: UNetRecipe,
    encoder_folder: Path,
    out: Path,
    *,
    steps: int | None = None,
    deadline: float | None = None,
    forget: tuple[str, ...] = (),
) -> Any:
    """Train (or resume) the UNet on captions encoded by the frozen encoder in ``encoder_folder``; checkpointed in
    ``out/checkpoint`` (paused at ``deadline``, a ``time.time()`` value: rerun to continue); returns the EMA model,
    saved to ``out`` in diffusers' layout with its scheduler and ``recipe.json``. ``forget``: leave out every image
    that shows one of these concepts (the retrained reference; same recipe, same seed)."""
    from dataclasses import replace

    from unlearnbench.conditioning import Conditioning
    from unlearnbench.models import save_diffusion
    from unlearnbench.pretrain import Checkpointing, DiffusionRecipe, fit_denoiser
    from unlearnbench.testbeds.text16.conditioner import CaptionConditioner
    from unlearnbench.testbeds.text16.encoder import load_encoder

    recipe = replace(recipe, steps=steps or recipe.steps)
    conditioner = CaptionConditioner(load_encoder(encoder_folder), load_grammar())
    data = make_data(recipe.data_seed)
    train = without(data.take(data.train), forget)
    torch.manual_seed(recipe.seed)  # parameter initialisation
    model = recipe.build(conditioner.null.shape[-1])
    schedule = DiffusionRecipe().schedule()  # the digits16 schedule: linear betas, 1000 steps
    caption = captions_for(train)  # the encoders' training captions: every template, held-out names included

    def batch(generator: torch.Generator) -> tuple[torch.Tensor, Conditioning]:
        idx = torch.randint(0, len(train), (recipe.batch_size,), generator=generator)
        captions = caption(generator, idx)
        drop = torch.rand(len(captions), generator=generator) < recipe.caption_dropout
        captions = ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]
        return train.images[idx], conditioner.prompts(captions)

    checkpointing = Checkpointing(out / "checkpoint", every=250, deadline=deadline)
    model = fit_denoiser(
        model, schedule, recipe, batch, recipe.sha256(), desc="text16 unet", checkpointing=checkpointing
    )
    save_diffusion(model, schedule, out)
    progress = json.loads((out / "checkpoint" / "progress.json").read_text())
    record = {
        **asdict(recipe),
        "sha256": recipe.sha256(),
        "encoder": str(encoder_folder),
        "forget": list(forget),
        "training_images": len(train),
        "training": {k: progress.get(k) for k in ("seconds", "cpu_seconds", "steps")},
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return model


def _reference_cost(training: dict[str, Any]) -> dict[str, Any]:
    """A retrained reference's cost. Its training is resumable and ran one thread at a time beside other jobs,
    paused and resumed across sessions, so its wall clock counts the pauses: the cost states the CPU seconds it
    did (on an idle core at one thread, the wall time it needs) and keeps the measured wall clock beside them."""
    cpu = training.get("cpu_seconds")
    if cpu is None:
        return {"wall_s": training["seconds"], "cpu_s": None, "steps": training["steps"]}
    return {
        "wall_s": cpu,
        "cpu_s": cpu,
        "steps": training["steps"],
        "measured_wall_s": training["seconds"],
        "wall_s_is": "the CPU seconds at one thread; measured_wall_s includes pauses and other jobs",
    }


def pretrain(args: Any) -> int:
    """``unlearnbench pretrain --testbed text16 --what encoder|clip_scorer|unet --out DIR [--steps N]``: each target
    in ``DIR/<target>``; the UNet reads ``DIR/encoder``. ``--what prior --ship --cache STORE/cache/priors`` ships
    the priors a store cached for the shipped base model (:func:`ship_priors`)."""
    recipes = {"encoder": ENCODER, "clip_scorer": CLIP_SCORER}
    if args.what == "prior":
        if not args.ship or args.cache is None:
            raise UserError("--what prior ships cached priors: give --ship and --cache STORE/cache/priors")
        ship_priors(Path(args.cache))
        return 0
    if args.ship:
        if not args.out or args.guidance is None:
            raise UserError("--ship on text16 copies a finished build: give --out BUILD_DIR and --guidance S")
        manifest = ship(Path(args.out), args.guidance)
        print(f"shipped {len(manifest['files'])} weight files from {args.out} (guidance {args.guidance})")
        return 0
    targets = (*recipes, "unet", "retrain", *judge_recipes(), "prior")  # "prior" is handled above: for the message
    if args.what not in targets:
        raise UserError(f"--what {args.what}: the text16 testbed builds {', '.join(targets)}")
    if not args.out:
        raise UserError("give --out DIR")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    out = Path(args.out) / args.what
    if args.what in judge_recipes():
        figures = train_judge(args.what, Path(args.out) / "judges", steps=args.steps)
        print(f"{args.what}: {Path(args.out) / 'judges'}; on the test split and noise: {figures}")
        return 0
    if args.what in ("unet", "retrain"):
        from unlearnbench.pretrain import TrainingPaused

        encoder = Path(args.out) / "encoder"
        if not (encoder / "open_clip_model.safetensors").is_file():
            raise UserError(f"no trained encoder in {encoder}: run --what encoder --out {args.out} first")
        forget: tuple[str, ...] = ()
        if args.what == "retrain":
            if not args.forget:
                raise UserError("--what retrain: name the concepts to leave out with --forget CONCEPT")
            grammar = load_grammar()
            forget = tuple(sorted({grammar.concept(c).id for c in args.forget}))
            out = Path(args.out) / "references" / ("retrain-" + "-".join(forget))
        try:
            train_unet(UNET, encoder, out, steps=args.steps, deadline=args.deadline, forget=forget)
        except TrainingPaused as e:
            print(f"{args.what}: {e}; rerun the same command to continue")
            return 75
        print(f"{args.what}: {out}")
        return 0
    sha = train_encoder(recipes[args.what], out, steps=args.steps)
    scores = json.loads((out / "zero_shot.json").read_text())
    print(f"{args.what}: {out} (sha256 {sha[:12]}); zero-shot on the test split: {scores}")
    return 0


def ship(build: Path, guidance: float, destination: Path | None = None) -> dict[str, Any]:
    """Copy a finished build folder's parts into the package (``text16/model/``) and write its manifest: every
    weight file's sha256, the recipes, the training time and parameter count of each model, the default guidance."""
    import shutil

    from unlearnbench.io import atomic_write_text
    from unlearnbench.models import sha256_file
    from unlearnbench.priors import TENSORS
    from unlearnbench.testbeds.text16 import JUDGES, SHIPPED, read_manifest
    from unlearnbench.testbeds.text16.encoder import CONFIG_FILE, WEIGHTS_FILE, load_encoder, parameter_counts

    destination = destination or SHIPPED
    parts = [f"{e}/{f}" for e in ("encoder", "clip_scorer") for f in (CONFIG_FILE, WEIGHTS_FILE, "recipe.json",
                                                                       "zero_shot.json")]  # fmt: skip
    parts += ["unet/unet/config.json", "unet/unet/diffusion_pytorch_model.safetensors",
              "unet/scheduler/scheduler_config.json", "unet/recipe.json"]  # fmt: skip
    parts += [f"judges/{j}{suffix}" for j in JUDGES for suffix in (".safetensors", ".recipe.json")]
    references = sorted(p.name for p in (build / "references").glob("retrain-*") if (p / "recipe.json").is_file())
    missing = [p for p in parts if not (build / p).is_file()]
    if missing:
        raise UserError(f"the build folder {build} is not finished: no {', '.join(missing[:4])}")
    for part in parts:
        (destination / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build / part, destination / part)
    base_sha = sha256_file(destination / "unet/unet/diffusion_pytorch_model.safetensors")
    for ref in references:  # in the layout every testbed's references share (unlearnbench.references)
        record = json.loads((build / f"references/{ref}/recipe.json").read_text())
        folder = destination / "references" / ref
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "diffusion_pytorch_model.safetensors"):
            shutil.copyfile(build / f"references/{ref}/unet/{name}", folder / name)
        training = record["training"]
        reference = {
            "forget_classes": record["forget"],
            "base_model_sha": base_sha,
            "recipe_sha256": UNET.sha256(),
            "cost": _reference_cost(training),
            "training_images": record["training_images"],
        }
        atomic_write_text(folder / "reference.json", json.dumps(reference, indent=2, sort_keys=True) + "\n")
        parts.append(f"references/{ref}/diffusion_pytorch_model.safetensors")
    before = read_manifest(destination).get("files", {})
    for prior in sorted((destination / "priors").glob(f"*/{TENSORS}")):  # shipped priors of this very base model
        rel, record = prior.relative_to(destination).as_posix(), prior.parent / "prior.json"
        if not record.is_file() or json.loads(record.read_text()).get("model_sha") != base_sha:
            print(f"{prior.parent.name}: not kept (no prior.json, or made from another base model)")
        elif rel not in before or sha256_file(prior) != before[rel]:
            print(f"{prior.parent.name}: not kept (its sha256 is not the one the manifest recorded)")
        else:
            parts.append(rel)
    unet_record = json.loads((build / "unet/recipe.json").read_text())
    manifest: dict[str, Any] = {
        "testbed": "text16",
        "files": {p: sha256_file(destination / p) for p in parts if p.endswith(".safetensors")},
        "sampler": {"guidance_scale": guidance},
        "recipes": {
            "encoder": asdict(ENCODER),
            "clip_scorer": asdict(CLIP_SCORER),
            "unet": {k: v for k, v in unet_record.items() if k not in ("training", "encoder")},
            "judges": {j: json.loads((build / f"judges/{j}.recipe.json").read_text())["recipe"] for j in JUDGES},
        },
        "training": {"unet": unet_record.get("training")},
        "parameters": {"unet": unet_record.get("parameters")},
        "zero_shot": {},
        "references": {},
        # the words the training captions use: prompt attacks search only these (their tokens were trained)
        "vocabulary": list(load_grammar().vocabulary()),
        "concepts": {
            c.id: {
                "family": c.family,
                "canonical": list(c.canonical),
                "heldout": list(c.heldout),
                "neighbours": list(c.neighbours),
            }
            for c in load_grammar().concepts
        },  # fmt: skip
    }
    for e in ("encoder", "clip_scorer"):
        manifest["parameters"][e] = parameter_counts(load_encoder(destination / e))
        manifest["zero_shot"][e] = json.loads((build / e / "zero_shot.json").read_text())
    for j in JUDGES:
        record = json.loads((build / f"judges/{j}.recipe.json").read_text())
        manifest["training"][j] = record["figures"]
    for ref in references:
        record = json.loads((build / f"references/{ref}/recipe.json").read_text())
        manifest["references"][ref] = {k: record.get(k) for k in ("forget", "training", "training_images")}
    atomic_write_text(destination / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def ship_priors(cache: Path, destination: Path | None = None) -> list[str]:
    """``pretrain --testbed text16 --what prior --ship --cache STORE/cache/priors``: the priors in ``cache`` made
    from the shipped base model (:func:`unlearnbench.priors.ship_priors`), into ``destination`` (default the
    package's ``text16/model/``) and its manifest's ``files``."""
    from unlearnbench.io import atomic_write_text, locked
    from unlearnbench.priors import ship_priors as ship
    from unlearnbench.testbeds.text16 import SHIPPED, read_manifest

    destination = destination or SHIPPED
    manifest_file = destination / "manifest.json"

    def record(path: str, sha: str) -> None:
        with locked(destination / ".manifest.json.lock"):
            manifest = json.loads(manifest_file.read_text())
            manifest["files"][path] = sha
            atomic_write_text(manifest_file, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    model_sha = read_manifest(destination).get("files", {}).get("unet/unet/diffusion_pytorch_model.safetensors")
    if model_sha is None:
        raise UserError(f"{destination}: no shipped base model to ship priors for (its manifest lists no UNet)")
    return ship(cache, model_sha, destination, record)
