"""The leaderboard's tables, built from the tidy results and nothing else, and ``unlearnbench table``.

Every cell that holds a metric is a :class:`Stat` (mean, spread, digits, goal): the Markdown writes its
text, the HTML page sorts by its mean and highlights the best of each column by its goal. Every metric's
display label, digits and goal come from :func:`column_format`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from unlearnbench import registry
from unlearnbench.errors import UserError
from unlearnbench.metrics.recovery import forgot
from unlearnbench.metrics.unlearning_accuracy import PRIMARY_ASR, PRIMARY_UA
from unlearnbench.regression import BEFORE_RECORDED
from unlearnbench.results import atomic_write_text, final_rows, load_results
from unlearnbench.schema import TunedEntry
from unlearnbench.stats import Interval, bootstrap, combine_runs, overlap

Goal = Literal["max", "min"] | None


class ColumnFormat(NamedTuple):
    """How a metric row is shown: column label, digits after the point, and which direction is better."""

    label: str
    digits: int
    goal: Goal


def column_format(metric: str, split: str) -> ColumnFormat:
    """The label (with an arrow for its goal), digits and goal that the row's metric declares (its
    :class:`~unlearnbench.api.Row`); a row nothing declares shows its name, 3 digits, no goal."""
    declared = registry.rows().get((metric, split))
    if declared is None:
        return ColumnFormat(metric, 3, None)
    arrow = " ↑" if declared.goal == "max" else " ↓"
    return ColumnFormat(declared.label + arrow, declared.digits, declared.goal)  # type: ignore[arg-type]


def quality_metrics() -> list[tuple[str, str]]:
    """The quality table's columns: every declared row with a leaderboard position, in that order."""
    rows = sorted((r for r in registry.rows().values() if r.leaderboard), key=lambda r: r.leaderboard)
    return [(r.metric, r.split) for r in rows]


# (metric, split) per table; the labels come from column_format.
# The README's copy of the quality table: these columns only.
SUMMARY_METRICS = [
    (PRIMARY_UA, "forget"),
    ("unlearning_accuracy_10way", "forget"),
    ("retain_accuracy_10way", "retain"),
    ("fid", "retain"),
    ("cost_wall_s", "all"),
    ("cost_peak_mem_mb", "all"),
]
# (metric, split, phase): the unlearned phase's ASR is the pre-attack ASR ("pre-" label); the primary (11-way)
# ASR before and after the attack, then the papers' 10-way one.
ROBUSTNESS_METRICS = [
    (PRIMARY_ASR, "forget", "unlearned"),
    (PRIMARY_ASR, "forget", "attacked"),
    ("asr_10way", "forget", "unlearned"),
    ("asr_10way", "forget", "attacked"),
    ("attack_cost_wall_s", "all", "attacked"),
    ("attack_cost_steps", "all", "attacked"),
    ("steps_to_recover", "forget", "attacked"),
]
IDENTITY = ["label", "method", "method_args", "forget_class", "seed"]
REFERENCE_ROWS = ("original model", "noop")  # shown for comparison, never "best"
SETTINGS_COLUMNS = [
    "testbed", "model_sha", "evaluator_sha", "n_forget_samples", "n_retain_samples", "sample_steps", "guidance",
    "eta", "precision", "unlearn_precision", "fid_features", "version", "torch_version", "diffusers_version",
    "fidelity_version", "device", "threads", "compiled",
]  # fmt: skip


def phase_label(metric: str, split: str, phase: str) -> str:
    label = column_format(metric, split).label
    return f"pre-{label}" if phase == "unlearned" else label


