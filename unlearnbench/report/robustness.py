"""The robustness table (per method and attack setting) and its ASR grid (the README's and the page's heatmap).

Its columns are the declared rows with a robustness position (``Row.robustness``), read after the attack,
each one declared ``before_attack`` preceded by its value before it (the pre-attack ASR, "pre-" label).
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from unlearnbench import registry
from unlearnbench.defaults import PRIMARY_ASR, RETAIN_ACCURACY
from unlearnbench.report.cells import Stat, column_format, phase_label
from unlearnbench.report.frames import SETTING, by_method_order, with_attack_setting
from unlearnbench.results import final_rows

FOUND = "found prompts"  # the column of what the discrete prompt attacks found, as text
NOTE = (
    "One row per method and attack setting: an attack run with other arguments (a relearning with another "
    "budget or curve) is a row of its own, with its own runs. ASR: the share of the samples generated for the "
    "forgotten concept that the judge reads as it (11-way: with a noise class; 10-way: without), before the attack "
    '("pre-") and after it. Steps to recover: the mean over the runs that recovered only, the others left out; '
    "(recovered k/n): of the n runs that forgot, k came back within the budget. The survival table orders "
    "recovery, censored runs included. Attack time and steps: the attacker's cost and budget, marking nothing. "
    "Marks within each attack and sampler setting."
)


def robustness_metrics() -> list[tuple[str, str, str]]:
    """The robustness table's columns, (metric, split, phase), in their declared order."""
    declared = sorted((r for r in registry.rows().values() if r.robustness), key=lambda r: r.robustness)
    return [
        (r.metric, r.split, phase)
        for r in declared
        for phase in (("unlearned", "attacked") if r.before_attack else ("attacked",))
    ]


def steps_cell(runs: pd.DataFrame, recovery: pd.DataFrame, intervals: bool) -> Stat:
    """The steps-to-recover cell of a group of relearning runs (their final rows): the mean steps of those that
    recovered, then `` (recovered k/n)``: ``n`` the runs that forgot, ``k`` those of them that recovered. Both
    read from ``recovery`` (:func:`unlearnbench.report.recovery.recovery_runs`), which decides "forgot" as the
    forgetting and survival tables do; a run's own recovery rows judged it on its curve's first point."""
    mine = recovery[recovery["run_id"].isin(set(runs["run_id"]))]
    back = mine[mine["event"].astype(bool)]
    rows = back[["forget_concept", "seed"]].assign(value=back["time"].astype(float))
    note = f" (recovered {len(back)}/{len(mine)})"
    return Stat.of_rows(rows, column_format("steps_to_recover", "forget"), note, intervals=intervals)


def found_prompts(runs: pd.DataFrame) -> str:
    """What a discrete prompt attack found, per run, as text: ``seven: "7 sept seven"; three: "..."`` (seed by seed,
    in run order); empty for an attack that reports no prompt."""
    if "attack_prompt" not in runs:
        return ""
    found = runs[runs["attack_prompt"].notna() & runs["class_id"].isna()].drop_duplicates("run_id")
    found = found.sort_values(["forget_concept", "seed", "run_id"])
    return "; ".join(f'{c}: "{p}"' for c, p in zip(found["forget_concept"], found["attack_prompt"], strict=True))


def robustness_table(df: pd.DataFrame, intervals: bool, recovery: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (label, method, attack setting) of the attack runs, with the ``sampler_setting`` column
    that ties are marked within. ``recovery``: the relearning runs as times to recover (computed from ``df`` when
    not given)."""
    from unlearnbench.report.recovery import recovery_runs

    recovery = recovery_runs(df) if recovery is None else recovery
    relearning = set(df.loc[df["metric"] == "recover_threshold", "run_id"])
    attacked = with_attack_setting(df[df["attack"] != "none"])
    columns = robustness_metrics()
    rows = []
    for (label, method, attack), g in attacked.groupby(["label", "method", "attack_setting"]):
        g = final_rows(g)
        rec: dict[str, object] = {
            "label": label or "-",
            "method": method,
            "attack": attack,
            "runs": g["run_id"].nunique(),
            SETTING: g[SETTING].iloc[0],
        }
        curves = bool(relearning & set(g["run_id"]))
        for metric, split, phase in columns:
            if metric == "steps_to_recover" and curves:
                rec[phase_label(metric, split, phase)] = steps_cell(g, recovery, intervals)
                continue
            part = g[(g.metric == metric) & (g.split == split) & (g.phase == phase)]
            rec[phase_label(metric, split, phase)] = Stat.of_rows(
                part, column_format(metric, split), intervals=intervals
            )
        rec[FOUND] = found_prompts(g[g.phase == "attacked"])
        rows.append(rec)
    robustness = pd.DataFrame(rows)
    if len(robustness) and not robustness[FOUND].astype(bool).any():
        robustness = robustness.drop(columns=FOUND)  # no attack here reports a prompt (digits16's)
    return by_method_order(robustness, ["label", "attack", "method"]) if len(robustness) else robustness


# What the ASR grid sets beside each method's row, from the quality table: a model that "resists" every attack
# because it collapsed (retained accuracy near chance, FID in the thousands) must not read as the most robust.
UTILITY = ((RETAIN_ACCURACY, "retain"), ("fid", "retain"))


def utility_columns() -> list[str]:
    """The quality table's labels of the utility columns the ASR grid carries."""
    return [column_format(metric, split).label for metric, split in UTILITY]


def asr_by_attack(
    robustness: pd.DataFrame, quality: pd.DataFrame | None = None, *, default_budgets_only: bool = True
) -> pd.DataFrame:
    """Methods × attack settings: the method's utility (retained accuracy and FID, from ``quality``, unlearned
    phase), the pre-attack ASR (11-way, the primary one), then the ASR after each attack."""
    r = robustness
    if r.empty:
        return pd.DataFrame()
    if default_budgets_only:
        r = r[~r["attack"].str.contains(" (", regex=False)]
    if r.empty:
        return pd.DataFrame()
    pre = phase_label(PRIMARY_ASR, "forget", "unlearned")
    after = phase_label(PRIMARY_ASR, "forget", "attacked")
    attacks = sorted(r["attack"].unique())
    utility = utility_columns() if quality is not None else []
    kept = quality.set_index(["label", "method"]) if quality is not None and len(quality) else None
    rows = []
    for (label, method), g in r.groupby(["label", "method"], sort=False):
        cells = dict(zip(g["attack"], g[after], strict=True))
        empty = Stat(math.nan, math.nan, 3)
        beside = {}
        for column in utility:
            have = kept is not None and column in kept.columns and (label, method) in kept.index
            cell = kept.at[(label, method), column] if have else empty
            beside[column] = dataclasses.replace(cell, mark="") if isinstance(cell, Stat) else cell  # no best here
        rows.append(
            {
                "label": label,
                "method": method,
                **beside,
                pre: g[pre].iloc[0],
                **{a: cells.get(a, empty) for a in attacks},
            }
        )
    return by_method_order(pd.DataFrame(rows), ["label", "method"]).reset_index(drop=True)
