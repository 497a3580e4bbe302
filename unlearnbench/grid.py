"""What a sweep runs: a grid of methods x attacks x forget concepts x seeds, or a union of such grids
(``[[parts]]``), read from a TOML/JSON config, and the ``tune --write`` files a config's parts name."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, RootModel

from unlearnbench.defaults import DEFAULT_TESTBED
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings, eval_settings
from unlearnbench.schema import STRICT, loads_json, validated
from unlearnbench.spec import RunSpec


class MethodSetting(NamedTuple):
    """One method setting of a sweep; ``label_dropout`` None is the method's upstream value."""

    name: str
    args: dict[str, Any]
    label: str
    label_dropout: float | None = None


@dataclass
class Grid:
    """What a sweep runs. ``methods`` entries are ``(name, args, label[, label_dropout])``, ``attacks``
    entries ``(name, args)``."""

    methods: list[tuple[Any, ...]]
    attacks: list[tuple[str, dict[str, Any]]]
    forget: list[tuple[str, ...]]
    seeds: list[int]
    eval: EvalSettings = field(default_factory=EvalSettings)
    testbed: dict[str, Any] = field(default_factory=dict)
    unlearn_precision: str = "float32"

    def with_tuned(self, tuned: dict[str, dict[str, Any]], variants: list[str] | None = None) -> tuple[Grid, list[str]]:
        """Each method at the setting ``unlearnbench tune`` chose for it, labelled ``tuned`` (and each of its
        tuned variants, ``method:variant`` in the file, labelled ``tuned, variant``; ``variants`` keeps only
        those, "" naming the plain tuned setting). A method with no tuned setting is left out (and named in the
        second return value), never run at defaults as "tuned"."""
        names = list(dict.fromkeys(m[0] for m in self.methods))
        here = self.testbed.get("testbed") or DEFAULT_TESTBED
        kept = []
        for m in names:
            for key, entry in tuned.items():
                method, _, variant = key.partition(":")
                if method == m and (variants is None or variant in variants):
                    there = entry.get("testbed") or DEFAULT_TESTBED
                    if there != here:  # a setting chosen on one testbed means nothing on another
                        raise UserError(f"--tuned: {key!r} was tuned on {there}, and these runs are on {here}")
                    kept.append((m, dict(entry["args"]), f"tuned, {variant}" if variant else "tuned"))
        skipped = [m for m in names if not any(k[0] == m for k in kept)]  # nothing kept: none (of those variants)
        if not kept:
            which = f" (variants {', '.join(repr(v) for v in variants)})" if variants is not None else ""
            raise UserError(f"--tuned: none of {', '.join(skipped)} has a tuned setting{which}")
        return dataclasses.replace(self, methods=kept), skipped

    def specs(self) -> list[RunSpec]:
        out = []
        for method, margs, label, label_dropout in (MethodSetting(*m) for m in self.methods):
            for fc in self.forget:
                for seed in self.seeds:
                    for attack, aargs in self.attacks:
                        out.append(
                            RunSpec(
                                method=method,
                                attack=attack,
                                forget=fc,
                                method_args=margs,
                                attack_args=aargs,
                                seed=seed,
                                label_dropout=label_dropout,
                                unlearn_precision=self.unlearn_precision,
                                eval=dataclasses.replace(self.eval, seed=seed),
                                label=label,
                                **self.testbed,
                            )
                        )
        return out


def grid_from_config(cfg: dict[str, Any], overrides: dict[str, Any] | None = None) -> Grid:
    """Build a :class:`Grid` from a parsed TOML/JSON config (see ``configs/*.toml``) without ``[[parts]]``.

    The document is validated by :class:`unlearnbench.schema.SweepConfig` first: an unknown key, a wrong
    type, a non-finite number or an out-of-range value is one :class:`UserError` line. ``overrides``
    (``[eval]`` keys, from command-line flags) win over the config's.
    """
    grids = grids_from_config(cfg, overrides)
    if "parts" in cfg:
        raise UserError("this command takes a config with one grid ('methods'), not '[[parts]]'")
    return grids[0]


