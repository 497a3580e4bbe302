"""The cost table: each method's unlearning cost relative to the cost reference method's, beside the ratios of
the published costs (``published_cost`` on the method classes)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from unlearnbench import registry
from unlearnbench.defaults import COST_REFERENCE, PRIMARY_ASR, RETAIN_ACCURACY
from unlearnbench.metrics.recovery import forgot
from unlearnbench.report.cells import Stat, has_intervals
from unlearnbench.report.frames import SETTING, comparison_only, method_order, original_rows, unlearned_rows
from unlearnbench.results import final_rows
from unlearnbench.stats import bootstrap

COST_NOTE = (
    "Each method's unlearning cost divided by {ref}'s on the same forget classes, within one sampler setting (the "
    "unlearnings may come from different sweeps, with other worker counts beside them: the settings table gives "
    "their devices and threads). (recorded): the method's cost is a shipped result's, recorded when it was made "
    "(retrain's reference, trained on other threads under other load), so its ratio is an order of magnitude, "
    "with no interval. The reference is the {ref} row that, of those that forgot in at least "
    "half their runs, kept the most retained accuracy (the reference column names it): neither a setting that "
    "kept the class nor one that collapsed the model is a yardstick. Published: SAFEMax poster, CIFAR-10 on a "
    "GPU (time without priors, GPU memory)."
)


def recorded_note(flags: pd.Series) -> str:
    """The note of a cost pooled over runs whose ``cost_recorded`` flags are these: " (recorded)" where every run
    loaded a shipped result's recorded cost, " (partly recorded)" where some did, "" where none did."""
    shipped = flags.fillna(0.0) == 1.0
    return "" if not shipped.any() else " (recorded)" if shipped.all() else " (partly recorded)"


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


def forgot_shares(df: pd.DataFrame) -> pd.Series:
    """Per (label, method): the share of its unlearnings that forgot (:func:`forgot_by_run`)."""
    return forgot_by_run(df, unlearned_rows(df)).groupby(["label", "method"])["forgot"].mean()


def forgot_in_half(shares: pd.Series, table: pd.DataFrame) -> pd.Series:
    """Per row of a table with ``label`` and ``method`` columns: whether that unlearning forgot in at least half
    its runs (``shares``: :func:`forgot_shares`)."""
    if table.empty or not {"label", "method"} <= set(table.columns):
        return pd.Series(False, index=table.index, dtype=bool)
    labels = table["label"].astype(str).replace("-", "")  # the table shows "-" for a run without a label
    keys = pd.MultiIndex.from_arrays([labels, table["method"].astype(str)])
    return pd.Series(shares.reindex(keys).to_numpy() >= 0.5, index=table.index, dtype=bool)


# A row whose retained accuracy fell below this share of the original model's (same sampler setting) "forgot" by
# breaking the model: it is named "collapsed" wherever a sentence compares robustness (it resists every attack by
# having nothing left to find).
COLLAPSE_SHARE = 0.5


def collapsed(df: pd.DataFrame) -> frozenset[tuple[str, str]]:
    """The (label, method) rows whose mean retained accuracy is below ``COLLAPSE_SHARE`` of the original
    model's in the same sampler setting."""
    final = final_rows(df)
    final = final if SETTING in final else final.assign(**{SETTING: ""})
    kept = (final.metric == RETAIN_ACCURACY) & (final.split == "retain")
    original = original_rows(final[kept]).groupby(SETTING)["value"].mean()
    u = unlearned_rows(df)
    u = u if SETTING in u else u.assign(**{SETTING: ""})
    mine = u[(u.metric == RETAIN_ACCURACY) & (u.split == "retain")].groupby(["label", "method", SETTING])["value"]
    return frozenset(
        (str(label), str(method))
        for (label, method, setting), v in mine.mean().items()
        if setting in original.index and v < COLLAPSE_SHARE * original[setting]
    )


def reference_row(
    did_forget: pd.DataFrame, retained: pd.Series, labels: list[str], reference: str
) -> tuple[str, str] | None:
    """The label of the ``reference`` method's row, among ``labels``, to divide by: of its rows that forgot in
    at least half their runs, the one that kept the most retained accuracy (``retained``: mean by label), so
    that neither a setting that kept the class nor one that collapsed the model is the yardstick; with its
    ``forgot k/n``. None when no row forgot in half its runs."""
    mine = did_forget[(did_forget.method == reference) & did_forget.label.isin(labels)]
    shares = mine.groupby("label", sort=True)["forgot"].agg(["mean", "sum", "count"])
    shares = shares[shares["mean"] >= 0.5]
    if shares.empty:
        return None
    best = retained.reindex(shares.index).fillna(-1.0).idxmax()
    return str(best), f"{int(shares.at[best, 'sum'])}/{int(shares.at[best, 'count'])}"


