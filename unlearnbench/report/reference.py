"""The documentation site's reference tables, generated from what the code declares, so that they cannot go
stale: every registered method, attack, metric and testbed (their descriptions, arguments, budgets, tuning grids
and the rows each metric writes) and every result column.

A page asks for a table with a marker line, ``<!-- reference: methods -->`` (or ``attacks``, ``metrics``,
``testbeds``, ``columns``); ``docs/hooks.py``, the site's mkdocs hook, replaces each marker with :func:`table` when
the site is built. Plugins named in ``UNLEARNBENCH_DOCS_PLUGINS`` (comma-separated modules) are documented too.
"""

from __future__ import annotations

import inspect
import math
import re
from typing import Any

from unlearnbench import registry
from unlearnbench.api import Row
from unlearnbench.args import describe
from unlearnbench.results import SCHEMA

MARKER = re.compile(r"^<!-- reference: (\w+) -->[ \t]*\r?$", re.MULTILINE)


def cell(text: object) -> str:
    """Text for one Markdown table cell: pipes escaped, on one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


BULLET = re.compile(r"^(?:[-*]|\d+\.)\s")


def _paragraph(text: str) -> str:
    """One docstring paragraph as Markdown: its lines joined, except that a list keeps one item per line (a
    continuation line joins its item)."""
    items: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if BULLET.match(line) or not items:
            items.append(line)
        else:
            items[-1] += " " + line
    joined = "\n".join(" ".join(i.split()) for i in items)
    return joined if BULLET.match(items[0]) else " ".join(joined.split("\n")) if len(items) == 1 else joined


def _paragraphs(cls: type) -> list[str]:
    """The class docstring as Markdown paragraphs (Sphinx roles such as ``:mod:`x``` read as plain code; a line
    that would read as a heading is escaped)."""
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", inspect.cleandoc(cls.__doc__ or ""))
    text = re.sub(r"^(\s*)#", r"\1\\#", text, flags=re.MULTILINE)
    return [_paragraph(p) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _arguments(cls: Any) -> list[str]:
    args = describe(cls.Args)
    if not args:
        return ["No arguments."]
    out = ["| argument | default | meaning |", "|---|---|---|"]
    out += [f"| `{name}` | `{cell(repr(default))}` | {cell(help_text)} |" for name, default, help_text in args]
    return out


def _range(row: Row) -> str:
    low, high = row.valid
    if math.isinf(low) and math.isinf(high):
        return "any"
    return f"[{low:g}, {high:g}]".replace("inf", "∞")


def _rows(rows: tuple[Row, ...]) -> list[str]:
    out = ["| row | split | better | label | values | regression tolerance |", "|---|---|---|---|---|---|"]
    for r in rows:
        t = r.tolerance
        tolerance = f"max({t.floor:g}, {t.relative:g}·\\|baseline\\|, {t.z:g} standard errors)"
        if r.machine_dependent:
            tolerance += ", with `--include-cost` only"
        better = "lower" if r.goal == "min" else "higher"
        out.append(f"| `{r.metric}` | {r.split} | {better} | {cell(r.label)} | {_range(r)} | {tolerance} |")
    return out


def _entry(kind: str, name: str) -> list[str]:
    """One entry's section; an entry whose declarations cannot be read (a broken third-party plugin) says why
    instead of failing the site."""
    try:
        return _section(kind, name)
    except Exception as e:  # any plugin error: named on the page, the build goes on
        return [f"### `{name}` {{ #{name} }}", "", f"Could not be documented: {type(e).__name__}: {cell(e)}", ""]


def _section(kind: str, name: str) -> list[str]:
    cls = registry.get(kind, name)
    out = [f"### `{name}` {{ #{name} }}", ""]
    for paragraph in _paragraphs(cls):
        out += [paragraph, ""]
    if kind in ("method", "attack"):
        out += _arguments(cls) + [""]
        out += [f"- **{label}**: {cell(text)}" for label, text in registry.facts(kind, cls)] + [""]
    rows = cls.rows if kind == "metric" else getattr(cls, "extra_rows", ())
    if rows:
        out += (["Rows it writes:", ""] if kind == "metric" else ["Rows it adds to the attacked phase:", ""]) + [
            *_rows(tuple(rows)),
            "",
        ]
    if kind == "testbed":
        out += _testbed(name)
    return out


def _testbed(name: str) -> list[str]:
    from unlearnbench.testbeds import facts

    return [*(f"- **{label}**: {cell(text)}" for label, text in facts(name)), ""]


def _columns() -> list[str]:
    out = ["| column | meaning |", "|---|---|"]
    return out + [f"| `{column}` | {cell(meaning)} ({dtype}) |" for column, (dtype, meaning) in SCHEMA.items()]


def _first(kind: str, name: str) -> str:
    """The first paragraph of an entry's docstring (its summary, however many lines it takes)."""
    return (_paragraphs(registry.get(kind, name)) or [""])[0].split("\n")[0]


def table(kind: str) -> str:
    """The Markdown a ``<!-- reference: KIND -->`` marker stands for."""
    if kind == "columns":
        return "\n".join(_columns())
    singular = kind.rstrip("s")
    if singular not in registry.KINDS:
        raise ValueError(f"unknown reference table {kind!r} (methods, attacks, metrics, testbeds, columns)")
    out = [f"| {singular} | what it does |", "|---|---|"]
    names = registry.names(singular)
    out += [f"| [`{n}`](#{n}) | {cell(_first(singular, n))} |" for n in names]
    out.append("")
    for name in names:
        out += _entry(singular, name)
    return "\n".join(out).rstrip() + "\n"


def render(markdown: str) -> str:
    """A page with each reference marker replaced by its table."""
    return MARKER.sub(lambda m: table(m.group(1)), markdown)


def load_plugins(modules: str) -> None:
    """Register the plugins a site documents besides the built-ins (``UNLEARNBENCH_DOCS_PLUGINS``)."""
    for module in filter(None, (m.strip() for m in modules.split(","))):
        registry.load_module_plugin(module)
