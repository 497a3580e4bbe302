"""Where a run's time goes: exclusive wall seconds per part of the work.

The runner opens a :func:`recording` around a run; the code that does the work marks its parts with
:func:`part` (``sampling``, ``judging``, ``metrics``, ``fid_kid``, ``unlearning``, ``attack``, ``writing``).
Parts nest and the split is *exclusive*: the recovery-curve sampling inside an attack counts as
``sampling``, not as ``attack``, and what no part claims is ``other`` (loading, building the task). The
parts sum to the run's wall time. Outside a recording, :func:`part` costs one context-variable lookup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class _Split:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.stack = ["other"]
        self.mark = time.perf_counter()

    def switch(self, push: str | None) -> None:
        now = time.perf_counter()
        top = self.stack[-1]
        self.seconds[top] = self.seconds.get(top, 0.0) + now - self.mark
        self.mark = now
        if push is None:
            self.stack.pop()
        else:
            self.stack.append(push)


_current: ContextVar[_Split | None] = ContextVar("unlearnbench_time_split", default=None)


@contextmanager
def part(name: str) -> Iterator[None]:
    """Count the wall time of this block (minus the parts nested in it) as ``name``."""
    split = _current.get()
    if split is None:
        yield
        return
    split.switch(name)
    try:
        yield
    finally:
        split.switch(None)


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Record the split of the block; the dict (part -> seconds) is filled in when the block ends."""
    split = _Split()
    out: dict[str, float] = {}
    token = _current.set(split)
    try:
        yield out
    finally:
        split.switch(None)
        _current.reset(token)
        out.update({k: round(v, 3) for k, v in sorted(split.seconds.items(), key=lambda kv: -kv[1])})


def describe(split: dict[str, float]) -> str:
    """One line: ``sampling 40.1 s (55%), judging ...``, largest first."""
    total = sum(split.values()) or 1.0
    return ", ".join(f"{k} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in split.items())
