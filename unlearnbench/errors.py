"""Errors that mean "the input is wrong" (exit status 2, one line) versus "the run failed"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: the CLI prints ``error: <message>`` on one line and exits with status 2."""


class RunFailed(RuntimeError):
    """The run cannot finish: the runner records it as failed, with this exception's message as the reason."""


class Diverged(RunFailed):
    """A loss became NaN or infinite."""


class OutOfTime(RunFailed):
    """The run went past its time limit (``--max-minutes``)."""


def suggest(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``known``, or ``""``. Case is ignored when matching
    (``SAFEMax`` suggests ``safemax``); the suggestion is spelled as it is known."""
    spelled = {k.lower(): k for k in known}
    exact = spelled.get(name.lower())
    if exact is not None:
        return f"; did you mean {exact!r}?"
    close = difflib.get_close_matches(name.lower(), list(spelled), n=1, cutoff=0.5)
    return f"; did you mean {spelled[close[0]]!r}?" if close else ""
