"""What ran a number, recorded beside it: versions, git commit, device, threads."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from unlearnbench import __version__


@lru_cache(maxsize=1)
def git_sha() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(device: torch.device) -> dict[str, Any]:
    import diffusers
    import torch_fidelity

    return {
        "version": __version__,
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "fidelity_version": torch_fidelity.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
    }
