"""The leaderboard's tables, built from the tidy results and nothing else.

One module per table family: ``quality`` (forgetting, retention, quality and cost), ``judges`` (the two-judge
table and its † flags), ``cost`` (cost relative to the reference method), ``robustness`` (per attack setting),
``provenance`` (the settings behind the numbers), ``tuning`` (how the tuned rows were chosen); every cell is a
:class:`~unlearnbench.report.cells.Stat`. This module assembles them, as ``page`` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from unlearnbench.defaults import COST_REFERENCE
from unlearnbench.report.cells import has_intervals, mark_ties
from unlearnbench.report.cost import collapsed, efficiency_table, forgot_in_half, forgot_shares
from unlearnbench.report.frames import SETTING, split_by_sampler, with_attack_setting
from unlearnbench.report.judges import agreement_table
from unlearnbench.report.provenance import sampler_note, settings_behind
from unlearnbench.report.quality import concept_count_table, forget_counts, quality_table
from unlearnbench.report.recovery import (
    Verdict,
    answers,
    prompt_answers,
    recovery_runs,
    survival_table,
    testbeds_agree,
    uncertainty_against_recovery,
)
from unlearnbench.report.robustness import robustness_table

# The sections' headings, on every page that shows them (the cost table's names its reference method).
TITLES = {
    "quality": "Forgetting, retention, quality and cost",
    "agreement": "Two judges",
    "efficiency": "Cost relative to {ref}",
    "robustness": "Robustness (attack success judged by the evaluator)",
    "survival": "Recovery as survival (relearning steps until the concept is back)",
    "settings": "Settings behind these numbers",
    "concept_count": "Several concepts at once",
}
CONCEPT_COUNT_NOTE = (
    "Forgetting and retention as a run erases more concepts at once (1, 3, 5: each count's runs erase different "
    "concept sets, and a row averages over its sets and seeds). Every row reads only the runs whose concepts are all "
    "among those the method's several-concept runs erase, so one-concept runs of other concepts (a colour beside "
    "three objects) stay out; every other table reads the runs that erase one."
)


@dataclass
class Tables:
    quality: pd.DataFrame
    robustness: pd.DataFrame
    settings: pd.DataFrame
    efficiency: pd.DataFrame
    cost_reference: str = COST_REFERENCE
    intervals: bool = False  # the cells carry bootstrap intervals (a store written before them does not)
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)  # the two-judge table; empty without judge 2
    sampler: str = ""  # the sampler settings behind the numbers, in words (provenance.sampler_note)
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # how the tuned rows were chosen (tuning_table)
    tuning_note: str = ""  # the paragraph above it: the file and the rule
    sweep_note: str = ""  # how long the sweeps that wrote the store ran (provenance.sweep_note)
    survival: pd.DataFrame = field(default_factory=pd.DataFrame)  # recovery.survival_table; empty without curves
    uncertainty: pd.DataFrame = field(default_factory=pd.DataFrame)  # entropy against time to recover (rho)
    concept_count: pd.DataFrame = field(default_factory=pd.DataFrame)  # quality by how many concepts a run forgets
    answers: list[str] = field(default_factory=list)  # the seed paper's questions, answered (recovery.answers)
    verdicts: list[Verdict] = field(default_factory=list)  # each method's answer, for recovery.testbeds_agree


def build_tables(df: pd.DataFrame, cost_reference: str = COST_REFERENCE) -> Tables:
    df = df if SETTING in df else split_by_sampler(df)
    intervals = has_intervals(df)
    counts = concept_count_table(df, intervals)
    df = df[forget_counts(df) == 1]  # every other table: one concept at a time, never averaged with several
    quality = quality_table(df, intervals)
    runs = recovery_runs(df)  # the relearning runs as times to recover: the robustness and survival tables'
    robustness = robustness_table(df, intervals, runs)
    prompt: list[str] = []
    verdicts: list[Verdict] = []
    broken = collapsed(df)
    if intervals:  # ties within one sampler setting (and attack): numbers from two samplers never compete
        shares = forgot_shares(df)
        # a cost's best among the rows that forgot and did not collapse: a broken model's speed is no achievement
        if len(quality):
            shown = zip(quality["label"].replace("-", ""), quality["method"], strict=True)  # "-": no label
            kept = pd.Series([(lb, m) not in broken for lb, m in shown], index=quality.index)
            quality = mark_ties(quality, group=[SETTING], forgot=forgot_in_half(shares, quality) & kept)
        robustness = mark_ties(robustness, group=["attack", SETTING])
        relearning = set(with_attack_setting(df[df["metric"] == "recover_threshold"])["attack_setting"])
        forgot = forgot_in_half(shares, robustness)
        prompt = prompt_answers(robustness, forgot, relearning, collapsed=broken, verdicts=verdicts)
    quality = quality.drop(columns=SETTING, errors="ignore")
    robustness = robustness.drop(columns=SETTING, errors="ignore")
    settings = settings_behind(df)
    agreement = agreement_table(df) if intervals else pd.DataFrame()
    efficiency = efficiency_table(df, cost_reference)
    tables = Tables(
        quality,
        robustness,
        settings,
        efficiency,
        cost_reference,
        intervals,
        agreement,
        sampler_note(df),
        concept_count=counts,
    )
    if len(runs):
        survival = survival_table(runs).drop(columns=SETTING, errors="ignore")
        uncertainty = uncertainty_against_recovery(runs).round(3)
        said = answers(runs, collapsed=broken, verdicts=verdicts)
        tables = replace(tables, survival=survival, uncertainty=uncertainty, answers=said)
    return replace(tables, answers=tables.answers + prompt, verdicts=_named(verdicts, df))


def _named(verdicts: list[Verdict], df: pd.DataFrame) -> list[Verdict]:
    """Verdicts of a store sampled at one setting carry its name too ("s = 1, η = 0", as ``split_by_sampler``
    names it where a store has several), so :func:`across` can match them with another testbed's."""
    one = df[["guidance", "eta"]].drop_duplicates()
    if len(one) != 1:
        return verdicts
    name = f"s = {one['guidance'].iloc[0]:g}, η = {one['eta'].iloc[0]:g}"
    return [v if v.setting else replace(v, setting=name) for v in verdicts]


@dataclass
class Board:
    """One testbed's part of the page: its tables and figures, from its runs in one store. The first board is the
    page's body; each further one is a section of its own ("The text16 testbed"), its figures' files and the HTML
    ids of its tables prefixed with its testbed's name."""

    testbed: str
    results: str
    tables: Tables
    n_runs: int
    images: dict[str, bytes]
    prefix: str = ""

    @property
    def title(self) -> str:
        """The heading of a further board's section."""
        return f"The {self.testbed} testbed"

    @property
    def figure_names(self) -> list[str]:
        return [n[: -len(".png")] for n in self.images if n.endswith(".png")]


def across(boards: list[Board]) -> str:
    """The seed's question across the page's testbeds (``recovery.testbeds_agree``): the page's first paragraph."""
    return testbeds_agree([(b.testbed, b.tables.verdicts) for b in boards])
