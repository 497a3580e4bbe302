"""Fair tuning: every method gets the same grid budget over its documented knobs, on the tuning classes
only, and one selection rule, fixed here, picks the setting.

Trials (:func:`trials_for`): the paper default, then every combination of the method's ``search_space``
(12; 6 for a method whose trials are expensive, with its ``search_note``), in a fixed order. A named
variant (``search_variants``: SAFEMax with a retain term) is tuned over its own grid and chosen as its own
row. Tuning runs on the testbed's ``tuning_concepts`` (5 and 9 on digits16), which every evaluation table then
leaves out.

Rule (:func:`select`): among the trials whose retained-class accuracy (10-way) stays within ``TOLERANCE``
(0.05) of the original model's **and** whose retained FID is at most ``FID_FACTOR`` (2) times the original's,
take the highest noise-aware unlearning accuracy (11-way, the primary criterion: the 10-way judge can read
noise as the forget digit); ties go to the higher retained accuracy, then the lower retained FID. A setting
is scored by its mean over its runs (both tuning classes), never by its best class. If no setting passes,
the best trade-off ``UA_11way + retain_accuracy_10way`` is taken and the reason says that no trial passed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from unlearnbench import registry
from unlearnbench.defaults import DEFAULT_TESTBED, PRIMARY_UA
from unlearnbench.errors import UserError
from unlearnbench.io import atomic_write_text
from unlearnbench.results import Store, final_rows

if TYPE_CHECKING:
    from unlearnbench.grid import Grid
    from unlearnbench.sweep import SweepReport

TOLERANCE = 0.05
FID_FACTOR = 2.0
TRIALS = 12  # grid combinations per method (and per variant)
EXPENSIVE_TRIALS = 6  # for methods with a search_note saying why


def tuned_key(method: str, variant: str = "") -> str:
    """The name a tuned setting is stored under in ``tuned.json``: the method, or ``method:variant``."""
    return f"{method}:{variant}" if variant else method


def grid_of(method: str, variant: str = "") -> list[dict[str, Any]]:
    """Every combination of the method's (or variant's) grid, in a fixed order (keys sorted, values as declared)."""
    cls = registry.get("method", method)
    space: dict[str, list[Any]] = cls.search_variants[variant] if variant else cls.search_space
    keys = sorted(space)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(space[k] for k in keys))]


def trials_for(method: str, variant: str = "", limit: int | None = None) -> list[dict[str, Any]]:
    """The trials of a method: its paper default (``{}``), then its grid without the default again; a
    variant's trials are its grid alone. ``limit`` (``--trials``) keeps that many, chosen by :func:`covering`
    so that every value of every knob is tried when the limit allows (not the grid's first few, which would
    hold its first knob at one value)."""
    cls = registry.get("method", method)
    defaults = cls.Args()
    out: list[dict[str, Any]] = [] if variant else [{}]
    for combo in grid_of(method, variant):
        if not variant and all(getattr(defaults, k) == v for k, v in combo.items()):
            continue  # that is the default, already trial 0
        out.append(combo)
    if limit is None or limit >= len(out):
        return out
    full = {k: getattr(defaults, k) for k in grid_of(method, variant)[0]}
    return covering(out, limit, default=None if variant else full)


def covering(trials: list[dict[str, Any]], limit: int, default: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``limit`` of ``trials`` (in their order), the first always kept, chosen greedily: next, the trial that tries
    the most (knob, value) pairs not tried yet, then the one farthest (in knobs that differ) from its nearest
    chosen trial, then the earliest. ``default`` stands for the ``{}`` trial's values (the paper default)."""

    def pairs(t: dict[str, Any]) -> set[tuple[str, str]]:
        full = t or default or {}  # the {} trial stands for the paper default
        return {(k, json.dumps(v)) for k, v in full.items()}

    chosen = [trials[0]]
    tried = pairs(trials[0])

    def gain(i: int, tried: set[tuple[str, str]]) -> tuple[int, int, int]:
        mine = pairs(trials[i])
        nearest = min(len(mine - pairs(c)) for c in chosen)
        return (len(mine - tried), nearest, -i)

    while len(chosen) < limit:
        best = max((i for i, t in enumerate(trials) if t not in chosen), key=lambda i: gain(i, tried))
        chosen.append(trials[best])
        tried |= pairs(trials[best])
    return [t for t in trials if t in chosen]


def _final(df: pd.DataFrame, phase: str, metric: str, split: str) -> pd.Series:
    rows = final_rows(df)
    rows = rows[(rows.phase == phase) & (rows.metric == metric) & (rows.split == split)]
    return rows.groupby("run_id")["value"].mean()


@dataclasses.dataclass(frozen=True)
class Choice:
    """The chosen setting of one method's trials, scored as the mean over its runs (the tuning classes)."""

    args: dict[str, Any]
    run_ids: list[str]
    reason: str
    ua: float  # UA (11-way) on the forget class
    retain: float  # retained-class accuracy (10-way)
    fid: float  # retained FID
    original_retain: float
    original_fid: float
    passed: bool  # whether any setting passed the rule


