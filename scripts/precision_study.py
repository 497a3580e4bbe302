"""Does bfloat16 autocast change the judged scores? The table behind the README's *Performance* section.

Reads a store of ``configs/perf-precision.toml`` runs (the original model, from every run's original phase,
and SAFEMax and tuned SalUn on forget class 0, at both sampler settings, with float32 and bfloat16
forwards) and compares each score of the two precisions: "within" when each value lies inside the other's
95% interval. Also reports the sampling part of each run's time split (``time_split_s``).

    python scripts/precision_study.py results/perf/precision/store > results/perf/precision.md

With ``--trained-against STORE`` it compares instead the unlearned models of the first store, whose methods
trained under bfloat16 autocast (``unlearn_precision``), with the same runs trained in float32 in STORE (each
run's counterpart is the run id of its spec at ``unlearn_precision = "float32"``), and their unlearning time:

    unlearnbench sweep --config configs/perf-unlearn-precision.toml --out results/perf/unlearn-precision/store \
        --workers 2
    python scripts/precision_study.py results/perf/unlearn-precision/store --trained-against results/core/float32 \
        > results/perf/unlearn-precision.md

With ``--compiled STORE`` it compares instead the bfloat16 runs of the first store with the same runs sampled
with ``--compile`` (torch.compile) in STORE (``configs/perf-compile.toml``: both stores from the same code):

    unlearnbench sweep --config configs/perf-compile.toml --protocol {testbed,papers} --precision bfloat16 \
        --out results/perf/eager/store          # and the same with --compile into results/perf/compile/store
    python scripts/precision_study.py results/perf/eager/store --compiled results/perf/compile/store \
        > results/perf/compile.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from unlearnbench.results import load_results
from unlearnbench.spec import RunSpec

SCORES = [
    ("unlearning_accuracy_11way", "forget", "UA11"),
    ("retain_accuracy_11way", "retain", "retained acc (11-way)"),
    ("fid", "retain", "FID retain"),
    ("kid", "retain", "KID retain"),
    ("fid", "forget", "FID forget"),
]


def _models(store: Path) -> pd.DataFrame:
    df = load_results(store)
    df = df[df["attack_step"].isna() & df["class_id"].isna()]
    return pd.concat(
        [
            df[df.phase == "original"].assign(model="original"),
            df[df.phase == "unlearned"].assign(model=df.method + " (" + df.label + ")"),
        ]
    )


def compare(models: pd.DataFrame, a: str, b: str) -> list[str]:
    """Each score of variant ``a`` against variant ``b`` (the ``variant`` column), per sampler setting and model."""
    lines = [
        f"| s, η | model | score | {a} [95% interval] | {b} [95% interval] | verdict |",
        "|---|---|---|---|---|---|",
    ]
    within = total = 0
    for (g, eta, model), part in models.groupby(["guidance", "eta", "model"], sort=True):
        for metric, split, name in SCORES:
            rows = part[(part.metric == metric) & (part.split == split)].drop_duplicates("variant")
            by = {r.variant: r for r in rows.itertuples()}
            if not {a, b} <= set(by):
                continue
            x, y = by[a], by[b]
            ok = x.lo <= y.value <= x.hi and y.lo <= x.value <= y.hi
            within, total = within + ok, total + 1
            lines.append(
                f"| {g:g}, {eta:g} | {model} | {name} | {x.value:.4g} [{x.lo:.4g}, {x.hi:.4g}] | "
                f"{y.value:.4g} [{y.lo:.4g}, {y.hi:.4g}] | {'within' if ok else 'OUTSIDE'} |"
            )
    lines.append(f"\n{within} of {total} scores agree within each other's 95% interval.\n")
    return lines


def _sampling(stores: dict[str, Path], precision: str | None = None, runs: set[str] | None = None) -> list[str]:
    lines = ["| s, η | variant | sampling s (sum over runs) | runs |", "|---|---|---|---|"]
    splits = []
    for variant, store in stores.items():
        for meta in sorted((store / "runs").glob("*.json")):
            m = json.loads(meta.read_text())
            sampler = m["spec"]["eval"]["sampler"]
            if precision is not None and sampler["precision"] != precision:
                continue
            if runs is not None and meta.stem not in runs:
                continue
            name = variant or sampler["precision"]
            splits.append((sampler["guidance_scale"], sampler["eta"], name, m["time_split_s"]["sampling"]))
    t = pd.DataFrame(splits, columns=["s", "eta", "variant", "sampling"])
    for (g, eta, name), part in t.groupby(["s", "eta", "variant"], sort=True):
        lines.append(f"| {g:g}, {eta:g} | {name} | {part.sampling.sum():.1f} | {len(part)} |")
    return lines


def table(store: Path) -> str:
    """float32 against bfloat16 forwards, within one store."""
    models = _models(store)
    return "\n".join(compare(models.assign(variant=models.precision), "float32", "bfloat16") + _sampling({"": store}))


def compiled_table(eager: Path, compiled: Path, precision: str = "bfloat16") -> str:
    """Eager against compiled forwards (``--compile``): the same runs (run ids) in two stores."""
    a, b = _models(eager), _models(compiled)
    a, b = a[a.precision == precision], b[b.precision == precision]
    a, b = a[a.compiled.fillna(False) == False], b[b.compiled.fillna(False) == True]  # noqa: E712
    both = set(a.run_id) & set(b.run_id)
    if not both:
        raise SystemExit(f"precision_study: no run of {eager} (eager) is also in {compiled} (compiled)")
    models = pd.concat(
        [a[a.run_id.isin(both)].assign(variant="eager"), b[b.run_id.isin(both)].assign(variant="compiled")]
    )
    head = [f"{precision} forwards, eager against `--compile`, the same {len(both)} runs.\n"]
    return "\n".join(
        head + compare(models, "eager", "compiled") + _sampling({"eager": eager, "compiled": compiled}, precision)
    )


def trained_table(trained: Path, against: Path) -> str:
    """Unlearned models trained under bfloat16 autocast against the same runs trained in float32."""
    pairs: dict[str, str] = {}
    for meta in sorted((trained / "runs").glob("*.json")):
        spec = RunSpec.from_dict(json.loads(meta.read_text())["spec"])
        if spec.unlearn_precision != "float32":
            pairs[meta.stem] = spec.with_(unlearn_precision="float32").run_id
    missing = [b for b in pairs.values() if not (against / "runs" / f"{b}.json").is_file()]
    if not pairs or missing:
        raise SystemExit(f"precision_study: {against} lacks the float32 counterparts {missing or 'of any run'}")
    a, b = _models(trained), _models(against)
    a = a[(a.phase == "unlearned") & a.run_id.isin(set(pairs))]
    b = b[(b.phase == "unlearned") & b.run_id.isin(set(pairs.values()))]
    models = pd.concat([a.assign(variant="bfloat16"), b.assign(variant="float32")])
    models["model"] = (
        models.model + ", class " + models.forget_class.astype(str) + ", seed " + models.seed.astype(str)
    )  # one trajectory per run: classes and seeds are compared pair by pair
    lines = [
        f"Unlearned models: the methods' gradient steps in float32 ({against}) and under bfloat16 autocast "
        f"({trained}), the same {len(pairs)} runs otherwise (seed, data order, sampler). The original model "
        "does not train, so it is not compared.\n"
    ]
    lines += compare(models, "float32", "bfloat16")
    lines += [
        f"Unlearning seconds of each run (float32: as {against} measured them, in its own sessions and machines).\n",
        "| method (label) | float32 unlearning s | bfloat16 unlearning s | ratio | threads |",
        "|---|---|---|---|---|",
    ]
    for fast, plain in pairs.items():
        x = json.loads((against / "runs" / f"{plain}.json").read_text())
        y = json.loads((trained / "runs" / f"{fast}.json").read_text())
        tx, ty = x["time_split_s"]["unlearning"], y["time_split_s"]["unlearning"]
        threads = sorted({str(m.get("threads", "?")) for m in (x, y)})
        forget = y["spec"].get("forget", y["spec"].get("forget_classes", []))  # run files from before concepts
        lines.append(
            f"| {y['spec']['method']} ({y['spec']['label']}), class {','.join(map(str, forget))}, "
            f"seed {y['spec']['seed']} | {tx:.1f} | {ty:.1f} | {tx / ty:.2f}x | "
            f"{', '.join(threads)} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", type=Path)
    p.add_argument("--compiled", type=Path, default=None, help="a store of the same runs with --compile")
    p.add_argument("--trained-against", type=Path, default=None, help="a store of the same runs trained in float32")
    a = p.parse_args()
    if a.trained_against is not None:
        print(trained_table(a.store, a.trained_against))
    else:
        print(table(a.store) if a.compiled is None else compiled_table(a.store, a.compiled))


if __name__ == "__main__":
    main()
