"""SAFEMax's step curve on the tuning classes (issue 14, item 2), and the early-stopping step read from it.

For each tuning class and each arm (lambda in {0.1, 1, 10} at the published Adam lr 1e-4, and one optimizer
arm, Adam at lr 3e-5 and lambda 1, to test whether Adam's sign-like first steps cause the collateral damage),
SAFEMax trains up to ``--max-steps`` steps; every ``--every`` steps the current model is sampled and judged
(UA11 with its interval, entropy, none rate, retained accuracy; FID of the retained classes every
``--fid-every`` steps), with the run's evaluator and sampler, from the same initial noise at every point.
The method is the registered ``safemax`` itself, watched through ``unlearnbench.training.observing``.

Each curve is written to ``OUT/<class>-<arm>.csv`` when it is complete; a rerun skips complete curves
(resumable per curve). ``--figure`` draws every curve into ``OUT/curve.png``; ``--early-stop`` prints, per
arm, the last step at which retained accuracy stays within 0.05 of the original model's and retained FID at
most 2x the original's on every tuning class, with the UA11 reached there, and then the arm whose step
reaches the highest UA11 as a config row: the early-stopping setting (that arm's arguments, ``steps = k``),
evaluated like every other setting on the evaluation classes (``configs/core.toml``).

    python scripts/safemax_curve.py --out results/safemax/curve --precision bfloat16 --compile
    python scripts/safemax_curve.py --out results/safemax/curve --figure --early-stop
"""

from __future__ import annotations

import argparse
import copy
import math
import os
from pathlib import Path

import pandas as pd
import torch

ARMS = {  # name: SAFEMax arguments (steps are set by --max-steps)
    "lam0.1": {"lam": 0.1, "lr": 1e-4},
    "lam1": {"lam": 1.0, "lr": 1e-4},
    "lam10": {"lam": 10.0, "lr": 1e-4},
    "lam1-lr3e-5": {"lam": 1.0, "lr": 3e-5},
}


def curve(forget_class: int, arm: str, a: argparse.Namespace) -> pd.DataFrame:
    from unlearnbench import registry
    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import EvalSettings, Reference, sample_and_judge
    from unlearnbench.metrics.entropy import Entropy
    from unlearnbench.metrics.fid import FID
    from unlearnbench.metrics.retain_accuracy import RetainAccuracy
    from unlearnbench.metrics.unlearning_accuracy import UnlearningAccuracy
    from unlearnbench.runner import build_task
    from unlearnbench.spec import RunSpec
    from unlearnbench.testbeds import load_testbed
    from unlearnbench.training import observing

    tb = load_testbed("digits16")
    spec = RunSpec(method="safemax", forget=(forget_class,))
    task = build_task(spec, tb, torch.device("cpu"))
    settings = EvalSettings(
        forget_samples=a.forget_samples,
        retain_samples=a.retain_samples,
        sampler=SamplerSettings(steps=50, guidance_scale=a.guidance, eta=a.eta, precision=a.precision),
    )
    reference = Reference(
        tb.real_images(task.retain_concepts, exclude=task.forget_concepts),
        tb.real_images(task.forget_concepts),
        tb.evaluator,
        tb.evaluator_path,
    )
    rows: list[dict[str, float]] = []

    def point(step: int, model: torch.nn.Module) -> None:
        samples = sample_and_judge(
            model,
            tb.schedule,
            tb.evaluator,
            settings,
            task.forget_concepts,
            task.retain_concepts,
            conditioner=task.conditioner,
            desc=f"step {step}",
        )
        metrics = [UnlearningAccuracy(), Entropy(), RetainAccuracy()]
        if step % a.fid_every == 0:
            metrics.append(FID())
        row: dict[str, float] = {"step": step}
        for s in (s for m in metrics for s in m.on_samples(samples, reference)):
            if s.class_id is None and s.metric in WANTED and s.split == WANTED[s.metric]:
                row[s.metric], row[f"{s.metric}_lo"], row[f"{s.metric}_hi"] = s.value, s.lo, s.hi
        rows.append(row)
        print(f"class {forget_class} {arm} step {step}: " + ", ".join(f"{k} {row[k]:.3f}" for k in WANTED if k in row))

    model = copy.deepcopy(tb.model).train().requires_grad_(True)
    point(0, model.eval())
    method = registry.get("method", "safemax")({**ARMS[arm], "steps": a.max_steps})
    generator = torch.Generator().manual_seed(0)

    def observe(step: int) -> None:
        if step % a.every == 0:
            was = model.training
            point(step, model.eval())
            model.train(was)

    with observing(observe):
        method.unlearn(model.train(), task, generator=generator)
    return pd.DataFrame(rows).assign(forget_class=forget_class, arm=arm, **ARMS[arm])


