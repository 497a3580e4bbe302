"""What ran a number, recorded beside it: versions, git commit, device, threads."""

from __future__ import annotations

import os
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


@lru_cache(maxsize=1)
def processor() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``), else what ``platform`` knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compile_enabled() -> bool:
    """Whether the sampler compiles its model forwards (``--compile`` or ``UNLEARNBENCH_COMPILE=1``)."""
    from unlearnbench.schema import read_environment

    return read_environment().UNLEARNBENCH_COMPILE == "1"


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
        "compiled": compile_enabled(),
    }


def set_threads(threads: int) -> None:
    """Torch's threads and the BLAS/OpenMP pools (numpy's, scipy's: FID's matrix square root), once per process.

    Left at their default of one thread per core, the BLAS pools oversubscribe the cores whenever more than
    one process runs: two local sweep workers on two cores took 187-195 s for a 12-run grid against 161 s
    with one BLAS thread each, and FID's 100 half-sample replicates took 7.0 s instead of 0.4 s beside
    three other jobs. The numbers do not change (``tests/test_sweep_backends.py``).
    """
    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)  # for libraries loaded later
    threadpool_limits(limits=threads)  # for those already loaded
    torch.set_num_threads(threads)
