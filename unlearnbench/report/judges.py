"""The two judges: the † flags on the quality table and the two-judge table.

Which numbers the second judge reads again comes from its rows' declarations (``Row.second_judge_of``); the
two-judge table shows the primary UA and the retained accuracy (``unlearnbench.defaults``).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from unlearnbench import registry
from unlearnbench.defaults import PRIMARY_UA, RETAIN_ACCURACY
from unlearnbench.report.cells import Stat, column_format
from unlearnbench.report.frames import table_groups
from unlearnbench.stats import overlap

# The two-judge table's columns.
AGREEMENT_METRICS = [(PRIMARY_UA, "forget"), (RETAIN_ACCURACY, "retain")]
AGREEMENT_NOTE = (
    "UA (11-way) and retained accuracy (10-way) read by the shipped evaluator and by the second judge "
    '(independently trained: another architecture and seed, the same "none" training), each with its 95% '
    'bootstrap interval; "no †" where the intervals do not overlap.'
)


def judge_pairs() -> dict[tuple[str, str], tuple[str, str]]:
    """Numbers both judges read: (metric, split) by the evaluator -> the same by the second judge, as the
    second judge's rows declare them."""
    return {(r.second_judge_of, r.split): (r.metric, r.split) for r in registry.rows().values() if r.second_judge_of}


def judges_disagree(first: Stat, second: Stat) -> bool:
    """The two judges disagree on a number when both have an interval and the intervals do not overlap."""
    return first.interval.known and second.interval.known and not overlap(first.interval, second.interval)


def flag_disagreements(cells: dict[str, Stat], g: pd.DataFrame) -> dict[str, Stat]:
    """The quality cells of the rows ``g`` with a † on each number the second judge reads otherwise (no
    overlap of the two intervals)."""
    for (metric, split), (second, _) in judge_pairs().items():
        label = column_format(metric, split).label
        if label not in cells or cells[label].empty:
            continue
        other = Stat.of_metric(g, second, split, intervals=True)
        if judges_disagree(cells[label], other):
            cells[label] = replace(cells[label], note=cells[label].note + " †")
    return cells


def agreement_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method (and the original model): UA11 and retained accuracy read by the evaluator and by the
    second judge, each with its interval, and whether they agree (intervals overlap). Empty when no run
    has the second judge's rows."""
    pairs = judge_pairs()
    second = {m for m, _ in pairs.values()}
    if not df["metric"].isin(second).any():
        return pd.DataFrame()
    rows = []
    for label, method, runs, g in table_groups(df):
        rec: dict[str, object] = {"label": label, "method": method, "runs": runs}
        for metric, split in AGREEMENT_METRICS:
            fmt = column_format(metric, split)
            name = fmt.label.rstrip(" ↑↓")
            first = Stat.of_metric(g, metric, split, intervals=True)
            m2, s2 = pairs[(metric, split)]
            other = Stat.of_metric(g, m2, s2, intervals=True, fmt=fmt)  # in the evaluator's column format
            rec[f"{name}: evaluator"] = replace(first, goal=None)
            rec[f"{name}: judge 2"] = replace(other, goal=None)
            if first.empty or other.empty:
                rec[f"{name}: agree"] = "–"
            else:
                rec[f"{name}: agree"] = "no †" if judges_disagree(first, other) else "yes"
        rows.append(rec)
    return pd.DataFrame(rows)
