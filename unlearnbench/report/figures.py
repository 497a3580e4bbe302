"""The leaderboard's figures (matplotlib, written as PNG and PDF without timestamps) and the scatter of
``unlearnbench table``."""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench import survival
from unlearnbench.defaults import PRIMARY_ASR, PRIMARY_UA, RETAIN_ACCURACY
from unlearnbench.report.frames import SETTING, base_label, method_order, unlearned_rows, with_attack_setting
from unlearnbench.report.recovery import recovery_runs
from unlearnbench.results import Store

# Reproducible files: no software version or creation date inside them.
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}
NAMES = ("tradeoff", "cost", "recovery", "survival", "uncertainty", "samples")  # every figure :func:`figures` can draw
FILES = tuple(f"{name}.{ext}" for name in NAMES for ext in _METADATA)


def _pyplot(*, leaderboard_style: bool = True) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if leaderboard_style:
        plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "unlearnbench"})
    return plt


def _method_means(df: pd.DataFrame, metric: str, split: str) -> pd.DataFrame:
    u = unlearned_rows(df)
    part = u[(u.metric == metric) & (u.split == split)]
    return part.groupby(["label", "method"])["value"].agg(["mean", "std"])


def figures(df: pd.DataFrame, store: Store | None) -> dict[str, Any]:
    """The trade-off scatter, the cost bars, the recovery curves and (with a store) the sample grids."""
    plt = _pyplot()
    figs: dict[str, Any] = {}
    ua = _method_means(df, PRIMARY_UA, "forget")
    if len(ua):
        ra = _method_means(df, RETAIN_ACCURACY, "retain")
        fid = _method_means(df, "fid", "retain")
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for ax, other, name in ((axes[0], ra, "retain accuracy (10-way) ↑"), (axes[1], fid, "retain FID ↓")):
            joined = ua.add_suffix("_ua").join(other.add_suffix("_o")).dropna(subset=["mean_ua", "mean_o"])
            for (label, method), r in joined.iterrows():
                ax.errorbar(
                    r.mean_ua,
                    r.mean_o,
                    xerr=np.nan_to_num(r.std_ua),
                    yerr=np.nan_to_num(r.std_o),
                    fmt="o" if label != "tuned" else "s",
                    capsize=2,
                    label=f"{method} ({label or '-'})",
                )
                ax.annotate(method, (r.mean_ua, r.mean_o), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel("unlearning accuracy (11-way) ↑")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
        axes[0].set_title("forgetting vs. retention")
        axes[1].set_title("forgetting vs. quality")
        fig.tight_layout()
        figs["tradeoff"] = fig

    cost = _method_means(df, "cost_wall_s", "all")
    prior = _method_means(df, "cost_prior_wall_s", "all")
    if len(cost):
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(cost) + 1.2))
        labels = [f"{m} ({lab or '-'})" for lab, m in cost.index]
        total = cost["mean"].to_numpy()
        pri = prior.reindex(cost.index)["mean"].fillna(0).to_numpy()
        ax.barh(labels, total - pri, color="#4c72b0", label="unlearning")
        ax.barh(labels, pri, left=total - pri, color="#dd8452", label="priors")
        ax.set_xscale("log")
        ax.set_xlabel("wall seconds (log scale)")
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        figs["cost"] = fig

    recovery = recovery_curves(df)
    if recovery is not None:
        figs["recovery"] = recovery
    runs = recovery_runs(df)
    for name, draw in (("survival", survival_figure), ("uncertainty", uncertainty_figure)):
        fig = draw(runs) if len(runs) else None
        if fig is not None:
            figs[name] = fig
    if store is not None:
        grid = sample_grids(df, store)
        if grid is not None:
            figs["samples"] = grid
    return figs


def recovery_curves(df: pd.DataFrame) -> Any:
    """One panel per attack setting with a curve (two points at least): ASR (11-way) over attack steps."""
    plt = _pyplot()
    curve = df[df.attack_step.notna() & (df.metric == PRIMARY_ASR) & (df.status == "ok")]
    attacks: list[str] = []
    if len(curve):
        curve = with_attack_setting(curve)
        steps = curve.groupby("attack_setting")["attack_step"].nunique()
        attacks = sorted(steps[steps >= 2].index)  # a curve needs two points; one-shot searches have none
    if not attacks:
        return None
    cols = min(4, len(attacks))
    rows = math.ceil(len(attacks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(attacks) :]:
        ax.set_visible(False)
    methods = method_order(list(curve.method.unique()))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    labels = sorted(curve.label.fillna("").unique())
    for ax, attack in zip(axes.flat, attacks, strict=False):
        part = curve[curve.attack_setting == attack]
        for (label, method), g in part.groupby(["label", "method"]):
            m = g.groupby("attack_step")["value"].mean()
            style = "-" if label == labels[0] else "--"
            ax.plot(m.index, m.values, style, marker=".", color=colors[method], label=f"{method} ({label or '-'})")
        ax.set_title(attack)
        ax.set_xlabel("attack step")
        ax.set_ylabel("ASR (11-way)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    handles: dict[str, object] = {}
    for ax in axes.flat[: len(attacks)]:
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, h)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="center right")
    return fig


