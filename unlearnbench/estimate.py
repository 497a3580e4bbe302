"""A sweep's estimated time, from the runs its stores measured: each planned run matched to the measured runs
most like it (the same method, attack and settings first), each shared unlearning counted once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from unlearnbench.spec import RunSpec


def _cost_key(spec: dict[str, Any]) -> tuple[Any, ...]:
    """What a run's evaluation cost depends on: its testbed, method and attack, sampler and sample counts (the
    testbed first: a run on another testbed says nothing of this one's cost)."""
    ev = spec.get("eval", {})
    sampler = ev.get("sampler", {})
    return (
        spec.get("testbed", "digits16"),
        spec["method"],
        spec.get("attack", "none"),
        sampler.get("guidance_scale"),
        sampler.get("eta"),
        sampler.get("steps"),
        sampler.get("precision", "float32"),
        spec.get("unlearn_precision", "float32"),
        ev.get("forget_samples"),
        ev.get("retain_samples"),
    )


class _Measured(NamedTuple):
    """One finished run, as the estimate sees it: its evaluation seconds (everything but the unlearning) and,
    when the run computed its unlearned model rather than reading it from the cache, the unlearning seconds."""

    key: tuple[Any, ...]
    evaluation_s: float
    unlearning_s: float | None
    args: str  # the method's arguments, canonical: a method's cost depends on its steps and batch


def _args(spec: dict[str, Any]) -> str:
    return json.dumps(spec.get("method_args", {}), sort_keys=True, default=str)


def busy_share(meta: dict[str, Any]) -> float:
    """The share of a run's wall seconds it computed: its CPU seconds over its wall seconds for a one-thread run that
    recorded them and waited for a core beside other jobs, else 1 (a run with several threads: their overlap is
    unknown)."""
    wall, cpu = float(meta.get("wall_s", 0.0)), meta.get("cpu_s")
    if isinstance(cpu, int | float) and meta.get("threads") == 1 and 0 < cpu < wall:
        return cpu / wall
    return 1.0


def _measured(meta: dict[str, Any], rows: Path) -> _Measured:
    """Split a run's wall time. Runs that recorded ``time_split_s`` say it; older ones are split with their
    cost rows (the unlearning's recorded wall seconds, less a prior's read from the cache): a run whose wall
    time exceeds them computed the unlearning, one below them read it from the cache.

    A one-thread run that also recorded its CPU seconds (``cpu_s``) is counted at those, when they are fewer
    than its wall seconds: a run measured beside other jobs waited for a core, and a sweep's workers each
    have one (a run measured with several threads is counted at its wall time: their overlap is unknown)."""
    import pandas as pd

    key, args, wall = _cost_key(meta["spec"]), _args(meta["spec"]), float(meta["wall_s"])
    scale = busy_share(meta)
    split = meta.get("time_split_s")
    if isinstance(split, dict):  # a run that read its unlearned model from the cache has no "unlearning" part
        unlearning = split.get("unlearning")
        if unlearning is None:
            return _Measured(key, wall * scale, None, args)
        return _Measured(key, max(0.0, wall - float(unlearning)) * scale, float(unlearning) * scale, args)
    df = pd.read_parquet(rows, columns=["phase", "metric", "value"])
    cost = df[df["phase"] == "unlearned"].drop_duplicates("metric").set_index("metric")["value"]
    # the recorded unlearning time includes its priors'; a prior read from the cache was not spent in this run
    cached_prior = float(cost.get("cost_prior_wall_s", 0.0)) if cost.get("cost_prior_cached", 0.0) else 0.0
    unlearning = float(cost.get("cost_wall_s", 0.0)) - cached_prior
    if wall > unlearning:
        return _Measured(key, (wall - unlearning) * scale, unlearning * scale, args)
    return _Measured(key, wall * scale, None, args)


