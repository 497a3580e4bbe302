"""Does bfloat16 autocast change the judged scores? The table behind the README's *Performance* section.

Reads a store of ``results/perf/precision.toml`` runs (the original model, from every run's original phase,
and SAFEMax and tuned SalUn on forget class 0, at both sampler settings, with float32 and bfloat16
forwards) and compares each score of the two precisions: "within" when each value lies inside the other's
95% interval. Also reports the sampling part of each run's time split (``time_split_s``).

    python scripts/precision_study.py results/perf/precision > results/perf/precision.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from unlearnbench.results import load_results

SCORES = [
    ("unlearning_accuracy_11way", "forget", "UA11"),
    ("retain_accuracy_11way", "retain", "retained acc (11-way)"),
    ("fid", "retain", "FID retain"),
    ("kid", "retain", "KID retain"),
    ("fid", "forget", "FID forget"),
]


def table(store: Path) -> str:
    df = load_results(store)
    df = df[df["attack_step"].isna() & df["class_id"].isna()]
    models = pd.concat(
        [
            df[df.phase == "original"].assign(model="original"),
            df[df.phase == "unlearned"].assign(model=df.method + " (" + df.label + ")"),
        ]
    )
    lines = [
        "| s, η | model | score | float32 [95% interval] | bfloat16 [95% interval] | verdict |",
        "|---|---|---|---|---|---|",
    ]
    within = total = 0
    for (g, eta, model), part in models.groupby(["guidance", "eta", "model"], sort=True):
        for metric, split, name in SCORES:
            rows = part[(part.metric == metric) & (part.split == split)].drop_duplicates("precision")
            by = {r.precision: r for r in rows.itertuples()}
            if not {"float32", "bfloat16"} <= set(by):
                continue
            a, b = by["float32"], by["bfloat16"]
            ok = a.lo <= b.value <= a.hi and b.lo <= a.value <= b.hi
            within, total = within + ok, total + 1
            lines.append(
                f"| {g:g}, {eta:g} | {model} | {name} | {a.value:.4g} [{a.lo:.4g}, {a.hi:.4g}] | "
                f"{b.value:.4g} [{b.lo:.4g}, {b.hi:.4g}] | {'within' if ok else 'OUTSIDE'} |"
            )
    lines.append(f"\n{within} of {total} scores agree within each other's 95% interval.\n")
    lines += ["| s, η | precision | sampling s (sum over runs) | runs |", "|---|---|---|---|"]
    splits = []
    for meta in sorted((store / "runs").glob("*.json")):
        m = json.loads(meta.read_text())
        sampler = m["spec"]["eval"]["sampler"]
        splits.append((sampler["guidance_scale"], sampler["eta"], sampler["precision"], m["time_split_s"]["sampling"]))
    t = pd.DataFrame(splits, columns=["s", "eta", "precision", "sampling"])
    for (g, eta, prec), part in t.groupby(["s", "eta", "precision"], sort=True):
        lines.append(f"| {g:g}, {eta:g} | {prec} | {part.sampling.sum():.1f} | {len(part)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", type=Path)
    print(table(p.parse_args().store))


if __name__ == "__main__":
    main()