@dataclass(frozen=True)
class Stat:
    """One table cell: the mean over runs, printed with ``digits``; beside it either the 95% bootstrap
    interval (``lo``, ``hi``: over the runs' classes and seeds and each run's samples, see
    :func:`unlearnbench.stats.combine_runs`) or, for a store written before intervals existed, the
    standard deviation over runs. ``mark``: ``best`` (the column's best) or ``tied`` (its interval overlaps
    the best's), set by :func:`mark_ties`."""

    mean: float
    std: float
    digits: int
    goal: Goal = None
    note: str = ""
    lo: float = math.nan
    hi: float = math.nan
    mark: str = ""

    @classmethod
    def of(cls, values: pd.Series, fmt: ColumnFormat, note: str = "") -> Stat:
        v = values.dropna().astype(float)
        mean = v.mean() if len(v) else math.nan
        std = v.std() if len(v) > 1 else math.nan
        return cls(float(mean), float(std), fmt.digits, fmt.goal, note)

    @classmethod
    def of_rows(cls, rows: pd.DataFrame, fmt: ColumnFormat, note: str = "", *, intervals: bool = False) -> Stat:
        """The cell of these rows (one per run); with ``intervals``, its bootstrap interval from the rows'
        ``value``, ``lo`` and ``hi``."""
        stat = cls.of(rows["value"], fmt, note)
        if not intervals or stat.empty:
            return stat
        rows = rows[rows["value"].notna()]
        ci = combine_runs(rows["value"], rows.get("lo"), rows.get("hi"))
        return replace(stat, lo=ci.lo, hi=ci.hi)

    @property
    def empty(self) -> bool:
        return math.isnan(self.mean)

    @property
    def interval(self) -> Interval:
        return Interval(self.lo, self.hi)

    def spread(self) -> str:
        """The text after the mean: `` [lo, hi]`` (its interval) or `` ± std`` (the spread over runs of a
        store without intervals), then the note."""
        if self.interval.known:
            return f" [{self.lo:.{self.digits}f}, {self.hi:.{self.digits}f}]" + self.note
        shown = not (math.isnan(self.std) or self.std == 0)
        return (f" ± {self.std:.{self.digits}f}" if shown else "") + self.note

    def __str__(self) -> str:
        if self.empty:
            return "–" + self.note
        mean = f"{self.mean:.{self.digits}f}"
        if self.mark == "best":
            mean = f"**{mean}**"
        return f"{mean}{self.spread()}" + (" =" if self.mark == "tied" else "")


def has_intervals(df: pd.DataFrame) -> bool:
    """Whether the rows carry bootstrap intervals (stores written before them do not)."""
    return "lo" in df.columns and bool(df["lo"].notna().any())


def mark_ties(t: pd.DataFrame, group: str | list[str] | None = None) -> pd.DataFrame:
    """Mark each column's best cell (by its mean and goal; reference rows aside; within ``group``) as
    ``best``, and every other cell whose interval overlaps the best's as ``tied``: on that column the data
    cannot tell them apart."""
    if t.empty:
        return t
    out = t.copy()
    eligible = ~t["method"].isin(REFERENCE_ROWS) if "method" in t else pd.Series(True, index=t.index)
    groups = [t.index] if group is None else [g.index for _, g in t.groupby(group, sort=False)]
    for col in t.columns:
        for idx in groups:
            cells = {i: c for i, c in t.loc[idx, col].items() if eligible[i] and isinstance(c, Stat) and not c.empty}
            cells = {i: c for i, c in cells.items() if c.goal is not None and c.interval.known}
            if not cells:
                continue
            pick = max if next(iter(cells.values())).goal == "max" else min
            best = pick(cells, key=lambda i: cells[i].mean)
            for i, c in cells.items():
                mark = "best" if i == best else ("tied" if overlap(c.interval, cells[best].interval) else "")
                out.at[i, col] = replace(c, mark=mark)
    return out


