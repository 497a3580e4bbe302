"""One generic registry for methods, attacks and metrics.

Built-ins register themselves with ``@register("name")`` when their package is imported.
Third-party plugins arrive through the entry-point groups ``unlearnbench.methods``,
``unlearnbench.attacks`` and ``unlearnbench.metrics`` (the entry point names a class decorated with
``@register``), or through an explicit ``--plugin module`` on the command line. Nothing else is imported.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from unlearnbench.errors import UserError

T = TypeVar("T")

KINDS = {"method": "unlearnbench.methods", "attack": "unlearnbench.attacks", "metric": "unlearnbench.metrics"}
_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_loaded: set[str] = set()


def suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind_of(cls: type) -> str:
    from unlearnbench.api import Attack, Metric, UnlearningMethod

    for kind, base in (("method", UnlearningMethod), ("attack", Attack), ("metric", Metric)):
        if issubclass(cls, base):
            return kind
    raise TypeError(f"{cls.__name__} is not an UnlearningMethod, Attack or Metric")


def register(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: ``@register("safemax") class SAFEMax(UnlearningMethod): ...``."""

    def deco(cls: type[T]) -> type[T]:
        kind = _kind_of(cls)
        table = _REGISTRY[kind]
        if name in table and table[name] is not cls:
            existing = table[name]
            raise ValueError(f"{kind} {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        cls.name = name  # type: ignore[attr-defined]
        table[name] = cls
        return cls

    return deco


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


def load_module_plugin(module: str) -> None:
    """``--plugin MODULE``: import one module explicitly; its ``@register`` calls add its entries."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"--plugin {module!r} could not be imported: {e}") from None


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
