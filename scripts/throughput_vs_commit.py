"""Sampling throughput of this checkout against another commit, measured in the same session.

Both samplers draw 200 samples x 50 DDIM steps from the shipped base model, at s = 1 (eta 0) and at the
papers' s = 3 (eta 1), with the run's defaults of each commit (``--precision`` sets this checkout's). The
other commit is checked out into a temporary git worktree and imported from there in a subprocess; the
two alternate (``--repeats`` times each, the fastest of each kept), so background load hits both alike.

    python scripts/throughput_vs_commit.py e5ac834 --precision bfloat16 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, sys, time, inspect, torch
torch.set_num_threads(int(sys.argv[1]))
from unlearnbench.testbeds import load_testbed
from unlearnbench.diffusion import ddim_sample
tb = load_testbed("digits16")
labels = tb.conditioner.encode(tb.conditioner.concepts).repeat_interleave(20)
extra = {}
if "precision" in inspect.signature(ddim_sample).parameters:
    extra["precision"] = sys.argv[2]
out = {}
for s, eta in ((1.0, 0.0), (3.0, 1.0)):
    run = lambda: ddim_sample(tb.model, tb.schedule, labels, generator=torch.Generator().manual_seed(0),
                              steps=50, guidance_scale=s, eta=eta, **extra)
    run()  # warm-up
    t0 = time.perf_counter(); run(); out[f"s={s:g}"] = 200 / (time.perf_counter() - t0)
out["precision"] = extra.get("precision", "float32")
print(json.dumps(out))
"""


def probe(src: Path, threads: int, precision: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "UNLEARNBENCH_PROGRESS": "0"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(threads), precision], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commit", help="the commit to compare with (e.g. the previous one)")
    p.add_argument("--precision", default="bfloat16", help="this checkout's sampler precision (default bfloat16)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), a.commit], check=True)
        try:
            runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
            for _ in range(a.repeats):
                runs["old"].append(probe(old, a.threads, "float32"))
                runs["new"].append(probe(ROOT, a.threads, a.precision))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"samples/s, best of {a.repeats}, {a.threads} threads; {a.commit} (float32) vs this checkout ({a.precision})")
    print("| setting | before | after | ratio |\n|---|---|---|---|")
    for key in ("s=1", "s=3"):
        before = max(r[key] for r in runs["old"])
        after = max(r[key] for r in runs["new"])
        print(f"| {key} | {before:.1f} | {after:.1f} | {after / before:.2f}x |")


if __name__ == "__main__":
    main()
