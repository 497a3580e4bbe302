"""Every method digits16 has, once each on the shipped text16 testbed at smoke settings (forget "seven"):
python scripts/text16_methods.py   (writes /tmp/methods16)
"""

from __future__ import annotations

import json
import time

from unlearnbench import registry
from unlearnbench.cli import main

ms = ["safemax", "salun", "selective_amnesia", "erasediff", "random_label", "finetune", "grad_ascent", "noop", "esd"]
for m in ms:
    cls = registry.get("method", m)
    args = dict(cls.smoke_args)
    if m == "esd":
        args["params"] = "cross_attention"
    t = time.time()
    code = main(
        [
            "run",
            "--testbed",
            "text16",
            "--forget",
            "seven",
            "--method",
            m,
            "--method-args",
            json.dumps(args),
            "--forget-samples",
            "8",
            "--retain-samples",
            "1",
            "--curve-samples",
            "2",
            "--sample-steps",
            "5",
            "--out",
            "/tmp/methods16",
            "--quiet",
            "--threads",
            "1",
        ]
    )
    print(f"RESULT {m} {args} exit {code} {time.time() - t:.0f}s", flush=True)
