"""Recovery as a time-to-event: how many relearning steps bring a forgotten concept back, per method.

A relearning run that recorded a curve gives one observation (:func:`unlearnbench.survival.recovery_time`): the
first curve step whose ASR reaches the recovery threshold (an event), or the attack's budget (censored) when it
never does; a run whose model never forgot is neither. Per method (and attack and sampler setting) the table
shows the Kaplan–Meier median with its interval ("> 300" beyond the budget), the
restricted mean time to the budget, and, against the comparison method (SAFEMax with its retain term when the
store has it), the paired difference of restricted means with a bootstrap over forget concepts: runs share
concepts and seeds, so they are compared as pairs and the concepts resampled (a cluster bootstrap). A few
clusters (8 classes on digits16, 3 concepts on text16) make the interval optimistic; one makes none ("cannot
tell"); a tie is a paired interval containing zero.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from unlearnbench import survival
from unlearnbench.defaults import PRIMARY_ASR
from unlearnbench.errors import UserError
from unlearnbench.report.cells import Stat, phase_label
from unlearnbench.report.frames import (
    IDENTITY,
    SETTING,
    base_label,
    comparison_only,
    method_order,
    unlearned_rows,
    with_attack_setting,
)
from unlearnbench.stats import paired_difference
from unlearnbench.testbeds import plugin

GROUP = ["label", "method", "attack_setting", SETTING]
UNCERTAINTY = ("entropy", "noise_autocorr")  # the unlearned model's forget-sample metrics set against recovery


def recovery_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per relearning run with a curve: its group, concept, seed, ``time``, ``event``, ``budget`` and the
    unlearned model's forget-class entropy (and noise-likeness); runs that never forgot are left out.

    Whether a run forgot is read from its unlearning's forget-class ASR on the ``forget_samples``, from the run
    the forgetting and cost tables read it from (:func:`frames.unlearned_rows`: the unlearning's run without an
    attack where there is one), and not from the curve's first point (the same model on the fewer
    ``curve_samples``): two draws of one model near the threshold could otherwise put a run among those that
    forgot in one table and not in another. It is set against the run's own threshold (its ``recover_fraction``
    of the original's ASR: 0.8, the other tables' rule, unless the attack set another). The curve's later points
    give the time (a run whose unlearning has no such figure falls back on the curve's first point)."""
    if SETTING not in df:
        df = df.assign(**{SETTING: ""})
    ok = df[df["status"] == "ok"]
    # relearning attacks: the runs the recovery metric read a curve of (prompt searches have no curve)
    relearning = set(ok.loc[ok["metric"] == "recover_threshold", "run_id"])
    curve = ok[ok["attack_step"].notna() & (ok["metric"] == PRIMARY_ASR) & (ok["split"] == "forget")]
    curve = curve[curve["run_id"].isin(relearning)]
    columns = [*GROUP, "run_id", "forget_concept", "seed", "time", "event", "budget"]
    if curve.empty:
        return pd.DataFrame(columns=columns)
    final = ok[ok["attack_step"].isna() & ok["class_id"].isna() & (ok["split"] == "forget")]
    original = final[(final["phase"] == "original") & (final["metric"] == PRIMARY_ASR)].set_index("run_id")["value"]
    unlearned = final[final["phase"] == "unlearned"].pivot_table(index="run_id", columns="metric", values="value")
    before = _before_attack(ok)
    runs = with_attack_setting(curve.drop_duplicates("run_id"))
    by_run = dict(tuple(curve.groupby("run_id")))  # one pass over the curve rows, not one filter per run
    records: list[dict[str, Any]] = []
    for row in runs.itertuples(index=False):
        points = by_run[row.run_id]
        fraction = float(json.loads(row.attack_args).get("recover_fraction", survival.FORGOT_FRACTION))
        pairs = sorted((int(s), float(v)) for s, v in zip(points["attack_step"], points["value"], strict=True))
        measured = before.get(_identity(row, before.index.names), math.nan)
        if math.isfinite(measured):  # the model before the attack, read on the forget samples
            pairs = [(0, float(measured)), *((s, v) for s, v in pairs if s != 0)]
        observed = survival.recovery_time(pairs, float(original.get(row.run_id, math.nan)), fraction)
        if observed is None:  # never forgot: nothing to recover, neither an event nor at risk
            continue
        record = {c: getattr(row, c) for c in GROUP}
        record.update(run_id=row.run_id, forget_concept=row.forget_concept, seed=row.seed)
        record["family"] = _family(getattr(row, "testbed", None), row.forget_concept)
        record.update(time=observed.time, event=observed.event, budget=observed.budget)
        for metric in UNCERTAINTY:
            record[metric] = unlearned.at[row.run_id, metric] if metric in unlearned.columns else math.nan
        records.append(record)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=columns)


