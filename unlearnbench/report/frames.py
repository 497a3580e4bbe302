"""The tidy results as every table and figure reads them: which rows (the unlearned phase once per unlearning,
the original model once per class and seed, never the tuning classes), under which labels (a sampler setting,
an attack setting) and in which order (the reference methods first).

The lowest module of the report: the tables and the figures import it, and it imports neither.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd

from unlearnbench import registry
from unlearnbench.errors import UserError
from unlearnbench.results import final_rows
from unlearnbench.testbeds import plugin

ORIGINAL = "original model"  # the original model's row in every table: shown for comparison, never "best"
IDENTITY = ["testbed", "model_sha", "label", "method", "method_args", "forget_concept", "seed"]  # one unlearning
SETTING = "sampler_setting"  # the column split_by_sampler adds: "" when the store has one sampler setting


def references() -> list[str]:
    """The registered methods that are reference rows (``UnlearningMethod.reference``), by name."""
    return [name for name in registry.names("method") if registry.get("method", name).reference]


def comparison_only() -> set[str]:
    """The rows shown for comparison only, never a column's best and given no cost ratio: the original model
    and the methods whose ``reference`` is "comparison" (noop, which changes nothing)."""
    methods = registry.names("method")
    return {ORIGINAL} | {name for name in methods if registry.get("method", name).reference == "comparison"}


def competing(t: pd.DataFrame) -> pd.Series:
    """Which rows of a table compete for a column's best: every row but the comparison rows."""
    return ~t["method"].isin(comparison_only()) if "method" in t else pd.Series(True, index=t.index)


def method_order(methods: list[str]) -> list[str]:
    """The reference methods first (by name), then the others by name."""
    head = [m for m in references() if m in methods]
    return head + sorted(m for m in methods if m not in head)


