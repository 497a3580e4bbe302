"""Base-model recipe search (issue 12, item 1): a model that holds at the testbed's and the papers' guidance.

At most four recipes (``RECIPES``). For each: train it (resumable: the full state is checkpointed to
``CACHE/<recipe>/train_state.pt``; rerunning the same command continues), then measure it:

* ``testbed check`` figures at s = 1 and s = 3, DDIM eta 0 and 1 (30 samples per class);
* the stability test (``unlearnbench.stability``): 29 steps of the ``finetune`` baseline on forget
  classes 0, 3 and 7; retained-class accuracy may move by at most 0.03 and the retained FID ratio by at
  most 25 % at s = 1 (eta 0) and s = 3 (eta 1), and 200 null-label samples must stay a mix of all ten digits.

Outputs (committed: weights as safetensors + json only): ``OUT/<recipe>/base`` (diffusers layout,
``unet.recipe.json`` with the recipe and its sha256, ``training.json``), ``OUT/<recipe>/checks.json``,
``OUT/<recipe>/stability.json``, and the table ``OUT/recipes.md`` / ``recipes.csv``. Training runs one
recipe at a time, in this process.

    nice -n 19 python scripts/protocol_study.py --recipes b --threads 1 --deadline 08:30
    python scripts/protocol_study.py --table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from unlearnbench import flags
from unlearnbench.models import UNetArch, num_params, save_diffusion
from unlearnbench.pretrain import Checkpointing, DiffusionRecipe, TrainingPaused, recipe_sha256, train_diffusion

BASE = DiffusionRecipe()
RECIPES: dict[str, tuple[str, DiffusionRecipe]] = {
    "a": ("today's UNet2DModel, 2x the steps, 20% null labels", DiffusionRecipe(steps=16000, label_dropout=0.2)),
    "b": (
        "class through its own MLP into every block (as upstream), dropout 0.1",
        DiffusionRecipe(arch=UNetArch(conditioning="block_mlp", dropout=0.1)),
    ),
    "c": (
        "(b) at 4x the parameters: channels (64, 128, 128)",
        DiffusionRecipe(arch=UNetArch(conditioning="block_mlp", dropout=0.1, block_out_channels=(64, 128, 128))),
    ),
}
CHECK_SETTINGS = ((1.0, 0.0), (1.0, 1.0), (3.0, 0.0), (3.0, 1.0))


def train(name: str, out: Path, cache: Path, deadline: float | None, device: str) -> bool:
    """Train (or resume) one recipe; True once its base model exists."""
    from unlearnbench.data import load_dataset

    _, recipe = RECIPES[name]
    base = out / name / "base"
    sha = recipe_sha256(recipe)
    recorded = base / "unet.recipe.json"
    if recorded.is_file() and json.loads(recorded.read_text())["sha256"] == sha:
        return True
    data = load_dataset("digits16")
    ckpt = Checkpointing(cache / name, every=200, deadline=deadline)
    print(f"{name}: training {recipe.steps} steps (state: {ckpt.path})", flush=True)
    try:
        model, schedule = train_diffusion(recipe, data.train_x, data.train_y, device=device, checkpointing=ckpt)
    except TrainingPaused as e:
        print(f"{name}: {e}; rerun the same command to continue", flush=True)
        return False
    progress = json.loads((ckpt.directory / "progress.json").read_text())
    save_diffusion(model.cpu(), schedule, base)
    record = {**asdict(recipe), "sha256": sha}
    recorded.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    info = {
        "params": num_params(model),
        "steps": recipe.steps,
        "seconds": progress["seconds"],
        "cpu_seconds": progress.get("cpu_seconds"),
        "threads": torch.get_num_threads(),
        "device": device,
    }
    (base / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"{name}: {info['params']:,} parameters, {info['seconds']:.0f} s", flush=True)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--recipes", default="b", help="comma-separated recipe names, in order (a, b, c; 'shipped' measures only)"
    )
    p.add_argument("--out", default="results/protocol")
    p.add_argument("--cache", default=".protocol-cache", help="training state (not committed)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--deadline", default=None, help="HH:MM UTC: pause training there (resumable)")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--table", action="store_true", help="only rebuild the table")
    p.add_argument(
        "--prc",
        metavar="RECIPE",
        help="precision and recall (vs. real test images) of a measured recipe at the four settings, to prc.json",
    )
    p.add_argument(
        "--ship",
        metavar="RECIPE",
        help="make a measured recipe's model the shipped digits16 base model (keeps the old one's figures)",
    )
    p.add_argument(
        "--unlearn-table",
        metavar="STORE",
        help="item 4's table from a store of configs/protocol-unlearn.toml runs (adds null-label digit counts)",
    )
    p.add_argument(
        "--ddpm-run",
        metavar="STORE",
        help="run DDPM_MODELS at the papers' setting with 50 and with 1000 sampler steps into STORE (resumable)",
    )
    p.add_argument(
        "--ddpm-table", metavar="STORE", help="the DDPM-1000 agreement table from the store --ddpm-run wrote"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out, cache = Path(a.out), Path(a.cache)
    if a.ship:
        ship(a.ship, out)
        return
    if a.prc:
        print(json.dumps(precision_recall(a.prc, out), indent=2))
        return
    if a.unlearn_table:
        print(unlearn_table(Path(a.unlearn_table), out))
        return
    if a.ddpm_run:
        ddpm_run(Path(a.ddpm_run))
        a.ddpm_table = a.ddpm_run
    if a.ddpm_table:
        print(ddpm_table(Path(a.ddpm_table), out))
        return
    deadline = flags.deadline(a.deadline)
    if not a.table:
        for name in [r for r in a.recipes.split(",") if r]:
            if name not in RECIPES and name != "shipped":
                sys.exit(f"unknown recipe {name!r} (known: shipped, {', '.join(RECIPES)})")
            if name != "shipped" and not train(name, out, cache, deadline, a.device):
                sys.exit(3)
            if not a.train_only:
                measure(name, out, a.device)
    if not a.train_only:
        print(table(out, cache))


def precision_recall(name: str, out: Path) -> dict[str, dict[str, float]]:
    """``testbed check``'s precision and recall at each setting (30 samples per class, seed 0): does guidance
    trade diversity (recall) for fidelity (precision)?"""
    from unlearnbench.api import SamplerSettings
    from unlearnbench.testbed_check import run_checks
    from unlearnbench.testbeds import load_testbed

    tb = load_testbed("digits16", model=None if name == "shipped" else str(model_dir(name, out)))
    path = out / name / "prc.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    for guidance, eta in CHECK_SETTINGS:
        key = f"s={guidance:g},eta={eta:g}"
        if key not in result:
            checks = run_checks(tb, per_class=30, sampler=SamplerSettings(guidance_scale=guidance, eta=eta), seed=0)
            result[key] = {
                c.name: round(c.value, 4)
                for c in checks
                if c.name in ("precision_vs_test", "recall_vs_test", "fid_ratio")
            }
            path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def ship(name: str, out: Path) -> None:
    """Copy recipe ``name``'s base model into the shipped digits16 assets and record it in the manifest.

    The replaced model's figures stay in ``OUT/previous`` (its checks, stability test and training record):
    the recipe table shows them as history. The recipe must be ``DiffusionRecipe()``'s default, so that
    ``unlearnbench pretrain --ship`` rebuilds what is shipped."""
    import shutil

    from unlearnbench.data import load_dataset
    from unlearnbench.models import sha256_file
    from unlearnbench.testbeds import ASSETS, read_manifest
    from unlearnbench.testbeds.build import update_manifest

    base, assets = model_dir(name, out), ASSETS / "digits16"
    record = json.loads((base / "unet.recipe.json").read_text())
    if record["sha256"] != recipe_sha256(DiffusionRecipe()):
        sys.exit(f"recipe {name} is not DiffusionRecipe()'s default: make it the default first")
    if not (out / name / "stability.json").is_file():
        sys.exit(f"recipe {name} is not measured yet")
    previous = out / "previous"
    if not previous.exists():  # the first ship keeps the model it replaces as history
        previous.mkdir(parents=True)
        manifest = read_manifest("digits16")
        history = {"recipe": manifest["recipes"]["unet"], "training": manifest["training"]["unet"]}
        (previous / "training.json").write_text(json.dumps(history, indent=2, sort_keys=True) + "\n")
        for f in ("checks.json", "stability.json"):
            shutil.copy(out / "shipped" / f, previous / f)
    for part in ("unet", "scheduler"):
        shutil.rmtree(assets / part, ignore_errors=True)
        shutil.copytree(base / part, assets / part)
    shutil.copy(base / "unet.recipe.json", assets / "unet.recipe.json")
    info = json.loads((base / "training.json").read_text())
    weights = "unet/diffusion_pytorch_model.safetensors"
    update_manifest(
        "digits16",
        {
            "data_fingerprint": load_dataset("digits16").fingerprint(),
            "files": {weights: sha256_file(assets / weights)},
            "recipes": {"unet": record},
            "training": {
                "unet": {
                    "params": info["params"],
                    "seconds": info["seconds"],
                    "threads": info["threads"],
                    "note": f"scripts/protocol_study.py recipe {name}; 1 thread on 2 shared CPU cores, resumed "
                    "across sessions",
                }
            },
        },
    )
    for f in ("checks.json", "stability.json"):
        shutil.copy(out / name / f, out / "shipped" / f)
    print(f"shipped recipe {name}: {weights} sha256 {sha256_file(assets / weights)[:12]}")


def model_dir(name: str, out: Path) -> Path:
    if name == "shipped":
        from unlearnbench.testbeds import ASSETS

        return ASSETS / "digits16"
    return out / name / "base"


def measure(name: str, out: Path, device: str) -> None:
    """``testbed check`` at the four settings, then the stability test; each result file is written once."""
    from unlearnbench.api import SamplerSettings
    from unlearnbench.stability import stability_test
    from unlearnbench.testbed_check import run_checks
    from unlearnbench.testbeds import load_testbed

    model = None if name == "shipped" else str(model_dir(name, out))
    tb = load_testbed("digits16", model=model, device=device)
    (out / name).mkdir(parents=True, exist_ok=True)
    checks_path = out / name / "checks.json"
    checks = json.loads(checks_path.read_text()) if checks_path.is_file() else {}
    for guidance, eta in CHECK_SETTINGS:
        key = f"s={guidance:g},eta={eta:g}"
        if key in checks:
            continue
        t0 = time.perf_counter()
        sampler = SamplerSettings(guidance_scale=guidance, eta=eta)
        result = run_checks(tb, per_class=30, sampler=sampler, seed=0)
        checks[key] = {
            "values": {c.name: round(c.value, 4) for c in result},
            "failed": [c.name for c in result if not c.ok],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        checks_path.write_text(json.dumps(checks, indent=2) + "\n")
        print(f"{name} check {key}: {'ok' if not checks[key]['failed'] else checks[key]['failed']}", flush=True)
    stab_path = out / name / "stability.json"
    if not stab_path.is_file():
        t0 = time.perf_counter()
        result = stability_test(tb)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        stab_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name} stability: {'passed' if result['passed'] else 'failed'}", flush=True)


def table(out: Path, cache: Path) -> str:
    """One row per measured recipe: parameters, training time, the checks at each setting, the stability test."""
    import pandas as pd

    from unlearnbench.report.cells import to_markdown

    rows = []
    for name in ("previous", "shipped", *RECIPES):
        checks_path = out / name / "checks.json"
        progress = cache / name / "progress.json"
        if not checks_path.is_file() and name != "shipped" and progress.is_file():
            state = json.loads(progress.read_text())
            status = f"training: step {state['step']} of {state['steps']} ({progress.parent}, not committed)"
            rows.append({"recipe": name, "what": RECIPES[name][0], "status": status})
            continue
        if not checks_path.is_file():
            continue
        if name in ("shipped", "previous"):
            from unlearnbench.testbeds import read_manifest

            if name == "previous":
                history = json.loads((out / "previous" / "training.json").read_text())
                training, steps = history["training"], history["recipe"]["steps"]
                what = "previously shipped UNet2DModel (class added to the time embedding), 10% null labels"
            else:
                manifest = read_manifest("digits16")
                training, steps = manifest["training"]["unet"], manifest["recipes"]["unet"]["steps"]
                what = manifest["recipes"]["unet"]["arch"].get("conditioning", "time")
                what = (
                    "shipped "
                    + (
                        "ClassMLPUNet (class MLP into every block)"
                        if what == "block_mlp"
                        else "UNet2DModel (class added to the time embedding)"
                    )
                    + ", 10% null labels"
                )
            info = {"params": training["params"], "seconds": training["seconds"], "steps": steps}
        else:
            info = json.loads((model_dir(name, out) / "training.json").read_text())
            what = RECIPES[name][0]
        row: dict[str, object] = {
            "recipe": name,
            "what": what,
            "params_M": round(info["params"] / 1e6, 2),
            "steps": info["steps"],
            "train_min": round(info["seconds"] / 60, 1),
            "status": "measured",
        }
        for suffix, clipped in (("", False), ("-clip", True)):
            tag = ", x0 clipped per step" if clipped else ""
            path = out / name / f"checks{suffix}.json"
            for key, c in (json.loads(path.read_text()) if path.is_file() else {}).items():
                v = c["values"]
                row[f"acc {key}{tag}"] = v["model_accuracy"]
                row[f"min class {key}{tag}"] = v["model_min_class_accuracy"]
                row[f"FID ratio {key}{tag}"] = v["fid_ratio"]
                row[f"check {key}{tag}"] = "pass" if not c["failed"] else "FAIL: " + ", ".join(c["failed"])
            path = out / name / f"stability{suffix}.json"
            if not path.is_file():
                continue
            st = json.loads(path.read_text())
            for sampler in st["settings"]["samplers"]:
                sel = [
                    r for r in st["rows"] if r["guidance"] == sampler["guidance_scale"] and r["eta"] == sampler["eta"]
                ]
                key = f"s={sampler['guidance_scale']:g},eta={sampler['eta']:g}{tag}"
                row[f"max abs change retained acc {key}"] = max(abs(r["retain_accuracy_change"]) for r in sel)
                row[f"max abs rel. change retained FID ratio {key}"] = max(abs(r["fid_ratio_change"]) for r in sel)
            row[f"null digits min (before; after 0,3,7){tag}"] = "; ".join(
                str(min(r["counts"][:10])) for r in st["null"]
            )
            row[f"stability{tag}"] = "pass" if st["passed"] else "FAIL"
        rows.append(row)
    if not rows:
        return ""
    t = pd.DataFrame(rows, dtype=object)
    t.to_csv(out / "recipes.csv", index=False)
    header = (
        "Generated by `python scripts/protocol_study.py --table`. Checks: `testbed check`, 30 samples per class, "
        "DDIM 50 steps, the predicted x0 not clipped per step (upstream's sampler) unless the row says "
        "'x0 clipped per step' (the sampler before 2026-11-29); "
        "bars: accuracy >= 0.95, every class >= 0.85, FID ratio <= 3. Stability: 29 `finetune` "
        "steps on forget class 0, 3, 7; bars |d retained acc| <= 0.03, |d retained FID ratio| <= 25%, every "
        "digit >= 5 of 200 null-label samples.\n\n"
    )
    wide = t.set_index("recipe").T.reset_index().rename(columns={"index": "figure"}).fillna("")
    md = header + to_markdown(wide)
    (out / "recipes.md").write_text(md)
    return md


UNLEARN_METRICS = {
    ("unlearning_accuracy_11way", "forget"): "UA11",
    ("unlearning_accuracy_10way", "forget"): "UA10",
    ("none_rate", "forget"): "none rate",
    ("retain_accuracy_10way", "retain"): "retained acc",
    ("fid", "retain"): "retained FID",
}


def _final(store: Path):
    from unlearnbench.results import final_rows, load_results

    df = final_rows(load_results(store))
    return df[df["phase"] != "original"]


def _interval(values, stderrs) -> str:
    """Mean over classes, with a 95% interval from the per-class standard errors (normal approximation)."""
    import math

    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum(e * e for e in stderrs if e == e)) / n
    return f"{mean:.3f} ± {1.96 * se:.3f}" if se > 0 else f"{mean:.2f}"


NULL_COLUMN = "null samples: forget / fewest retained / none (per class)"


def unlearn_table(store: Path, out: Path) -> str:
    """Item 4: each method setting x sampler setting, mean over the forget classes (95% interval from the
    per-class binomial standard errors), plus the null-label samples' smallest digit count (of 200, s = 1)."""
    import pandas as pd
    import torch

    from unlearnbench.models import sha256_file, unet_class
    from unlearnbench.results import Store
    from unlearnbench.spec import RunSpec
    from unlearnbench.stability import null_counts
    from unlearnbench.testbeds import load_testbed

    everything = _final(store)
    attacked = everything[everything["attack"] != "none"]
    df = everything[everything["attack"] == "none"]
    tb = load_testbed("digits16")
    runs = Store(store)
    null_digits: dict[str, str] = {}
    by_weights: dict[str, list[int]] = {}
    for run_id in df["run_id"].unique():
        meta = json.loads((runs.root / "runs" / f"{run_id}.json").read_text())
        spec = RunSpec.from_dict(meta["spec"])
        # the key as the runner forms it; models unlearned before methods declared whether they sample were
        # stored under the key with the sampler in it
        keys = {spec.unlearn_key(tb.model_sha, spec.method_args, uses_sampler=flag) for flag in (False, True)}
        cached = next((runs.cache / "unlearned" / k for k in keys if (runs.cache / "unlearned" / k).is_dir()), None)
        if cached is None or not (cached / "cost.json").is_file():
            continue
        # the same weights under another guidance key (methods that never sample): counted once
        weights = sha256_file(next(cached.rglob("*.safetensors")))
        if weights not in by_weights:
            model = unet_class(cached).from_pretrained(str(cached), use_safetensors=True).eval()
            with torch.no_grad():
                by_weights[weights] = null_counts(model, tb.schedule, tb, 200, 0)
        counts, forget = by_weights[weights], int(spec.forget[0])
        retained = min(n for digit, n in enumerate(counts[:10]) if digit != forget)
        null_digits[run_id] = f"{counts[forget]} / {retained} / {counts[10]}"
    rows = []
    keys = ["label", "guidance", "eta"]
    for (label, guidance, eta), g in df.groupby(keys, sort=True):
        row: dict[str, object] = {"setting": label, "s": guidance, "eta": eta, "classes": g["forget_class"].nunique()}
        for (metric, split), name in UNLEARN_METRICS.items():
            m = g[(g["metric"] == metric) & (g["split"] == split) & (g["phase"] == "unlearned")]
            row[name] = _interval(list(m["value"]), list(m["stderr"])) if len(m) else ""
        per_class = g.drop_duplicates("run_id").sort_values("forget_class")
        row[NULL_COLUMN] = ", ".join(null_digits[r] for r in per_class["run_id"] if r in null_digits)
        rows.append(row)
    t = pd.DataFrame(rows)
    from unlearnbench.report.cells import to_markdown

    header = (
        "Generated by `python scripts/protocol_study.py --unlearn-table STORE` from the runs of "
        "`configs/protocol-unlearn.toml` (forget classes 0, 3, 7; seed 0; 100 forget and 20 per retained class "
        "samples). Mean over the classes, 95% interval from the per-class standard errors. Last column, for each "
        "forget class in order: among 200 null-label samples (s = 1) of the unlearned model, how many the evaluator "
        "calls the forget digit / the fewest it calls any retained digit / how many it calls none of them. (A "
        "healthy unconditional branch holds every retained digit; the base model holds each at least 12 times: "
        "see the recipe table.)\n\n"
    )
    md = header + to_markdown(t)
    if len(attacked):
        md += "\n\n" + attack_table(attacked)
    (out / "unlearn.md").write_text(md)
    t.to_csv(out / "unlearn.csv", index=False)
    return md


