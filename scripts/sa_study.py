"""Does Selective Amnesia forget on this testbed at any EWC weight? The table behind the README's verdict.

Two parts, written as one markdown file:

1. **The Fisher's scale against the loss.** From the prior the runs used (the store's cache, or the shipped
   one): the Fisher's sum and spread; the two pixel-summed denoising terms on one batch at the original
   weights; Adam's first step from there (every weight moves by about ``lr``: Adam normalises the gradient),
   and the EWC term ``lambda * sum_i F_i dtheta_i^2`` and the norm of its gradient after that step, against
   the loss and its gradient. The Fisher sums the pixel-summed loss over all T = 1000 timesteps before
   squaring the gradient (as the authors' ``save_fim`` does), so it is T^2 = 10^6 times the Fisher of the
   timestep-averaged loss that training actually minimises; the table says what lambda means on that scale.
2. **The lambda table.** Every Selective Amnesia run of the store on the study's class (``configs/sa-lam.toml``):
   lambda, learning rate, EMA or raw model, UA11, retained accuracy (10-way), retained FID, each with its 95%
   interval, against the original model's, and whether it passes the tuning rule (``unlearnbench.tune``).

    unlearnbench sweep --config configs/sa-lam.toml --out results/tune/store --workers 1
    python scripts/sa_study.py results/tune/store > results/sa/lam.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from unlearnbench.report.cells import to_markdown
from unlearnbench.results import final_rows, load_results
from unlearnbench.tune import FID_FACTOR, TOLERANCE

CLASS = 5
SCORES = [
    ("unlearning_accuracy_11way", "forget", "UA11"),
    ("retain_accuracy_10way", "retain", "retained acc (10-way)"),
    ("fid", "retain", "FID retain"),
]


def _fmt(value: float, lo: float, hi: float) -> str:
    digits = 3 if abs(value) < 10 else 1
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _prior_path(store: Path) -> Path:
    """The prior the study's runs read (default arguments, the testbed's guidance): shipped first, then the
    store's cache, as the runner looks."""
    from unlearnbench.methods.selective_amnesia import SAArgs, prior_key
    from unlearnbench.priors import TENSORS, prior_folder_name
    from unlearnbench.testbeds import default_guidance, load_testbed

    tb = load_testbed("digits16")
    name = prior_folder_name("selective_amnesia", tb.model_sha, prior_key(SAArgs(), default_guidance("digits16", None)))
    for folder in ([tb.priors.root / name] if tb.priors is not None else []) + [store / "cache" / "priors" / name]:
        if (folder / TENSORS).is_file():
            return folder / TENSORS
    sys.exit(f"sa_study: no Selective Amnesia prior {name} shipped or in {store}/cache/priors; run the sweep first")


def fisher_scale(store: Path, lam: float = 10.0, lr: float = 1e-4, batch_size: int = 128) -> str:
    """Part 1 (see the module docstring), on one batch of the loss at the original weights."""
    from safetensors.torch import load_file

    from unlearnbench.methods.selective_amnesia import denoising_terms, ewc_penalty
    from unlearnbench.runner import build_task
    from unlearnbench.spec import RunSpec
    from unlearnbench.testbeds import load_testbed

    path = _prior_path(store)
    prior = load_file(str(path))
    fisher = {k.removeprefix("fisher."): v for k, v in prior.items() if k.startswith("fisher.")}
    tb = load_testbed("digits16")
    task = build_task(RunSpec(method="selective_amnesia", forget=(CLASS,)), tb, torch.device("cpu"))
    model = tb.model
    model.requires_grad_(True).train()
    params = dict(model.named_parameters())
    anchor = {n: p.detach().clone() for n, p in params.items()}
    replay = task.conditioner.encode_ids(prior["replay.labels"])
    keep = ~replay.concept_mask(task.forget_classes)
    gen = torch.Generator().manual_seed(0)
    forget_term, replay_term = denoising_terms(
        model, task, batch_size, prior["replay.images"][keep], replay[keep], task.concept_cond(), gen
    )
    loss = forget_term + replay_term
    grads = torch.autograd.grad(loss, list(params.values()))
    g_norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    loss, forget_term, replay_term = loss.detach(), forget_term.detach(), replay_term.detach()
    # Adam's first step: m/sqrt(v) = g/|g| (bias-corrected), so each weight moves by lr against its gradient's sign
    with torch.no_grad():
        for (_, p), g in zip(params.items(), grads, strict=True):
            p.sub_(lr * torch.sign(g))
    ewc = float(ewc_penalty(fisher, params, anchor).detach())
    ewc_grad = torch.sqrt(sum((2 * fisher[n] * (params[n] - anchor[n])).pow(2).sum() for n in fisher)).detach()
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(anchor[n])
    model.requires_grad_(False).eval()
    flat = torch.cat([f.flatten() for f in fisher.values()])
    top = flat.sort(descending=True).values
    T = task.schedule.config.num_train_timesteps
    n = len(flat)
    lines = [
        f"Prior: `{path.parent.name}` ({len(prior['replay.labels'])} replay samples). One batch of {batch_size} "
        f"surrogate and {batch_size} replay images at the original weights (seed 0); Adam's first step at lr {lr:g}.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| parameters | {n:,} |",
        f"| Fisher: sum | {float(flat.sum()):.4g} |",
        f"| Fisher: mean, median, max | {float(flat.mean()):.3g}, {float(flat.median()):.3g}, {float(top[0]):.3g} |",
        f"| Fisher: share of the sum in the top 1% of weights | {float(top[: n // 100].sum() / flat.sum()):.1%} |",
        f"| forget term (pixel-summed, batch mean) | {float(forget_term):.4g} |",
        f"| replay term (pixel-summed, batch mean) | {float(replay_term):.4g} |",
        f"| loss gradient norm | {float(g_norm):.4g} |",
        f"| EWC sum F dθ² after the step (lr² ΣF = {lr**2 * float(flat.sum()):.4g}) | {ewc:.4g} |",
        f"| λ = {lam:g}: EWC term after one step, against the loss | {lam * ewc:.4g} against {float(loss):.4g} "
        f"({lam * ewc / float(loss):.3g}×) |",
        f"| λ = {lam:g}: EWC gradient norm after one step, against the loss's | {lam * float(ewc_grad):.4g} "
        f"({lam * float(ewc_grad) / float(g_norm):.3g}×) |",
        f"| λ at which one step's EWC term equals the loss | {float(loss) / ewc:.3g} |",
        f"| λ = {lam:g} on the scale of the timestep-averaged loss's Fisher (÷ T² = {T**2:,}) | {lam / T**2:.3g} |",
    ]
    return "\n".join(lines)