def _before_attack(ok: pd.DataFrame) -> pd.Series:
    """Each unlearning's forget-class ASR before any attack, as the forgetting and cost tables read it, by its
    identity (:data:`frames.IDENTITY`, as text)."""
    rows = unlearned_rows(ok)
    rows = rows[(rows["metric"] == PRIMARY_ASR) & (rows["split"] == "forget") & rows["class_id"].isna()]
    identity = [c for c in IDENTITY if c in rows]
    keyed = rows.assign(**{c: rows[c].map(_text) for c in identity}).drop_duplicates(identity)
    return keyed.set_index(identity)["value"].astype(float)


def _text(value: object) -> str:
    """An identity column's value as the key's text: every kind of missing ("nan", "<NA>") alike."""
    return "" if pd.isna(value) else str(value)  # type: ignore[arg-type]


def _identity(row: Any, names: list[str | None]) -> tuple[str, ...] | str:
    key = tuple(_text(getattr(row, str(c))) for c in names)
    return key if len(key) > 1 else key[0]


def _paired(group: pd.DataFrame) -> dict[str, list[tuple[float, bool]]]:
    return {c: list(zip(g["time"], g["event"], strict=True)) for c, g in group.groupby("forget_concept")}


# The comparison the paired column is against: the SAFEMax that forgets without damage (issue 35).
COMPARE_TO = ("tuned, retain term", "safemax")
NOTE = (
    "Relearning runs whose unlearned model forgot (pre-attack ASR below 0.8 × the original's), as a time to "
    "recover: the first curve step whose ASR is back at that threshold, or censored at the attack's budget. "
    'Median: Kaplan–Meier, with its 95% interval ("> budget": beyond the budget, where more than half the runs '
    "never recovered, or, for an interval's upper end, where too few runs recovered to bound it). "
    "Restricted mean: the mean steps to recover within the budget (the area under the curve). vs SAFEMax "
    "(retain term): this row's restricted mean minus SAFEMax's on the same concepts and seeds, with a bootstrap "
    "over concepts (few concepts: an optimistic interval; = marks an interval containing 0; one concept gives "
    "no interval). log-rank p: "
    "scipy's log-rank test of the two curves, which takes the runs as independent (they share concepts and "
    "seeds: read the paired column first)."
)


def _difference(d: survival.PairedDifference) -> str:
    if math.isnan(d.lo):
        return f"{d.value:+.0f} (one concept: no interval)"
    return f"{d.value:+.0f} [{d.lo:+.0f}, {d.hi:+.0f}]"


def survival_table(runs: pd.DataFrame, compare_to: tuple[str, str] | None = COMPARE_TO) -> pd.DataFrame:
    """Per group: runs that forgot, recovered / censored, the median with its interval, the restricted mean, and
    (with ``compare_to``, a (label, method)) the paired difference of restricted means against it, per setting."""
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for key, g in runs.groupby(GROUP, dropna=False):
        budget = float(g["budget"].max())
        km = survival.kaplan_meier(g["time"].to_numpy(float), g["event"].to_numpy(bool))
        row = dict(zip(GROUP, key, strict=True))
        row.update(
            forgot=len(g),
            recovered=km.n_events,
            censored=km.n_censored,
            median=survival.median_time(km, budget).text(),
            restricted_mean=survival.restricted_mean(g["time"], g["event"], budget),
            budget=budget,
        )
        if compare_to is not None and (base_label(row["label"]), row["method"]) != compare_to:
            same = (runs[["attack_setting", SETTING]] == [row["attack_setting"], row[SETTING]]).all(axis=1)
            base = runs[same & (runs["label"].map(base_label) == compare_to[0]) & (runs["method"] == compare_to[1])]
            mine, theirs = _paired(g), _paired(base)
            if any(k in theirs and len(mine[k]) and len(theirs[k]) for k in mine):  # a class both forgot: pairable
                d = survival.paired_rmst_difference(mine, theirs, budget)  # this row minus the comparison
                row["vs"] = _difference(d) + (" =" if d.tie and not math.isnan(d.lo) else "")
                _, p = survival.logrank(g["time"], g["event"], base["time"], base["event"])
                row["log-rank p"] = f"{p:.2g}"
            elif len(base):
                row["vs"] = "no shared class"  # the two forgot on different classes so far: nothing to pair
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for column in ("vs", "log-rank p"):  # the comparison row itself, or a setting the comparison has no runs at
        if column in table:
            table[column] = table[column].fillna("–")
    order = method_order(list(table["method"].unique()))
    return table.sort_values(["attack_setting", SETTING, "label", "method"], key=_by(order)).reset_index(drop=True)


