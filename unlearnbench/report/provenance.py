"""What the numbers were measured under: the sampler note above the tables, the table of settings behind
them, and how long the sweeps that wrote the store ran."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from unlearnbench import registry
from unlearnbench.estimate import busy_share
from unlearnbench.evaluate import PROTOCOLS
from unlearnbench.regression import BEFORE_RECORDED
from unlearnbench.report.frames import clips_x0
from unlearnbench.results import final_rows

SETTINGS_COLUMNS = [
    "testbed", "model_sha", "evaluator_sha", "n_forget_samples", "n_retain_samples", "sample_steps", "guidance",
    "eta", "sampler_precision", "unlearn_precision", "fid_features", "version", "torch_version", "diffusers_version",
    "fidelity_version", "device", "threads", "compiled",
]  # fmt: skip


def settings_behind(df: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's table of the settings behind its numbers: each distinct combination once."""
    settings = df[SETTINGS_COLUMNS].copy()
    for col, before in BEFORE_RECORDED.items():  # rows from before a setting was recorded: the value they used
        settings[col] = settings[col].astype(object).where(settings[col].notna(), before)
    settings = settings.drop_duplicates()
    settings["model_sha"] = settings["model_sha"].str[:12]
    settings["evaluator_sha"] = settings["evaluator_sha"].str[:12]
    return settings.sort_values(SETTINGS_COLUMNS).reset_index(drop=True)


def sampler_note(df: pd.DataFrame) -> str:
    """The sampler settings of the store's final rows, in words: which guidance, eta, steps, and whether the
    predicted x0 was clipped per step (rows written before that was recorded used the clipping sampler)."""
    final = final_rows(df)
    if final.empty:
        return ""
    clip = clips_x0(final)
    precision = final["sampler_precision"]
    before = BEFORE_RECORDED["sampler_precision"]  # rows from before it was recorded sampled in float32
    precision = precision.astype(object).where(precision.notna(), before)
    papers = PROTOCOLS["papers"]
    parts = []
    keys = pd.DataFrame(
        {"s": final["guidance"], "eta": final["eta"], "steps": final["sample_steps"], "clip": clip, "p": precision}
    )
    for (g, eta, steps, clipped, prec), part in keys.groupby(["s", "eta", "steps", "clip", "p"], sort=True):
        setting = " (the papers' setting)" if g == papers["guidance"] and eta == papers["eta"] else ""
        x0 = "x0 clipped per step (the sampler before 2026-11-29)" if clipped else "x0 not clipped (upstream's)"
        parts.append(f"s = {g:g}, η = {eta:g}{setting}, DDIM {int(steps)} steps, {x0}, {prec}: {len(part)} rows")
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


def repeated_work(metas: list[dict], *, computing: bool = False) -> tuple[float, float]:
    """The complete runs' own wall seconds, summed, and the part of it spent computing an unlearned model that
    another of these runs computed too: a cache left on another machine, or a run that lost the race to it.
    Runs are matched by the unlearned model's key (``RunSpec.unlearn_key``; the base model's hash is left out:
    one store, one testbed). Of the runs that computed one model, the slowest counts as its one computation
    (so the work left over errs high). ``computing``: each run's seconds scaled by ``estimate.busy_share``, without
    the time a run measured beside other jobs spent waiting for a core (as ``sweep --plan`` counts it)."""
    from unlearnbench.spec import RunSpec

    total, computed = 0.0, defaultdict(list)
    for meta in metas:
        scale = busy_share(meta) if computing else 1.0
        total += float(meta.get("wall_s", 0.0)) * scale
        unlearning = (meta.get("time_split_s") or {}).get("unlearning")
        if unlearning is None:  # it read its unlearned model from the cache
            continue
        spec = RunSpec.from_dict(meta["spec"])
        method = registry.get("method", spec.method) if spec.method in registry.names("method") else None
        key = spec.unlearn_key(
            "",
            spec.method_args,
            uses_sampler=getattr(method, "uses_sampler", True),  # a method no longer installed: keyed
            uses_seed=getattr(method, "uses_seed", True),  # on everything, so no two of its runs match wrongly
        )
        computed[key].append(float(unlearning) * scale)
    return total, sum(sum(times) - max(times) for times in computed.values())


def code_note(df: pd.DataFrame, most: int = 8) -> str:
    """One sentence on which code made the runs shown and when: each commit (``git_sha``) with its run count and
    the dates its runs started (``started_at``), the largest ``most`` of them, so that a reader can cite the
    version behind the numbers and check it out."""
    runs = df.drop_duplicates("run_id")
    if runs.empty:
        return ""
    day = runs["started_at"].astype("string").str[:10]
    sha = runs["git_sha"].astype("string").fillna("").str[:7].replace("", "unknown")
    groups = pd.DataFrame({"sha": sha, "day": day}).groupby("sha")["day"].agg(["size", "min", "max"])
    groups = groups.sort_values(["size", "min"], ascending=[False, True])

    def span(first: str, last: str) -> str:
        return first if first == last else f"{first} to {last}"

    parts = [f"`{c}` ({int(g['size'])} runs, {span(g['min'], g['max'])})" for c, g in groups.head(most).iterrows()]
    if len(groups) > most:
        parts.append(f"and {len(groups) - most} more")
    when = span(day.min(), day.max())
    versions = ", ".join(sorted(runs["version"].astype("string").dropna().unique()))
    return (
        f"The runs shown were made by unlearnbench {versions} "
        f"at commit(s) {', '.join(parts)}, and started {when} (UTC; each row's `git_sha` and `started_at`)."
    )


ENDED = {"running": "its last line says running: killed, or still running"}  # a sweep logs as it goes