def estimate(
    jobs: list[list[RunSpec]],
    stores: Iterable[str],
    workers: int,
    breakdown: dict[str, float] | None = None,
) -> str:
    """The planned jobs' wall time, from runs measured before (``runs/*`` of ``stores``): each job's unlearning
    once (the median unlearning time of measured runs with the same method, arguments and settings, else with the
    same arguments at other settings, else of the same method at any) plus each run's evaluation (the median of
    runs with the same method, attack, sampler and sample counts, else of the same method and attack at any
    settings, else of the same attack, sampler and sample counts with other methods: rough figures, the last
    because an attack's and the evaluation's cost barely depend on which method made the weights; else unknown).
    Only runs on the planned run's testbed count. One line. ``breakdown``, when given, receives the estimated
    seconds of one worker per ``method/attack`` (a job's unlearning goes to its method's
    ``method/unlearning``)."""
    import statistics

    seen: list[_Measured] = []
    for root in stores:
        runs = Path(root, "runs")
        for meta_path in sorted(runs.glob("*.json")) if runs.is_dir() else []:
            rows = meta_path.with_suffix(".parquet")
            try:
                meta = json.loads(meta_path.read_text())
                if meta.get("status") == "ok" and rows.is_file():
                    seen.append(_measured(meta, rows))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    exact: dict[tuple[Any, ...], list[float]] = {}
    rough: dict[tuple[Any, ...], list[float]] = {}
    other_method: dict[tuple[Any, ...], list[float]] = {}
    unlearn_exact: dict[tuple[Any, ...], list[float]] = {}
    unlearn_args: dict[tuple[Any, ...], list[float]] = {}
    unlearn_rough: dict[tuple[Any, ...], list[float]] = {}
    # keys: key[:3] is (testbed, method, attack); an unlearning's key drops the attack and adds the arguments
    for m in seen:
        exact.setdefault(m.key, []).append(m.evaluation_s)
        rough.setdefault(m.key[:3], []).append(m.evaluation_s)
        other_method.setdefault((m.key[0], *m.key[2:]), []).append(m.evaluation_s)
        if m.unlearning_s is not None:
            unlearn_exact.setdefault((*m.key[:2], m.args, *m.key[3:]), []).append(m.unlearning_s)
            unlearn_args.setdefault((*m.key[:2], m.args), []).append(m.unlearning_s)
            unlearn_rough.setdefault(m.key[:2], []).append(m.unlearning_s)
    total, unknown, planned = 0.0, set(), 0
    counts = [0, 0, 0]  # runs estimated from each tier: same settings, same method and attack, other methods
    parts = breakdown if breakdown is not None else {}
    for job in jobs:
        first_spec = job[0].to_dict()
        first = _cost_key(first_spec)
        args = _args(first_spec)
        unlearning = (
            unlearn_exact.get((*first[:2], args, *first[3:]))  # the same arguments and settings
            or unlearn_args.get((*first[:2], args))  # the same arguments, evaluated otherwise
            or unlearn_rough.get(first[:2])  # the method at any arguments
        )
        cached = getattr(job, "cached", False)  # a model in the cache (or a shipped reference) costs nothing
        if unlearning and not cached:
            seconds = statistics.median(unlearning)
            total += seconds
            parts[f"{first[1]}/unlearning"] = parts.get(f"{first[1]}/unlearning", 0.0) + seconds
        for spec in job:
            planned += 1
            key = _cost_key(spec.to_dict())
            tiers = ((exact, key), (rough, key[:3]), (other_method, (key[0], *key[2:]))) if unlearning or cached else ()
            tier = next((i for i, (seen_s, k) in enumerate(tiers) if k in seen_s), None)
            if tier is None:
                unknown.add(f"{spec.method}/{spec.attack}")
                continue
            seen_s, k = tiers[tier]
            seconds = statistics.median(seen_s[k])
            counts[tier] += 1
            total += seconds
            parts[f"{spec.method}/{spec.attack}"] = parts.get(f"{spec.method}/{spec.attack}", 0.0) + seconds
    measured, guessed, borrowed = counts
    if not sum(counts):
        return f"estimate: none, no run like these was measured in {', '.join(stores)} (--estimate-from STORE)"
    line = (
        f"estimate: {total / max(1, workers) / 3600:.1f} h on {workers} worker(s) for {sum(counts)} runs "
        f"({measured} from runs with the same settings, {guessed} from the same method and attack at other "
        f"settings, {borrowed} from the same attack and settings with other methods; each shared unlearning "
        f"counted once)"
    )
    if unknown:
        line += f"; no measurement for {planned - sum(counts)} runs ({', '.join(sorted(unknown))})"
    return line
