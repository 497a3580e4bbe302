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
from unlearnbench.errors import UserError
from unlearnbench.results import final_rows

KEY = [
    "label",
    "method",
    "method_args",
    "attack",
    "attack_args",
    "testbed",
    "forget_concept",
    "seed",
    "phase",
    "split",
    "metric",
]
COLUMNS = [*KEY, "baseline", "fresh", "tolerance", "verdict"]


@dataclass
class Comparison:
    table: pd.DataFrame

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table.verdict.isin(["REGRESSION", "MISSING"])]


# What makes two numbers comparable: a baseline and results that differ in one of these measure different things.
LIKE = [
    "model_sha",
    "evaluator_sha",
    "n_forget_samples",
    "n_retain_samples",
    "sample_steps",
    "guidance",
    "eta",
    "clip_sample",
    "sampler_precision",
    "unlearn_precision",
    "label_dropout",
]


# Settings recorded only from some date on, and the value every number before then was measured with.
BEFORE_RECORDED = {"sampler_precision": "float32", "unlearn_precision": "float32"}


def _text(values: pd.Series) -> pd.Series:
    """Values as plain strings, a missing one as "missing" (NA never equals NA, and two missing values agree)."""
    return values.astype(object).where(values.notna(), "missing").astype(str)


def check_like_with_like(baseline: pd.DataFrame, fresh: pd.DataFrame) -> None:
    """Refuse (one line, naming the field) when a run present in both was measured under other settings."""
    ids = ["testbed", "method", "method_args", "attack", "attack_args", "forget_concept", "seed"]

    def settings(df: pd.DataFrame) -> pd.DataFrame:
        rows = final_rows(df).copy()
        for column, value in BEFORE_RECORDED.items():
            rows[column] = rows[column].astype(object).where(rows[column].notna(), value)
        return rows[ids + LIKE].drop_duplicates(ids)

    b, f = settings(baseline), settings(fresh)
    both = b.merge(f, on=ids, suffixes=("_baseline", "_results"))
    for field in LIKE:
        differ = both[_text(both[f"{field}_baseline"]) != _text(both[f"{field}_results"])]
        if len(differ):
            r = differ.iloc[0]
            raise UserError(
                f"check: baseline and results differ in {field} ({r[f'{field}_baseline']} vs {r[f'{field}_results']}, "
                f"{r['method']} / {r['attack']}, forget {r['forget_concept']}): they measure different things; "
                "regenerate the baseline with the same settings"
            )


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
    check_like_with_like(baseline, fresh)
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
    t = t.assign(interval=[f"{b:.4g} ± {tol:.3g}" for b, tol in zip(t.baseline, t.tolerance, strict=True)])
    cols = ["method", "attack", "forget_concept", "seed", "phase", "split", "metric", "fresh", "interval", "verdict"]
    return t[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
