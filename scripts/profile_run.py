"""The time split of one run, read with cProfile, so that a commit without ``unlearnbench.timing`` can be
measured the same way (the "before" of the README's *Performance* table).

It runs ``unlearnbench run ARGS`` in this process under cProfile and reports the cumulative time of the
functions that make up a run: the sampler (``ddim_sample``), the judge (``judge``), FID/KID
(``FID.on_samples``), the unlearning (``run_unlearning``), the attack (``run_attack``; its recovery-curve
sampling is inside it and also counted under sampling), the store (``write_run``), and the wall time.

    PYTHONPATH=/path/to/other/checkout python scripts/profile_run.py --method safemax --attack relearn --out /tmp/x
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time

PARTS = {
    "sampling": ("diffusion.py", "ddim_sample"),
    "judging": ("evaluate.py", "judge"),
    "fid_kid": ("fid.py", "on_samples"),
    "unlearning": ("api.py", "run_unlearning"),
    "attack": ("api.py", "run_attack"),
    "writing": ("results.py", "write_run"),
}


def main() -> None:
    from unlearnbench.cli import main as cli

    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    code = cli(["run", *sys.argv[1:]])
    profile.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    out = {"wall": round(wall, 1), "exit": code}
    for name, (file, func) in PARTS.items():
        out[name] = round(sum(v[3] for (f, _line, fn), v in stats.items() if f.endswith(file) and fn == func), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
