"""The cost table: each method's unlearning cost relative to the cost reference method's, beside the ratios of
the published costs (``published_cost`` on the method classes)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from unlearnbench import registry
from unlearnbench.defaults import COST_REFERENCE, PRIMARY_ASR
from unlearnbench.metrics.recovery import forgot
from unlearnbench.report.cells import Stat, has_intervals
from unlearnbench.report.frames import comparison_only, method_order, unlearned_rows
from unlearnbench.results import final_rows
from unlearnbench.stats import bootstrap

COST_NOTE = (
    "Each method's unlearning cost divided by {ref}'s on the same forget classes, from the same sweep "
    "(same label, same machine and thread count). Published: SAFEMax poster, CIFAR-10 on a GPU "
    "(time without priors, GPU memory)."
)


def reference_name(method: str) -> str:
    """The cost reference as its class spells it (``SAFEMax``)."""
    return registry.get("method", method).__name__


def forgot_by_run(df: pd.DataFrame, unlearned: pd.DataFrame) -> pd.DataFrame:
    """Per unlearning (label, method, forget class, run): whether it forgot, by the recovery metric's rule
    (:func:`unlearnbench.metrics.recovery.forgot`: its 11-way forget-class rate below 0.8 of the original
    model's in the same run)."""
    final = final_rows(df)
    asr = (final.metric == PRIMARY_ASR) & (final.split == "forget")
    original = final[asr & (final.phase == "original")].drop_duplicates("run_id").set_index("run_id")["value"]
    pre = unlearned[(unlearned.metric == PRIMARY_ASR) & (unlearned.split == "forget")]
    pre = pre.assign(original=pre["run_id"].map(original)).dropna(subset=["original"])
    did = [forgot(float(p), float(o)) for p, o in zip(pre["value"], pre["original"], strict=True)]
    return pre[["label", "method", "forget_concept", "run_id"]].assign(forgot=did)


def efficiency_table(df: pd.DataFrame, reference: str = COST_REFERENCE) -> pd.DataFrame:
    """Each method's unlearning cost divided by the reference method's, within one label (one sweep's
    settings), as means over the forget classes both have (with intervals in the store: the ratio's bootstrap
    interval over those classes), with how many of the method's runs there forgot (a ratio for a method that
    did not forget is the cost of doing nothing useful, and says so), and as many of the reference's (a ratio
    to a reference that did not forget, such as a tuned setting that kept the class, compares a cost with the
    cost of doing nothing); beside the ratios of the methods' published
    costs (``published_cost`` on the method classes) where both have one. Time without priors is wall
    time minus prior wall time; CPU time includes the priors. The comparison rows (noop) get no ratio."""
    intervals = has_intervals(df)
    u = unlearned_rows(df)
    did_forget = forgot_by_run(df, u)
    cost = u[u.metric.isin(["cost_wall_s", "cost_cpu_s", "cost_prior_wall_s", "cost_peak_mem_mb"])]
    wide = cost.pivot_table(index=["label", "method", "forget_concept"], columns="metric", values="value")
    if wide.empty or reference not in wide.index.get_level_values("method"):
        return pd.DataFrame()
    wide["no_prior"] = wide["cost_wall_s"] - wide["cost_prior_wall_s"]
    published_ref = registry.get("method", reference).published_cost
    skipped = comparison_only() | {reference}

    def ratio(value: float | None, digits: int) -> Stat:
        return Stat(math.nan if value is None else float(value), math.nan, digits)

    rows = []
    for label, part in wide.groupby(level="label"):
        part = part.droplevel("label")
        if reference not in part.index.get_level_values("method"):
            continue
        ref = part.xs(reference, level="method")
        for method in method_order(list(part.index.get_level_values("method").unique())):
            if method in skipped:
                continue
            mine = part.xs(method, level="method")
            shared = mine.index.intersection(ref.index)
            if shared.empty:
                continue
            m, r = mine.loc[shared].mean(), ref.loc[shared].mean()

            def measured(column: str, digits: int, mine=mine, ref=ref, shared=shared, m=m, r=r) -> Stat:
                """The ratio of means; with intervals, its bootstrap interval over the shared forget classes."""
                cell = ratio(m[column] / r[column], digits)
                if not intervals or len(shared) < 2:
                    return cell
                a, b = mine.loc[shared, column].to_numpy(), ref.loc[shared, column].to_numpy()
                ci, _ = bootstrap(lambda i: a[i].mean() / b[i].mean(), np.arange(len(shared)))
                return replace(cell, lo=ci.lo, hi=ci.hi)

            pub = registry.get("method", method).published_cost if published_ref else None

            def forgot(who: str, shared: pd.Index = shared, label: str = label) -> str:
                did = did_forget[
                    (did_forget.label == label) & (did_forget.method == who) & did_forget.forget_concept.isin(shared)
                ]["forgot"]
                return f"{int(did.sum())}/{len(did)}" + (" (did not forget)" if not did.any() else "")

            rows.append(
                {
                    "label": label or "-",
                    "method": method,
                    "classes": len(shared),
                    "forgot": forgot(method),
                    "reference forgot": forgot(reference),
                    "wall ×, no priors": measured("no_prior", 1),
                    "wall ×, with priors": measured("cost_wall_s", 1),
                    "CPU ×, with priors": measured("cost_cpu_s", 1),
                    "peak memory ×": measured("cost_peak_mem_mb", 2),
                    "published time ×": ratio(pub[0] / published_ref[0] if pub and published_ref else None, 1),
                    "published memory ×": ratio(pub[1] / published_ref[1] if pub and published_ref else None, 2),
                }
            )
    return pd.DataFrame(rows)
