"""FID resolution: how far apart two FIDs of the *same* model fall when only the samples differ.

The original model's retained classes (forget class 0: digits 1..9) are sampled ``--draws`` times per
size, each draw from its own noise, with the project's settings (the testbed's sampler, FID in the
evaluator's features against every real image of those classes, as the ``fid`` metric computes it). For
each number of samples per class, it prints the FIDs' mean and standard deviation over draws, the 95%
quantile of |FID_a - FID_b| over pairs of draws (the smallest difference one run per side can resolve),
the same for the mean of three runs (the leaderboard's cells average three forget classes), and the mean
width of one run's 95% interval (``fid`` metric's, ``metrics.fid.intervals``).

    nice -n 10 python scripts/fid_resolution.py --draws 8 --sizes 20,100 --threads 1 --out fid-resolution.json \\
        --cache .fid-resolution-cache

``--protocol`` and ``--precision`` set the sampler as a sweep's ``[eval]`` does (the leaderboard's configs:
``--precision bfloat16`` at ``testbed`` and ``papers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from unlearnbench.evaluate import RETAIN_STREAM, draw, eval_settings
from unlearnbench.metrics.fid import features, fid_of, intervals
from unlearnbench.testbeds import default_guidance, load_testbed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=8, help="independent draws per size (default 8)")
    parser.add_argument("--sizes", default="20,100", help="samples per retained class, comma-separated")
    parser.add_argument("--forget-class", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--protocol", choices=["testbed", "papers"], default="testbed", help="the sampler setting")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--cache", default=None, help="keep each draw's features here; a rerun reuses them")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    tb = load_testbed("digits16")
    retain = tuple(c for c in range(tb.num_classes) if c != args.forget_class)
    sampler = eval_settings({"protocol": args.protocol, "precision": args.precision}).sampler
    if sampler.guidance_scale is None:
        sampler = dataclasses.replace(sampler, guidance_scale=default_guidance())
    f_real = features(tb.real_images([str(c) for c in retain]), tb.evaluator_path)
    biggest = max(sizes)
    cond = tb.conditioner.encode(retain).repeat_interleave(biggest)
    per_draw_features = []
    t0 = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    for seed in range(args.draws):  # one draw of the largest size per seed; smaller sizes take its first images
        name = f"draw-{seed}-{biggest}-per-class"
        name += ("" if args.protocol == "testbed" else f"-{args.protocol}") + (
            "" if args.precision == "float32" else f"-{args.precision}"
        )
        kept = None if cache is None else cache / f"{name}.pt"
        if kept is not None and kept.is_file():
            per_draw_features.append(torch.load(kept, weights_only=True))
            continue
        images = draw(tb.model, tb.schedule, cond, sampler, 1000 + seed, RETAIN_STREAM, desc=f"draw {seed}")
        per_draw_features.append(features(images, tb.evaluator_path).reshape(len(retain), biggest, -1))
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            torch.save(per_draw_features[-1], kept)
        print(f"draw {seed + 1}/{args.draws}: {time.perf_counter() - t0:.0f} s", flush=True)
    report = {
        "forget_class": args.forget_class,
        "draws": args.draws,
        "real_images": len(f_real),
        "sampler": dataclasses.asdict(sampler),
        "sizes": {},
    }
    for size in sizes:
        fids, widths = [], []
        for f in per_draw_features:
            f_gen = f[:, :size].reshape(len(retain) * size, -1)
            fids.append(fid_of(f_gen, f_real))
            labels = torch.arange(len(retain)).repeat_interleave(size)
            ci = intervals(f_gen, f_real, labels)["fid"][0]
            widths.append(ci.hi - ci.lo)
        fids_a = np.array(fids)
        pair_diffs = [abs(a - b) for a, b in itertools.combinations(fids, 2)]
        # means of three draws against means of three others: the leaderboard's three-class cells
        triples = [np.mean(c) for c in itertools.combinations(fids, 3)]
        triple_diffs = [
            abs(np.mean([fids[i] for i in a]) - np.mean([fids[i] for i in b]))
            for a, b in itertools.combinations(itertools.combinations(range(len(fids)), 3), 2)
            if not set(a) & set(b)
        ]
        row = {
            "generated": len(retain) * size,
            "fid_mean": float(fids_a.mean()),
            "fid_sd": float(fids_a.std(ddof=1)),
            "resolution_one_run": float(np.quantile(pair_diffs, 0.95)),
            "resolution_three_runs": float(np.quantile(triple_diffs, 0.95)) if triple_diffs else float("nan"),
            "sd_of_three_run_means": float(np.std(triples, ddof=1)),
            "interval_width_mean": float(np.mean(widths)),
            "fids": [round(x, 3) for x in fids],
        }
        report["sizes"][size] = row
        print(
            f"{size:>4} per class ({row['generated']} generated vs {len(f_real)} real): FID {row['fid_mean']:.2f} "
            f"± {row['fid_sd']:.2f} (sd over {args.draws} draws); 95% of |ΔFID| between two draws < "
            f"{row['resolution_one_run']:.2f}; between means of 3 draws < {row['resolution_three_runs']:.2f}; "
            f"one run's interval width {row['interval_width_mean']:.2f}",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