def by_method_order(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    order = method_order(list(frame.method.unique()))
    return frame.sort_values(columns, key=lambda s: s.map(order.index) if s.name == "method" else s)


def method_groups(unl: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Rows grouped by (label, method): by label, then in method order."""
    order = method_order(list(unl.method.unique()))
    return sorted(unl.groupby(["label", "method"]), key=lambda kv: (kv[0][0], order.index(kv[0][1])))


def short_args(args_json: str, defaults: dict[str, object]) -> str:
    """The arguments that differ from ``defaults``, as ``k=v, ...`` (``(defaults)`` when none do)."""
    args = json.loads(args_json)
    changed = {k: v for k, v in sorted(args.items()) if defaults.get(k, object()) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "(defaults)"


def with_attack_setting(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``attack_setting``: the attack's name, plus its arguments where they differ from the defaults
    (``relearn (k=1)``), so that runs of one attack under different budgets are never averaged together. An
    argument that chooses another attack of the same file (``Attack.variant_args``) goes in brackets instead
    (``unlearndiffatk[loss=p4d]``): without parentheses, the setting reads as that attack at its default budget."""
    names = {}
    for attack, args in df[["attack", "attack_args"]].drop_duplicates().itertuples(index=False):
        cls = registry.get("attack", attack)
        defaults = json.loads(json.dumps(asdict(cls.Args())))  # tuples as JSON lists
        given = json.loads(args) if args else {}
        variant = {k: v for k, v in given.items() if k in cls.variant_args}
        budget = short_args(json.dumps({k: v for k, v in given.items() if k not in variant}), defaults)
        chosen = short_args(json.dumps(variant), defaults)
        name = attack if chosen == "(defaults)" else f"{attack}[{chosen}]"
        names[(attack, args)] = name if budget == "(defaults)" else f"{name} ({budget})"
    out = df.copy()
    out["attack_setting"] = [names[key] for key in zip(df["attack"], df["attack_args"], strict=True)]
    return out


def clips_x0(df: pd.DataFrame) -> pd.Series:
    """Whether each row's sampler clipped x0 per step (rows written before that was recorded did)."""
    clip = df["clip_sample"] if "clip_sample" in df else pd.Series(pd.NA, index=df.index)
    return clip.astype("boolean").fillna(True)


def split_by_sampler(df: pd.DataFrame) -> pd.DataFrame:
    """A store whose runs were sampled at more than one setting (guidance, eta, DDIM steps, clipping; the
    core config runs its focus methods at the testbed's and at the papers'): every label gets its setting,
    ``"paper · s = 3, η = 1"``, so no table or figure averages numbers from two samplers into one cell. The
    setting is also in the ``sampler_setting`` column (empty, and the labels untouched, for one setting).
    Precision is not part of it: bfloat16 and float32 forwards judge the same (``results/perf/precision.md``)."""
    keys = pd.DataFrame({"s": df["guidance"], "eta": df["eta"], "steps": df["sample_steps"], "clip": clips_x0(df)})
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


def base_label(label: str) -> str:
    """A row's label without the sampler setting that :func:`split_by_sampler` appends ("tuned · s = 1, η = 0")."""
    return str(label).split(" · ")[0]


def unlearned_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One set of unlearned-phase rows per unlearning (runs with different attacks repeat them). The run
    without an attack is preferred: attack runs repeat its cost only while the unlearned-model cache lives,
    and one that recomputed the model later (other threads, other load) would otherwise stand in for it."""
    part = final_rows(df[df["phase"] == "unlearned"])
    ranked = part.assign(_attacked=part["attack"] != "none").sort_values(["_attacked", "run_id"], kind="stable")
    identity = [c for c in IDENTITY if c in part]  # a frame built by hand may leave out testbed and model
    first = ranked.drop_duplicates(identity)[identity + ["run_id"]]
    return part[part["run_id"].isin(first["run_id"])]


def tuning_concepts(testbed: str) -> frozenset[str]:
    """The concepts ``unlearnbench tune`` chooses settings on for ``testbed`` (its plugin declares them); none
    for a testbed whose plugin is not loaded."""
    try:
        return frozenset(plugin(testbed).tuning_concepts)
    except UserError:
        return frozenset()


def evaluation_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows an evaluation table may read: never a run on a tuning concept (the testbed's ``tuning_concepts``),
    where settings were chosen: scoring them there would grade the tuner on its own training data."""
    if df.empty:
        return df
    tuning = {t: tuning_concepts(t) for t in df["testbed"].dropna().unique()}
    pairs = zip(df["testbed"], df["forget_concept"].astype(str), strict=True)
    tuned_on = [bool(tuning.get(t, frozenset()) & set(c.split(","))) for t, c in pairs]
    return df[~pd.Series(tuned_on, index=df.index, dtype=bool)]


def original_rows(final: pd.DataFrame) -> pd.DataFrame:
    """The original model's final rows, once per forget class, seed, model and sampler setting (every run
    repeats them)."""
    final = final if SETTING in final else final.assign(**{SETTING: ""})
    keys = ["forget_concept", "seed", "metric", "split", "model_sha", SETTING]
    return final[final["phase"] == "original"].drop_duplicates(keys)


def original_runs(orig: pd.DataFrame) -> int:
    """How many evaluations of the original model a reference row averages: one per forget class and seed
    (the retained classes and the sampler's noise differ between them)."""
    return len(orig[["forget_concept", "seed"]].drop_duplicates())


def reference_label(orig: pd.DataFrame) -> str:
    """The original model's row label: "reference", with the sampler setting when the store has several."""
    setting = str(orig[SETTING].iloc[0]) if SETTING in orig and len(orig) else ""
    return f"reference · {setting}" if setting else "reference"


def table_groups(df: pd.DataFrame) -> list[tuple[str, str, int, pd.DataFrame]]:
    """The rows of a per-method table, as (label, method, runs, its rows): the original model once per sampler
    setting, then every (label, method) of the unlearned rows, by label and in method order."""
    originals = original_rows(final_rows(df)).groupby(SETTING, sort=True)
    groups = [(reference_label(o), ORIGINAL, original_runs(o), o) for _, o in originals]
    unlearned = method_groups(unlearned_rows(df))
    return groups + [(label or "-", method, g["run_id"].nunique(), g) for (label, method), g in unlearned]
