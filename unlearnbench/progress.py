"""Progress on stderr: bars on a terminal, a plain line every few seconds otherwise (logs, CI), nothing
in tests and quiet runs; and the logging set-up that third-party messages go through."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

from tqdm.auto import tqdm

from unlearnbench.errors import OutOfTime

T = TypeVar("T")

_enabled = os.environ.get("UNLEARNBENCH_PROGRESS", "1") != "0"
_interrupted = threading.Event()
# (time.monotonic() past which the run stops, the reason it is recorded with), while a run has a time limit
_deadline: tuple[float, str] | None = None
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_interrupt_handler(*, raise_now: Callable[[], bool] = lambda: True) -> None:
    """Ctrl-C (SIGINT) and SIGTERM raise KeyboardInterrupt and also set a flag that every long loop checks
    (:func:`check_interrupt`), so an interrupt that a library swallows still stops the run at its next step,
    and the command ends on the one path an interrupt takes (exit 130, one line). Where ``raise_now()`` is
    false (a sweep's worker between runs), only the flag, which stops the next run at its first step. Main
    thread only."""

    def handler(signum: int, frame: FrameType | None) -> None:
        _interrupted.set()
        if raise_now():
            raise KeyboardInterrupt

    _interrupted.clear()
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, handler)


def check_interrupt() -> None:
    """Raise KeyboardInterrupt once interrupted, and :class:`~unlearnbench.errors.OutOfTime` once past the
    run's :func:`time_limit`; every training, attack and sampling loop calls it at each step."""
    if _interrupted.is_set():
        raise KeyboardInterrupt
    if _deadline is not None and time.monotonic() > _deadline[0]:
        raise OutOfTime(_deadline[1])


@contextmanager
def time_limit(seconds: float | None, reason: str, *, since: float | None = None) -> Iterator[None]:
    """Within the block, the loops stop with :class:`~unlearnbench.errors.OutOfTime` (``reason``) once
    ``seconds`` have passed since ``since`` (a ``time.monotonic()`` value; default now). None: no limit."""
    global _deadline
    if seconds is None:
        yield
        return
    previous = _deadline
    _deadline = ((time.monotonic() if since is None else since) + seconds, reason)
    try:
        yield
    finally:
        _deadline = previous


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


log = logging.getLogger("unlearnbench")
PLAIN_EVERY_S = 30.0


def configure_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    """One line per message on stderr; Python warnings and diffusers/torch-fidelity messages go through
    ``logging`` too, shown with ``--verbose`` only (their loading chatter is not the user's business)."""
    logging.basicConfig(format="%(levelname)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)
    logging.captureWarnings(True)
    third_party = logging.INFO if verbose else logging.ERROR
    for name in ("py.warnings", "diffusers", "torch_fidelity", "huggingface_hub"):
        logging.getLogger(name).setLevel(third_party)
    if not verbose:
        warnings.filterwarnings("ignore", module="diffusers")
    try:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity(third_party)
    except ImportError:  # pragma: no cover - diffusers is a dependency
        pass


def _plain(iterable: Iterable[T], desc: str, total: int | None) -> Iterator[T]:
    """No terminal: a plain ``desc: i/total`` line at most every PLAIN_EVERY_S seconds, no control characters."""
    last = time.monotonic()
    i = 0
    for i, item in enumerate(iterable, 1):
        check_interrupt()
        yield item
        if time.monotonic() - last >= PLAIN_EVERY_S:
            last = time.monotonic()
            print(f"{desc}: {i}/{total if total is not None else '?'}", file=sys.stderr, flush=True)


def bar(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterator[T]:
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if _enabled and not sys.stderr.isatty():
        yield from _plain(iterable, desc, total)
        return
    for item in tqdm(iterable, desc=desc, total=total, leave=leave, disable=not _enabled, dynamic_ncols=True):
        check_interrupt()
        yield item