def _by(order: list[str]) -> Any:
    return lambda s: s.map(order.index) if s.name == "method" else s


UNCERTAINTY_NOTE = (
    "Uncertainty against robustness: Spearman's rho between the unlearned model's forget-class entropy and the "
    "steps to recover (censored runs at the budget), over every run and within each setting of a method (4 runs "
    "or more), with an interval from resampling the concepts (none where the runs share one concept, or where more "
    "than 5% of the draws miss every concept whose times vary: the draws left would all hold those few runs)."
)


def _family(testbed: object, concept: str) -> str:
    """The concept's family on its testbed ("" on a testbed of one family, or one not installed here)."""
    if not isinstance(testbed, str) or not testbed:
        return ""
    try:
        return plugin(testbed).concept_family(concept)
    except UserError:
        return ""


def uncertainty_against_recovery(runs: pd.DataFrame, metric: str = "entropy") -> pd.DataFrame:
    """Spearman's rho between the unlearned model's forget-class ``metric`` and the time to recover (censored
    runs tie at the budget), per attack and sampler setting, over every method's runs and within each setting of
    each method ("safemax (tuned)"), with an interval from resampling the forget concepts (none from one concept:
    NaN); a group of fewer than 4 runs, or whose values do not vary, is left out. Where the
    runs forgot concepts of several families (text16's digits and colours, whose judges' entropies have different
    maxima), each family is its own group: "all methods (colour)"."""
    have = runs.dropna(subset=[metric])
    if "family" not in have:
        have = have.assign(family="")
    out = []
    for (attack, setting), part in have.groupby(["attack_setting", SETTING], sort=True):
        families = sorted(part["family"].fillna("").unique())
        groups = []
        for family in families:
            mine = part[part["family"].fillna("") == family]
            tag = f" ({family})" if len(families) > 1 else ""
            within = mine.groupby(["label", "method"], sort=True)  # one setting of one method, never pooled
            groups += [(f"all methods{tag}", mine), *((f"{_name(lb, m)}{tag}", g) for (lb, m), g in within)]
        for name, g in groups:
            if len(g) < 4 or g[metric].nunique() < 2 or g["time"].nunique() < 2:
                continue
            c = survival.rank_correlation(
                g[metric].to_numpy(float), g["time"].to_numpy(float), clusters=list(g["forget_concept"])
            )
            where = attack + (f" · {setting}" if setting else "")
            out.append({"attack": where, "runs": name, "n": c.n, "rho": c.rho, "lo": c.lo, "hi": c.hi})
    return pd.DataFrame(out)


# The seed paper's second question: methods that anchor the forgotten concept to another against those that send it
# to noise, each at its tuned setting (the published defaults that collapse the model are no comparison).
ANCHOR = ("salun", "random_label")
NOISE = ("safemax", "selective_amnesia")


@dataclass(frozen=True)
class Verdict:
    """One method's answer to the seed's question, as :func:`testbeds_agree` compares it across testbeds: against
    SAFEMax with its retain term, under one sampler setting and one attack (``relearning``, or a prompt attack's
    name), the method's forgetting is "more robust", "less robust", or "cannot tell"."""

    setting: str
    attack: str
    label: str
    method: str
    direction: str


def _direction(tie: bool, other_more_robust: bool) -> str:
    return "cannot tell" if tie else "more robust" if other_more_robust else "less robust"


def _name(label: str, method: str, collapsed: frozenset[tuple[str, str]] = frozenset()) -> str:
    broken = ", collapsed" if (label, method) in collapsed else ""
    return f"{method} ({base_label(label)}{broken})"