def lam_table(store: Path) -> str:
    df = load_results(store)
    df = df[(df.method == "selective_amnesia") & (df.attack == "none") & (df.forget_concept == str(CLASS))]
    df = df[(df.guidance == 1.0) & (df.eta == 0.0) & (df.precision == "bfloat16")]  # configs/sa-lam.toml's sampler
    if df.empty:
        sys.exit(f"sa_study: no Selective Amnesia run on class {CLASS} in {store}")
    fin = final_rows(df)
    fin = fin[fin.class_id.isna()]
    rows = []
    for run_id, run in fin.groupby("run_id"):
        args = json.loads(run.method_args.iloc[0])

        def score(phase: str, metric: str, split: str, run: pd.DataFrame = run) -> pd.Series:
            return run[(run.phase == phase) & (run.metric == metric) & (run.split == split)].iloc[0]

        row: dict[str, object] = {
            "λ": args["lam"],
            "lr": args["lr"],
            "model": "EMA" if args["ema_decay"] > 0 else "raw",
        }
        for metric, split, name in SCORES:
            s = score("unlearned", metric, split)
            row[name] = _fmt(s.value, s.lo, s.hi)
            row[f"_{metric}"] = s.value
            o = score("original", metric, split)
            row[f"_orig_{metric}"] = o.value
        cost = run[(run.phase == "unlearned") & run.metric.isin(["cost_wall_s", "cost_prior_wall_s"])]
        walls = dict(zip(cost.metric, cost.value, strict=True))
        row["unlearning wall s (its prior part)"] = (
            f"{walls.get('cost_wall_s', float('nan')):.0f} ({walls.get('cost_prior_wall_s', 0):.0f})"
        )
        passes = (
            row["_retain_accuracy_10way"] >= row["_orig_retain_accuracy_10way"] - TOLERANCE
            and row["_fid"] <= FID_FACTOR * row["_orig_fid"]
        )
        row["passes the tuning rule"] = "yes" if passes else "no"
        row["run"] = run_id
        rows.append(row)
    t = pd.DataFrame(rows).sort_values(["λ", "lr", "model"], ascending=[False, True, True])
    orig = t.iloc[0]
    shown = [
        "λ",
        "lr",
        "model",
        *[name for _, _, name in SCORES],
        "passes the tuning rule",
        "unlearning wall s (its prior part)",
        "run",
    ]
    head = (
        f"Class {CLASS}. The original model: UA11 {orig['_orig_unlearning_accuracy_11way']:.3f}, retained "
        f"accuracy {orig['_orig_retain_accuracy_10way']:.3f}, retained FID {orig['_orig_fid']:.2f}. Tuning rule: "
        f"retained accuracy within {TOLERANCE} of the original's and retained FID at most {FID_FACTOR:g}× the "
        "original's."
    )
    return head + "\n\n" + to_markdown(t[shown])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path)
    a = p.parse_args()
    torch.set_num_threads(1)
    print("## Selective Amnesia on digits16: its EWC term's scale, and a λ sweep\n")
    print("Generated by `python scripts/sa_study.py results/tune/store` from the runs of `configs/sa-lam.toml`.\n")
    print("### The Fisher's scale against the loss\n")
    print(fisher_scale(a.store))
    print("\n### The λ table\n")
    print(lam_table(a.store))


if __name__ == "__main__":
    main()
