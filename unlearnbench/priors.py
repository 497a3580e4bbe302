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


def _acquire(folder: Path | None) -> Any:
    """One process computes a prior; others wanting the same one wait here, then read it."""
    if folder is None:
        return None
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    handle = open(folder.parent / f".{folder.name}.lock", "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _release(handle: Any) -> None:
    if handle is not None:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class PriorCache:
    def __init__(self, root: Path | None, model_sha: str) -> None:
        self.root = root
        self.model_sha = model_sha

    def get(
        self, name: str, key: dict[str, Any], compute: Callable[[CostMeter], dict[str, Tensor]], meter: CostMeter
    ) -> dict[str, Tensor]:
        """Return cached tensors (charging their recorded cost) or compute, measure and cache them."""
        from safetensors.torch import load_file

        digest = hashlib.sha256(json.dumps([name, self.model_sha, key], sort_keys=True).encode()).hexdigest()[:16]
        folder = self.root / f"{name}-{digest}" if self.root else None
        with meter.excluded():  # waiting for another process is not this method's cost
            handle = _acquire(folder)
        try:
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
                    _save(folder, tensors, sub.cost)
            return tensors
        finally:
            _release(handle)


def _save(folder: Path, tensors: dict[str, Tensor], cost: Cost) -> None:
    from safetensors.torch import save_file

    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "tensors.safetensors"))
        (tmp / "cost.json").write_text(json.dumps(cost.as_dict()))
        try:
            os.replace(tmp, folder)
        except OSError:
            pass  # another process cached the same priors first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
