"""A table cell and how a metric is shown in one.

Every cell that holds a metric is a :class:`Stat` (mean, spread, digits, goal): the Markdown writes its
text, the HTML page sorts by its mean and highlights the best of each column by its goal. Every metric's
display label, digits and goal come from :func:`column_format`, that is from the metric's declared row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import pandas as pd

from unlearnbench import registry
from unlearnbench.report.frames import competing
from unlearnbench.stats import Interval, combine_runs, overlap, paired_difference

Goal = Literal["max", "min"] | None


class ColumnFormat(NamedTuple):
    """How a metric row is shown: column label, digits after the point, and which direction is better."""

    label: str
    digits: int
    goal: Goal


def column_format(metric: str, split: str) -> ColumnFormat:
    """The label (with an arrow for its goal), digits and goal that the row's metric declares (its
    :class:`~unlearnbench.api.Row`); a row nothing declares shows its name, 3 digits, no goal."""
    declared = registry.rows().get((metric, split))
    if declared is None:
        return ColumnFormat(metric, 3, None)
    arrow = " ↑" if declared.goal == "max" else " ↓"
    goal = declared.goal if declared.ranked else None  # a column that orders nothing marks no best
    return ColumnFormat(declared.label + arrow, declared.digits, goal)  # type: ignore[arg-type]


def among_forgetting_columns() -> frozenset[str]:
    """The column labels whose best is marked among rows that forgot only (their rows declare
    ``best_among_forgetting``: the costs)."""
    return frozenset(
        column_format(r.metric, r.split).label for r in registry.rows().values() if r.best_among_forgetting
    )


def phase_label(metric: str, split: str, phase: str) -> str:
    """The column label of a metric in a phase: the unlearned phase's is the pre-attack one ("pre-")."""
    label = column_format(metric, split).label
    return f"pre-{label}" if phase == "unlearned" else label


@dataclass(frozen=True)
class Stat:
    """One table cell: the mean over runs, printed with ``digits``; beside it either the 95% bootstrap
    interval (``lo``, ``hi``: over the runs' classes and seeds and each run's samples, see
    :func:`unlearnbench.stats.combine_runs`) or, for a store written before intervals existed, the
    standard deviation over runs. ``runs``: each run's ``(concept, seed)`` and ``(value, lo, hi)``, which
    :func:`mark_ties` pairs with another row's. ``mark``: ``best`` (the column's best) or ``tied`` (the paired
    interval of its difference from the best holds 0), set by :func:`mark_ties`."""

    mean: float
    std: float
    digits: int
    goal: Goal = None
    note: str = ""
    lo: float = math.nan
    hi: float = math.nan
    mark: str = ""
    runs: tuple[tuple[tuple[str, int], tuple[float, float, float]], ...] = ()

    @classmethod
    def of(cls, values: pd.Series, fmt: ColumnFormat, note: str = "") -> Stat:
        v = values.dropna().astype(float)
        mean = v.mean() if len(v) else math.nan
        std = v.std() if len(v) > 1 else math.nan
        return cls(float(mean), float(std), fmt.digits, fmt.goal, note)

    @classmethod
    def of_rows(cls, rows: pd.DataFrame, fmt: ColumnFormat, note: str = "", *, intervals: bool = False) -> Stat:
        """The cell of these rows (one per run); with ``intervals``, its bootstrap interval from the rows'
        ``value``, ``lo`` and ``hi``, over their forget concepts (a cluster bootstrap), and the runs by concept
        and seed for pairing."""
        stat = cls.of(rows["value"], fmt, note)
        if not intervals or stat.empty:
            return stat
        rows = rows[rows["value"].notna()]
        clusters = rows["forget_concept"].astype(str).tolist() if "forget_concept" in rows else None
        ci = combine_runs(rows["value"], rows.get("lo"), rows.get("hi"), clusters=clusters)
        return replace(stat, lo=ci.lo, hi=ci.hi, runs=_by_run(rows))

    @classmethod
    def of_metric(
        cls, g: pd.DataFrame, metric: str, split: str, *, intervals: bool = False, fmt: ColumnFormat | None = None
    ) -> Stat:
        """The cell of one metric on one split among the rows ``g``, in its declared format unless ``fmt``."""
        fmt = column_format(metric, split) if fmt is None else fmt
        return cls.of_rows(g[(g.metric == metric) & (g.split == split)], fmt, intervals=intervals)

    @property
    def empty(self) -> bool:
        return math.isnan(self.mean)

    @property
    def interval(self) -> Interval:
        return Interval(self.lo, self.hi)

    def spread(self) -> str:
        """The text after the mean: `` [lo, hi]`` (its interval) or `` ± std`` (the spread over runs of a
        store without intervals), then the note."""
        if self.interval.known:
            return f" [{self.lo:.{self.digits}f}, {self.hi:.{self.digits}f}]" + self.note
        shown = not (math.isnan(self.std) or self.std == 0)
        return (f" ± {self.std:.{self.digits}f}" if shown else "") + self.note

    def __str__(self) -> str:
        if self.empty:
            return "–" + self.note
        mean = f"{self.mean:.{self.digits}f}"
        if self.mark == "best":
            mean = f"**{mean}**"
        return f"{mean}{self.spread()}" + (" =" if self.mark == "tied" else "")


