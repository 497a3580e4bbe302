"""The leaderboard, generated from the tidy results and nothing else.

``unlearnbench leaderboard --results DIR --out results/`` writes ``leaderboard.md``, a self-contained
``leaderboard.html`` (figures embedded) and ``figures/*.png|pdf``. ``--check`` regenerates into a
temporary folder and fails if the committed tables differ.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from unlearnbench.errors import UserError
from unlearnbench.results import Store, atomic_write_text, load_results

QUALITY_COLUMNS = [
    ("unlearning_accuracy_10way", "forget", "UA10 ↑", 3),
    ("unlearning_accuracy_11way", "forget", "UA11 ↑", 3),
    ("entropy", "forget", "H ↑", 2),
    ("retain_accuracy_10way", "retain", "retain acc ↑", 3),
    ("fid", "retain", "FID ↓", 2),
    ("kid", "retain", "KID ↓", 4),
    ("cost_wall_s", "all", "time s ↓", 1),
    ("cost_peak_mem_mb", "all", "peak MiB ↓", 0),
    ("cost_prior_wall_s", "all", "prior s", 1),
]
ROBUSTNESS_COLUMNS = [
    ("asr_10way", "forget", "unlearned", "pre-ASR10", 3),
    ("asr_10way", "forget", "attacked", "ASR10", 3),
    ("asr_11way", "forget", "attacked", "ASR11", 3),
    ("attack_cost_wall_s", "all", "attacked", "attack s", 1),
    ("attack_cost_steps", "all", "attacked", "attack steps", 0),
    ("steps_to_recover", "forget", "attacked", "steps to recover", 0),
]
IDENTITY = ["label", "method", "method_args", "forget_class", "seed"]


def _final(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["attack_step"].isna() & df["class_id"].isna() & (df["status"] == "ok")]


def _fmt(values: pd.Series, digits: int) -> str:
    v = values.dropna()
    if v.empty:
        return "–"
    mean = v.mean()
    if len(v) == 1 or v.std() == 0 or math.isnan(v.std()):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {v.std():.{digits}f}"


def method_order(methods: list[str]) -> list[str]:
    head = [m for m in ("noop", "retrain") if m in methods]
    return head + sorted(m for m in methods if m not in head)


@dataclass
class Tables:
    quality: pd.DataFrame
    robustness: pd.DataFrame
    settings: pd.DataFrame


def unlearned_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One set of unlearned-phase rows per unlearning (runs with different attacks repeat them)."""
    part = _final(df[df["phase"] == "unlearned"])
    first = part.drop_duplicates(IDENTITY)[IDENTITY + ["run_id"]]
    return part[part["run_id"].isin(first["run_id"])]


def build_tables(df: pd.DataFrame) -> Tables:
    final = _final(df)
    unl = unlearned_rows(df)
    orig = final[final["phase"] == "original"].drop_duplicates(["forget_class", "seed", "metric", "split", "model_sha"])
    rows = []
    if len(orig):
        rec = {"label": "reference", "method": "original model", "runs": orig["forget_class"].nunique()}
        for metric, split, col, digits in QUALITY_COLUMNS:
            rec[col] = _fmt(orig[(orig.metric == metric) & (orig.split == split)]["value"], digits)
        rows.append(rec)
    for (label, method), g in sorted(
        unl.groupby(["label", "method"]),
        key=lambda kv: (kv[0][0], method_order(list(unl.method.unique())).index(kv[0][1])),
    ):
        rec = {"label": label or "-", "method": method, "runs": g["run_id"].nunique()}
        for metric, split, col, digits in QUALITY_COLUMNS:
            rec[col] = _fmt(g[(g.metric == metric) & (g.split == split)]["value"], digits)
        rows.append(rec)
    quality = pd.DataFrame(rows)

    attacked = df[df["attack"] != "none"]
    rrows = []
    for (label, method, attack), g in attacked.groupby(["label", "method", "attack"]):
        g = _final(g)
        rec = {"label": label or "-", "method": method, "attack": attack, "runs": g["run_id"].nunique()}
        for metric, split, phase, col, digits in ROBUSTNESS_COLUMNS:
            vals = g[(g.metric == metric) & (g.split == split) & (g.phase == phase)]["value"]
            rec[col] = _fmt(vals, digits)
            if metric == "steps_to_recover" and len(vals):
                recovered = g[(g.metric == "recovered") & (g.phase == "attacked")]["value"]
                rec[col] += f" ({int(recovered.sum())}/{len(recovered)} recovered)"
        rrows.append(rec)
    robustness = pd.DataFrame(rrows)
    if len(robustness):
        order = method_order(list(robustness.method.unique()))
        robustness = robustness.sort_values(
            ["label", "attack", "method"], key=lambda s: s.map(order.index) if s.name == "method" else s
        )
    cols = [
        "testbed",
        "model_sha",
        "evaluator_sha",
        "n_forget_samples",
        "n_retain_samples",
        "sample_steps",
        "guidance",
        "eta",
        "fid_features",
        "version",
        "torch_version",
        "diffusers_version",
        "fidelity_version",
        "device",
        "threads",
    ]
    settings = df[cols].drop_duplicates().copy()
    settings["model_sha"] = settings["model_sha"].str[:12]
    settings["evaluator_sha"] = settings["evaluator_sha"].str[:12]
    return Tables(quality, robustness, settings.sort_values(cols).reset_index(drop=True))


