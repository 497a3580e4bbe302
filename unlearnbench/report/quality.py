"""The quality table: forgetting, retention, quality and cost per method, beside the original model.

Its columns are the declared rows with a leaderboard position (``Row.leaderboard``), in that order; the
README's copy keeps those marked ``Row.headline``.
"""

from __future__ import annotations

import pandas as pd

from unlearnbench import registry
from unlearnbench.api import Row
from unlearnbench.report.cells import Stat, column_format
from unlearnbench.report.frames import SETTING, table_groups
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
    with its interval and the second judge's † where it reads the number otherwise."""
    cells = {column_format(m, s).label: Stat.of_metric(g, m, s, intervals=intervals) for m, s in quality_metrics()}
    return flag_disagreements(cells, g) if intervals else cells


def quality_table(df: pd.DataFrame, intervals: bool) -> pd.DataFrame:
    """The original model (a row per sampler setting) and every (label, method) of the unlearned rows, with the
    ``sampler_setting`` column that ties are marked within."""
    rows = [
        {"label": label, "method": method, "runs": runs, SETTING: g[SETTING].iloc[0], **quality_cells(g, intervals)}
        for label, method, runs, g in table_groups(df)
    ]
    return pd.DataFrame(rows)
