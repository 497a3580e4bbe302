"""Schemas for everything read from outside: run settings, sweep configs, ``--tuned`` files, environment.

Every input is validated here, once, at the edge, before anything runs or is written. A bad value is one
:class:`~unlearnbench.errors.UserError` line naming the field, its value and what is allowed
(:func:`one_line` flattens pydantic's multi-line report). Method and attack arguments use the same
machinery through :mod:`unlearnbench.args`.

Why pydantic (v2) and not msgspec: pydantic validates the project's existing plain dataclasses and dicts
as they are (the method files keep their frozen ``Args`` dataclasses), has strict mode (no ``"1"`` -> 1,
no ``true`` -> 1), ``allow_inf_nan=False`` for finiteness, validation context (the schedule's training
steps bound the sampler steps), and reports each error as data (location, type, bounds) that we can turn
into one line. msgspec is faster, but it validates its own ``Struct`` types while decoding bytes, so every
``Args`` dataclass would have to be redeclared; our inputs are a few hundred bytes, so speed is moot.
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from unlearnbench.errors import UserError

SEED_LIMIT = 2**63  # seeds are recorded in an int64 column
MAX_GUIDANCE = 50.0
TRAIN_STEPS = 1000  # DDPM training steps of the shipped schedule: the most DDIM steps it can take

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=True, frozen=True)

# ---------------------------------------------------------------------------------------------
# One line per error
# ---------------------------------------------------------------------------------------------

_TYPE_WORDS = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "string": "str",
    "list": "a list",
    "tuple": "a list",
}
_MAPPING_TYPES = ("dict", "model", "model_attributes", "dataclass")


def show(value: Any, limit: int = 80) -> str:
    """A value as the user would have typed it (JSON spelling), on one line, shortened."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"~2**{value.bit_length() - 1}"
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(x: Any) -> str:
    if isinstance(x, int) and not isinstance(x, bool) and x >= 2**32 and x & (x - 1) == 0:
        return f"2**{x.bit_length() - 1}"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def allowed_range(info: FieldInfo | None) -> str:
    """``in [0, 50]``, ``> 0``, ``>= 1``, or '' from a field's bounds."""
    if info is None:
        return ""
    low = high = None
    low_open = high_open = False
    metadata = list(info.metadata)
    for member in (info.annotation, *typing.get_args(info.annotation)):  # X | None keeps X's bounds inside
        if typing.get_origin(member) is Annotated:
            for extra in member.__metadata__:
                metadata += extra.metadata if isinstance(extra, FieldInfo) else [extra]
    for m in metadata:
        if isinstance(m, annotated_types.Gt):
            low, low_open = m.gt, True
        elif isinstance(m, annotated_types.Ge):
            low = m.ge
        elif isinstance(m, annotated_types.Lt):
            high, high_open = m.lt, True
        elif isinstance(m, annotated_types.Le):
            high = m.le
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_number(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_number(high)}"
    return ""


def _strip(annotation: Any) -> Any:
    """Unwrap ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[FieldInfo | None, tuple[str, ...]]:
    """The field a pydantic error location points at, and the keys known where it sits."""
    annotation: Any = model
    info: FieldInfo | None = None
    known: tuple[str, ...] = ()
    for part in loc:
        annotation = _strip(annotation)
        if isinstance(annotation, type) and issubclass(annotation, RootModel):
            annotation = _strip(annotation.model_fields["root"].annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            known = tuple(annotation.model_fields)
            info = annotation.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None, known
            annotation = info.annotation
        elif typing.get_origin(annotation) in (list, tuple, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            break
    return info, known


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: Mapping[str, Any], info: FieldInfo | None, mapping_word: str) -> tuple[str, bool]:
    """What is allowed, and whether the value's type should be shown beside it."""
    kind: str = err["type"]
    rng = allowed_range(info)
    if kind == "missing":
        return "is required", False
    if kind == "finite_number":
        return f"must be a finite number{' ' + rng if rng else ''}", False
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        if not rng:
            ctx = err.get("ctx", {})
            op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
            rng = f"{op} {_number(next(iter(ctx.values())))}" if ctx else ""
        return f"must be {rng}", False
    if kind == "literal_error":
        annotation = _strip(info.annotation) if info is not None else None
        while typing.get_origin(annotation) in (list, tuple):  # an item of a list of choices
            annotation = _strip(typing.get_args(annotation)[0])
        choices = list(typing.get_args(annotation)) if typing.get_origin(annotation) is Literal else []
        return (f"must be one of {choices}" if choices else f"must be {err['ctx']['expected']}"), False
    if kind == "too_short":
        return "must be a non-empty list", False
    base = kind.split("_")[0] if kind.endswith(("_type", "_parsing")) else ""
    if kind in ("int_from_float", "int_parsing_size"):
        base = "int"
    if kind.endswith("_type") and kind[: -len("_type")] in _MAPPING_TYPES:
        return f"must be {mapping_word}", True
    if base in _TYPE_WORDS:
        word = _TYPE_WORDS[base]
        if base in ("int", "float") and rng:
            word = f"{word} {rng}"
        return f"must be {word}", True
    return str(err["msg"]).splitlines()[0], False


