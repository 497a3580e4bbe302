"""Priors: expensive per-model work a method needs before it unlearns (Selective Amnesia's Fisher
matrix and replay samples). They depend on the base model, not on the forget class, so they are
computed once per (model, arguments) and cached with their measured cost; every run that uses them is
charged that recorded cost, so the reported cost is the same whether or not the cache was hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from unlearnbench.cost import Cost, CostMeter


class PriorCache:
    def __init__(self, root: Path | None, model_sha: str) -> None:
        self.root = root
        self.model_sha = model_sha

    def get(
        self, name: str, key: dict[str, Any], compute: Callable[[CostMeter], dict[str, Tensor]], meter: CostMeter
    ) -> dict[str, Tensor]:
        """Return cached tensors (charging their recorded cost) or compute, measure and cache them."""
        from safetensors.torch import load_file, save_file

        digest = hashlib.sha256(json.dumps([name, self.model_sha, key], sort_keys=True).encode()).hexdigest()[:16]
        folder = self.root / f"{name}-{digest}" if self.root else None
        with meter.prior():
            if folder is not None and (folder / "cost.json").is_file():
                meter.charge_prior(Cost(**json.loads((folder / "cost.json").read_text())))
                return load_file(str(folder / "tensors.safetensors"))
            sub = CostMeter(meter.device)
            with sub.measure():
                tensors = compute(sub)
            meter.cost.steps += sub.cost.steps
            meter.cost.prior_steps += sub.cost.steps
            meter.cost.peak_mem_mb = max(meter.cost.peak_mem_mb, sub.cost.peak_mem_mb)
        if folder is not None:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
            try:
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "tensors.safetensors")
                )
                (tmp / "cost.json").write_text(json.dumps(sub.cost.as_dict()))
                try:
                    os.replace(tmp, folder)
                except OSError:
                    pass  # another process cached the same priors first
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return tensors
