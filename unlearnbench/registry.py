"""One generic registry for methods, attacks, metrics and testbeds.

Built-ins register themselves with ``@register("name")`` when their package is imported.
Third-party plugins arrive through the entry-point groups ``unlearnbench.methods``,
``unlearnbench.attacks``, ``unlearnbench.metrics`` and ``unlearnbench.testbeds`` (the entry point names a
class decorated with ``@register``), or through an explicit ``--plugin module`` on the command line. Nothing
else is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from unlearnbench.api import Row
from unlearnbench.errors import UserError, suggest

T = TypeVar("T")

KINDS = {
    "method": "unlearnbench.methods",
    "attack": "unlearnbench.attacks",
    "metric": "unlearnbench.metrics",
    "testbed": "unlearnbench.testbeds",
}
_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_loaded: set[str] = set()


def _kind_of(cls: type) -> str:
    from unlearnbench.api import Attack, Metric, UnlearningMethod
    from unlearnbench.testbed import TestbedPlugin

    for kind, base in (
        ("method", UnlearningMethod),
        ("attack", Attack),
        ("metric", Metric),
        ("testbed", TestbedPlugin),
    ):
        if issubclass(cls, base):
            return kind
    raise TypeError(f"{cls.__name__} is not an UnlearningMethod, Attack, Metric or TestbedPlugin")


def _declared(cls: type, kind: str) -> tuple[Row, ...]:
    return tuple(getattr(cls, "rows" if kind == "metric" else "extra_rows", ()) or ())


def _check_declarations(cls: type, kind: str, name: str) -> None:
    """A metric must declare its rows, each with a tolerance; no two entries may declare the same row,
    except attacks that report the same numbers with one shared declaration."""
    rows = _declared(cls, kind)
    if kind == "metric" and not rows:
        raise ValueError(f"metric {name!r} declares no rows: set rows = (Row(...), ...) on {cls.__qualname__}")
    for row in rows:
        if not isinstance(row, Row):
            raise ValueError(f"{kind} {name!r}: rows must be unlearnbench.api.Row, got {row!r}")
        if kind == "attack" and not row.metric.startswith("attack_"):
            raise ValueError(f"attack {name!r}: its extra rows are named 'attack_<name>', got {row.metric!r}")
    taken = {
        (r.metric, r.split): (k, n, r)
        for k in ("metric", "attack")
        for n, c in _REGISTRY[k].items()
        if c is not cls
        for r in _declared(c, k)
    }

    def shared(row: Row) -> bool:  # attacks may share one declaration (the prompt attacks' selection rows)
        other_kind, _, other = taken[(row.metric, row.split)]
        return kind == other_kind == "attack" and other == row

    clash = next((r for r in rows if (r.metric, r.split) in taken and not shared(r)), None)
    if clash is not None:
        owner = taken[(clash.metric, clash.split)][1]
        raise ValueError(f"{kind} {name!r}: row {clash.metric!r} on {clash.split!r} is already declared by {owner!r}")


def register(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: ``@register("safemax") class SAFEMax(UnlearningMethod): ...``."""

    def deco(cls: type[T]) -> type[T]:
        kind = _kind_of(cls)
        table = _REGISTRY[kind]
        if name in table and table[name] is not cls:
            existing = table[name]
            raise ValueError(f"{kind} {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        _check_declarations(cls, kind, name)
        cls.name = name  # type: ignore[attr-defined]
        table[name] = cls
        return cls

    return deco


def unregister(kind: str, name: str) -> None:
    """Remove an entry (tests register toy entries and clean up after themselves)."""
    _REGISTRY[kind].pop(name, None)


def rows() -> dict[tuple[str, str], Row]:
    """Every declared row, by ``(metric, split)``: the metrics' rows and the attacks' extra rows."""
    load_plugins("metric")
    load_plugins("attack")
    return {
        (r.metric, r.split): r
        for kind in ("metric", "attack")
        for c in _REGISTRY[kind].values()
        for r in _declared(c, kind)
    }


def row(metric: str, split: str) -> Row:
    """The declaration of one row; a one-line error names a row that nothing registered declares."""
    declared = rows()
    if (metric, split) not in declared:
        raise UserError(
            f"no registered metric declares {metric!r} on {split!r} (a plugin that is not loaded? pass --plugin MODULE)"
        )
    return declared[(metric, split)]


def _import_package_modules(package: str) -> None:
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def load_plugins(kind: str) -> None:
    """Import the built-ins of ``kind`` and its entry-point plugins, once."""
    if kind in _loaded:
        return
    _loaded.add(kind)
    _import_package_modules(KINDS[kind])
    for ep in entry_points(group=KINDS[kind]):
        try:
            ep.load()
        except Exception as e:  # a broken third-party plugin must not take the tool down silently
            raise UserError(f"plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from e


def _import_plugin(module: str) -> None:
    """A module by name, found on ``sys.path`` or in the working folder (a console script, unlike ``python -m``,
    does not search it), or a ``.py`` file by its path."""
    if module.endswith(".py"):
        path = Path(module).resolve()
        loaded = sys.modules.get(path.stem)
        if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path:
            return
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ImportError(f"no Python file at {path}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = mod  # sweep workers and a second --plugin find it by name
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[path.stem]
            raise
        return
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # after everything installed: a local file never shadows a package
    importlib.import_module(module)


def load_module_plugin(module: str) -> None:
    """``--plugin MODULE`` (or ``--plugin path/to/file.py``): import one module explicitly; its ``@register`` calls
    add its entries. The built-ins are registered first, so a plugin that takes a built-in's name is refused as it
    registers. A plugin that raises ``KeyboardInterrupt`` at import is an interrupt (exit 130); one that calls
    ``sys.exit`` is refused."""
    for kind in KINDS:
        load_plugins(kind)
    try:
        _import_plugin(module)
    except Exception as e:  # ImportError, a SyntaxError in it, a duplicate name: one line, not a traceback
        raise UserError(f"--plugin {module!r} could not be loaded: {type(e).__name__}: {e}") from None
    except SystemExit as e:
        raise UserError(f"--plugin {module!r} could not be loaded: it exited at import (code {e.code!r})") from None


def names(kind: str) -> list[str]:
    load_plugins(kind)
    return sorted(_REGISTRY[kind])


def get(kind: str, name: str) -> Any:
    """The registered class, or a one-line :class:`UserError` with the closest match and the known names."""
    load_plugins(kind)
    table = _REGISTRY[kind]
    if name not in table:
        raise UserError(f"unknown {kind} {name!r}{suggest(name, table)} (known: {', '.join(sorted(table))})")
    return table[name]


def describe(kind: str) -> list[tuple[str, str]]:
    """(name, one-line description) for every entry of ``kind``."""
    return [(n, _REGISTRY[kind][n].summary()) for n in names(kind)]


def facts(kind: str, cls: Any) -> list[tuple[str, str]]:
    """What a method or attack declares besides its arguments, as (label, text) pairs: its paper, the
    conditioning it needs, its budget bound, and (methods) its label dropout and tuning grids. ``unlearnbench
    list -v`` prints them and the documentation's reference pages render them: one source for both."""
    from unlearnbench.conditioning import TESTBED_KINDS

    if kind not in ("method", "attack"):
        return []
    out = []
    if getattr(cls, "paper", ""):
        out.append(("paper", cls.paper))
    if set(cls.supports) != set(TESTBED_KINDS):
        out.append(("conditioning", f"{', '.join(cls.supports)} only"))
    out.append(("budget", f"{cls.budget_unit} <= {cls.max_budget:,} (its defaults: {cls().budget():,})"))
    if kind == "method":
        source = cls.label_dropout_source or "upstream trains without it, or has no public code"
        out.append(("label dropout while unlearning", f"{cls.upstream_label_dropout:g} ({source})"))
        for label, grid in [("", cls.search_space), *cls.search_variants.items()]:
            knobs = "; ".join(f"{k} in {v}" for k, v in grid.items()) or "none"
            out.append((f"tuning grid{f' ({label})' if label else ''}", knobs))
        if cls.search_note:
            out.append(("tuning budget", cls.search_note))
    return out