def select(df: pd.DataFrame, tolerance: float = TOLERANCE, fid_factor: float = FID_FACTOR) -> Choice:
    """Pick one setting of a method's trials by the rule above. A setting is scored by the mean of its runs
    (every tuning class, every seed), against the original model's mean over the same runs, so a setting
    that keeps the retained classes on one tuning class but not on the other is judged on both."""
    ok = df[df.status == "ok"]
    per_run = pd.DataFrame(
        {
            "ua": _final(ok, "unlearned", PRIMARY_UA, "forget"),
            "ra": _final(ok, "unlearned", "retain_accuracy_10way", "retain"),
            "fid": _final(ok, "unlearned", "fid", "retain"),
            "ra0": _final(ok, "original", "retain_accuracy_10way", "retain"),
            "fid0": _final(ok, "original", "fid", "retain"),
        }
    ).dropna(subset=["ua", "ra"])
    if per_run.empty:
        raise ValueError("no successful trial to select from")
    # method_args is canonical JSON (sorted keys), so equal settings are equal strings
    runs = ok.drop_duplicates("run_id").set_index("run_id")
    per_run["setting"] = runs["method_args"].reindex(per_run.index)
    # A setting is scored only on every tuning concept and seed its trials asked for: one whose run failed (or
    # lost its FID) on one of them would be judged on the others alone and could win on the easier concept.
    asked = df.drop_duplicates("run_id")
    asked = set(zip(asked.forget_concept, asked.seed, strict=True))
    per_run = per_run.dropna(subset=["fid"])
    done = per_run.groupby("setting").apply(
        lambda g: set(zip(runs.forget_concept.reindex(g.index), runs.seed.reindex(g.index), strict=True)) >= asked,
        include_groups=False,
    )
    per_run = per_run[per_run.setting.map(done)]
    if per_run.empty:
        raise ValueError("no setting completed on every tuning concept and seed")
    table = per_run.groupby("setting").agg(
        ua=("ua", "mean"), ra=("ra", "mean"), fid=("fid", "mean"), ra0=("ra0", "mean"), fid0=("fid0", "mean")
    )
    original, original_fid = float(per_run.ra0.mean()), float(per_run.fid0.mean())
    keeps = table[(table.ra >= table.ra0 - tolerance) & (table.fid <= fid_factor * table.fid0)]
    if len(keeps):
        best = str(keeps.sort_values(["ua", "ra", "fid"], ascending=[False, False, True]).index[0])
        reason = (
            f"highest UA (11-way) with retain accuracy >= {original:.3f} - {tolerance} "
            f"and retain FID <= {fid_factor:g} x {original_fid:.2f}, means over the tuning classes"
        )
    else:
        best = str((table.ua + table.ra).sort_values(ascending=False).index[0])
        reason = "no trial passed the rule (retain accuracy and FID): best UA + retain accuracy (UA 11-way)"
    row = table.loc[best]
    return Choice(
        args=json.loads(best),
        run_ids=sorted(per_run.index[per_run.setting == best]),
        reason=reason,
        ua=float(row.ua),
        retain=float(row.ra),
        fid=float(row.fid),
        original_retain=original,
        original_fid=original_fid,
        passed=bool(len(keeps)),
    )


def tune(grid: Grid, out: str, *, limit: int | None = None, **sweep_options: Any) -> tuple[dict[str, Any], SweepReport]:
    """Run every trial of every method (and variant) of ``grid`` (no attack) into ``out``; choose one each."""
    from unlearnbench.prepare import resolve, testbed_for, validate
    from unlearnbench.sweep import run_sweep

    # methods with nothing to tune (noop, retrain, given) have no trials beyond their one setting
    tunable = [m[0] for m in grid.methods if registry.get("method", m[0]).search_space]
    methods = list(dict.fromkeys(tunable))
    arms = [(m, v) for m in methods for v in ["", *registry.get("method", m).search_variants]]
    # what the config sets for a method (ESD's params = "cross_attention": ESD-x) holds in every trial
    fixed = {m[0]: dict(m[1]) for m in grid.methods}
    clash = sorted({k for m, v in arms for t in trials_for(m, v) for k in t if k in fixed.get(m, {})})
    if clash:
        raise UserError(f"tune: the config sets {', '.join(clash)}, which the tuning grid searches; leave it out")
    settings = [(m, {**fixed.get(m, {}), **t}, tuned_key("tune", v)) for m, v in arms for t in trials_for(m, v, limit)]
    grid = dataclasses.replace(grid, attacks=[("none", {})], methods=settings)
    specs = grid.specs()
    report = run_sweep(specs, out, **sweep_options)
    if sweep_options.get("plan_only"):  # the plan and its estimate are printed; nothing ran, nothing to choose
        return {}, report
    ids = {validate(resolve(s).spec, testbed_for(s)).run_id for s in specs}  # as the sweep names them (synonyms)
    df = Store(out).load()
    df = df[df.run_id.isin(ids)]
    chosen: dict[str, Any] = {}
    for m, v in arms:
        trials = df[(df.method == m) & (df.label == tuned_key("tune", v))]
        choice = select(trials)
        chosen[tuned_key(m, v)] = {
            "args": choice.args,
            "run_ids": choice.run_ids,
            "rule": choice.reason,
            "passed": choice.passed,
            "scores": {
                "ua_11way": round(choice.ua, 4),
                "retain_accuracy_10way": round(choice.retain, 4),
                "retain_fid": round(choice.fid, 3),
                "original_retain_accuracy_10way": round(choice.original_retain, 4),
                "original_retain_fid": round(choice.original_fid, 3),
            },
            "trials": int(trials.run_id.nunique()),
            "grid": registry.get("method", m).search_variants[v] if v else registry.get("method", m).search_space,
            "cpu_s": float(final_rows(trials).query("metric == 'cost_cpu_s'")["value"].sum()),
            "forget_classes": [[int(c) if c.isdigit() else c for c in fc] for fc in grid.forget],
            "testbed": grid.testbed.get("testbed") or DEFAULT_TESTBED,
        }
    return chosen, report


def write_tuned(path: Path, chosen: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(chosen, indent=2, sort_keys=True) + "\n")
