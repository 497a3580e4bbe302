"""Progress bars for long work, on stderr, switched off in tests and quiet runs."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_enabled = os.environ.get("UNLEARNBENCH_PROGRESS", "1") != "0"
_interrupted = threading.Event()


def install_interrupt_handler() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual and also sets a flag that every long loop checks
    (:func:`check_interrupt`), so an interrupt that a library swallows still stops the run at its next
    step. Main thread only."""

    def handler(signum: int, frame: FrameType | None) -> None:
        _interrupted.set()
        raise KeyboardInterrupt

    _interrupted.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


def check_interrupt() -> None:
    if _interrupted.is_set():
        raise KeyboardInterrupt


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def bar(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterator[T]:
    for item in tqdm(iterable, desc=desc, total=total, leave=leave, disable=not _enabled, dynamic_ncols=True):
        check_interrupt()
        yield item