def answers(
    runs: pd.DataFrame,
    compare_to: tuple[str, str] = COMPARE_TO,
    collapsed: frozenset[tuple[str, str]] = frozenset(),
    verdicts: list[Verdict] | None = None,
) -> list[str]:
    """The seed paper's two questions, answered from the relearning runs in sentences with their intervals, per
    sampler setting, at the relearning setting the comparison method ran most (the config's survival grid):

    1. Is forgetting by maximal uncertainty harder to undo? SAFEMax with its retain term against every other
       method that forgot, by the paired difference of restricted mean times to recover (positive: the other
       method's forgetting holds longer); "cannot tell" where the paired interval holds 0.
    2. Do methods that anchor the concept to another (SalUn, random label) resist relearning better than those
       that send it to noise (SAFEMax, Selective Amnesia)? Their tuned runs pooled on each side, paired likewise.

    Each method's answer to the first is also appended to ``verdicts`` (attack ``relearning``), when given.
    """
    if runs.empty:
        return []
    is_base = (runs["label"].map(base_label) == compare_to[0]) & (runs["method"] == compare_to[1])
    out = []
    for setting, part in runs.groupby(SETTING, sort=True):
        base = part[is_base.loc[part.index]]
        if base.empty:
            continue
        # the relearning the comparison ran most (ties: the longest budget): the config's survival grid
        counts = base.groupby("attack_setting").agg(n=("time", "size"), budget=("budget", "max"))
        attack = counts.sort_values(["n", "budget"], ascending=False).index[0]
        part, base = part[part["attack_setting"] == attack], base[base["attack_setting"] == attack]
        budget = float(part["budget"].max())
        median = survival.median_time(survival.kaplan_meier(base["time"], base["event"]), budget)
        theirs = _paired(base)
        longer, shorter, ties, cells = [], [], [], []
        lone = False  # a comparison on one concept (no interval)
        for (label, method), g in part.groupby(["label", "method"], sort=True):
            mine = _paired(g)
            if (base_label(label), method) == compare_to or not any(k in theirs for k in mine):
                continue
            d = survival.paired_rmst_difference(mine, theirs, budget)
            name = _name(label, method, collapsed)
            cells.append(f"{name} {_difference(d)}")
            (ties if d.tie else longer if d.value > 0 else shorter).append(name)
            lone = lone or math.isnan(d.lo)
            if verdicts is not None:
                verdicts.append(Verdict(setting, "relearning", label, method, _direction(d.tie, d.value > 0)))
        where = f"{setting}, {attack}" if setting else attack
        if not cells:
            continue
        verdict = []
        if longer:
            verdict.append(f"{', '.join(longer)} hold{'s' if len(longer) == 1 else ''} longer than SAFEMax")
        if shorter:
            verdict.append(f"SAFEMax holds longer than {', '.join(shorter)}")
        if ties:
            why = "the paired interval holds 0" + (", or one concept gives none" if lone else "")
            verdict.append(f"cannot tell against {', '.join(ties)} ({why})")
        out.append(
            f"**Is forgetting by maximal uncertainty harder to undo?** ({where}; {len(base)} runs) SAFEMax with its "
            f"retain term recovers in a median of {median.text()} relearning steps; paired with it on the same "
            f"concepts and seeds, the other methods' restricted mean time to recover (out of {budget:g} steps) "
            f"differs by {'; '.join(cells)}. So: {'; '.join(verdict)}."
        )
        tuned = part[part["label"].map(base_label).str.startswith("tuned")]
        for anchor, noise in _sides(tuned[tuned["method"].isin(ANCHOR)], tuned[tuned["method"].isin(NOISE)]):
            anchored, noised = _paired(anchor), _paired(noise)
            if not any(k in noised for k in anchored):
                continue
            d = survival.paired_rmst_difference(anchored, noised, budget)
            side = "cannot tell" if d.tie else "anchoring holds longer" if d.value > 0 else "noise holds longer"
            out.append(
                f"**Anchoring or noise?** ({where}) Tuned methods that anchor the concept to another "
                f"({_members(anchor)}: {len(anchor)} runs) against those that send it to noise "
                f"({_members(noise)}: {len(noise)} runs): restricted mean time to recover, "
                f"anchoring minus noise, {_difference(d)} steps, paired over {d.n_clusters} concepts: {side}."
            )
    return out