def sweep_note(records: list[dict], results: str, complete: int, metas: list[dict] | None = None) -> str:
    """One sentence on the wall time of the sweeps that wrote the store (its ``sweeps.jsonl``): the union of
    their spans, how many, on what; one on the work of its complete runs (``metas``, their ``runs/*.json``):
    their own wall times summed, and what is left with each unlearned model counted once; and, where the log
    names the configs, each grid's time and how many of its runs the store holds (``config_part``), else, when
    the last sweep stopped short, how many of its planned runs the store holds (``complete``). Empty for a store
    no logged sweep wrote."""
    from unlearnbench.results import SWEEP_LOG, sweep_wall_s

    if not records:
        return ""
    hours = sweep_wall_s(records) / 3600
    shapes = sorted({f"{r.get('workers', '?')} worker(s) x {r.get('threads_per_run', '?')} thread(s)" for r in records})
    cpus = sorted({str(r.get("processor", "unknown processor")) for r in records})
    lost = sum(r.get("status") != "finished" for r in records)
    note = (
        f"The sweeps that wrote these runs ran for **{hours:.2f} h** of wall time in all ({len(records)} sweep(s), "
        f"{lost} of them stopped before the end; {', '.join(shapes)}; {'; '.join(cpus)}; "
        f"`{Path(results) / SWEEP_LOG}`)."
    )
    workers = {r.get("workers") for r in records}
    # segments at fewer workers (a sweep resumed beside other work) leave cores idle: the runs' own times, on the
    # most workers any segment had, say what the config takes on that machine
    if metas and all(isinstance(n, int) and n > 0 for n in workers) and (w := max(workers)) > 0:
        total, repeated = repeated_work(metas)
        note += (
            f" The {len(metas)} complete runs' own wall times sum to {total / 3600:.2f} worker-hours, "
            f"{total / 3600 / w:.2f} h on {w} workers, {repeated / 3600:.2f} worker-hours of it computing again an "
            f"unlearned model another run here had computed (a cache stays on the machine that wrote it): with each "
            f"unlearned model computed once, their work is **{(total - repeated) / 3600 / w:.2f} h** on {w} workers."
        )
        busy, busy_repeated = repeated_work(metas, computing=True)
        if busy < 0.99 * total:  # some runs were measured beside other jobs: say what they computed
            note += (
                f" Counted at their CPU seconds where a one-thread run waited for a core beside other jobs (as "
                f"`sweep --plan` counts them), that work is **{(busy - busy_repeated) / 3600 / w:.2f} h** on {w} "
                f"workers."
            )
    configs = by_config(records)
    if list(configs) != [UNNAMED]:  # the log names the configs: each one's time, and how much of it is here
        held = {str(m.get("run_id")): str(m.get("status", "ok")) for m in metas} if metas is not None else None
        return note + " By config: " + "; ".join(config_part(n, recs, held) for n, recs in configs.items()) + "."
    last = max(records, key=lambda r: r.get("started_unix", 0.0))
    if last.get("status") == "finished" and last.get("failed", 0) == 0:
        return note
    before = last.get("already_complete", 0)  # absent from records of a sweep that started from an empty store
    return note + (
        f" **Incomplete:** the last sweep stopped before the end ({ending(last)}); the store holds "
        f"{complete} complete runs of the {before + last.get('planned', 0)} it planned, and every table only those: "
        f"running the same sweep again resumes it."
    )


UNNAMED = "sweeps from before the log named their config"
FLAGS = "(flags)"  # a sweep the command line alone described


def by_config(records: list[dict]) -> dict[str, list[dict]]:
    """The sweeps (oldest first) by the grid they ran: its config and its runs (one config run with other flags,
    ``--protocol papers``, is another grid), in the order each first ran. Named by the config's path, numbered
    where one path ran several grids; plain words for the sweeps that named no config file."""
    groups: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    for r in sorted(records, key=lambda r: r.get("started_unix", 0.0)):
        ids = r.get("run_ids")
        runs = tuple(sorted(map(str, ids))) if isinstance(ids, list) else ()
        groups.setdefault((str(r.get("config") or UNNAMED), runs), []).append(r)
    grids, seen = Counter(path for path, _ in groups), Counter[str]()
    out: dict[str, list[dict]] = {}
    for (path, _), recs in groups.items():
        seen[path] += 1
        name = path if path in (UNNAMED, FLAGS) else f"`{path}`"
        out[name + (f" (grid {seen[path]})" if grids[path] > 1 else "")] = recs
    return out


def ending(record: dict) -> str:
    return ENDED.get(record.get("status", "?"), record.get("status", "?"))


def config_part(name: str, records: list[dict], held: dict[str, str] | None) -> str:
    """One grid's share of the sweep note: the wall time of its sweeps (their union) and how many, and, where
    they listed their runs, how many of those the store holds now (``held``: run id to status), how many of
    them failed, and whether the same sweep has runs left to do (no count without ``held``)."""
    from unlearnbench.results import sweep_wall_s

    head = f"{name} **{sweep_wall_s(records) / 3600:.2f} h** ({len(records)} sweep(s)"
    last = records[-1]
    ids = set(map(str, last.get("run_ids") or []))
    if not ids or held is None:
        return f"{head})"
    here = ids & held.keys()
    failed = sum(held[i] != "ok" for i in here)
    state = f"all {len(ids)} of its runs" if len(here) == len(ids) else f"{len(here)} of its {len(ids)} runs"
    state += f", {failed} of them failed (kept with their error, in no table)" if failed else ""
    if len(here) == len(ids):
        return f"{head}; {state})"
    stopped = "" if last.get("status") == "finished" else f"its last sweep stopped before the end ({ending(last)}); "
    return (
        f"{head}; **incomplete:** {stopped}{state} are in the store, and every table holds only those: running the "
        f"same sweep again resumes it)"
    )