WANTED = {
    "unlearning_accuracy_11way": "forget",
    "none_rate": "forget",
    "entropy": "forget",
    "retain_accuracy_10way": "retain",
    "fid": "retain",
}


def figure(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [pd.read_csv(p) for p in sorted(out.glob("*-*.csv"))]
    if not frames:
        raise SystemExit(f"no curves in {out}")
    df = pd.concat(frames)
    panels = [
        ("unlearning_accuracy_11way", "UA11"),
        ("none_rate", "none rate"),
        ("retain_accuracy_10way", "retained acc"),
        ("fid", "retained FID"),
    ]
    from unlearnbench.methods.safemax import SAFEMaxArgs

    published = SAFEMaxArgs().steps
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for (arm, c), g in df.groupby(["arm", "forget_class"]):
            g = g.dropna(subset=[metric])
            ax.plot(g["step"], g[metric], label=f"{arm}, class {c}", lw=1, marker=".", ms=3)
        # the published 1000 iterations, scaled to this testbed by data passes (SAFEMax's default steps)
        ax.axvline(published, color="grey", ls="--", lw=0.8)
        ax.set_title(title)
        ax.set_xscale("symlog", linthresh=10)  # linear to step 10, where the collapse happens; log after
        ax.set_xlim(0, df["step"].max())
        ax.set_xlabel("SAFEMax step")
        if metric == "fid":
            ax.set_yscale("log")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"dashed: the published 1000 iterations scaled to this testbed ({published} steps)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)
    print(f"wrote {out / 'curve.png'}")


def early_stop(out: Path) -> None:
    df = pd.concat([pd.read_csv(p) for p in sorted(out.glob("*-*.csv"))])
    best: tuple[str, int, float] | None = None
    for arm, g in df.groupby("arm"):
        ok_steps = None
        for _, gc in g.groupby("forget_class"):
            start = gc[gc.step == 0].iloc[0]
            ra_ok = gc["retain_accuracy_10way"] >= start["retain_accuracy_10way"] - 0.05
            fid_ok = gc["fid"].isna() | (gc["fid"] <= 2 * start["fid"])
            # the longest prefix where both hold (FID checked where it was measured)
            bad = gc.step[~(ra_ok & fid_ok)]
            last = (bad.min() - (gc.step.diff().median() or 1)) if len(bad) else gc.step.max()
            ok_steps = last if ok_steps is None else min(ok_steps, last)
        at = g[g.step == ok_steps]
        ua = at["unlearning_accuracy_11way"].mean() if len(at) else math.nan
        print(f"{arm}: early-stopping step {int(ok_steps)} (UA11 there {ua:.3f}, mean over the tuning classes)")
        if ok_steps > 0 and (best is None or ua > best[2]):
            best = (arm, int(ok_steps), ua)
    if best is None:
        print("no arm keeps the retained classes past step 0: there is no early-stopping setting")
        return
    args = ", ".join(f"{k} = {v}" for k, v in {**ARMS[best[0]], "steps": best[1]}.items())
    print(f"early-stopping setting (the highest UA11 among the arms): {best[0]} at step {best[1]}")
    print(f'{{ name = "safemax", label = "early stop", args = {{ {args} }} }}')


def main() -> None:
    from unlearnbench.environment import set_threads
    from unlearnbench.testbeds.digits16 import Digits16

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/safemax/curve"))
    p.add_argument("--classes", type=int, nargs="+", default=[int(c) for c in Digits16.tuning_concepts])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--fid-every", type=int, default=25)
    p.add_argument("--forget-samples", type=int, default=100)
    p.add_argument("--retain-samples", type=int, default=20, help="per retained class (180 in all)")
    p.add_argument("--guidance", type=float, default=1.0)
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="torch.compile the sampler's forwards (as --compile)")
    p.add_argument("--figure", action="store_true", help="only draw the committed curves")
    p.add_argument("--early-stop", action="store_true", help="only read the early-stopping steps from the curves")
    a = p.parse_args()
    if a.figure or a.early_stop:
        if a.figure:
            figure(a.out)
        if a.early_stop:
            early_stop(a.out)
        return
    set_threads(a.threads)
    if a.compile:
        os.environ["UNLEARNBENCH_COMPILE"] = "1"
    a.out.mkdir(parents=True, exist_ok=True)
    for c in a.classes:
        for arm in a.arms:
            target = a.out / f"{c}-{arm}.csv"
            if target.is_file():
                continue
            frame = curve(c, arm, a)
            tmp = target.with_suffix(".tmp")
            frame.to_csv(tmp, index=False)
            tmp.replace(target)


if __name__ == "__main__":
    main()