def efficiency_table(df: pd.DataFrame, reference: str = COST_REFERENCE) -> pd.DataFrame:
    """Each method's unlearning cost divided by the reference row's (:func:`reference_row`, within one sampler
    setting), as means over the forget classes both have (with intervals in the store: the ratio's bootstrap
    interval over those classes), with how many of the method's runs there forgot (a ratio for a method that did
    not forget is the cost of doing nothing useful, and says so); beside the ratios of the methods' published
    costs (``published_cost`` on the method classes) where both have one. Time without priors is wall time minus
    prior wall time; CPU time includes the priors. The comparison rows (noop) get no ratio."""
    intervals = has_intervals(df)
    u = unlearned_rows(df)
    did_forget = forgot_by_run(df, u)
    cost = u[u.metric.isin(["cost_wall_s", "cost_cpu_s", "cost_prior_wall_s", "cost_peak_mem_mb", "cost_recorded"])]
    wide = cost.pivot_table(index=["label", "method", "forget_concept"], columns="metric", values="value")
    if wide.empty or "cost_wall_s" not in wide:
        return pd.DataFrame()
    wide["no_prior"] = wide["cost_wall_s"] - wide["cost_prior_wall_s"]
    published_ref = registry.get("method", reference).published_cost
    settings = u[["label", SETTING]].drop_duplicates() if SETTING in u else u[["label"]].assign(**{SETTING: ""})
    kept = u[(u.method == reference) & (u.metric == RETAIN_ACCURACY) & (u.split == "retain")]
    retained = kept.groupby("label")["value"].mean()

    def ratio(value: float | None, digits: int) -> Stat:
        return Stat(math.nan if value is None else float(value), math.nan, digits)

    def forgot(label: str, who: str, shared: pd.Index) -> str:
        did = did_forget[
            (did_forget.label == label) & (did_forget.method == who) & did_forget.forget_concept.isin(shared)
        ]["forgot"]
        return f"{int(did.sum())}/{len(did)}" + (" (did not forget)" if not did.any() else "")

    rows = []
    for _, labels in settings.groupby(SETTING, sort=True)["label"]:
        chosen = reference_row(did_forget, retained, list(labels), reference)
        if chosen is None:
            continue  # no row of the reference method forgot in at least half its runs here: no yardstick
        ref_label, ref_forgot = chosen
        ref = wide.xs((ref_label, reference), level=["label", "method"])
        present = wide[wide.index.get_level_values("label").isin(list(labels))]
        for (label, method), mine in present.groupby(level=["label", "method"], sort=False):
            if method in comparison_only() or (label, method) == (ref_label, reference):
                continue
            mine = mine.droplevel(["label", "method"])
            shared = mine.index.intersection(ref.index)
            if shared.empty:
                continue
            m, r = mine.loc[shared].mean(), ref.loc[shared].mean()
            recorded = recorded_note(mine.loc[shared, "cost_recorded"] if "cost_recorded" in mine else pd.Series(0.0))

            def measured(
                column: str, digits: int, mine=mine, ref=ref, shared=shared, m=m, r=r, recorded=recorded
            ) -> Stat:
                """The ratio of means; with intervals, its bootstrap interval over the shared forget classes (none
                for a recorded cost: one figure repeated, not a measurement)."""
                cell = ratio(m[column] / r[column], digits)
                if recorded:
                    return replace(cell, note=recorded)
                if not intervals or len(shared) < 2:
                    return cell
                a, b = mine.loc[shared, column].to_numpy(), ref.loc[shared, column].to_numpy()
                ci, _ = bootstrap(lambda i: a[i].mean() / b[i].mean(), np.arange(len(shared)))
                return replace(cell, lo=ci.lo, hi=ci.hi)

            pub = registry.get("method", method).published_cost if published_ref else None
            rows.append(
                {
                    "label": label or "-",
                    "method": method,
                    "reference": f"{reference} ({ref_label or '-'}), forgot {ref_forgot}",
                    "classes": len(shared),
                    "forgot": forgot(label, method, shared),
                    "wall ×, no priors": measured("no_prior", 1),
                    "wall ×, with priors": measured("cost_wall_s", 1),
                    "CPU ×, with priors": measured("cost_cpu_s", 1),
                    "peak memory ×": measured("cost_peak_mem_mb", 2),
                    "published time ×": ratio(pub[0] / published_ref[0] if pub and published_ref else None, 1),
                    "published memory ×": ratio(pub[1] / published_ref[1] if pub and published_ref else None, 2),
                }
            )
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    order = method_order(list(table["method"].unique()))
    return table.sort_values(
        ["reference", "label", "method"], key=lambda c: c.map(order.index) if c.name == "method" else c, kind="stable"
    ).reset_index(drop=True)
