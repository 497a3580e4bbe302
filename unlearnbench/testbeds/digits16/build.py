"""``unlearnbench pretrain``: build the testbed's models with their recorded recipes, and ship them."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from unlearnbench.data import load_dataset
from unlearnbench.errors import UserError
from unlearnbench.io import atomic_write_text, locked
from unlearnbench.models import num_params, save_classifier, save_diffusion, sha256_file
from unlearnbench.pretrain import (
    ATTACKER_RECIPE,
    EVALUATOR_RECIPE,
    JUDGE2_RECIPE,
    DiffusionRecipe,
    recipe_sha256,
    train_classifier,
    train_diffusion,
)
from unlearnbench.testbeds.digits16 import NAME, ROOT, manifest_path


def _versions() -> dict[str, str]:
    import diffusers

    return {"torch": torch.__version__, "diffusers": diffusers.__version__}


def update_manifest(update: dict[str, Any]) -> None:
    """Merge ``update`` into the testbed's manifest; two builds shipping at once (two retrain references)
    take turns, so neither entry is lost."""
    path = manifest_path()
    with locked(path.with_name(f".{path.name}.lock")):
        manifest = (
            json.loads(path.read_text())
            if path.is_file()
            else {"dataset": NAME, "files": {}, "recipes": {}, "training": {}}
        )
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(manifest.get(key), dict):
                manifest[key].update(value)
            else:
                manifest[key] = value
        atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def build(
    what: str,
    *,
    out: Path | None,
    ship: bool,
    steps: int | None,
    dataset: str = "digits16",
    channels: tuple[int, ...] | None = None,
    layers_per_block: int | None = None,
    classes: tuple[int, ...] | None = None,
    device: str = "cpu",
    lr: float | None = None,
) -> None:
    """Train with the recorded recipe. ``channels``/``layers_per_block`` change the UNet's size (capacity
    studies); ``classes`` trains on those classes only (what ``retrain`` does)."""
    custom = steps is not None or dataset != "digits16" or channels or layers_per_block or classes or lr
    if ship and custom:
        raise UserError("--ship builds the digits16 assets with the recorded recipe; drop the overrides")
    if not ship and out is None:
        raise UserError("give --out DIR (or --ship to rebuild the shipped digits16 assets)")
    if steps is not None and steps < 1:
        raise UserError(f"--steps must be >= 1, got {steps}")
    data = load_dataset(dataset)
    train_x, train_y = data.train_x, data.train_y
    if classes:
        bad = [c for c in classes if not 0 <= c < data.num_classes]
        if bad:
            raise UserError(f"--classes: {bad[0]} is out of range 0..{data.num_classes - 1}")
        train_x, train_y = data.subset("train", classes)
    root = ROOT if ship else out
    assert root is not None
    root.mkdir(parents=True, exist_ok=True)
    targets = ["unet", "evaluator", "attacker", "judge2"] if what == "all" else [what]
    for target in targets:
        t0 = time.perf_counter()
        if target == "unet":
            recipe = DiffusionRecipe()
            recipe = recipe.scaled(
                num_classes=data.num_classes, channels=data.image_shape[0], sample_size=data.image_shape[1]
            )
            if steps is not None:
                recipe = replace(recipe, steps=steps)
            if channels:
                recipe = recipe.scaled(block_out_channels=tuple(channels))
            if layers_per_block:
                recipe = recipe.scaled(layers_per_block=layers_per_block)
            if lr is not None:
                if lr <= 0:
                    raise UserError(f"--lr must be > 0, got {lr}")
                recipe = replace(recipe, lr=lr)
            model, schedule = train_diffusion(recipe, train_x, train_y, device=device)
            save_diffusion(model, schedule, root)
            weights = "unet/diffusion_pytorch_model.safetensors"
            info = {"params": num_params(model)}
        else:
            crecipe = {"evaluator": EVALUATOR_RECIPE, "attacker": ATTACKER_RECIPE, "judge2": JUDGE2_RECIPE}[target]
            crecipe = replace(
                crecipe,
                arch=replace(
                    crecipe.arch,
                    num_outputs=data.num_classes + 1,
                    channels=data.image_shape[0],
                    image_size=data.image_shape[1],
                ),
            )
            if steps is not None:
                crecipe = replace(crecipe, steps=steps)
            clf = train_classifier(crecipe, train_x, train_y, desc=target)
            weights = f"{target}.safetensors"
            save_classifier(clf, root / weights)
            recipe = crecipe  # type: ignore[assignment]
            info = {"params": num_params(clf)}
        seconds = time.perf_counter() - t0
        record = {**asdict(recipe), "sha256": recipe_sha256(recipe)}
        atomic_write_text(root / f"{target}.recipe.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
        digest = sha256_file(root / weights)
        print(f"{target}: {info['params']:,} parameters, {seconds:.0f} s, weights sha256 {digest[:12]}")
        if ship:
            update_manifest(
                {
                    "dataset": "digits16",
                    "data_fingerprint": data.fingerprint(),
                    "files": {weights: sha256_file(root / weights)},
                    "recipes": {target: record},
                    "training": {
                        target: {
                            "seconds": round(seconds, 1),
                            "threads": torch.get_num_threads(),
                            **info,
                            **_versions(),
                        }
                    },
                },
            )


# ---------------------------------------------------------------------------------------------
# Shipped gold-standard references (unlearnbench.references)
# ---------------------------------------------------------------------------------------------


def reference_cost(progress: dict[str, Any], base_training: dict[str, Any] | None, steps: int) -> dict[str, Any]:
    """The cost a shipped reference records, which ``retrain`` runs that load it are charged.

    Its own segments' wall time is not a fair figure: they may run one or two at a time, paused and resumed
    beside other jobs. A retrain is the base model's recipe (same steps, batch and network) on 90% of its
    data, so the wall time charged is the base model's measured training time scaled by steps, with the
    threads it used; the reference's own wall and CPU seconds are recorded beside it."""
    own = {"measured_wall_s": progress["seconds"], "cpu_s": progress["cpu_seconds"], "steps": steps}
    if base_training and base_training.get("seconds") and base_training.get("steps"):
        wall = round(float(base_training["seconds"]) * steps / int(base_training["steps"]), 1)
        scaled = "" if steps == int(base_training["steps"]) else f", scaled to {steps} steps"
        basis = (
            f"the base model's training ({base_training['seconds']} s for {base_training['steps']} steps on "
            f"{base_training.get('threads', '?')} threads{scaled}): the same recipe on the retained data"
        )
        return {**own, "wall_s": wall, "wall_basis": basis}
    return {**own, "wall_s": progress["seconds"], "wall_basis": "this reference's own segments (load not controlled)"}