def _by_run(rows: pd.DataFrame) -> tuple[tuple[tuple[str, int], tuple[float, float, float]], ...]:
    """Each run's ``(concept, seed)`` and ``(value, lo, hi)``; runs of the same concept and seed (one unlearning
    under two attack settings) averaged."""
    if "forget_concept" not in rows or "seed" not in rows:
        return ()
    frame = pd.DataFrame({
        "concept": rows["forget_concept"].astype(str).to_numpy(),
        "seed": pd.to_numeric(rows["seed"]).fillna(-1).astype(int).to_numpy(),
        "value": rows["value"].astype(float).to_numpy(),
        "lo": (rows["lo"] if "lo" in rows else pd.Series(math.nan, index=rows.index)).astype(float).to_numpy(),
        "hi": (rows["hi"] if "hi" in rows else pd.Series(math.nan, index=rows.index)).astype(float).to_numpy(),
    })  # fmt: skip
    mean = frame.groupby(["concept", "seed"], sort=True)[["value", "lo", "hi"]].mean()
    return tuple(((c, int(s)), (v, lo, hi)) for (c, s), (v, lo, hi) in zip(mean.index, mean.to_numpy(), strict=True))


def tied(a: Stat, b: Stat) -> bool:
    """Whether the data cannot order two cells: the paired interval of their difference over the runs both
    rows have (same concept and seed, a cluster bootstrap over concepts) holds 0; rows that share no run
    fall back to whether their own intervals overlap."""
    d = paired_difference(dict(a.runs), dict(b.runs)) if a.runs and b.runs else None
    if d is None or not d.interval.known:
        return overlap(a.interval, b.interval)
    return d.tie


def has_intervals(df: pd.DataFrame) -> bool:
    """Whether the rows carry bootstrap intervals (stores written before them do not)."""
    return "lo" in df.columns and bool(df["lo"].notna().any())


def mark_ties(t: pd.DataFrame, group: str | list[str] | None = None, forgot: pd.Series | None = None) -> pd.DataFrame:
    """Mark each column's best cell (by its mean and goal; comparison rows aside; within ``group``) as
    ``best``, and every other cell :func:`tied` with it as ``tied``: on that column the data cannot tell them
    apart. ``forgot`` (a bool per row: it forgot in at least half its runs, and did not collapse the model): a
    column whose row is declared ``best_among_forgetting`` (a cost) marks its best among those rows only, as a
    fast row that kept the concept, or broke the model, did nothing useful."""
    if t.empty:
        return t
    out = t.copy()
    eligible = competing(t)
    costs = among_forgetting_columns()
    forgetting = eligible & (forgot.reindex(t.index).fillna(False).astype(bool) if forgot is not None else True)
    groups = [t.index] if group is None else [g.index for _, g in t.groupby(group, sort=False)]
    for col in t.columns:
        for idx in groups:
            among = forgetting if col in costs else eligible
            cells = {i: c for i, c in t.loc[idx, col].items() if among[i] and isinstance(c, Stat) and not c.empty}
            cells = {i: c for i, c in cells.items() if c.goal is not None and c.interval.known}
            if not cells:
                continue
            pick = max if next(iter(cells.values())).goal == "max" else min
            best = pick(cells, key=lambda i: cells[i].mean)
            for i, c in cells.items():
                mark = "best" if i == best else ("tied" if tied(c, cells[best]) else "")
                out.at[i, col] = replace(c, mark=mark)
    return out


def markdown_cell(value: object) -> str:
    """A value as one Markdown table cell: a ``|`` would add a column, a ``<`` open an HTML tag (a label is the
    user's text, and the page is meant to be published), a line break end the row."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def to_markdown(t: pd.DataFrame) -> str:
    if t.empty:
        return "_no rows_\n"
    header = "| " + " | ".join(markdown_cell(c) for c in t.columns) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    body = ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"
