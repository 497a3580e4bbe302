"""``unlearnbench check``: compare fresh results with a committed baseline under per-metric tolerances.

Only a change in the *worse* direction (by the row's ``goal``) beyond the tolerance is a regression; a
missing result is one too. Cost metrics depend on the machine and are left out unless asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

KEY = ["label", "method", "method_args", "attack", "attack_args", "forget_class", "seed", "phase", "split", "metric"]

# metric prefix -> (absolute tolerance, relative tolerance); the larger applies.
TOLERANCES: dict[str, tuple[float, float]] = {
    "unlearning_accuracy": (0.10, 0.0),
    "asr": (0.10, 0.0),
    "retain_accuracy": (0.10, 0.0),
    "forget_class_probability": (0.10, 0.0),
    "none_rate": (0.15, 0.0),
    "entropy": (0.25, 0.0),
    "fid": (2.0, 0.5),
    "kid": (0.01, 0.5),
    "precision": (0.15, 0.0),
    "recall": (0.15, 0.0),
    "noise_": (0.10, 0.2),
    "steps_to_recover": (25.0, 0.5),
    "recovered": (1.0, 0.0),
    "recover_threshold": (0.10, 0.0),
}
MACHINE_DEPENDENT = ("cost_", "attack_cost_")


def tolerance(metric: str, baseline: float) -> float | None:
    for prefix, (absolute, relative) in TOLERANCES.items():
        if metric.startswith(prefix):
            return max(absolute, relative * abs(baseline))
    return None


@dataclass
class Comparison:
    table: pd.DataFrame

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table.verdict.isin(["REGRESSION", "MISSING"])]


def _aggregate(df: pd.DataFrame) -> pd.Series:
    final = df[df.attack_step.isna() & df.class_id.isna() & (df.status == "ok")]
    return final.groupby(KEY, dropna=False).agg(value=("value", "mean"), goal=("goal", "first"))


def compare(baseline: pd.DataFrame, fresh: pd.DataFrame, *, include_cost: bool = False) -> Comparison:
    base, new = _aggregate(baseline), _aggregate(fresh)
    rows = []
    for key, b in base.iterrows():
        metric = key[KEY.index("metric")]
        if metric.startswith(MACHINE_DEPENDENT) and not include_cost:
            continue
        tol = tolerance(metric, b.value)
        if tol is None and not include_cost:
            continue
        tol = tol if tol is not None else max(1.0, 0.5 * abs(b.value))
        if key not in new.index:
            rows.append(
                {
                    **dict(zip(KEY, key, strict=True)),
                    "baseline": b.value,
                    "fresh": math.nan,
                    "tolerance": tol,
                    "verdict": "MISSING",
                }
            )
            continue
        f = new.loc[key].value
        worse = (f - b.value) if b.goal == "min" else (b.value - f)
        if math.isnan(f) != math.isnan(b.value):
            verdict = "REGRESSION" if math.isnan(f) else "ok"
        elif math.isnan(f):
            verdict = "ok"
        elif worse > tol:
            verdict = "REGRESSION"
        elif -worse > tol:
            verdict = "better"
        else:
            verdict = "ok"
        rows.append(
            {**dict(zip(KEY, key, strict=True)), "baseline": b.value, "fresh": f, "tolerance": tol, "verdict": verdict}
        )
    return Comparison(pd.DataFrame(rows, columns=[*KEY, "baseline", "fresh", "tolerance", "verdict"]))


def format_table(c: Comparison, show_all: bool = False) -> str:
    t = c.table if show_all else c.table[c.table.verdict != "ok"]
    if t.empty:
        return f"{len(c.table)} numbers compared, all within tolerance"
    cols = ["method", "attack", "forget_class", "phase", "split", "metric", "baseline", "fresh", "tolerance", "verdict"]
    return t[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