def to_markdown(t: pd.DataFrame) -> str:
    if t.empty:
        return "_no rows_\n"
    header = "| " + " | ".join(map(str, t.columns)) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _method_means(df: pd.DataFrame, metric: str, split: str) -> pd.Series:
    u = unlearned_rows(df)
    part = u[(u.metric == metric) & (u.split == split)]
    return part.groupby(["label", "method"])["value"].agg(["mean", "std"])


def figures(df: pd.DataFrame, store: Store | None) -> dict[str, object]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "unlearnbench"})
    figs: dict[str, object] = {}
    ua = _method_means(df, "unlearning_accuracy_10way", "forget")
    if len(ua):
        ra = _method_means(df, "retain_accuracy_10way", "retain")
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
            ax.set_xlabel("unlearning accuracy (10-way) ↑")
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

    curve = df[df.attack_step.notna() & (df.metric == "asr_10way") & (df.status == "ok")]
    if len(curve):
        attacks = sorted(curve.attack.unique())
        fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.4), squeeze=False)
        for ax, attack in zip(axes[0], attacks, strict=True):
            part = curve[curve.attack == attack]
            for (label, method), g in part.groupby(["label", "method"]):
                m = g.groupby("attack_step")["value"].mean()
                ax.plot(m.index, m.values, marker=".", label=f"{method} ({label or '-'})")
            ax.set_title(attack)
            ax.set_xlabel("attack step")
            ax.set_ylabel("ASR (10-way)")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        figs["recovery"] = fig

    if store is not None:
        grid = sample_grids(df, store)
        if grid is not None:
            figs["samples"] = grid
    return figs


def sample_grids(df: pd.DataFrame, store: Store):
    import matplotlib.pyplot as plt

    u = unlearned_rows(df)
    firsts = u.sort_values(["forget_class", "seed"]).drop_duplicates(["label", "method"])
    entries = []
    for row in firsts.itertuples():
        s = store.samples(row.run_id)
        if "unlearned.forget" in s:
            entries.append((f"{row.method} ({row.label or '-'}), forget {row.forget_class}", s))
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


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

COMMAND = "unlearnbench leaderboard --results {results} --out {out}"


def render(df: pd.DataFrame, results: str, out: str, store: Store | None) -> tuple[str, str, dict[str, bytes]]:
    t = build_tables(df)
    figs = figures(df, store)
    images: dict[str, bytes] = {}
    for name, fig in figs.items():
        for ext in ("png", "pdf"):
            buf = io.BytesIO()
            fig.savefig(
                buf,
                format=ext,
                metadata={"Software": None}
                if ext == "png"
                else {"Creator": None, "Producer": None, "CreationDate": None},
            )
            images[f"{name}.{ext}"] = buf.getvalue()
        import matplotlib.pyplot as plt

        plt.close(fig)  # type: ignore[arg-type]
    cmd = COMMAND.format(results=results, out=out)
    md = [
        "# unlearnbench leaderboard",
        "",
        f"Generated by `{cmd}` from {df['run_id'].nunique()} runs. Do not edit by hand.",
        "Values are mean ± standard deviation over forget classes and seeds (`runs`). "
        "UA: unlearning accuracy; H: entropy of the 10-way judge (nats, max ln 10 = 2.303); "
        "FID/KID in the evaluator's feature space against held-out real images of the retained classes; "
        "time and memory of the unlearning (priors included, their time also shown alone).",
        "",
        "## Forgetting, retention, quality and cost",
        "",
        to_markdown(t.quality),
        "## Robustness (attack success judged by the evaluator)",
        "",
        to_markdown(t.robustness),
        "## Settings behind these numbers",
        "",
        to_markdown(t.settings),
        "## Figures",
        "",
        *[f"![{n}](figures/{n}.png)\n" for n in figs],
    ]
    markdown = "\n".join(md)
    body = markdown_to_html(markdown, {n: images[f"{n}.png"] for n in figs})
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>unlearnbench leaderboard</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:nth-child(-n+3){text-align:left}"
        "th{background:#f0f0f0}img{max-width:100%}code{background:#f4f4f4}</style></head><body>"
        f"{body}</body></html>\n"
    )
    return markdown, page, images


