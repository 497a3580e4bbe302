"""KID's offset under the leaderboard's sampling design: real images against real images.

The ``fid`` metric's generated sets hold exactly ``n`` samples per class, while its real side is every real
image of the classes. KID (torch-fidelity's unbiased MMD^2, cubic kernel, subsets of half the smaller set)
draws each subset without replacement from these finite sets, so in a class-stratified generated set two
distinct points share a class less often ((n - 1) / (9n - 1)) than in the real set (about 1/9): its
within-set kernel mean is lower, and KID lands below zero for samples that are indistinguishable from the
data. This script measures that offset with no model at all: the real images of the retained classes (forget
class 0) are split in two halves, ``--reps`` times; one half is the real side, and from the other come a
class-stratified "generated" set (``--per-class`` per class, as the leaderboard draws) and an unstratified one
of the same size. It prints both KIDs' mean and standard deviation over the splits.

    python scripts/kid_design.py --reps 30 --per-class 20 --out results/perf/kid-design.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from unlearnbench.metrics.fid import features, kid_of
from unlearnbench.testbeds import load_testbed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--forget-class", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tb = load_testbed("digits16")
    retain = tuple(c for c in range(tb.num_classes) if c != args.forget_class)
    f = features(tb.real_images([str(c) for c in retain]), tb.evaluator_path).double()
    labels = np.concatenate(
        [tb.data.subset(split, retain)[1].numpy() for split in ("train", "test")]  # real_images' order
    )
    rng = np.random.default_rng(0)
    n = args.per_class * len(retain)
    kids: dict[str, list[float]] = {"stratified": [], "unstratified": []}
    for _ in range(args.reps):
        perm = rng.permutation(len(f))
        real, pool = perm[: len(f) // 2], perm[len(f) // 2 :]
        strat = np.concatenate([rng.choice(pool[labels[pool] == c], args.per_class, replace=False) for c in retain])
        kids["stratified"].append(kid_of(f[strat], f[real])[0])
        kids["unstratified"].append(kid_of(f[rng.choice(pool, n, replace=False)], f[real])[0])
    out = {
        "real_images": len(f),
        "real_side": len(f) // 2,
        "generated_side": n,
        "reps": args.reps,
        **{f"{k}_mean": float(np.mean(v)) for k, v in kids.items()},
        **{f"{k}_sd": float(np.std(v, ddof=1)) for k, v in kids.items()},
    }
    for k in kids:
        print(f"{k:>12} ({n} real images vs {len(f) // 2}): KID {out[k + '_mean']:.3f} ± {out[k + '_sd']:.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