def attack_table(df) -> str:
    """Item 3: label dropout under an attack that starts from the null embedding (``configs/protocol-attacks.toml``):
    the forget class's 11-way rate before (the unlearned model) and after the attack, by the evaluator."""
    import pandas as pd

    from unlearnbench.report.cells import to_markdown

    rows = []
    for (label, attack, guidance, eta), g in df.groupby(["label", "attack", "guidance", "eta"], sort=True):

        def rate(phase: str, g: pd.DataFrame = g) -> str:
            m = g[(g["metric"] == "asr_11way") & (g["split"] == "forget") & (g["phase"] == phase)]
            return _interval(list(m["value"]), list(m["stderr"])) if len(m) else ""

        rows.append(
            {"setting": label, "attack": attack, "s": guidance, "eta": eta, "classes": g["forget_class"].nunique(),
             "ASR11 before": rate("unlearned"), "ASR11 after": rate("attacked")}
        )  # fmt: skip
    header = (
        "Under an attack that starts from the null embedding (`configs/protocol-attacks.toml`: embedding "
        'inversion, `start = "null"`, forget class 0): the share of forget samples the evaluator calls the '
        "forget digit, before and after the attack.\n\n"
    )
    return header + to_markdown(pd.DataFrame(rows))


# Three models, one class each: SAFEMax at its defaults, tuned SalUn (results/tune/tuned.json), the base model.
DDPM_MODELS = (
    ("safemax", {}, 0, "paper"),
    ("salun", {"alpha": 0.01, "lr": 0.001, "steps": 100}, 3, "tuned"),
    ("noop", {}, 7, "paper"),
)


