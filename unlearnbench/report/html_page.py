"""The leaderboard's HTML page: a jinja2 template with itables' interactive tables (offline bundle) and the
figures embedded, so that it opens from the file alone; every number as in the Markdown, each cell sortable by
its mean, the best of each column highlighted."""

from __future__ import annotations

import base64
import html
import re

import pandas as pd
from markupsafe import Markup

from unlearnbench.report.cells import Stat
from unlearnbench.report.cost import COST_NOTE, reference_name
from unlearnbench.report.frames import competing
from unlearnbench.report.judges import AGREEMENT_NOTE
from unlearnbench.report.recovery import NOTE as SURVIVAL_NOTE
from unlearnbench.report.robustness import NOTE as ROBUSTNESS_NOTE
from unlearnbench.report.robustness import asr_by_attack, utility_columns
from unlearnbench.report.tables import CONCEPT_COUNT_NOTE, TITLES, Board, Tables, across
from unlearnbench.report.tuning import TUNING_TITLE
from unlearnbench.testbeds import plugin

HTML_INTRO = "\n".join(  # the page's paragraph for a store without intervals, as it was
    [
        "<p>Values are mean ± standard deviation over forget classes and seeds (<code>runs</code>). UA: unlearning",
        "accuracy; H: entropy of the 10-way judge (nats, max ln 10 = 2.303); FID/KID in the evaluator's feature space",
        "against held-out real images of the retained classes; time and memory of the unlearning (priors included,",
        "their time also shown alone). Each column sorts by its mean (click its header); "
        "the box above each table filters its rows.",
        "The best value of each column (reference rows aside; in the robustness table, within each attack) is",
        "highlighted.</p>",
    ]
)
HTML_INTRO_INTERVALS = """<p>Values are means over forget classes and seeds (<code>runs</code>) with their 95% bootstrap
interval in brackets (forget classes resampled, a drawn class bringing every seed's run; each run's value
redrawn from its own interval over its samples). The best value of each column is highlighted and every
value tied with it is underlined: the paired difference from the best, over the classes and seeds both rows
ran, has an interval that holds 0 (rows that share none: their intervals overlap). Marks are set within each
sampler setting, reference rows aside; in the robustness table, within each attack (an attack's own time and
steps mark nothing); a cost's best among the rows that forgot in at least half their runs (forget-class ASR
below 0.8 × the original's) and kept at least half the original's retained accuracy. A cost marked (recorded)
is a shipped result's, recorded when it was made, not measured here: it marks nothing. † marks a UA or
retained accuracy that the second judge reads differently (the intervals do not overlap; see the two-judge
table). {glossary} Each column sorts by its mean (click its header); the box above
each table filters its rows.</p>"""
TIED_CSS = ".tied { text-decoration: underline dotted; text-underline-offset: 3px; }\n"


def _best(cells: list[object], eligible: list[bool]) -> list[bool]:
    """Which cells hold the best value of their column, as printed (ties all count), among eligible rows."""
    stats = [c for c, ok in zip(cells, eligible, strict=True) if ok and isinstance(c, Stat) and not c.empty]
    stats = [s for s in stats if s.goal is not None]  # a recorded cost orders nothing
    if not stats:
        return [False] * len(cells)
    shown = [round(s.mean, s.digits) for s in stats]
    top = max(shown) if stats[0].goal == "max" else min(shown)
    return [
        ok and isinstance(c, Stat) and not c.empty and c.goal is not None and round(c.mean, c.digits) == top
        for c, ok in zip(cells, eligible, strict=True)
    ]


def _stat_html(s: Stat, best: bool) -> str:
    """A number DataTables sorts as a number: the mean is the cell's text; the spread and note are drawn
    by CSS from ``data-after``, so neither sorting nor the filter sees them."""
    if s.empty:
        return f'<span class="na" data-after="{html.escape(s.note)}"></span>'
    cls = "v best" if best else ("v tied" if s.mark == "tied" else "v")
    return f'<span class="{cls}" data-after="{html.escape(s.spread())}">{s.mean:.{s.digits}f}</span>'


def _cells_html(t: pd.DataFrame, group: str | None = None, marked: bool = False) -> pd.DataFrame:
    """The table with every cell as HTML, the best of each column highlighted: with ``marked`` (a table
    :func:`cells.mark_ties` marked, which applies the cost and collapse rules), the cells it marked best and no
    other; else the best mean among the competing rows (within ``group``)."""
    out = pd.DataFrame(index=t.index)
    eligible = competing(t)
    groups = [t.index] if group is None else [g.index for _, g in t.groupby(group, sort=False)]
    for col in t.columns:
        values = t[col].tolist()
        if any(isinstance(v, Stat) for v in values):
            best = pd.Series(False, index=t.index)
            if marked:  # as the Markdown page: a column mark_ties left unmarked highlights nothing
                best[:] = [isinstance(v, Stat) and v.mark == "best" for v in values]
            else:
                for idx in groups:
                    best[idx] = _best(t.loc[idx, col].tolist(), eligible[idx].tolist())
            out[col] = [_stat_html(v, b) for v, b in zip(values, best, strict=True)]
        elif pd.api.types.is_numeric_dtype(t[col].dtype) and not pd.api.types.is_bool_dtype(t[col].dtype):
            out[col] = t[col]
        else:  # every text cell (labels, arguments, found prompts: what users and plugins supply) is escaped
            out[col] = [html.escape(str(v)) for v in values]
    return out.reset_index(drop=True)