def _sides(anchor: pd.DataFrame, noise: pd.DataFrame) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """The anchoring and noise sides to compare, each method at one tuned setting: a method tuned at several
    ("tuned" and "tuned, retain term" SAFEMax) gives one comparison per setting, never the two pooled (their times
    to recover differ by more than the methods' do)."""

    def choices(side: pd.DataFrame) -> list[pd.DataFrame]:
        settings = side["label"].map(base_label) + "\0" + side["method"]  # one setting of one method
        per_method = [sorted(set(settings[side["method"] == m])) for m in sorted(set(side["method"]))]
        return [side[settings.isin(pick)] for pick in itertools.product(*per_method)] if per_method else []

    return [(a, n) for a in choices(anchor) for n in choices(noise)]


def _members(side: pd.DataFrame) -> str:
    """The methods of one side with their settings: "safemax (tuned, retain term), selective_amnesia (tuned)"."""
    pairs = side[["label", "method"]].drop_duplicates()
    return ", ".join(sorted(_name(lb, m) for lb, m in zip(pairs["label"], pairs["method"], strict=True)))


def prompt_answers(
    robustness: pd.DataFrame,
    forgot: pd.Series,
    relearning: set[str],
    compare_to: tuple[str, str] = COMPARE_TO,
    collapsed: frozenset[tuple[str, str]] = frozenset(),
    verdicts: list[Verdict] | None = None,
) -> list[str]:
    """The seed paper's first question asked of the prompt attacks: per sampler setting and prompt attack (at its
    default budget), each method's ASR after the attack minus SAFEMax's (with its retain term) on the concepts and
    seeds both ran, with a cluster bootstrap over concepts (``stats.paired_difference``). ``robustness`` is the
    robustness table before its setting column is dropped; ``forgot`` says which of its rows forgot in at least
    half their runs (only those are compared: a model that kept the concept has nothing to be attacked back);
    ``relearning``: the attack settings that relearn, which the survival sentences answer instead. Each method's
    answer per attack is also appended to ``verdicts``, when given."""
    if robustness.empty:
        return []
    after = phase_label(PRIMARY_ASR, "forget", "attacked")
    r = robustness[forgot.reindex(robustness.index).fillna(False).astype(bool)]
    r = r[~r["attack"].isin(relearning) & ~r["attack"].str.contains(" (", regex=False)]
    r = r[~r["method"].isin(comparison_only())]
    out = []
    for setting, part in r.groupby(SETTING, sort=True):
        is_base = (part["label"].map(base_label) == compare_to[0]) & (part["method"] == compare_to[1])
        sentences, concepts = [], set()
        for attack, rows in part.groupby("attack", sort=True):
            base = rows[is_base.loc[rows.index]]
            if base.empty or not isinstance(base[after].iloc[0], Stat):
                continue
            mine = base[after].iloc[0]
            base_runs = dict(mine.runs)
            higher, lower, ties = [], [], []
            for _, row in rows[~is_base.loc[rows.index]].iterrows():
                cell = row[after]
                theirs = dict(cell.runs)
                d = paired_difference(theirs, base_runs) if theirs and base_runs else None
                if d is None or not d.interval.known:
                    continue
                concepts |= {k[0] for k in theirs if k in base_runs}
                name = _name(row["label"], row["method"], collapsed)
                text = f"{name} {d.value:+.3f} [{d.interval.lo:+.3f}, {d.interval.hi:+.3f}]"
                (ties if d.tie else higher if d.value > 0 else lower).append(text if not d.tie else name)
                if verdicts is not None:  # a lower ASR after the attack: harder to attack back
                    verdicts.append(
                        Verdict(setting, attack, row["label"], row["method"], _direction(d.tie, d.value < 0))
                    )
            if not (higher or lower or ties):
                continue
            said = [f"After {attack}, SAFEMax's ASR {replace(mine, mark='')}"]
            if higher:
                said.append(f"others higher (easier to attack back): {'; '.join(higher)}")
            if lower:
                said.append(f"others lower (harder to attack back): {'; '.join(lower)}")
            if ties:
                said.append(f"cannot tell: {', '.join(ties)}")
            sentences.append(", ".join(said[:1]) + (": " + "; ".join(said[1:]) if len(said) > 1 else "") + ".")
        if sentences:
            where = f" ({setting}; {len(concepts)} concepts)" if setting else f" ({len(concepts)} concepts)"
            out.append(
                f"**And against prompt attacks?**{where} ASR after each attack at its default budget, another "
                f"method's minus SAFEMax's (retain term) on the concepts and seeds both ran, with a bootstrap over "
                f"concepts (only rows that forgot in at least half their runs): " + " ".join(sentences)
            )
    return out


