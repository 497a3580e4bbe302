"""Cost accounting: wall and CPU seconds, peak memory, gradient steps, and the cost of "priors".

Peak memory on CPU is the peak resident set size above the level at the start of the measured block,
sampled every 10 ms. At the start, glibc's ``malloc_trim`` hands freed heap pages back to the OS, so
memory left free by earlier work is not silently reused and hidden from the measurement. (Pinning
glibc's mmap threshold instead would follow live tensors more closely, but it doubled the wall time of
a training step with page faults: the cure would distort the time measurement.) On CUDA it is
``torch.cuda.max_memory_allocated`` above the allocation at the start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc only; a no-op elsewhere)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Cost:
    """What a piece of work cost. ``prior_*`` is the part spent on priors (Fisher, replay, saliency mask)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_mem_mb: float = 0.0
    steps: int = 0
    prior_wall_s: float = 0.0
    prior_steps: int = 0
    # 1 when the priors came from the cache: their recorded cost was charged, not re-measured.
    prior_cached: int = 0
    # 1 when the whole result was loaded (a shipped reference, unlearnbench.references): the cost is the one
    # recorded when it was made (plus the load), not work done in this run.
    recorded: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class _PeakSampler:
    def __init__(self, device: torch.device, interval_s: float = 0.01) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _PeakSampler:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            release_free_memory()
            self.base = rss_bytes()
            self.peak = self.base
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())

    @property
    def peak_mb(self) -> float:
        return max(0, self.peak - self.base) / 2**20


class CostMeter:
    """Measures a block of work. Methods count steps with :meth:`step` and wrap priors in :meth:`prior`."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.cost = Cost()
        self._in_prior = False
        self._excluded_wall = 0.0
        self._excluded_cpu = 0.0

    def step(self, n: int = 1) -> None:
        self.cost.steps += n
        if self._in_prior:
            self.cost.prior_steps += n

    @contextmanager
    def measure(self) -> Iterator[Cost]:
        wall, cpu = time.perf_counter(), time.process_time()
        with _PeakSampler(self.device) as sampler:
            try:
                yield self.cost
            finally:
                self.cost.wall_s += time.perf_counter() - wall - self._excluded_wall
                self.cost.cpu_s += time.process_time() - cpu - self._excluded_cpu
                self._excluded_wall = self._excluded_cpu = 0.0
        self.cost.peak_mem_mb = max(self.cost.peak_mem_mb, sampler.peak_mb)

    def charge_prior(self, recorded: Cost) -> None:
        """Charge priors computed earlier (and cached) at their recorded cost."""
        self.cost.wall_s += recorded.wall_s
        self.cost.cpu_s += recorded.cpu_s
        self.cost.steps += recorded.steps
        self.cost.prior_wall_s += recorded.wall_s
        self.cost.prior_steps += recorded.steps
        self.cost.peak_mem_mb = max(self.cost.peak_mem_mb, recorded.peak_mem_mb)
        self.cost.prior_cached = 1

    def charge_recorded(self, recorded: Cost) -> None:
        """The result was made earlier (a shipped reference): charge what making it cost, marked as recorded."""
        for name in ("wall_s", "cpu_s", "steps", "prior_wall_s", "prior_steps"):
            setattr(self.cost, name, getattr(self.cost, name) + getattr(recorded, name))
        self.cost.peak_mem_mb = max(self.cost.peak_mem_mb, recorded.peak_mem_mb)
        self.cost.recorded = 1

    @contextmanager
    def prior(self) -> Iterator[None]:
        """Work that prepares the method (Fisher matrix, replay samples, saliency mask)."""
        wall = time.perf_counter()
        self._in_prior = True
        try:
            yield
        finally:
            self._in_prior = False
            self.cost.prior_wall_s += time.perf_counter() - wall

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Work inside a measured block that is not the method's or attack's (recovery-curve evaluation)."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._excluded_wall += time.perf_counter() - wall
            self._excluded_cpu += time.process_time() - cpu
