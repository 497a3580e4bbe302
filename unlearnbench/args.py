"""Typed, validated arguments for methods and attacks.

Each method or attack declares a frozen dataclass of its arguments; every field is made with
:func:`arg`, which records a default, a one-line help text and the valid range. :func:`parse`
turns a JSON object (``--method-args``) into that dataclass through a strict pydantic model built from the
fields (:func:`schema_of`, see :mod:`unlearnbench.schema` for why pydantic), and rejects unknown keys, wrong
types, non-finite numbers and out-of-range values with one line each. No argument is silently coerced or
ignored (an int given for a float is the one widening).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from pydantic import AfterValidator, BaseModel, Field, create_model

from unlearnbench.errors import UserError
from unlearnbench.schema import STRICT, loads_json, validated

A = TypeVar("A")

# Bounds every method and attack argument of these names gets on top of its own declaration, so that no input
# reaches the internals as a non-finite training run or one that runs for weeks: a learning rate (``lr``,
# ``*_lr``) at most MAX_LR, a step count (an int ``steps``, ``*_steps``) at most MAX_STEPS.
MAX_LR = 10.0
MAX_STEPS = 1_000_000


def implied_high(name: str, typ: Any) -> float | None:
    """The upper bound an argument gets from its name (see MAX_LR, MAX_STEPS), or None."""
    if name == "lr" or name.endswith("_lr"):
        return MAX_LR
    if typ is int and (name == "steps" or name.endswith("_steps")):
        return MAX_STEPS
    return None


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


@functools.cache
def schema_of(cls: type) -> type[BaseModel]:
    """A strict pydantic model of the ``Args`` dataclass ``cls``: its types, with ``arg()``'s ranges (and the
    names' :func:`implied_high` bounds) and choices, finite numbers only, no unknown keys. The dataclass itself
    stays as it is."""
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        meta = f.metadata
        typ: Any = hints[f.name]
        bounds: dict[str, Any] = {}
        if meta.get("low") is not None:
            bounds["gt" if meta.get("low_open") else "ge"] = meta["low"]
        highs = [h for h in (meta.get("high"), implied_high(f.name, typ)) if h is not None]
        if highs:
            bounds["le"] = min(highs)
        if meta.get("choices") is not None:
            typ = Literal[tuple(meta["choices"])]
        if get_origin(typ) is tuple:  # a JSON list (or the tuple default), kept as a tuple: frozen and hashable
            item = get_args(typ)[0]
            typ = Annotated[list[item] | tuple[item, ...], AfterValidator(tuple)]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        fields[f.name] = (Annotated[typ, Field(**bounds)], default)
    return create_model(f"{cls.__name__}Schema", __config__=STRICT, **fields)


def parse(cls: type[A], raw: dict[str, Any] | str | None, owner: str) -> A:
    """Build the argument dataclass ``cls`` from a dict or JSON text, validating every value.

    Only the given keys are passed to ``cls`` (defaults stay as declared, so resolved arguments and run
    ids do not change); the defaults are validated too. ``NaN``/``Infinity`` are rejected, in JSON text
    and as values.
    """
    if raw is None:
        raw = {}
    if isinstance(raw, str):
        try:
            raw = loads_json(raw) if raw.strip() else {}
        except json.JSONDecodeError as e:
            raise UserError(f"{owner}: arguments are not valid JSON ({e.msg} at column {e.colno}): {raw!r}") from None
        except ValueError as e:
            raise UserError(f"{owner}: arguments are not valid JSON ({e}): {raw!r}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{owner}: arguments must be a JSON object like '{{\"lr\": 1e-4}}', got {raw!r}")
    model = schema_of(cls)
    checked = validated(model, raw, owner, label=lambda name: f"argument {name!r}", noun="argument")
    instance = cls(**{name: getattr(checked, name) for name in raw})
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
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__qualname__} is not a dataclass: declare Args with @dataclass(frozen=True)")

    def default(f: dataclasses.Field[Any]) -> Any:  # a default_factory's value, not dataclasses.MISSING
        return f.default_factory() if f.default is dataclasses.MISSING and callable(f.default_factory) else f.default

    return [(f.name, default(f), f.metadata.get("help", "")) for f in dataclasses.fields(cls)]