def retain_training_data(tb: Any, forget: str) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``retrain`` trains on when it forgets ``forget``: the runner's retain set (tests check they agree)."""
    x, cond = tb.images("train", tb.retained((forget,)), exclude=(forget,))
    return x, cond.labels


def build_reference(
    forget: str,
    *,
    cache: Path,
    deadline: float | None = None,
    dtype: str = "float16",
    device: str = "cpu",
    root: Path | None = None,
) -> bool:
    """Train (or resume) the shipped base model's recipe without the concept ``forget`` and ship the result as
    ``references/retrain-<concept>`` with its recorded training cost. Resumable: the state is checkpointed
    under ``cache``; past ``deadline`` (a ``time.time()`` value) it pauses and returns False. True once shipped.
    """
    from unlearnbench.cost import CostMeter
    from unlearnbench.pretrain import Checkpointing, TrainingPaused
    from unlearnbench.references import WEIGHTS, reference_name
    from unlearnbench.testbeds import load_testbed

    tb = load_testbed(NAME)
    if tb.recipe is None:
        raise UserError("the shipped testbed records no recipe for its base model")
    (forget,) = tb.check_forget((forget,))
    if dtype not in ("float16", "float32"):
        raise UserError(f"dtype must be float16 or float32, got {dtype!r}")
    name = reference_name((forget,))
    sha = recipe_sha256(tb.recipe)
    state = Checkpointing(cache / f"{name}-{tb.model_sha[:12]}-{sha[:12]}", every=200, deadline=deadline)
    x, y = retain_training_data(tb, forget)
    meter = CostMeter(device)
    try:
        with meter.measure():
            model, _ = train_diffusion(tb.recipe, x, y, meter=meter, device=device, desc=name, checkpointing=state)
    except TrainingPaused as e:
        print(f"{name}: {e}; rerun the same command to continue", flush=True)
        return False
    progress = json.loads((state.directory / "progress.json").read_text())
    root = root or ROOT
    folder = root / "references" / name
    folder.mkdir(parents=True, exist_ok=True)
    model.to(getattr(torch, dtype)).save_pretrained(folder, safe_serialization=True)
    training = json.loads(manifest_path().read_text()).get("training", {}).get("unet")
    base = {**training, "steps": tb.recipe.steps} if isinstance(training, dict) else None  # the same recipe
    cost = {
        **reference_cost(progress, base, tb.recipe.steps),
        "peak_mem_mb": round(meter.cost.peak_mem_mb, 1),  # of the last (resumed) segment
    }
    record = {
        "forget_classes": [int(forget)],  # the class number (the concept's name)
        "base_model_sha": tb.model_sha,
        "recipe_sha256": sha,
        "dtype": dtype,
        "cost": cost,
        "threads": torch.get_num_threads(),
        "note": "cost.wall_s is what retrain runs that load this reference are charged (cost.wall_basis says "
        "why); cost.measured_wall_s and cost.cpu_s are this reference's own segments, summed over resumes",
        **_versions(),
    }
    atomic_write_text(folder / "reference.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    rel = f"references/{name}/{WEIGHTS}"
    if root == ROOT:
        update_manifest({"files": {rel: sha256_file(folder / WEIGHTS)}})
    print(f"{name}: shipped ({cost['wall_s']:.0f} s recorded, {dtype}, sha256 {sha256_file(folder / WEIGHTS)[:12]})")
    return True


# ---------------------------------------------------------------------------------------------
# Shipped method priors (unlearnbench.priors.ShippedPriors)
# ---------------------------------------------------------------------------------------------


def ship_priors(cache: Path, root: Path | None = None) -> list[str]:
    """Ship the priors in ``cache`` made from the shipped base model (:func:`unlearnbench.priors.ship_priors`)
    into ``root`` (default: the package's assets, entered in their manifest)."""
    from unlearnbench.priors import ship_priors as ship
    from unlearnbench.testbeds import load_testbed

    root = root or ROOT
    record = (lambda path, sha: update_manifest({"files": {path: sha}})) if root == ROOT else None
    return ship(cache, load_testbed(NAME).model_sha, root, record)


# ---------------------------------------------------------------------------------------------
# ``unlearnbench pretrain --testbed digits16``
# ---------------------------------------------------------------------------------------------

CACHE_DEFAULT = ".reference-cache"


def pretrain(args: Any) -> int:
    """The ``pretrain`` command on this testbed: its models (``--what unet|evaluator|attacker|judge2|all``), its
    retrained references (``--what retrain --forget C ... --ship``) or its shipped priors (``--what prior``).
    ``args.deadline`` is a ``time.time()`` value or None (the command line parses ``HH:MM``)."""
    if args.what == "prior":
        if not args.ship or args.cache is None:
            raise UserError("--what prior ships cached priors: give --ship and --cache STORE/cache/priors")
        ship_priors(Path(args.cache))
        return 0
    if args.what == "retrain":
        if not args.ship or not args.forget:
            raise UserError("--what retrain builds shipped references: give --ship and --forget CONCEPT ...")
        cache = Path(args.cache or CACHE_DEFAULT)
        done = [
            build_reference(c, cache=cache, deadline=args.deadline, dtype=args.dtype, device=args.device)
            for c in args.forget
        ]
        return 0 if all(done) else 75  # 75 (EX_TEMPFAIL): paused at the deadline; rerun to continue
    if args.forget or args.deadline:
        raise UserError("--forget and --deadline go with --what retrain")
    build(
        args.what,
        out=Path(args.out) if args.out else None,
        ship=args.ship,
        steps=args.steps,
        dataset=args.dataset or NAME,
        channels=tuple(args.channels) if args.channels else None,
        layers_per_block=args.layers_per_block,
        classes=tuple(args.classes) if args.classes else None,
        lr=args.lr,
        device=args.device,
    )
    return 0
