"""Progress bars for long work, on stderr, switched off in tests and quiet runs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_enabled = os.environ.get("UNLEARNBENCH_PROGRESS", "1") != "0"


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def bar(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterator[T]:
    yield from tqdm(iterable, desc=desc, total=total, leave=leave, disable=not _enabled, dynamic_ncols=True)
