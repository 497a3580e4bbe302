"""Capacity study: does a method's damage to the retained classes shrink as the base model grows?

For each size, a base model is trained with the shipped recipe (only the UNet's width/depth change),
then ``noop``, ``safemax``, ``salun`` and ``retrain`` (paper defaults) forget one class, and the tool's
own runner scores them. Base models train in parallel processes (on a GPU the small UNets are
launch-bound, so several share one card well). Results land in ``OUT/<size>/store`` (tidy rows), and
``--table`` turns them into ``capacity.md``/``capacity.csv``.

    python scripts/capacity_study.py --out results/capacity --sizes 0.3M,1.1M,4.4M --device cpu
    python scripts/capacity_study.py --table --out results/capacity
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SIZES = {  # name: (block_out_channels, layers_per_block)
    "0.3M": ("16,32,32", 1),
    "1.1M": ("32,64,64", 1),
    "4.4M": ("64,128,128", 1),
    "17.7M": ("128,256,256", 1),
    "35.7M": ("128,256,256,256", 2),  # the CIFAR-10 UNet's width: ch 128, multipliers [1,2,2,2], 2 blocks
}
METHODS = "noop,safemax,salun,retrain"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unlearnbench.cli", *args]


def train_bases(out: Path, sizes: list[str], device: str, threads: int, deadline: float) -> dict[str, Path]:
    procs = {}
    for size in sizes:
        target = out / size / "base"
        if (target / "unet.recipe.json").is_file():
            continue
        channels, lpb = SIZES[size]
        log = open(out / size / "pretrain.log", "w")
        procs[size] = (
            subprocess.Popen(
                cli(
                    "pretrain",
                    "--what",
                    "unet",
                    "--out",
                    str(target),
                    "--channels",
                    channels,
                    "--layers-per-block",
                    str(lpb),
                    "--device",
                    device,
                    "--threads",
                    str(threads),
                    "--quiet",
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            ),
            log,
        )
    for size, (p, log) in procs.items():
        p.wait(timeout=max(1, deadline - time.time()))
        log.close()
        print(f"{size}: base model exit {p.returncode}", flush=True)
    return {s: out / s / "base" for s in sizes if (out / s / "base" / "unet.recipe.json").is_file()}


def study(out: Path, sizes: list[str], device: str, threads: int, forget: int, deadline: float) -> None:
    for size in sizes:
        (out / size).mkdir(parents=True, exist_ok=True)
    bases = train_bases(out, sizes, device, threads, deadline)
    procs = []
    for size, base in bases.items():
        log = open(out / size / "check.log", "w")
        subprocess.run(
            cli("testbed", "check", "--model", str(base), "--device", device, "--threads", str(threads), "--quiet"),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
        log.close()
        log = open(out / size / "sweep.log", "w")
        procs.append(
            (
                size,
                subprocess.Popen(
                    cli(
                        "sweep",
                        "--methods",
                        METHODS,
                        "--forget-classes",
                        str(forget),
                        "--model",
                        str(base),
                        "--out",
                        str(out / size / "store"),
                        "--workers",
                        "4",
                        "--threads",
                        str(threads),
                        "--device",
                        device,
                        "--label",
                        f"capacity-{size}",
                        "--quiet",
                    ),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )
    for size, p, log in ((s, p, lg) for s, (p, lg) in procs):
        p.wait(timeout=max(1, deadline - time.time()))
        log.close()
        print(f"{size}: sweep exit {p.returncode}", flush=True)


def table(out: Path) -> str:
    import pandas as pd

    from unlearnbench.results import load_results

    rows = []
    for size in SIZES:
        store = out / size / "store"
        if not store.is_dir():
            continue
        df = load_results(store)
        final = df[df.attack_step.isna() & df.class_id.isna() & (df.status == "ok")]
        params = (
            json.loads((out / size / "params.json").read_text())["params"]
            if (out / size / "params.json").is_file()
            else None
        )
        check = (out / size / "check.log").read_text() if (out / size / "check.log").is_file() else ""
        base_acc = next(
            (float(line.split()[1]) for line in check.splitlines() if line.strip().startswith("model_accuracy ")),
            float("nan"),
        )
        for method, g in final.groupby("method"):
            u = g[g.phase == "unlearned"]

            def val(metric: str, split: str, frame: pd.DataFrame = u) -> float:
                v = frame[(frame.metric == metric) & (frame.split == split)]["value"]
                return float(v.mean()) if len(v) else float("nan")

            rows.append(
                {
                    "size": size,
                    "params_M": params,
                    "base_acc": base_acc,
                    "method": method,
                    "UA10": val("unlearning_accuracy_10way", "forget"),
                    "UA11": val("unlearning_accuracy_11way", "forget"),
                    "retain_acc": val("retain_accuracy_10way", "retain"),
                    "retain_acc_original": val("retain_accuracy_10way", "retain", g[g.phase == "original"]),
                    "FID": val("fid", "retain"),
                    "time_s": val("cost_wall_s", "all"),
                    "device": g["device"].iloc[0],
                }
            )
    t = pd.DataFrame(rows)
    if t.empty:
        return ""
    t.to_csv(out / "capacity.csv", index=False)
    md = t.to_markdown(index=False, floatfmt=".3f") if hasattr(t, "to_markdown") else t.to_string(index=False)
    (out / "capacity.md").write_text(md + "\n")
    return md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/capacity")
    p.add_argument("--sizes", default=",".join(SIZES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--forget-class", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=10 * 3600, help="stop waiting after this many seconds")
    p.add_argument("--table", action="store_true", help="only build the table from what is there")
    a = p.parse_args()
    out = Path(a.out)
    if not a.table:
        study(out, [s for s in a.sizes.split(",") if s], a.device, a.threads, a.forget_class, time.time() + a.budget_s)
    print(table(out))


if __name__ == "__main__":
    main()
