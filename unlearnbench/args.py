"""Typed, validated arguments for methods and attacks.

Each method or attack declares a frozen dataclass of its arguments; every field is made with
:func:`arg`, which records a default, a one-line help text and the valid range. :func:`parse`
turns a JSON object (``--method-args``) into that dataclass and rejects unknown keys, wrong types and
out-of-range values with one line each. No argument is silently coerced or ignored.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar, get_type_hints

from unlearnbench.errors import UserError

A = TypeVar("A")


def arg(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A documented argument. ``low``/``high`` are inclusive unless ``low_open`` (then ``value > low``)."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


def positive(default: Any, help: str) -> Any:
    return arg(default, help, low=0, low_open=True)


@dataclasses.dataclass(frozen=True)
class NoArgs:
    """No arguments."""


def _check_type(owner: str, name: str, value: Any, typ: Any) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, float),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }.get(typ, True)
    if not ok:
        raise UserError(f"{owner}: argument {name!r} must be {typ.__name__}, got {type(value).__name__} {value!r}")
    return value


def _check_range(owner: str, name: str, value: Any, meta: dict[str, Any]) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise UserError(f"{owner}: argument {name!r} must be one of {list(choices)}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if value != value:  # NaN
        raise UserError(f"{owner}: argument {name!r} is NaN")
    if low is not None and (value <= low if meta.get("low_open") else value < low):
        op = ">" if meta.get("low_open") else ">="
        raise UserError(f"{owner}: argument {name!r} must be {op} {low}, got {value!r}")
    if high is not None and value > high:
        raise UserError(f"{owner}: argument {name!r} must be <= {high}, got {value!r}")


def parse(cls: type[A], raw: dict[str, Any] | str | None, owner: str) -> A:
    """Build the argument dataclass ``cls`` from a dict or JSON text, validating every value."""
    if raw is None:
        raw = {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as e:
            raise UserError(f"{owner}: arguments are not valid JSON ({e.msg} at column {e.colno}): {raw!r}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{owner}: arguments must be a JSON object like '{{\"lr\": 1e-4}}', got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        from unlearnbench.errors import suggest

        raise UserError(
            f"{owner}: unknown argument {unknown[0]!r}{suggest(unknown[0], fields)} "
            f"(known: {', '.join(fields) or 'none'})"
        )
    values = {}
    for name, value in raw.items():
        value = _check_type(owner, name, value, hints[name])
        _check_range(owner, name, value, dict(fields[name].metadata))
        values[name] = value
    instance = cls(**values)
    for name, f in fields.items():  # defaults obey the same rules
        if name not in values:
            _check_range(owner, name, getattr(instance, name), dict(f.metadata))
    check = getattr(instance, "validate", None)
    if check is not None:
        check(owner)
    return instance


def to_dict(args: Any) -> dict[str, Any]:
    return dataclasses.asdict(args)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, help) for documentation and ``unlearnbench list``."""
    return [(f.name, f.default, f.metadata.get("help", "")) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