def ddpm_run(store: Path) -> None:
    """Each of DDPM_MODELS sampled at s = 3, eta = 1 with 50 and with 1000 steps (100 forget samples, 5 per
    retained class); a finished run is not redone."""
    from unlearnbench.evaluate import eval_settings
    from unlearnbench.results import Store
    from unlearnbench.runner import Runner
    from unlearnbench.spec import RunSpec

    runner = Runner(Store(store))
    for method, margs, forget, label in DDPM_MODELS:
        for steps in (50, 1000):
            settings = {"protocol": "papers", "sample_steps": steps, "forget_samples": 100, "retain_samples": 5}
            spec = RunSpec(method, forget=(forget,), method_args=margs, label=label, eval=eval_settings(settings))
            resolved, tb = runner.prepare(spec)
            if runner.store.is_complete(resolved.run_id):
                continue
            print(f"ddpm check: {method} class {forget}, {steps} steps", flush=True)
            runner.execute(resolved, tb)


def ddpm_table(store: Path, out: Path) -> str:
    """DDPM-1000 (DDIM eta = 1, 1000 steps) against the 50-step sampler at the papers' s = 3: does each judged
    number agree within its 95% interval?"""
    import math

    import pandas as pd

    from unlearnbench.report.cells import to_markdown

    df = _final(store)
    rows = []
    for (label, method, fc, metric, split), g in df.groupby(["label", "method", "forget_class", "metric", "split"]):
        if (metric, split) not in UNLEARN_METRICS:
            continue
        by_steps = {int(r.sample_steps): (r.value, r.stderr) for r in g[g["phase"] == "unlearned"].itertuples()}
        if {50, 1000} - set(by_steps):
            continue
        (v50, e50), (v1000, e1000) = by_steps[50], by_steps[1000]
        half = 1.96 * math.sqrt(e50**2 + e1000**2)
        rows.append(
            {
                "model": f"{method} ({label}), class {fc}",
                "figure": UNLEARN_METRICS[(metric, split)],
                "50 steps": round(v50, 3),
                "1000 steps": round(v1000, 3),
                "difference": round(v50 - v1000, 3),
                "95% half-width": round(half, 3),
                "agree": "yes" if abs(v50 - v1000) <= half else "NO",
            }
        )
    t = pd.DataFrame(rows)
    header = (
        "Generated by `python scripts/protocol_study.py --ddpm-table STORE` from the runs of "
        "`python scripts/protocol_study.py --ddpm-run STORE` (`DDPM_MODELS`: SAFEMax at its defaults on class 0, "
        "tuned SalUn on class 3, the base model (noop) on class 7; s = 3, eta = 1: the papers' sampler with 1000 "
        "steps against the 50 the benchmark uses; 100 forget samples, 5 per retained class). A figure agrees when "
        "the difference is within 1.96 x sqrt(se_50^2 + se_1000^2); the retained FID is from 45 samples on both "
        "sides.\n\n"
    )
    md = header + to_markdown(t)
    (out / "ddpm.md").write_text(md)
    return md


if __name__ == "__main__":
    main()