def one_line(
    error: ValidationError,
    where: str,
    model: type[BaseModel],
    *,
    label: Callable[[str], str] = str,
    noun: str = "key",
    mapping_word: str = "a table",
) -> UserError:
    """Flatten pydantic's report to one line: ``WHERE: FIELD must be ALLOWED, got VALUE``.

    An unknown key is reported first (it is the likeliest typo), with the closest known name.
    ``label`` turns a dotted location (``eval.guidance``) into what the user typed (``--guidance``).
    """
    from unlearnbench.errors import suggest

    errors = error.errors(include_url=False)
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    err = (extra or errors)[0]
    loc = tuple(err["loc"])
    prefix = f"{where}: " if where else ""
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    if err["type"] == "extra_forbidden":
        _, known = _field_at(model, loc)
        name, parent = str(loc[-1]), _dotted(loc[:-1])
        what = f"unknown {parent + ' ' if parent else ''}{noun} {name!r}"
        listing = ", ".join(known) or "none"
        return UserError(f"{prefix}{what}{suggest(name, known)} (known: {listing}){more}")
    info, _ = _field_at(model, loc)
    problem, with_type = _problem(err, info, mapping_word)
    value = err.get("input")
    got = f"{type(value).__name__} {show(value)}" if with_type else show(value)
    field = label(_dotted(loc)) if loc else "the whole input"
    got_text = "" if err["type"] == "missing" else f", got {got}"
    return UserError(f"{prefix}{field} {problem}{got_text}{more}")


def validated(model: type[BaseModel], raw: Any, where: str, *, context: dict[str, Any] | None = None, **kw: Any) -> Any:
    """``model`` validated from ``raw``, or a one-line :class:`UserError`."""
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as e:
        raise one_line(e, where, model, **kw) from None


def reject_json_constant(name: str) -> Any:
    """``json.loads(..., parse_constant=...)``: Python's json accepts NaN and Infinity; JSON does not."""
    raise ValueError(f"{name} is not a JSON number (use a finite number)")


