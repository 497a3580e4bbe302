"""The short table printed at the end of ``unlearnbench run``: original vs. unlearned vs. attacked."""

from __future__ import annotations

import math

import pandas as pd

SUMMARY_METRICS = [
    ("unlearning_accuracy_10way", "forget", "UA 10-way"),
    ("unlearning_accuracy_11way", "forget", "UA 11-way"),
    ("entropy", "forget", "entropy (nats)"),
    ("noise_autocorr", "forget", "noise autocorr"),
    ("retain_accuracy_10way", "retain", "retain acc"),
    ("fid", "retain", "FID retain"),
    ("kid", "retain", "KID retain"),
    ("cost_wall_s", "all", "wall s"),
    ("cost_peak_mem_mb", "all", "peak MiB"),
    ("steps_to_recover", "forget", "steps to recover"),
]


def summary_table(df: pd.DataFrame) -> str:
    if (df["status"] != "ok").any():
        return f"run failed: {df['error'].iloc[0]}"
    final = df[df["attack_step"].isna() & df["class_id"].isna()]
    cols = {}
    for phase in ("original", "unlearned", "attacked"):
        part = final[final["phase"] == phase]
        if part.empty:
            continue
        values = {}
        for metric, split, label in SUMMARY_METRICS:
            m = part[(part["metric"].isin([metric, f"attack_{metric}"])) & (part["split"] == split)]
            values[label] = m["value"].iloc[0] if len(m) else math.nan
        cols[phase] = values
    table = pd.DataFrame(cols)
    table = table.dropna(how="all")
    return table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")