def datatable(t: pd.DataFrame, table_id: str, group: str | None = None, marked: bool = False) -> Markup:
    """An interactive (sortable, filterable) table from itables, offline: it needs the bundle that
    :func:`itables_bundle` puts once in the page."""
    from itables import to_html_datatable

    if t.empty:
        return Markup("<p><em>no rows</em></p>")
    layout = {"topStart": None, "topEnd": "search", "bottomStart": "info", "bottomEnd": None}
    return Markup(
        to_html_datatable(
            _cells_html(t, group, marked),
            table_id=table_id,
            connected=False,
            allow_html=True,
            paging=False,
            showIndex=False,
            layout=layout,
            classes="display nowrap compact cell-border",
            text_in_header_can_be_selected=False,  # a click on a header sorts by it
        )
    )


def itables_bundle() -> Markup:
    """DataTables' JavaScript and CSS, base64-embedded: itables' own offline mode, with no network access."""
    from itables import options
    from itables.javascript import generate_init_offline_itables_html

    return Markup(generate_init_offline_itables_html(options.dt_bundle))


def heatmap(t: Tables) -> dict[str, object] | None:
    """Methods × attack settings, ASR (11-way): cells coloured from green (0, forgotten) to red (1, recovered), the
    lowest of each column (comparison rows aside) in bold."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    grid = asr_by_attack(t.robustness, t.quality, default_budgets_only=False)
    if grid.empty:
        return None
    cmap = colormaps["RdYlGn_r"]
    utility = set(utility_columns())  # shown beside each row, uncoloured and never "best": utility, not ASR
    values = [c for c in grid.columns if c not in ("label", "method")]
    eligible = competing(grid).tolist()
    best = {c: _best(grid[c].tolist(), eligible) for c in values if c not in utility}
    rows = []
    for i, r in grid.iterrows():
        cells = []
        for c in values:
            s: Stat = r[c]
            if s.empty:
                cells.append({"text": "–", "title": "no run", "color": "#ffffff", "best": False})
                continue
            if c in utility:
                cells.append({"text": f"{s.mean:.{s.digits}f}", "title": f"{r['method']} ({r['label']}), {c}: {s}",
                              "color": "#f4f4f4", "best": False})  # fmt: skip
                continue
            rgb = cmap(min(max(s.mean, 0.0), 1.0))[:3]
            light = to_hex(tuple(0.45 + 0.55 * ch for ch in rgb))  # pale enough to read black text on
            title = f"{r['method']} ({r['label']}), {c}: {s}"
            cells.append({"text": f"{s.mean:.{s.digits}f}", "title": title, "color": light, "best": best[c][i]})
        rows.append({"label": r["label"], "method": r["method"], "cells": cells})
    return {"columns": values, "rows": rows}


def board_html(board: Board) -> dict[str, object]:
    """One board's part of the page, as the template reads it; its ids prefixed with its testbed's name."""
    t, p = board.tables, board.prefix
    ref = reference_name(t.cost_reference)
    # the tables mark_ties marked (a store with intervals) show its marks; the others their best mean
    robustness = datatable(t.robustness, f"{p}robustness_table", group="attack", marked=t.intervals)
    # (id, title, table, the paragraph above it)
    sections = [("quality", TITLES["quality"], datatable(t.quality, f"{p}quality_table", marked=t.intervals), "")]
    if len(t.agreement):
        sections.append(
            ("agreement", TITLES["agreement"], datatable(t.agreement, f"{p}agreement_table"), AGREEMENT_NOTE)
        )
    if len(t.concept_count):
        table = datatable(t.concept_count, f"{p}concept_count_table")
        sections.append(("concept_count", TITLES["concept_count"], table, CONCEPT_COUNT_NOTE))
    sections += [
        (
            "efficiency",
            TITLES["efficiency"].format(ref=ref),
            datatable(t.efficiency, f"{p}efficiency_table"),
            COST_NOTE.format(ref=ref),
        ),
        ("robustness", TITLES["robustness"], robustness, ROBUSTNESS_NOTE),
        *(
            [("survival", TITLES["survival"], datatable(t.survival.round(1), f"{p}survival_table"), SURVIVAL_NOTE)]
            if len(t.survival)
            else []
        ),
        ("settings", TITLES["settings"], datatable(t.settings, f"{p}settings_table"), ""),
    ]
    if len(t.tuning):
        tuning_html = t.tuning_note.replace("`", "")  # the markdown's code spans, as plain text
        sections.append(("tuning", TUNING_TITLE, datatable(t.tuning, f"{p}tuning_table"), tuning_html))
    intro = HTML_INTRO_INTERVALS.format(glossary=html.escape(plugin(board.testbed).glossary, quote=False))
    return {
        "prefix": p,
        "title": board.title if p else "",
        "runs_note": f"From {board.n_runs} runs in {board.results}." if p else "",
        "sweep_note": re.sub(r"\*\*|`", "", t.sweep_note),
        "answers": [re.sub(r"\*\*|`", "", a) for a in t.answers],
        "sampler": t.sampler,
        "intro": Markup(intro if t.intervals else HTML_INTRO),
        "heatmap": heatmap(t),
        "sections": [{"id": p + i, "title": title, "table": table, "note": note} for i, title, table, note in sections],
        "figures": {
            n[: -len(".png")]: base64.b64encode(b).decode() for n, b in board.images.items() if n.endswith(".png")
        },
    }


def render_html(boards: list[Board], cmd: str) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("unlearnbench.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("leaderboard.html.j2").render(
        command=cmd,
        agreement=[re.sub(r"\*\*|`", "", a) for a in across(boards).split("\n\n") if a],
        n_runs=sum(b.n_runs for b in boards),
        boards=[board_html(b) for b in boards],
        extra_css=Markup(TIED_CSS if any(b.tables.intervals for b in boards) else ""),
        itables=itables_bundle(),
    )