def markdown_to_html(markdown: str, images: dict[str, bytes]) -> str:
    """Just enough Markdown for this page: headings, paragraphs, tables, images (embedded), code spans."""
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0

    def inline(text: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, rows = block[0], block[2:]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</table>")
            continue
        elif m := re.match(r"!\[(.*)\]\(figures/(.+)\.png\)", line):
            data = base64.b64encode(images[m.group(2)]).decode()
            out.append(f"<figure><img alt='{html.escape(m.group(1))}' src='data:image/png;base64,{data}'></figure>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    return "\n".join(out)


def strip_images(page: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,…", page)


def write(results: str, out: str, *, check: bool = False) -> list[str]:
    """Write (or, with ``check``, compare) the leaderboard. Returns the problems found by ``check``."""
    path = Path(results)
    df = load_results(path)
    if df.empty:
        raise UserError(f"no runs in {results!r}; run 'unlearnbench sweep' first")
    store = Store(path) if path.is_dir() else None
    markdown, page, images = render(df, results, out, store)
    target = Path(out)
    if check:
        problems = []
        for name, fresh in (("leaderboard.md", markdown), ("leaderboard.html", strip_images(page))):
            committed = target / name
            text = committed.read_text() if committed.is_file() else ""
            if name.endswith(".html"):
                text = strip_images(text)
            if text != fresh:
                problems.append(
                    f"{committed} is out of date; regenerate with `{COMMAND.format(results=results, out=out)}`"
                )
        return problems
    (target / "figures").mkdir(parents=True, exist_ok=True)
    atomic_write_text(target / "leaderboard.md", markdown)
    atomic_write_text(target / "leaderboard.html", page)
    for name, data in images.items():
        (target / "figures" / name).write_bytes(data)
    return []


# ---------------------------------------------------------------------------------------------
# Per-setting tables (trade-off studies, tuning trials)
# ---------------------------------------------------------------------------------------------


def _short_args(args_json: str, defaults: dict[str, object]) -> str:
    import json

    args = json.loads(args_json)
    changed = {k: v for k, v in sorted(args.items()) if defaults.get(k, object()) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "(defaults)"


def settings_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (label, method, arguments): the unlearned phase's metrics, mean ± std over runs."""
    from dataclasses import asdict

    from unlearnbench import registry

    unl = unlearned_rows(df)
    rows = []
    for (label, method, margs), g in unl.groupby(["label", "method", "method_args"], sort=True):
        defaults = asdict(registry.get("method", method).Args())
        rec = {
            "label": label or "-",
            "method": method,
            "arguments (vs. defaults)": _short_args(margs, defaults),
            "runs": g["run_id"].nunique(),
        }
        for metric, split, col, digits in QUALITY_COLUMNS:
            rec[col] = _fmt(g[(g.metric == metric) & (g.split == split)]["value"], digits)
        rec["noise autocorr"] = _fmt(g[g.metric == "noise_autocorr"]["value"], 2)
        rows.append(rec)
    return pd.DataFrame(rows)


def write_settings_table(results: str, out: str) -> None:
    """``unlearnbench table``: ``OUT.md`` and ``OUT.csv`` (numbers) and ``OUT.png`` (UA vs. retain accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = load_results(results)
    if df.empty:
        raise UserError(f"no runs in {results!r}")
    t = settings_table(df)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"Generated by `unlearnbench table --results {results} --out {out}` from {df['run_id'].nunique()} runs.\n\n"
    )
    atomic_write_text(target.with_suffix(".md"), header + to_markdown(t))
    unl = unlearned_rows(df)
    wide = unl[unl.split.isin(["forget", "retain", "all"])].pivot_table(
        index=["label", "method", "method_args", "forget_class", "seed"], columns=["metric", "split"], values="value"
    )
    wide.columns = [f"{m}:{s}" for m, s in wide.columns]
    wide.reset_index().to_csv(target.with_suffix(".csv"), index=False)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ua = wide["unlearning_accuracy_10way:forget"].groupby(level=["label", "method_args"]).mean()
    ra = wide["retain_accuracy_10way:retain"].groupby(level=["label", "method_args"]).mean()
    for label in ua.index.get_level_values(0).unique():
        ax.scatter(ua[label], ra[label], label=label or "-", s=18)
    ax.set_xlabel("unlearning accuracy (10-way) ↑")
    ax.set_ylabel("retain accuracy (10-way) ↑")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target.with_suffix(".png"), metadata={"Software": None})
    plt.close(fig)
