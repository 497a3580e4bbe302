"""Fair tuning: every method gets the same number of trials over its documented knobs, and one
selection rule, fixed here, picks the setting.

Rule: among the trials whose retained-class accuracy (10-way) stays within ``tolerance`` (0.05) of the
original model's, take the highest unlearning accuracy (10-way); ties go to the higher retained accuracy,
then the lower retained FID. If no trial keeps the retained classes, take the best trade-off,
``UA_10way + retain_accuracy_10way``. Trial 0 is always the paper default.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pandas as pd

from unlearnbench import registry

TOLERANCE = 0.05


def trials(method: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The paper default plus ``n - 1`` distinct settings drawn (seeded) from the method's search space."""
    cls = registry.get("method", method)
    space: dict[str, list[Any]] = getattr(cls, "search_space", {}) or {}
    out: list[dict[str, Any]] = [{}]
    if not space or n <= 1:
        return out
    keys = sorted(space)
    grid = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(space[k] for k in keys))]
    random.Random(f"{method}:{seed}").shuffle(grid)
    defaults = cls.Args()
    for combo in grid:
        if len(out) >= n:
            break
        if all(getattr(defaults, k) == v for k, v in combo.items()):
            continue  # that is the default, already trial 0
        out.append(combo)
    return out


def _final(df: pd.DataFrame, phase: str, metric: str, split: str) -> pd.Series:
    rows = df[
        (df.phase == phase) & (df.metric == metric) & (df.split == split) & df.class_id.isna() & df.attack_step.isna()
    ]
    return rows.groupby("run_id")["value"].mean()


def select(df: pd.DataFrame, tolerance: float = TOLERANCE) -> tuple[str, dict[str, Any], str]:
    """Pick one run of a method's trials by the rule above. Returns (run_id, method_args, reason)."""
    ok = df[df.status == "ok"]
    ua = _final(ok, "unlearned", "unlearning_accuracy_10way", "forget")
    ra = _final(ok, "unlearned", "retain_accuracy_10way", "retain")
    fid = _final(ok, "unlearned", "fid", "retain")
    original = float(_final(ok, "original", "retain_accuracy_10way", "retain").mean())
    table = pd.DataFrame({"ua": ua, "ra": ra, "fid": fid}).dropna(subset=["ua", "ra"])
    if table.empty:
        raise ValueError("no successful trial to select from")
    keeps = table[table.ra >= original - tolerance]
    if len(keeps):
        best = keeps.sort_values(["ua", "ra", "fid"], ascending=[False, False, True]).index[0]
        reason = f"highest UA with retain accuracy >= {original:.3f} - {tolerance}"
    else:
        best = (table.ua + table.ra).sort_values(ascending=False).index[0]
        reason = "no trial kept retain accuracy within tolerance: best UA + retain accuracy"
    args = json.loads(ok[ok.run_id == best]["method_args"].iloc[0])
    return str(best), args, reason