MAX_JSON_DEPTH = 100  # far beyond any real input, far below Python's recursion limit


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (a scalar is 0), counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_json(text: str, *, constants: bool = False) -> Any:
    """Strict JSON (raises :class:`json.JSONDecodeError` or ValueError): ``NaN``/``Infinity`` are rejected
    (``constants``: kept, for a schema to refuse naming the field), and so is nesting deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(text, parse_constant=None if constants else reject_json_constant)
    except RecursionError:
        value = None
    else:
        if json_depth(value) <= MAX_JSON_DEPTH:
            return value
    raise ValueError(f"nested more than {MAX_JSON_DEPTH} deep")


# ---------------------------------------------------------------------------------------------
# Run settings (the sampler, sample counts, seed)
# ---------------------------------------------------------------------------------------------

Count = Annotated[int, Field(gt=0)]
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
Guidance = Annotated[float, Field(ge=0, le=MAX_GUIDANCE)]
Eta = Annotated[float, Field(ge=0, le=1)]
LabelDropout = Annotated[float, Field(ge=0, lt=1)]
Protocol = Literal["testbed", "papers"]  # the named sampler settings (unlearnbench.evaluate.PROTOCOLS)
Precision = Literal["float32", "bfloat16"]  # a model's forwards: float32, or bfloat16 autocast


class EvalConfig(BaseModel):
    """The ``[eval]`` table of a sweep config; unset keys keep :class:`EvalSettings`' defaults."""

    model_config = STRICT

    forget_samples: Count = 100
    retain_samples: Annotated[int, Field(ge=0)] = 20
    curve_samples: Count = 50
    sample_steps: int = 50  # 1 to the schedule's training steps (validation context)
    guidance: Guidance | None = None  # None: the testbed's measured default
    eta: Eta = 0.0
    clip_sample: bool = False  # per-step x0 clipping (diffusers' clip_sample); upstream's sampler does not clip
    precision: Precision = "float32"  # the sampler's model forwards (bfloat16: autocast)
    protocol: Protocol = "testbed"  # a named sampler setting (unlearnbench.evaluate.PROTOCOLS)

    @field_validator("sample_steps")
    @classmethod
    def _at_most_train_steps(cls, value: int, info: ValidationInfo) -> int:
        limit = int((info.context or {}).get("train_steps", TRAIN_STEPS))
        if not 1 <= value <= limit:
            raise PydanticCustomError(
                "sampler_steps", "must be in [1, {limit}] (the schedule's training steps)", {"limit": limit}
            )
        return value


class RunSettings(EvalConfig):
    """Everything :func:`unlearnbench.runner.validate` range-checks besides the forget classes."""

    guidance: Guidance | None = None  # None: the testbed's default (resolved by the runner)
    seed: Seed = 0


RUN_FLAGS = {
    "forget_samples": "--forget-samples",
    "retain_samples": "--retain-samples",
    "curve_samples": "--curve-samples",
    "sample_steps": "--sample-steps",
    "guidance": "--guidance",
    "eta": "--eta",
    "seed": "--seed",
}


def check_eval_settings(ev: Any, seed: Any, train_steps: int = TRAIN_STEPS) -> RunSettings:
    """:func:`check_run_settings` of an :class:`~unlearnbench.evaluate.EvalSettings` and a seed: what ``run``
    checks, and ``testbed check`` before it loads anything."""
    return check_run_settings(
        forget_samples=ev.forget_samples,
        retain_samples=ev.retain_samples,
        curve_samples=ev.curve_samples,
        sample_steps=ev.sampler.steps,
        guidance=ev.sampler.guidance_scale,
        eta=ev.sampler.eta,
        seed=seed,
        train_steps=train_steps,
    )


def check_run_settings(
    *,
    forget_samples: Any,
    retain_samples: Any,
    curve_samples: Any,
    sample_steps: Any,
    guidance: Any,
    eta: Any,
    seed: Any,
    train_steps: int = TRAIN_STEPS,
) -> RunSettings:
    """Range-check a run's settings; errors name the command-line flag (``--guidance must be ...``)."""
    raw = {
        "forget_samples": forget_samples,
        "retain_samples": retain_samples,
        "curve_samples": curve_samples,
        "sample_steps": sample_steps,
        "guidance": guidance,
        "eta": eta,
        "seed": seed,
    }
    return validated(RunSettings, raw, "", context={"train_steps": train_steps}, label=lambda f: RUN_FLAGS.get(f, f))


# ---------------------------------------------------------------------------------------------
# Sweep configs (TOML or JSON; see configs/*.toml)
# ---------------------------------------------------------------------------------------------


def _name_to_table(item: Any) -> Any:
    return {"name": item} if isinstance(item, str) else item


def _forget_class(item: Any) -> Any:
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if is_int(item) or (isinstance(item, list) and item and all(is_int(c) for c in item)):
        return item
    raise PydanticCustomError("forget_class", "must be an int or a non-empty list of ints")


def _forget(item: Any) -> Any:
    def is_name(x: Any) -> bool:
        return isinstance(x, str) and bool(x.strip())

    if is_name(item) or (isinstance(item, list) and item and all(is_name(c) for c in item)):
        return item
    raise PydanticCustomError("forget", "must be a concept name or a non-empty list of names")