def grids_from_config(
    cfg: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    *,
    base: Path | None = None,
    unlearn_precision: str | None = None,
) -> list[Grid]:
    """Every grid of a config: its top level, or each of its ``[[parts]]`` (once per protocol it names),
    each part taking what it leaves out from the top level. ``overrides`` (``[eval]`` keys) and
    ``unlearn_precision`` (the command line's) win over both.
    A part's relative ``tuned`` path is read from ``base`` (the config file's folder) when given."""
    from unlearnbench.schema import MethodEntry, parse_sweep_config

    config = parse_sweep_config(cfg)
    if config.methods is None and config.parts is None:
        raise UserError("config: no methods: give 'methods' (or '[[parts]]', each with its own 'methods')")
    if config.methods is not None and config.parts is not None:
        raise UserError("config: 'methods' beside '[[parts]]': put those methods in a part of their own")
    testbed = config.testbed.model_dump(exclude_unset=True)
    top = config.eval.model_dump(exclude_unset=True)
    last = dict(overrides or {})

    def grid(
        entries: list[MethodEntry],
        label: str,
        ev: dict[str, Any],
        attacks: Any,
        classes: Any,
        seeds: Any,
        precision: str | None = None,
    ) -> Grid:
        methods = []
        for m in entries:
            keys = sorted(m.grid)
            for combo in itertools.product(*(m.grid[k] for k in keys)):
                merged = {**m.args, **dict(zip(keys, combo, strict=True))}
                methods.append(MethodSetting(m.name, merged, label if m.label is None else m.label, m.label_dropout))
        return Grid(
            methods,
            [(a.name, dict(a.args)) for a in attacks],
            [tuple(str(c) for c in fc) if isinstance(fc, list) else (str(fc),) for fc in classes],
            list(seeds),
            eval_settings({k: v for k, v in {**ev, **last}.items() if v is not None}),
            testbed,
            unlearn_precision or precision or config.unlearn_precision,
        )

    if config.methods is not None:
        return [
            grid(config.methods, config.label, top, config.attacks, forget_of(config, "config", ["0"]), config.seeds)
        ]
    grids = []
    for i, part in enumerate(config.parts or []):
        where = f"parts[{i}]" + (f" ({part.name})" if part.name else "")
        ev = {**top, **part.eval.model_dump(exclude_unset=True)}
        label = config.label if part.label is None else part.label
        if part.tuned is not None:  # the tuned file sets the arguments and the labels: nothing may be dropped
            fixed = [
                m.name for m in part.methods if m.args or m.grid or m.label is not None or m.label_dropout is not None
            ]
            if fixed or part.label is not None:
                what = f"{fixed[0]}'s args, grid, label or label_dropout" if fixed else "a label"
                raise UserError(f"config {where}: a part with 'tuned' takes method names only, not {what}")
            tuned = Path(part.tuned) if base is None or Path(part.tuned).is_absolute() else base / part.tuned
        elif part.tuned_variants is not None:
            raise UserError(f"config {where}: 'tuned_variants' goes with 'tuned'")
        for protocol in part.protocols or [None]:
            g = grid(
                part.methods,
                label,
                ev if protocol is None else {**ev, "protocol": protocol},
                part.attacks or config.attacks,
                forget_of(part, f"config {where}") or forget_of(config, "config", ["0"]),
                part.seeds or config.seeds,
                part.unlearn_precision,
            )
            if part.tuned is not None:
                g, skipped = g.with_tuned(read_tuned(str(tuned), f"{where}: tuned"), part.tuned_variants)
                if skipped:
                    raise UserError(f"config {where}: {', '.join(skipped)} has no tuned setting in {str(tuned)!r}")
            grids.append(g)
    return grids


def forget_of(table: Any, where: str, default: list[Any] | None = None) -> list[Any] | None:
    """A config table's ``forget`` (names) or ``forget_classes`` (class numbers: their names), one of them, or
    ``default`` when it gives neither (the top level's concept "0"; a part's: None, it takes the top level's)."""
    if table.forget is not None and table.forget_classes is not None:
        raise UserError(f"{where}: give 'forget' or 'forget_classes', not both")
    chosen = table.forget if table.forget is not None else table.forget_classes
    return chosen if chosen is not None else default


def specs_of(grids: Iterable[Grid]) -> list[RunSpec]:
    """The runs of several grids, in order, each once (parts may overlap)."""
    seen: dict[str, RunSpec] = {}
    for g in grids:
        for spec in g.specs():
            seen.setdefault(spec.canonical(), spec)
    return list(seen.values())


def read_tuned(path: str, flag: str = "--tuned") -> dict[str, dict[str, Any]]:
    """A ``tune --write`` file, validated by :func:`load_tuned`: ``{method: {"args": {...}, ...}}`` (a variant
    under ``method:variant``)."""
    return {method: entry.model_dump() for method, entry in load_tuned(path, flag).items()}


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML or JSON config file into a dict (validated later by :func:`grid_from_config`)."""
    from unlearnbench.schema import loads_json

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config {str(p)!r}: no such file")
    try:
        text = p.read_text()
        if p.suffix == ".json":
            cfg = loads_json(text)
        else:
            import tomllib

            cfg = tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"config {str(p)!r} does not parse: {e.msg} at line {e.lineno}") from None
    except Exception as e:  # tomllib.TOMLDecodeError, NaN/Infinity in JSON, undecodable bytes
        raise UserError(f"config {str(p)!r} does not parse: {str(e).splitlines()[0] if str(e) else e!r}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"config {str(p)!r}: must be a table/object of settings, got {type(cfg).__name__}")
    return cfg


# ---------------------------------------------------------------------------------------------
# --tuned files (results/tune/tuned.json: method or method:variant -> {args, run_ids, rule, trials, grid, ...})
# ---------------------------------------------------------------------------------------------


class TunedEntry(BaseModel):
    """A method's chosen setting, as ``unlearnbench tune --write`` records it."""

    model_config = STRICT

    args: dict[str, Any]
    run_id: str | None = None  # files written before a setting was scored over both tuning classes
    run_ids: list[str] | None = None  # the chosen setting's runs (one per tuning class)
    rule: str | None = None
    passed: bool | None = None  # whether any trial passed the rule
    scores: dict[str, float] | None = None  # the chosen setting's means over its runs, and the original's
    trials: Annotated[int, Field(ge=1)] | None = None
    grid: dict[str, list[Any]] | None = None
    cpu_s: float | None = None  # unlearning CPU seconds over all trials
    forget_classes: list[list[int | str]] | None = None
    testbed: str | None = None  # where it was tuned; files written before testbeds were recorded: digits16


class TunedFile(RootModel[dict[str, TunedEntry]]):
    model_config = ConfigDict(strict=True, frozen=True)


def load_tuned(path: str | os.PathLike[str], flag: str = "--tuned") -> dict[str, TunedEntry]:
    """Read and validate a ``--tuned`` file."""
    p = Path(path)
    where = f"{flag} {str(p)!r}"
    if not p.is_file():
        raise UserError(f"{where}: no such file (write it with 'unlearnbench tune')")
    try:
        raw = loads_json(p.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: not valid JSON ({e})") from None
    return validated(TunedFile, raw, where, mapping_word="an object").root
