"""Errors that mean "the input is wrong" (exit status 2, one line) versus "the run failed"."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the CLI prints ``error: <message>`` on one line and exits with status 2."""


class Diverged(RuntimeError):
    """A loss became NaN or infinite; the run is recorded as failed with this reason."""
