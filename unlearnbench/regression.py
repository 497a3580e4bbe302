"""``unlearnbench check``: compare fresh results with a committed baseline under each metric's tolerance.

Only a change in the *worse* direction (by the row's declared ``goal``) beyond the row's declared
tolerance rule is a regression (see :class:`unlearnbench.api.Tolerance`: an absolute floor, a relative
part, and ``z`` standard errors of the difference); a missing result is one too. Machine-dependent rows
(cost) are left out unless asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from unlearnbench import registry
from unlearnbench.results import final_rows

KEY = ["label", "method", "method_args", "attack", "attack_args", "forget_class", "seed", "phase", "split", "metric"]
COLUMNS = [*KEY, "baseline", "fresh", "tolerance", "verdict"]


@dataclass
class Comparison:
    table: pd.DataFrame

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table.verdict.isin(["REGRESSION", "MISSING"])]


def _aggregate(df: pd.DataFrame) -> pd.DataFrame:
    return final_rows(df).groupby(KEY, dropna=False).agg(value=("value", "mean"), stderr=("stderr", "mean"))


def _verdict(baseline: float, fresh: float, goal: str, tolerance: float) -> str:
    if math.isnan(fresh) != math.isnan(baseline):
        return "REGRESSION" if math.isnan(fresh) else "ok"
    if math.isnan(fresh):
        return "ok"
    worse = (fresh - baseline) if goal == "min" else (baseline - fresh)
    if worse > tolerance:
        return "REGRESSION"
    return "better" if -worse > tolerance else "ok"


def compare(baseline: pd.DataFrame, fresh: pd.DataFrame, *, include_cost: bool = False) -> Comparison:
    base, new = _aggregate(baseline), _aggregate(fresh)
    rows = []
    for key, b in base.iterrows():
        fields = dict(zip(KEY, key, strict=True))
        declared = registry.row(fields["metric"], fields["split"])
        if declared.machine_dependent and not include_cost:
            continue
        if key not in new.index:
            tol = declared.tolerance.allowed(b.value, b.stderr)
            rows.append({**fields, "baseline": b.value, "fresh": math.nan, "tolerance": tol, "verdict": "MISSING"})
            continue
        f = new.loc[key]
        tol = declared.tolerance.allowed(b.value, b.stderr, f.stderr)
        verdict = _verdict(b.value, f.value, declared.goal, tol)
        rows.append({**fields, "baseline": b.value, "fresh": f.value, "tolerance": tol, "verdict": verdict})
    return Comparison(pd.DataFrame(rows, columns=COLUMNS))


def format_table(c: Comparison, show_all: bool = False) -> str:
    t = c.table if show_all else c.table[c.table.verdict != "ok"]
    if t.empty:
        return f"{len(c.table)} numbers compared, all within tolerance"
    cols = ["method", "attack", "forget_class", "phase", "split", "metric", "baseline", "fresh", "tolerance", "verdict"]
    return t[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