def testbeds_agree(boards: list[tuple[str, list[Verdict]]]) -> str:
    """The seed's question across testbeds, for the page's first paragraph: for each method both the first testbed
    and another answered at one sampler setting (matched by label and method, else by method where each testbed
    ran it once), whether relearning and the prompt attacks (each testbed's own: they are not the same attacks)
    put it on the same side of SAFEMax with its retain term. Empty with fewer than two testbeds that answer."""
    (first, mine), others = boards[0], [(t, v) for t, v in boards[1:] if v]
    if not mine or not others:
        return ""

    def summary(vs: list[Verdict]) -> dict[tuple[str, str], dict[str, str]]:
        """Per (label, method): relearning's direction, and the prompt attacks' counted ("2 more robust, 1 ...")."""
        out: dict[tuple[str, str], dict[str, str]] = {}
        for (label, method), g in pd.DataFrame(vs).groupby(["label", "method"], sort=True):
            relearn = g[g["attack"] == "relearning"]["direction"]
            prompt = g[g["attack"] != "relearning"]["direction"].value_counts()
            out[(base_label(label), method)] = {
                "relearning": relearn.iloc[0] if len(relearn) else "",
                "prompt": ", ".join(f"{n} {d}" for d, n in prompt.items()) + f" of {int(prompt.sum())} attacks"
                if len(prompt)
                else "",
                "prompt side": _side(prompt),
            }
        return out

    sentences = []
    for other, theirs in others:
        for setting in sorted({v.setting for v in mine} & {v.setting for v in theirs}):
            a = summary([v for v in mine if v.setting == setting])
            b = summary([v for v in theirs if v.setting == setting])
            pairs = _match(a, b)
            if not pairs:
                continue
            same, differ = [], []
            for ka, kb in pairs:
                name = f"{ka[1]} ({ka[0]})" if ka == kb else f"{ka[1]} ({ka[0]} on {first}, {kb[0]} on {other})"
                for question, key in (("relearning", "relearning"), ("prompt attacks", "prompt side")):
                    x, y = a[ka][key], b[kb][key]
                    if x and y:
                        said = {t: v[key] + (f" ({v['prompt']})" if key == "prompt side" else "") for t, v in
                                ((first, a[ka]), (other, b[kb]))}  # fmt: skip
                        text = f"{name}, {question}: {said[first]} on {first}, {said[other]} on {other}"
                        (same if x == y else differ).append(text)
            if not same and not differ:
                continue
            sentences.append(
                f"**Does {other} agree with {first}?** ({setting}) Each method against SAFEMax with its retain term "
                f"on both testbeds (relearning: the paired restricted mean time to recover; prompt attacks: each "
                f"testbed's own, on the side most of them put it): the same answer in {len(same)} of "
                f"{len(same) + len(differ)}. "
                + (f"Agree: {'; '.join(same)}. " if same else "")
                + (f"Differ: {'; '.join(differ)}." if differ else "")
            )
    return "\n\n".join(s.strip() for s in sentences)


def _side(counts: pd.Series) -> str:
    """The side most prompt attacks put a method on ("cannot tell" on a tie between sides)."""
    if counts.empty:
        return ""
    top = counts[counts == counts.max()]
    return str(top.index[0]) if len(top) == 1 else "cannot tell"


def _match(
    a: dict[tuple[str, str], dict[str, str]], b: dict[tuple[str, str], dict[str, str]]
) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Rows of two testbeds' answers that are the same method: same label and method, else the one row of a
    method each testbed has at another label (text16's ESD-x at its paper setting against digits16's tuned ESD)."""
    pairs = [(k, k) for k in a if k in b]
    taken = {k for k, _ in pairs}
    for method in sorted({m for _, m in a} - {m for (_, m) in taken}):
        mine, theirs = [k for k in a if k[1] == method], [k for k in b if k[1] == method]
        if len(mine) == 1 and len(theirs) == 1:
            pairs.append((mine[0], theirs[0]))
    return pairs
