"""The short table printed at the end of ``unlearnbench run``: original vs. unlearned vs. attacked.

Its rows are the declared rows with a ``summary`` position (see :class:`unlearnbench.api.Row`); a
registered metric that declares one appears here with no change to this file.
"""

from __future__ import annotations

import math

import pandas as pd

from unlearnbench import registry
from unlearnbench.results import final_rows


def summary_table(df: pd.DataFrame) -> str:
    if (df["status"] != "ok").any():
        return f"run failed: {df['error'].iloc[0]}"
    declared = sorted((r for r in registry.rows().values() if r.summary), key=lambda r: r.summary)
    final = final_rows(df)
    cols: dict[str, dict[str, str]] = {}
    for phase in ("original", "unlearned", "attacked"):
        part = final[final["phase"] == phase]
        if part.empty:
            continue
        values = {}
        for row in declared:
            # an attack's own cost is written as attack_<metric>: it stands in the attacked column
            m = part[(part["metric"].isin([row.metric, f"attack_{row.metric}"])) & (part["split"] == row.split)]
            value = m["value"].iloc[0] if len(m) else math.nan
            values[row.label] = "-" if math.isnan(value) else f"{value:.{row.digits}f}"
        cols[phase] = values
    table = pd.DataFrame(cols)
    table = table[(table != "-").any(axis=1)]
    found = final[final["phase"] == "attacked"]
    found = found[found["attack_prompt"].notna() & found["class_id"].isna()] if "attack_prompt" in found else found[:0]
    if len(found):  # what a discrete prompt attack found, as text
        return table.to_string() + f"\nprompt found: {found['attack_prompt'].iloc[0]!r}"
    return table.to_string()