def _row_colors(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """One colour per row (label without its sampler setting, method), the same in every panel: two SAFEMax rows
    (its defaults and its tuned retain-term setting) are two colours."""
    order = method_order(list(frame["method"].unique()))
    rows = sorted({(base_label(label), method) for label, method in zip(frame["label"], frame["method"], strict=True)},
                  key=lambda r: (order.index(r[1]), r[0]))  # fmt: skip
    return {row: f"C{i % 10}" for i, row in enumerate(rows)}


def survival_figure(runs: pd.DataFrame, columns: int = 3) -> Any:
    """Kaplan–Meier curves (share not yet recovered against relearning steps, with the log-log band; censored
    runs marked), one panel per attack and sampler setting, the panels with the most runs first, ``columns`` to
    a row; a row (method and its label) has one colour in every panel."""
    if runs.empty:
        return None
    plt = _pyplot()
    sizes = runs.groupby(["attack_setting", SETTING]).size()
    panels = sorted(sizes.index, key=lambda k: (-int(sizes[k]), k))
    ncols = min(columns, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    colors = _row_colors(runs)
    for ax, (attack, setting) in zip(axes.ravel(), panels, strict=False):
        part = runs[(runs["attack_setting"] == attack) & (runs[SETTING] == setting)]
        budget = float(part["budget"].max())
        for (label, method), g in part.groupby(["label", "method"]):
            color = colors[(base_label(label), method)]
            km = survival.kaplan_meier(g["time"].to_numpy(float), g["event"].to_numpy(bool))
            # from 0 to the budget: a curve that stays up after its last recovery is drawn to the end
            t = np.concatenate([[0.0], km.t, [budget]])
            s, lo, hi = (np.concatenate([[1.0], a, a[-1:] if len(a) else [1.0]]) for a in (km.survival, km.lo, km.hi))
            ax.step(t, s, where="post", color=color, label=f"{method} ({base_label(label)}, {len(g)} runs)")
            ax.fill_between(t, lo, hi, step="post", color=color, alpha=0.12)
            if len(km.censored):
                ax.plot(km.censored, km.evaluate(km.censored), "|", color=color, markersize=8)
        title = f"{attack}" + (f" · {setting}" if setting else "")
        ax.set_title(textwrap.fill(title, 52), fontsize=8)
        ax.set_xlabel("relearning steps")
        ax.set_ylabel("share not yet recovered")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(-0.02 * budget, 1.02 * budget)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper right")
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def uncertainty_figure(runs: pd.DataFrame, metric: str = "entropy") -> Any:
    """Each run's forget-class ``metric`` before the attack against its time to recover (censored: open marks)."""
    have = runs.dropna(subset=[metric])
    if have.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    colors = _row_colors(have)
    for (label, method), g in have.groupby(["label", "method"]):
        color = colors[(base_label(label), method)]
        for event, marker in ((True, "o"), (False, "^")):
            part = g[g["event"] == event]
            face = color if event else "none"
            name = f"{method} ({label})" if event else None
            ax.scatter(part[metric], part["time"], marker=marker, facecolors=face, edgecolors=color, label=name)
    ax.set_xlabel(f"forget-class {metric} before the attack")
    ax.set_ylabel("relearning steps to recover (▲ censored)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def sample_grids(df: pd.DataFrame, store: Store) -> Any:
    """A strip of stored samples per (label, method): forget-class samples | one per retained class."""
    plt = _pyplot()
    u = unlearned_rows(df)
    firsts = u.sort_values(["forget_concept", "seed"]).drop_duplicates(["label", "method"])
    entries = []
    for row in firsts.itertuples():
        s = store.samples(row.run_id)
        if "unlearned.forget" in s:
            entries.append((f"{row.method} ({row.label or '-'}), forget {row.forget_concept}", s))
    if not entries:
        return None
    first = entries[0][1]
    rows_img = [("original", first.get("original.forget"), first.get("original.retain"))]
    rows_img += [(name, s["unlearned.forget"], s.get("unlearned.retain")) for name, s in entries]
    fig, axes = plt.subplots(len(rows_img), 1, figsize=(8, 0.62 * len(rows_img) + 0.4), squeeze=False)
    for ax, (name, forget, retain) in zip(axes[:, 0], rows_img, strict=True):
        tiles = [t for t in (forget, retain) if t is not None]
        strip = np.concatenate([np.concatenate(list(t[:, 0]), axis=1) for t in tiles], axis=1)
        ax.imshow(strip, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    axes[0, 0].set_title("unlearned samples: 8 of the forget class | one per retained class", fontsize=8)
    fig.tight_layout()
    return fig


def encode(figs: dict[str, Any]) -> dict[str, bytes]:
    """``{name.png: bytes, name.pdf: bytes}`` for every figure; closes the figures."""
    plt = _pyplot(leaderboard_style=False)
    images: dict[str, bytes] = {}
    for name, fig in figs.items():
        for ext, metadata in _METADATA.items():
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, metadata=metadata)
            images[f"{name}.{ext}"] = buf.getvalue()
        plt.close(fig)
    return images


def save_settings_scatter(wide: pd.DataFrame, path: Path) -> None:
    """``unlearnbench table``'s PNG: UA (11-way) against retain accuracy, one point per setting."""
    plt = _pyplot(leaderboard_style=False)  # the committed tables' PNGs were drawn at matplotlib's defaults
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ua = wide[f"{PRIMARY_UA}:forget"].groupby(level=["label", "method_args"]).mean()
    ra = wide[f"{RETAIN_ACCURACY}:retain"].groupby(level=["label", "method_args"]).mean()
    for label in ua.index.get_level_values(0).unique():
        ax.scatter(ua[label], ra[label], label=label or "-", s=18)
    ax.set_xlabel("unlearning accuracy (11-way) ↑")
    ax.set_ylabel("retain accuracy (10-way) ↑")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata=_METADATA["png"])
    plt.close(fig)