class MethodEntry(BaseModel):
    """One method of a sweep: fixed ``args``, and a ``grid`` of values whose product is swept."""

    model_config = STRICT

    name: str
    args: dict[str, Any] = {}
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    label: str | None = None
    label_dropout: LabelDropout | None = None  # None: the method's upstream value


class AttackEntry(BaseModel):
    model_config = STRICT

    name: str
    args: dict[str, Any] = {}


class TestbedConfig(BaseModel):
    model_config = STRICT

    testbed: str = "digits16"
    model: str | None = None
    dataset: str | None = None
    evaluator: str | None = None
    attacker: str | None = None


Methods = Annotated[list[Annotated[MethodEntry, BeforeValidator(_name_to_table)]], Field(min_length=1)]
Attacks = Annotated[list[Annotated[AttackEntry, BeforeValidator(_name_to_table)]], Field(min_length=1)]
ForgetClasses = Annotated[list[Annotated[Any, BeforeValidator(_forget_class)]], Field(min_length=1)]
Forget = Annotated[list[Annotated[Any, BeforeValidator(_forget)]], Field(min_length=1)]
Seeds = Annotated[list[Seed], Field(min_length=1)]


class PartConfig(BaseModel):
    """One ``[[parts]]`` table: a grid of its own inside a sweep. What it leaves out (label, attacks, forget
    classes, seeds, ``[eval]`` keys) it takes from the config's top level. ``tuned`` names an
    ``unlearnbench tune --write`` file: the part's methods then run at their tuned settings (and variants),
    labelled ``tuned``. ``protocols`` runs the part once per named sampler setting."""

    model_config = STRICT

    name: str = ""
    label: str | None = None
    methods: Methods
    tuned: str | None = None
    # Which tuned settings of each method the part runs ("" is the plain tuned one, "retain term" a variant's);
    # absent: all of them.
    tuned_variants: Annotated[list[str], Field(min_length=1)] | None = None
    attacks: Attacks | None = None
    forget: Forget | None = None
    forget_classes: ForgetClasses | None = None  # class numbers: the same as 'forget' with their names
    seeds: Seeds | None = None
    protocols: Annotated[list[Protocol], Field(min_length=1)] | None = None
    unlearn_precision: Precision | None = None
    eval: EvalConfig = EvalConfig()


class SweepConfig(BaseModel):
    """A sweep grid, or (``parts``) a union of grids that share the top level's settings. Method/attack
    ``args`` are checked against each one's ``Args`` when resolved."""

    model_config = STRICT

    label: str = ""
    methods: Methods | None = None
    attacks: Attacks = [AttackEntry(name="none")]
    # What each run forgets: concept names (an entry may list several); 'forget_classes' is the same with
    # class numbers (class-conditional testbeds). Give one of them (default: the concept "0").
    forget: Forget | None = None
    forget_classes: ForgetClasses | None = None
    seeds: Seeds = [0]
    # The unlearning methods' gradient steps (bfloat16: autocast); attacks train in float32.
    unlearn_precision: Precision = "float32"
    eval: EvalConfig = EvalConfig()
    testbed: TestbedConfig = TestbedConfig()
    parts: Annotated[list[PartConfig], Field(min_length=1)] | None = None


def parse_sweep_config(raw: Any, where: str = "config", *, train_steps: int = TRAIN_STEPS) -> SweepConfig:
    """A parsed TOML/JSON document as a :class:`SweepConfig`, or one :class:`UserError` line."""
    return validated(SweepConfig, raw, where, context={"train_steps": train_steps})


# ---------------------------------------------------------------------------------------------
# Environment variables
# ---------------------------------------------------------------------------------------------


class Environment(BaseModel):
    """The environment variables unlearnbench reads (strings, so parsed leniently: ``"4"`` -> 4)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    UNLEARNBENCH_THREADS: Annotated[int, Field(ge=1, le=4096)] = 2
    UNLEARNBENCH_PROGRESS: Literal["0", "1"] = "1"
    UNLEARNBENCH_COMPILE: Literal["0", "1"] = "0"


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """The validated environment; a bad value is one line naming the variable."""
    env = os.environ if environ is None else environ
    raw = {k: env[k] for k in Environment.model_fields if k in env}
    return validated(Environment, raw, "", label=lambda name: f"environment variable {name}")