def with_attack_setting(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``attack_setting``: the attack's name, plus its arguments where they differ from the defaults
    (``relearn (k=1)``), so that runs of one attack under different budgets are never averaged together."""
    names = {}
    for attack, args in df[["attack", "attack_args"]].drop_duplicates().itertuples(index=False):
        short = _short_args(args, asdict(registry.get("attack", attack).Args())) if args else "(defaults)"
        names[(attack, args)] = attack if short == "(defaults)" else f"{attack} ({short})"
    out = df.copy()
    out["attack_setting"] = [names[key] for key in zip(df["attack"], df["attack_args"], strict=True)]
    return out


def _short_args(args_json: str, defaults: dict[str, object]) -> str:
    args = json.loads(args_json)
    changed = {k: v for k, v in sorted(args.items()) if defaults.get(k, object()) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "(defaults)"


def method_order(methods: list[str]) -> list[str]:
    head = [m for m in ("noop", "retrain") if m in methods]
    return head + sorted(m for m in methods if m not in head)


def _by_method_order(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    order = method_order(list(frame.method.unique()))
    return frame.sort_values(columns, key=lambda s: s.map(order.index) if s.name == "method" else s)


@dataclass
class Tables:
    quality: pd.DataFrame
    robustness: pd.DataFrame
    settings: pd.DataFrame
    efficiency: pd.DataFrame
    cost_reference: str = "safemax"
    intervals: bool = False  # the cells carry bootstrap intervals (a store written before them does not)
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)  # the two-judge table; empty without judge 2
    sampler: str = ""  # the sampler settings behind the numbers, in words (sampler_note)
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # how the tuned rows were chosen (tuning_table)
    tuning_note: str = ""  # the paragraph above it: the file and the rule
    sweep_note: str = ""  # how long the sweeps that wrote the store ran (sweep_note in report/page.py)


def sampler_note(df: pd.DataFrame) -> str:
    """The sampler settings of the store's final rows, in words: which guidance, eta, steps, and whether the
    predicted x0 was clipped per step (rows written before that was recorded used the clipping sampler)."""
    final = final_rows(df)
    if final.empty:
        return ""
    clip = _clipped(final)
    precision = final["precision"] if "precision" in final else pd.Series(pd.NA, index=final.index)
    precision = precision.astype(object).where(precision.notna(), "float32")  # float32 before it was recorded
    parts = []
    keys = pd.DataFrame(
        {"s": final["guidance"], "eta": final["eta"], "steps": final["sample_steps"], "clip": clip, "p": precision}
    )
    for (g, eta, steps, clipped, prec), part in keys.groupby(["s", "eta", "steps", "clip", "p"], sort=True):
        papers = " (the papers' setting)" if g == 3 and eta == 1 else ""
        x0 = "x0 clipped per step (the sampler before 2026-11-29)" if clipped else "x0 not clipped (upstream's)"
        parts.append(f"s = {g:g}, η = {eta:g}{papers}, DDIM {int(steps)} steps, {x0}, {prec}: {len(part)} rows")
    return "Sampler: " + "; ".join(parts) + "." + _training_note(final)


def _training_note(final: pd.DataFrame) -> str:
    """Which methods trained under bfloat16 autocast (``unlearn_precision``), once any did; empty otherwise."""
    trained = final["unlearn_precision"] if "unlearn_precision" in final else pd.Series(pd.NA, index=final.index)
    before = BEFORE_RECORDED["unlearn_precision"]  # rows from before it was recorded trained in float32
    trained = trained.astype(object).where(trained.notna(), before)
    if set(trained) <= {before}:
        return ""
    methods = final.assign(p=trained).groupby("p", sort=True)["method"].unique()
    return " Unlearning: " + "; ".join(f"{p} ({', '.join(sorted(m))})" for p, m in methods.items()) + "."


SETTING = "sampler_setting"  # the column split_by_sampler adds: "" when the store has one sampler setting


def split_by_sampler(df: pd.DataFrame) -> pd.DataFrame:
    """A store whose runs were sampled at more than one setting (guidance, eta, DDIM steps, clipping; the
    core config runs its focus methods at the testbed's and at the papers'): every label gets its setting,
    ``"paper · s = 3, η = 1"``, so no table or figure averages numbers from two samplers into one cell. The
    setting is also in the ``sampler_setting`` column (empty, and the labels untouched, for one setting).
    Precision is not part of it: bfloat16 and float32 forwards judge the same (``results/perf/precision.md``)."""
    keys = pd.DataFrame({"s": df["guidance"], "eta": df["eta"], "steps": df["sample_steps"], "clip": _clipped(df)})
    distinct = keys.drop_duplicates()
    if len(distinct) <= 1:
        return df.assign(**{SETTING: ""})
    steps, clip = distinct["steps"].nunique() > 1, distinct["clip"].nunique() > 1

    def name(s: float, eta: float, n: float, clipped: bool) -> str:
        words = [f"s = {s:g}", f"η = {eta:g}"] + ([f"{n:g} steps"] if steps else [])
        return ", ".join(words + (["x0 clipped" if clipped else "x0 not clipped"] if clip else []))

    names = {tuple(k): name(*k) for k in distinct.itertuples(index=False)}  # named once per setting
    setting = pd.Series([names[tuple(k)] for k in keys.itertuples(index=False)], index=df.index)
    label = df["label"].fillna("").astype(str)
    return df.assign(**{SETTING: setting, "label": label.where(label == "", label + " · ") + setting})


def _clipped(df: pd.DataFrame) -> pd.Series:
    """Whether each row's sampler clipped x0 per step (rows written before that was recorded did)."""
    clip = df["clip_sample"] if "clip_sample" in df else pd.Series(pd.NA, index=df.index)
    return clip.astype("boolean").fillna(True)


def unlearned_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One set of unlearned-phase rows per unlearning (runs with different attacks repeat them). The run
    without an attack is preferred: attack runs repeat its cost only while the unlearned-model cache lives,
    and one that recomputed the model later (other threads, other load) would otherwise stand in for it."""
    part = final_rows(df[df["phase"] == "unlearned"])
    ranked = part.assign(_attacked=part["attack"] != "none").sort_values(["_attacked", "run_id"], kind="stable")
    first = ranked.drop_duplicates(IDENTITY)[IDENTITY + ["run_id"]]
    return part[part["run_id"].isin(first["run_id"])]


def _quality_cells(g: pd.DataFrame, intervals: bool = False) -> dict[str, Stat]:
    cells = {
        column_format(m, s).label: Stat.of_rows(
            g[(g.metric == m) & (g.split == s)], column_format(m, s), intervals=intervals
        )
        for m, s in quality_metrics()
    }
    if intervals:  # a number the second judge reads otherwise (no overlap of the two intervals) is flagged
        for (metric, split), (second, _) in JUDGE_PAIRS.items():
            label = column_format(metric, split).label
            if label not in cells or cells[label].empty:
                continue
            other = Stat.of_rows(
                g[(g.metric == second) & (g.split == split)], column_format(second, split), intervals=True
            )
            if judges_disagree(cells[label], other):
                cells[label] = replace(cells[label], note=cells[label].note + " †")
    return cells


# Numbers both judges read: (metric, split) by the evaluator -> the same by the second judge.
JUDGE_PAIRS = {
    ("unlearning_accuracy_10way", "forget"): ("unlearning_accuracy_10way_judge2", "forget"),
    ("unlearning_accuracy_11way", "forget"): ("unlearning_accuracy_11way_judge2", "forget"),
    ("retain_accuracy_10way", "retain"): ("retain_accuracy_10way_judge2", "retain"),
    ("retain_accuracy_11way", "retain"): ("retain_accuracy_11way_judge2", "retain"),
}
# The two-judge agreement table's columns.
AGREEMENT_METRICS = [("unlearning_accuracy_11way", "forget"), ("retain_accuracy_10way", "retain")]


def judges_disagree(first: Stat, second: Stat) -> bool:
    """The two judges disagree on a number when both have an interval and the intervals do not overlap."""
    return first.interval.known and second.interval.known and not overlap(first.interval, second.interval)


def agreement_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method (and the original model): UA11 and retained accuracy read by the evaluator and by the
    second judge, each with its interval, and whether they agree (intervals overlap). Empty when no run
    has the second judge's rows."""
    second = {m for m, _ in JUDGE_PAIRS.values()}
    if not df["metric"].isin(second).any():
        return pd.DataFrame()
    final = final_rows(df)
    orig = original_rows(final)
    unl = unlearned_rows(df)
    groups = [(reference_label(o), "original model", o) for _, o in orig.groupby(SETTING, sort=True)]
    order = method_order(list(unl.method.unique()))
    groups += [
        (label or "-", method, g)
        for (label, method), g in sorted(
            unl.groupby(["label", "method"]), key=lambda kv: (kv[0][0], order.index(kv[0][1]))
        )
    ]
    rows = []
    for label, method, g in groups:
        runs = original_runs(g) if method == "original model" else g["run_id"].nunique()
        rec: dict[str, object] = {"label": label, "method": method, "runs": runs}
        for metric, split in AGREEMENT_METRICS:
            name = column_format(metric, split).label.rstrip(" ↑↓")
            first = Stat.of_rows(
                g[(g.metric == metric) & (g.split == split)], column_format(metric, split), intervals=True
            )
            m2, s2 = JUDGE_PAIRS[(metric, split)]
            other = Stat.of_rows(g[(g.metric == m2) & (g.split == s2)], column_format(metric, split), intervals=True)
            rec[f"{name}: evaluator"] = replace(first, goal=None)
            rec[f"{name}: judge 2"] = replace(other, goal=None)
            if first.empty or other.empty:
                rec[f"{name}: agree"] = "–"
            else:
                rec[f"{name}: agree"] = "no †" if judges_disagree(first, other) else "yes"
        rows.append(rec)
    return pd.DataFrame(rows)


def evaluation_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows an evaluation table may read: never a run on a tuning class (``tune.TUNING_CLASSES``), where
    settings were chosen: scoring them there would grade the tuner on its own training data."""
    from unlearnbench.tune import TUNING_CLASSES

    if df.empty:
        return df
    classes = df["forget_class"].astype(str).str.split(",")
    tuned_on = classes.map(lambda cs: any(c.strip() in {str(t) for t in TUNING_CLASSES} for c in cs))
    return df[~tuned_on]


def original_rows(final: pd.DataFrame) -> pd.DataFrame:
    """The original model's final rows, once per forget class, seed, model and sampler setting (every run
    repeats them)."""
    final = final if SETTING in final else final.assign(**{SETTING: ""})
    keys = ["forget_class", "seed", "metric", "split", "model_sha", SETTING]
    return final[final["phase"] == "original"].drop_duplicates(keys)


def original_runs(orig: pd.DataFrame) -> int:
    """How many evaluations of the original model a reference row averages: one per forget class and seed
    (the retained classes and the sampler's noise differ between them)."""
    return len(orig[["forget_class", "seed"]].drop_duplicates())


def reference_label(orig: pd.DataFrame) -> str:
    """The original model's row label: "reference", with the sampler setting when the store has several."""
    setting = str(orig[SETTING].iloc[0]) if SETTING in orig and len(orig) else ""
    return f"reference · {setting}" if setting else "reference"


def build_tables(df: pd.DataFrame, cost_reference: str = "safemax") -> Tables:
    df = df if SETTING in df else split_by_sampler(df)
    intervals = has_intervals(df)
    final = final_rows(df)
    unl = unlearned_rows(df)
    orig = original_rows(final)
    rows: list[dict[str, object]] = []
    for _, o in orig.groupby(SETTING, sort=True):
        rows.append({"label": reference_label(o), "method": "original model", "runs": original_runs(o)})
        rows[-1][SETTING] = o[SETTING].iloc[0]
        rows[-1].update(_quality_cells(o, intervals))
    order = method_order(list(unl.method.unique()))
    for (label, method), g in sorted(
        unl.groupby(["label", "method"]), key=lambda kv: (kv[0][0], order.index(kv[0][1]))
    ):
        rows.append(
            {"label": label or "-", "method": method, "runs": g["run_id"].nunique(), **_quality_cells(g, intervals)}
        )
        rows[-1][SETTING] = g[SETTING].iloc[0]
    quality = pd.DataFrame(rows)

    attacked = with_attack_setting(df[df["attack"] != "none"])
    rrows = []
    for (label, method, attack), g in attacked.groupby(["label", "method", "attack_setting"]):
        g = final_rows(g)
        rec: dict[str, object] = {
            "label": label or "-",
            "method": method,
            "attack": attack,
            "runs": g["run_id"].nunique(),
            SETTING: g[SETTING].iloc[0],
        }
        for metric, split, phase in ROBUSTNESS_METRICS:
            part = g[(g.metric == metric) & (g.split == split) & (g.phase == phase)]
            note = recovered_note(g) if metric == "steps_to_recover" else ""
            rec[phase_label(metric, split, phase)] = Stat.of_rows(
                part, column_format(metric, split), note, intervals=intervals
            )
        rrows.append(rec)
    robustness = pd.DataFrame(rrows)
    if len(robustness):
        robustness = _by_method_order(robustness, ["label", "attack", "method"])
    if intervals:  # ties within one sampler setting (and attack): numbers from two samplers never compete
        quality = mark_ties(quality, group=[SETTING])
        robustness = mark_ties(robustness, group=["attack", SETTING])
    quality = quality.drop(columns=SETTING, errors="ignore")
    robustness = robustness.drop(columns=SETTING, errors="ignore")
    settings = df[SETTINGS_COLUMNS].copy()
    for col, before in BEFORE_RECORDED.items():  # rows from before a setting was recorded: the value they used
        settings[col] = settings[col].astype(object).where(settings[col].notna(), before)
    settings = settings.drop_duplicates()
    settings["model_sha"] = settings["model_sha"].str[:12]
    settings["evaluator_sha"] = settings["evaluator_sha"].str[:12]
    settings = settings.sort_values(SETTINGS_COLUMNS).reset_index(drop=True)
    agreement = agreement_table(df) if intervals else pd.DataFrame()
    efficiency = efficiency_table(df, cost_reference)
    return Tables(quality, robustness, settings, efficiency, cost_reference, intervals, agreement, sampler_note(df))


def recovered_note(runs: pd.DataFrame) -> str:
    """`` (recovered k/n)`` for the final rows of a group of attack runs: ``n`` counts the runs that forgot
    (pre-attack ASR below the recovery threshold), ``k`` those of them that recovered; empty without a curve."""
    forgot = runs[(runs.metric == "forgot") & (runs.phase == "attacked")]["value"]
    if forgot.empty:
        return ""
    recovered = runs[(runs.metric == "recovered") & (runs.phase == "attacked")]["value"]
    return f" (recovered {int(recovered.sum())}/{int(forgot.sum())})"


def asr_by_attack(t: Tables, *, default_budgets_only: bool = True) -> pd.DataFrame:
    """Methods × attack settings: the pre-attack ASR (11-way, the primary one), then the ASR after each attack."""
    r = t.robustness
    if r.empty:
        return pd.DataFrame()
    if default_budgets_only:
        r = r[~r["attack"].str.contains(" (", regex=False)]
    if r.empty:
        return pd.DataFrame()
    pre = phase_label(PRIMARY_ASR, "forget", "unlearned")
    after = phase_label(PRIMARY_ASR, "forget", "attacked")
    attacks = sorted(r["attack"].unique())
    rows = []
    for (label, method), g in r.groupby(["label", "method"], sort=False):
        cells = dict(zip(g["attack"], g[after], strict=True))
        empty = Stat(math.nan, math.nan, 3)
        rows.append(
            {"label": label, "method": method, pre: g[pre].iloc[0], **{a: cells.get(a, empty) for a in attacks}}
        )
    return _by_method_order(pd.DataFrame(rows), ["label", "method"]).reset_index(drop=True)


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
    return pre[["label", "method", "forget_class", "run_id"]].assign(forgot=did)


def efficiency_table(df: pd.DataFrame, reference: str = "safemax") -> pd.DataFrame:
    """Each method's unlearning cost divided by the reference method's, within one label (one sweep's
    settings), as means over the forget classes both have (with intervals in the store: the ratio's bootstrap
    interval over those classes), with how many of the method's runs there forgot (a ratio for a method that
    did not forget is the cost of doing nothing useful, and says so), and as many of the reference's (a ratio
    to a reference that did not forget, such as a tuned setting that kept the class, compares a cost with the
    cost of doing nothing); beside the ratios of the methods' published
    costs (``published_cost`` on the method classes) where both have one. Time without priors is wall
    time minus prior wall time; CPU time includes the priors."""
    intervals = has_intervals(df)
    u = unlearned_rows(df)
    did_forget = forgot_by_run(df, u)
    cost = u[u.metric.isin(["cost_wall_s", "cost_cpu_s", "cost_prior_wall_s", "cost_peak_mem_mb"])]
    wide = cost.pivot_table(index=["label", "method", "forget_class"], columns="metric", values="value")
    if wide.empty or reference not in wide.index.get_level_values("method"):
        return pd.DataFrame()
    wide["no_prior"] = wide["cost_wall_s"] - wide["cost_prior_wall_s"]
    published_ref = registry.get("method", reference).published_cost

    def ratio(value: float | None, digits: int) -> Stat:
        return Stat(math.nan if value is None else float(value), math.nan, digits)

    rows = []
    for label, part in wide.groupby(level="label"):
        part = part.droplevel("label")
        if reference not in part.index.get_level_values("method"):
            continue
        ref = part.xs(reference, level="method")
        for method in method_order(list(part.index.get_level_values("method").unique())):
            if method in ("noop", reference):
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
                    (did_forget.label == label) & (did_forget.method == who) & did_forget.forget_class.isin(shared)
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


def to_markdown(t: pd.DataFrame) -> str:
    if t.empty:
        return "_no rows_\n"
    header = "| " + " | ".join(map(str, t.columns)) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"


# ---------------------------------------------------------------------------------------------
# Per-setting tables (trade-off studies, tuning trials): ``unlearnbench table``
# ---------------------------------------------------------------------------------------------


def settings_table(df: pd.DataFrame, *, by_class: bool = False) -> pd.DataFrame:
    """One row per (label, method, arguments[, forget class]): the unlearned phase's metrics, mean ± std
    over runs."""
    unl = unlearned_rows(df)
    keys = ["label", "method", "method_args"] + (["forget_class"] if by_class else [])
    rows = []
    for key, g in unl.groupby(keys, sort=True):
        label, method, margs = key[:3]
        defaults = asdict(registry.get("method", method).Args())
        rec = {
            "label": label or "-",
            "method": method,
            "arguments (vs. defaults)": _short_args(margs, defaults),
            **({"forget class": key[3]} if by_class else {}),
            "runs": g["run_id"].nunique(),
            **_quality_cells(g),
        }
        autocorr = column_format("noise_autocorr", "forget")
        rec[autocorr.label] = Stat.of(g[g.metric == "noise_autocorr"]["value"], autocorr)
        rows.append(rec)
    return pd.DataFrame(rows)


def write_settings_table(results: str, out: str, *, methods: list[str] | None = None, by_class: bool = False) -> None:
    """``unlearnbench table``: ``OUT.md`` and ``OUT.csv`` (numbers) and ``OUT.png`` (UA vs. retain accuracy)."""
    from unlearnbench.report.figures import save_settings_scatter  # figures import this module

    df = split_by_sampler(load_results(results))  # one sampler setting per row
    if df.empty:
        raise UserError(f"no runs in {results!r}")
    if methods:
        missing = sorted(set(methods) - set(df["method"]))
        if missing:
            have = ", ".join(sorted(set(df["method"])))
            raise UserError(f"no runs of {', '.join(missing)} in {results!r}; it has {have}")
        df = df[df["method"].isin(methods)]
    t = settings_table(df, by_class=by_class)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = (f" --methods {','.join(methods)}" if methods else "") + (" --by-class" if by_class else "")
    header = (
        f"Generated by `unlearnbench table --results {results} --out {out}{flags}` "
        f"from {df['run_id'].nunique()} runs.\n\n"
    )
    atomic_write_text(target.with_suffix(".md"), header + to_markdown(t))
    unl = unlearned_rows(df)
    wide = unl[unl.split.isin(["forget", "retain", "all"])].pivot_table(
        index=["label", "method", "method_args", "forget_class", "seed"], columns=["metric", "split"], values="value"
    )
    wide.columns = [f"{m}:{s}" for m, s in wide.columns]
    wide.reset_index().to_csv(target.with_suffix(".csv"), index=False)
    save_settings_scatter(wide, target.with_suffix(".png"))


# ---------------------------------------------------------------------------------------------
# How the tuned rows were chosen: ``unlearnbench leaderboard --tuned results/tuned.json``
# ---------------------------------------------------------------------------------------------


def _value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def tuning_table(tuned: dict[str, TunedEntry]) -> pd.DataFrame:
    """One row per tuned method (and variant) of a ``tune --write`` file: trials, grid, unlearning CPU
    seconds, the chosen values of the grid's knobs, the chosen setting's scores (means over the tuning
    classes) beside the original model's, and whether it passed the rule. Entries written before grids and
    scores were recorded show what they hold."""
    rows = []
    for key, e in tuned.items():
        method, _, variant = key.partition(":")
        defaults = registry.get("method", method).Args()
        grid = e.grid or {}
        chosen = ", ".join(
            f"{k} {_value(e.args[k])}" + (" (default)" if getattr(defaults, k, None) == e.args[k] else "")
            for k in sorted(grid)
            if k in e.args
        )
        s = e.scores or {}
        rows.append(
            {
                "method": f"{method}, {variant}" if variant else method,
                "trials": e.trials if e.trials is not None else "–",
                "grid": "; ".join(f"{k} ∈ {{{', '.join(map(_value, v))}}}" for k, v in sorted(grid.items())) or "–",
                "CPU s": f"{e.cpu_s:.0f}" if e.cpu_s is not None else "–",
                "chosen": chosen or "–",
                "UA11": f"{s['ua_11way']:.3f}" if "ua_11way" in s else "–",
                "retain acc (original)": (
                    f"{s['retain_accuracy_10way']:.3f} ({s['original_retain_accuracy_10way']:.3f})"
                    if "retain_accuracy_10way" in s
                    else "–"
                ),
                "retain FID (original)": (
                    f"{s['retain_fid']:.2f} ({s['original_retain_fid']:.2f})" if "retain_fid" in s else "–"
                ),
                "passed the rule": "–" if e.passed is None else ("yes" if e.passed else "no: best UA + retain acc"),
                "tuning classes": ", ".join(str(c) for fc in e.forget_classes or [] for c in fc) or "–",
            }
        )
    return pd.DataFrame(rows)
