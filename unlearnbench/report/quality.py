"""The quality table: forgetting, retention, quality and cost per method, beside the original model.

Its columns are the declared rows with a leaderboard position (``Row.leaderboard``), in that order; the
README's copy keeps those marked ``Row.headline``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from unlearnbench import registry
from unlearnbench.api import Row
from unlearnbench.defaults import PRIMARY_UA, RETAIN_ACCURACY
from unlearnbench.report.cells import Stat, among_forgetting_columns, column_format
from unlearnbench.report.cost import recorded_note
from unlearnbench.report.frames import SETTING, method_groups, table_groups, unlearned_rows
from unlearnbench.report.judges import flag_disagreements


def _columns() -> list[Row]:
    return sorted((r for r in registry.rows().values() if r.leaderboard), key=lambda r: r.leaderboard)


def quality_metrics() -> list[tuple[str, str]]:
    """The quality table's columns: every declared row with a leaderboard position, in that order."""
    return [(r.metric, r.split) for r in _columns()]


def headline_metrics() -> list[tuple[str, str]]:
    """The README's copy of the quality table: the columns whose rows are declared ``headline``."""
    return [(r.metric, r.split) for r in _columns() if r.headline]


def quality_cells(g: pd.DataFrame, intervals: bool = False) -> dict[str, Stat]:
    """The quality table's cells of the rows ``g`` (one per run), by column label; with ``intervals``, each
    with its interval and the second judge's † where it reads the number otherwise. The cost cells of runs that
    loaded a shipped result (``cost_recorded`` = 1: retrain's reference) show the cost recorded when it was made,
    marked "(recorded)" ("(partly recorded)" where only some of the row's runs did), with no interval and no
    goal: one figure repeated, measured elsewhere, competes with nothing measured here."""
    cells = {column_format(m, s).label: Stat.of_metric(g, m, s, intervals=intervals) for m, s in quality_metrics()}
    flags = g[g.metric == "cost_recorded"].set_index("run_id")["value"].reindex(g["run_id"].unique())
    if note := recorded_note(flags):  # a run without the row measured its cost
        for label in among_forgetting_columns() & cells.keys():
            cells[label] = replace(cells[label], goal=None, std=math.nan, lo=math.nan, hi=math.nan, runs=(), note=note)
    return flag_disagreements(cells, g) if intervals else cells


def without_empty(table: pd.DataFrame) -> pd.DataFrame:
    """The table less every column no run has (a text testbed's CLIP score on digits16): left out, not a column
    of dashes."""
    empty = [c for c in table.columns if len(table) and all(isinstance(v, Stat) and v.empty for v in table[c])]
    return table.drop(columns=empty)


def quality_table(df: pd.DataFrame, intervals: bool) -> pd.DataFrame:
    """The original model (a row per sampler setting) and every (label, method) of the unlearned rows, with the
    ``sampler_setting`` column that ties are marked within."""
    rows = [
        {"label": label, "method": method, "runs": runs, SETTING: g[SETTING].iloc[0], **quality_cells(g, intervals)}
        for label, method, runs, g in table_groups(df)
    ]
    return without_empty(pd.DataFrame(rows))


# The count table's columns: forgetting (canonical and held-out names) and retention (all, in-domain, cross-domain,
# quality), where the runs have them.
COUNT_COLUMNS = (
    (PRIMARY_UA, "forget"),
    ("unlearning_accuracy_heldout", "forget"),
    (RETAIN_ACCURACY, "retain"),
    ("retain_accuracy_in_domain", "retain"),
    ("retain_accuracy_cross_domain", "retain"),
    ("fid", "retain"),
    ("clip_score", "retain"),
)


def forget_counts(df: pd.DataFrame) -> pd.Series:
    """How many concepts each row's run forgets (rows written before the column: one)."""
    return df["n_forget"].astype("Int64").fillna(1) if "n_forget" in df else pd.Series(1, index=df.index)


def concept_count_table(df: pd.DataFrame, intervals: bool) -> pd.DataFrame:
    """Forgetting and retention against how many concepts a run forgets at once, for every (label, method) that
    has runs at more than one count (MACE's question: does retention fall as erased concepts add up?). Each
    count's runs forget different concept sets, so a row averages over its sets and seeds; every row reads only
    runs whose concepts are all among those the method's several-concept runs erase."""
    unl = unlearned_rows(df)
    counts = forget_counts(unl)
    sets = unl["forget_concept"].astype(str).str.split(",").map(frozenset)
    rows = []
    for (label, method), g in method_groups(unl):
        n = counts[g.index]
        if n.nunique() < 2:
            continue
        # only the concepts the larger sets erase: one-concept runs of an attribute do not stand beside three objects
        erased = frozenset().union(*sets[g.index][n > 1])
        inside = sets[g.index].map(lambda concepts, erased=erased: concepts <= erased)
        g, n = g[inside], n[inside]
        for k in sorted(n.unique()):
            part = g[n == k]
            cells = {
                column_format(m, s).label: Stat.of_metric(part, m, s, intervals=intervals) for m, s in COUNT_COLUMNS
            }
            rows.append({"label": label or "-", "method": method, "concepts": int(k), "runs": part.run_id.nunique(),
                         **cells})  # fmt: skip
    return without_empty(pd.DataFrame(rows))
