"""Choose text16's default guidance: the testbed's sampling bars (every concept, digits, held-out names,
compositions, colours, stroke weights) and the FID ratio at several guidance scales, DDIM eta 0.

    python scripts/text16_guidance.py --model DIR --scales 1 2 3 --per-class 20
"""

from __future__ import annotations

import argparse
import time

import torch

from unlearnbench.api import SamplerSettings
from unlearnbench.environment import set_threads
from unlearnbench.evaluate import EvalSettings, sample_and_judge
from unlearnbench.metrics.fid import fidelity
from unlearnbench.testbed_check import probe_checks
from unlearnbench.testbeds import load_testbed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    set_threads(a.threads)
    tb = load_testbed("text16", model=a.model)
    real = fidelity(tb.data.train_x, tb.data.test_x, tb.evaluator_path, prc=False)["frechet_inception_distance"]
    for s in a.scales:
        started = time.perf_counter()
        sampler = SamplerSettings(guidance_scale=s)
        settings = EvalSettings(forget_samples=a.per_class, retain_samples=0, sampler=sampler)
        cond = tb.conditioner
        out = sample_and_judge(tb.model, tb.schedule, tb.evaluator, settings, tb.concepts, (), conditioner=cond)
        f = out.forget
        assert f is not None
        hits = (f.probs11.argmax(-1) == f.labels).float()
        fid = fidelity(f.images[: 10 * a.per_class], tb.data.test_x, tb.evaluator_path, prc=False)
        figures = {"every_concept": float(hits.mean()), "fid_ratio_digits": fid["frechet_inception_distance"] / real}
        figures.update({c.name: round(c.value, 3) for c in probe_checks(tb, a.per_class, sampler, 0)})
        print(f"s = {s}: {figures} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
