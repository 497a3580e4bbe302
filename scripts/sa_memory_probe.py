"""Where Selective Amnesia's peak memory comes from: one forward+backward of the shipped digits16 UNet at
the batch of each phase, measured with the same meter as the benchmark's cost rows (peak RSS growth).

    python scripts/sa_memory_probe.py

Batches: SAFEMax step 128 (forget images); SA training step 256 (128 surrogate + 128 replay);
SA Fisher pass 1000 (all T timesteps of one replay image, as in the SA code's per-sample Fisher).
"""

from __future__ import annotations

import torch

from unlearnbench.cost import CostMeter, release_free_memory
from unlearnbench.testbeds import load_testbed

torch.set_num_threads(1)
model = load_testbed("digits16").model.train().requires_grad_(True)
for name, batch in (("SAFEMax step", 128), ("SA training step", 256), ("SA Fisher pass", 1000)):
    release_free_memory()
    meter = CostMeter()
    with meter.measure():
        x = torch.randn(batch, 1, 16, 16)
        t = torch.randint(0, 1000, (batch,))
        y = torch.randint(0, 10, (batch,))
        loss = model(x, t, class_labels=y).sample.pow(2).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        del x, t, y, loss
    print(f"{name:18s} batch {batch:5d}: peak RSS growth {meter.cost.peak_mem_mb:7.0f} MiB")
