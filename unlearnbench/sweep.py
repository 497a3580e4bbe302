"""Sweeps: a grid of methods x attacks x forget classes x seeds (or a union of such grids, ``[[parts]]``),
resumable, on a backend.

The backend (``unlearnbench.backends``) is a pool of local processes (default) or a Ray cluster. Runs
that share an unlearning (same method, arguments, forget class and seed; different attacks, and for a method
that does not sample while unlearning, different sampler settings) form one job: its first run computes the
unlearned model, the others follow and read it from the store's cache.
A finished run is never redone; a killed sweep loses only the runs in flight.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from unlearnbench.backends import Backend, make_backend
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings, eval_settings
from unlearnbench.spec import RunSpec


class MethodSetting(NamedTuple):
    """One method setting of a sweep; ``label_dropout`` None is the method's upstream value."""

    name: str
    args: dict[str, Any]
    label: str
    label_dropout: float | None = None


@dataclass
class Grid:
    """What a sweep runs. ``methods`` entries are ``(name, args, label[, label_dropout])``, ``attacks``
    entries ``(name, args)``."""

    methods: list[tuple[Any, ...]]
    attacks: list[tuple[str, dict[str, Any]]]
    forget: list[tuple[str, ...]]
    seeds: list[int]
    eval: EvalSettings = field(default_factory=EvalSettings)
    testbed: dict[str, Any] = field(default_factory=dict)
    unlearn_precision: str = "float32"

    def with_tuned(self, tuned: dict[str, dict[str, Any]], variants: list[str] | None = None) -> tuple[Grid, list[str]]:
        """Each method at the setting ``unlearnbench tune`` chose for it, labelled ``tuned`` (and each of its
        tuned variants, ``method:variant`` in the file, labelled ``tuned, variant``; ``variants`` keeps only
        those, "" naming the plain tuned setting). A method with no tuned setting is left out (and named in the
        second return value), never run at defaults as "tuned"."""
        names = list(dict.fromkeys(m[0] for m in self.methods))
        kept = []
        for m in names:
            for key, entry in tuned.items():
                method, _, variant = key.partition(":")
                if method == m and (variants is None or variant in variants):
                    kept.append((m, dict(entry["args"]), f"tuned, {variant}" if variant else "tuned"))
        skipped = [m for m in names if not any(k.partition(":")[0] == m for k in tuned)]
        if not kept:
            raise UserError(f"--tuned: none of {', '.join(skipped)} has a tuned setting")
        return dataclasses.replace(self, methods=kept), skipped

    def specs(self) -> list[RunSpec]:
        out = []
        for method, margs, label, label_dropout in (MethodSetting(*m) for m in self.methods):
            for fc in self.forget:
                for seed in self.seeds:
                    for attack, aargs in self.attacks:
                        out.append(
                            RunSpec(
                                method=method,
                                attack=attack,
                                forget=fc,
                                method_args=margs,
                                attack_args=aargs,
                                seed=seed,
                                label_dropout=label_dropout,
                                unlearn_precision=self.unlearn_precision,
                                eval=dataclasses.replace(self.eval, seed=seed),
                                label=label,
                                **self.testbed,
                            )
                        )
        return out


def grid_from_config(cfg: dict[str, Any], overrides: dict[str, Any] | None = None) -> Grid:
    """Build a :class:`Grid` from a parsed TOML/JSON config (see ``results/*.toml``) without ``[[parts]]``.

    The document is validated by :class:`unlearnbench.schema.SweepConfig` first: an unknown key, a wrong
    type, a non-finite number or an out-of-range value is one :class:`UserError` line. ``overrides``
    (``[eval]`` keys, from command-line flags) win over the config's.
    """
    grids = grids_from_config(cfg, overrides)
    if "parts" in cfg:
        raise UserError("this command takes a config with one grid ('methods'), not '[[parts]]'")
    return grids[0]


def grids_from_config(
    cfg: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    *,
    base: Path | None = None,
    unlearn_precision: str | None = None,
) -> list[Grid]:
    """Every grid of a config: its top level, or each of its ``[[parts]]`` (once per protocol it names),
    each part taking what it leaves out from the top level. ``overrides`` (``[eval]`` keys) and
    ``unlearn_precision`` (the command line's) win over both.
    A part's relative ``tuned`` path is read from ``base`` (the config file's folder) when given."""
    from unlearnbench.schema import MethodEntry, parse_sweep_config

    config = parse_sweep_config(cfg)
    if config.methods is None and config.parts is None:
        raise UserError("config: no methods: give 'methods' (or '[[parts]]', each with its own 'methods')")
    if config.methods is not None and config.parts is not None:
        raise UserError("config: 'methods' beside '[[parts]]': put those methods in a part of their own")
    testbed = config.testbed.model_dump(exclude_unset=True)
    top = config.eval.model_dump(exclude_unset=True)
    last = dict(overrides or {})

    def grid(
        entries: list[MethodEntry],
        label: str,
        ev: dict[str, Any],
        attacks: Any,
        classes: Any,
        seeds: Any,
        precision: str | None = None,
    ) -> Grid:
        methods = []
        for m in entries:
            keys = sorted(m.grid)
            for combo in itertools.product(*(m.grid[k] for k in keys)):
                merged = {**m.args, **dict(zip(keys, combo, strict=True))}
                methods.append(MethodSetting(m.name, merged, label if m.label is None else m.label, m.label_dropout))
        return Grid(
            methods,
            [(a.name, dict(a.args)) for a in attacks],
            [tuple(str(c) for c in fc) if isinstance(fc, list) else (str(fc),) for fc in classes],
            list(seeds),
            eval_settings({k: v for k, v in {**ev, **last}.items() if v is not None}),
            testbed,
            unlearn_precision or precision or config.unlearn_precision,
        )

    if config.methods is not None:
        return [grid(config.methods, config.label, top, config.attacks, forget_of(config, "config"), config.seeds)]
    grids = []
    for i, part in enumerate(config.parts or []):
        where = f"parts[{i}]" + (f" ({part.name})" if part.name else "")
        ev = {**top, **part.eval.model_dump(exclude_unset=True)}
        label = config.label if part.label is None else part.label
        if part.tuned is not None:  # the tuned file sets the arguments and the labels: nothing may be dropped
            fixed = [
                m.name for m in part.methods if m.args or m.grid or m.label is not None or m.label_dropout is not None
            ]
            if fixed or part.label is not None:
                what = f"{fixed[0]}'s args, grid, label or label_dropout" if fixed else "a label"
                raise UserError(f"config {where}: a part with 'tuned' takes method names only, not {what}")
            tuned = Path(part.tuned) if base is None or Path(part.tuned).is_absolute() else base / part.tuned
        elif part.tuned_variants is not None:
            raise UserError(f"config {where}: 'tuned_variants' goes with 'tuned'")
        for protocol in part.protocols or [None]:
            g = grid(
                part.methods,
                label,
                ev if protocol is None else {**ev, "protocol": protocol},
                part.attacks or config.attacks,
                forget_of(part, f"config {where}") or forget_of(config, "config"),
                part.seeds or config.seeds,
                part.unlearn_precision,
            )
            if part.tuned is not None:
                g, skipped = g.with_tuned(read_tuned(str(tuned), f"{where}: tuned"), part.tuned_variants)
                if skipped:
                    raise UserError(f"config {where}: {', '.join(skipped)} has no tuned setting in {str(tuned)!r}")
            grids.append(g)
    return grids


def forget_of(table: Any, where: str) -> list[Any] | None:
    """A config table's ``forget`` (names) or ``forget_classes`` (class numbers: their names); one of them."""
    if table.forget is not None and table.forget_classes is not None:
        raise UserError(f"{where}: give 'forget' or 'forget_classes', not both")
    chosen = table.forget if table.forget is not None else table.forget_classes
    if chosen is None and not hasattr(table, "parts"):  # a part takes the top level's
        return None
    return chosen if chosen is not None else ["0"]


def specs_of(grids: Iterable[Grid]) -> list[RunSpec]:
    """The runs of several grids, in order, each once (parts may overlap)."""
    seen: dict[str, RunSpec] = {}
    for g in grids:
        for spec in g.specs():
            seen.setdefault(spec.canonical(), spec)
    return list(seen.values())


def read_tuned(path: str, flag: str = "--tuned") -> dict[str, dict[str, Any]]:
    """A ``tune --write`` file, validated by :func:`unlearnbench.schema.load_tuned`: ``{method: {"args": {...},
    ...}}`` (a variant under ``method:variant``)."""
    from unlearnbench.schema import load_tuned

    return {method: entry.model_dump() for method, entry in load_tuned(path, flag).items()}


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML or JSON config file into a dict (validated later by :func:`grid_from_config`)."""
    from unlearnbench.schema import loads_json

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config {str(p)!r}: no such file")
    try:
        text = p.read_text()
        if p.suffix == ".json":
            cfg = loads_json(text)
        else:
            import tomllib

            cfg = tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"config {str(p)!r} does not parse: {e.msg} at line {e.lineno}") from None
    except Exception as e:  # tomllib.TOMLDecodeError, NaN/Infinity in JSON, undecodable bytes
        raise UserError(f"config {str(p)!r} does not parse: {str(e).splitlines()[0] if str(e) else e!r}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"config {str(p)!r}: must be a table/object of settings, got {type(cfg).__name__}")
    return cfg


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _cost_key(spec: dict[str, Any]) -> tuple[Any, ...]:
    ev = spec.get("eval", {})
    sampler = ev.get("sampler", {})
    return (
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


class Job(list[RunSpec]):
    """Runs that share one unlearned model (a list of specs); ``cached``: the store already holds that model,
    or the testbed ships it (``UnlearningMethod.shipped``: a retrain reference), so it costs no unlearning."""

    cached: bool = False


class _Measured(NamedTuple):
    """One finished run, as the estimate sees it: its evaluation seconds (everything but the unlearning) and,
    when the run computed its unlearned model rather than reading it from the cache, the unlearning seconds."""

    key: tuple[Any, ...]
    evaluation_s: float
    unlearning_s: float | None


def _measured(meta: dict[str, Any], rows: Path) -> _Measured:
    """Split a run's wall time. Runs that recorded ``time_split_s`` say it; older ones are split with their
    cost rows (the unlearning's recorded wall seconds, less a prior's read from the cache): a run whose wall
    time exceeds them computed the unlearning, one below them read it from the cache.

    A one-thread run that also recorded its CPU seconds (``cpu_s``) is counted at those, when they are fewer
    than its wall seconds: a run measured beside other jobs waited for a core, and a sweep's workers each
    have one (a run measured with several threads is counted at its wall time: their overlap is unknown)."""
    import pandas as pd

    key, wall = _cost_key(meta["spec"]), float(meta["wall_s"])
    scale = 1.0
    cpu = meta.get("cpu_s")
    if isinstance(cpu, int | float) and meta.get("threads") == 1 and 0 < cpu < wall:
        scale = cpu / wall
    split = meta.get("time_split_s")
    if isinstance(split, dict):  # a run that read its unlearned model from the cache has no "unlearning" part
        unlearning = split.get("unlearning")
        if unlearning is None:
            return _Measured(key, wall * scale, None)
        return _Measured(key, max(0.0, wall - float(unlearning)) * scale, float(unlearning) * scale)
    df = pd.read_parquet(rows, columns=["phase", "metric", "value"])
    cost = df[df["phase"] == "unlearned"].drop_duplicates("metric").set_index("metric")["value"]
    # the recorded unlearning time includes its priors'; a prior read from the cache was not spent in this run
    cached_prior = float(cost.get("cost_prior_wall_s", 0.0)) if cost.get("cost_prior_cached", 0.0) else 0.0
    unlearning = float(cost.get("cost_wall_s", 0.0)) - cached_prior
    if wall > unlearning:
        return _Measured(key, (wall - unlearning) * scale, unlearning * scale)
    return _Measured(key, wall * scale, None)


def estimate(
    jobs: list[Job] | list[list[RunSpec]],
    stores: Iterable[str],
    workers: int,
    breakdown: dict[str, float] | None = None,
) -> str:
    """The planned jobs' wall time, from runs measured before (``runs/*`` of ``stores``): each job's unlearning
    once (the median unlearning time of measured runs with the same method and settings) plus each run's
    evaluation (the median of runs with the same method, attack, sampler and sample counts, else of the same
    method and attack at any settings, else of the same attack, sampler and sample counts with other methods:
    rough figures, the last because an attack's and the evaluation's cost barely depend on which method made
    the weights; else unknown). One line. ``breakdown``, when given,
    receives the estimated seconds of one worker per ``method/attack`` (a job's unlearning goes to its
    method's ``method/unlearning``)."""
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
    unlearn_rough: dict[str, list[float]] = {}
    for m in seen:
        exact.setdefault(m.key, []).append(m.evaluation_s)
        rough.setdefault(m.key[:2], []).append(m.evaluation_s)
        other_method.setdefault(m.key[1:], []).append(m.evaluation_s)
        if m.unlearning_s is not None:
            unlearn_exact.setdefault((m.key[0], *m.key[2:]), []).append(m.unlearning_s)
            unlearn_rough.setdefault(m.key[0], []).append(m.unlearning_s)
    total, unknown, planned = 0.0, set(), 0
    counts = [0, 0, 0]  # runs estimated from each tier: same settings, same method and attack, other methods
    parts = breakdown if breakdown is not None else {}
    for job in jobs:
        first = _cost_key(job[0].to_dict())
        unlearning = unlearn_exact.get((first[0], *first[2:])) or unlearn_rough.get(first[0])
        cached = getattr(job, "cached", False)  # a model in the cache (or a shipped reference) costs nothing
        if unlearning and not cached:
            seconds = statistics.median(unlearning)
            total += seconds
            parts[f"{first[0]}/unlearning"] = parts.get(f"{first[0]}/unlearning", 0.0) + seconds
        for spec in job:
            planned += 1
            key = _cost_key(spec.to_dict())
            tiers = ((exact, key), (rough, key[:2]), (other_method, key[1:])) if unlearning or cached else ()
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


def plan(
    specs: Iterable[RunSpec], store_root: str, backend: Backend | None = None, *, download: bool = False
) -> tuple[list[Job], int]:
    """Resolve and validate every spec (fail before any work), drop finished runs, group by unlearning.

    With a backend (a sweep that will run), the store must be writable and, with work to do, the backend's
    workers are started and each must be able to write the store (else :class:`UserError`), so a store that
    a worker cannot reach fails here too. Without one (``--plan``) nothing is started or written.
    """
    from unlearnbench.results import Store
    from unlearnbench.runner import check_budgets, resolve, testbed_for, validate

    store = Store(store_root)
    groups: dict[str, Job] = {}
    skipped = 0
    for spec in specs:
        resolved = resolve(spec)
        tb = testbed_for(spec, download=download)
        validate(resolved.spec, tb)
        check_budgets(resolved, tb)
        if store.is_complete(resolved.run_id):
            skipped += 1
            continue
        key = resolved.unlearn_key(tb.model_sha)
        if key not in groups:
            groups[key] = Job()
            in_store = (store.cache / "unlearned" / key / "cost.json").is_file()
            groups[key].cached = in_store or resolved.method.shipped(tb.references, resolved.spec.forget)
        groups[key].append(resolved.spec)
    if backend is None:
        return list(groups.values()), skipped
    store.check_writable()  # after every spec is validated: a refused sweep leaves its folder untouched
    if groups:
        backend.start(str(store_root))
    return list(groups.values()), skipped


def run_sweep(
    specs: list[RunSpec],
    store_root: str,
    *,
    workers: int = 1,
    threads: int = 2,
    device: str = "cpu",
    plugins: list[str] | None = None,
    download: bool = False,
    backend: str | Backend = "local",
    address: str | None = None,
    estimate_from: Iterable[str] = (),
    plan_only: bool = False,
) -> SweepReport:
    """Plan, then run every unfinished spec on ``backend`` (``local``, ``ray`` or a :class:`Backend`).

    Each run gets ``threads // workers`` torch threads on every backend. Runs that share an unlearning
    form a job: its first run goes first, and the others follow once it has finished, so the unlearned
    model is computed once and read from the store's cache (in parallel, where the backend has room). A job
    whose model is already cached or shipped goes out whole, in config order.
    """
    from unlearnbench.progress import bar

    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if address is not None and backend == "local":
        raise UserError("--address needs --backend ray")
    per_run = max(1, threads // workers)
    options = {"address": address, "num_cpus": threads} if backend == "ray" else {}
    runner = make_backend(backend, threads=per_run, device=device, plugins=plugins or [], workers=workers, **options)
    with runner:
        jobs, skipped = plan(specs, store_root, None if plan_only else runner, download=download)
        report = SweepReport(skipped=skipped)
        total = sum(len(j) for j in jobs)
        print(
            f"sweep: {total + skipped} runs, {skipped} already complete, {total} to run in {len(jobs)} jobs "
            f"on the {runner.name} backend ({per_run} thread(s) per run)",
            file=sys.stderr,
        )
        if jobs:
            parts: dict[str, float] = {}
            print(f"sweep: {estimate(jobs, [store_root, *estimate_from], workers, parts)}", file=sys.stderr)
            if plan_only:  # where the time goes, largest first: what to cut when a plan is too long
                for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
                    print(f"sweep:   {name:<40} {seconds / max(1, workers) / 3600:6.2f} h", file=sys.stderr)
        if not jobs or plan_only:
            return report
        with logged(store_root, runner, workers, total, report):
            by_id = {s.run_id: s for job in jobs for s in job}
            followers: dict[str, list[RunSpec]] = {}
            for job in jobs:  # in config order; a job's unlearning is computed by its first run, once
                for spec in job if job.cached else job[:1]:  # a model in the cache or shipped: no need to wait
                    runner.submit(spec)
                followers[job[0].run_id] = [] if job.cached else job[1:]
            ticker = iter(bar(range(total), desc="sweep", total=total, leave=True))
            for finished in runner.finished():
                for spec in followers.pop(finished.run_id, []):
                    runner.submit(spec)
                if finished.status == "error":  # the task died: nothing was written, a resumed sweep reruns it
                    spec = by_id[finished.run_id]
                    report.errors.append(f"{spec.method}/{spec.attack}/{spec.forget_label}: {finished.error}")
                    report.failed += 1
                else:
                    report.done += 1
                    report.failed += finished.status != "ok"
                next(ticker, None)
            for _ in ticker:
                pass
    return report


@contextmanager
def logged(store_root: str, runner: Backend, workers: int, planned: int, report: SweepReport) -> Iterator[None]:
    """Append the sweep's record to the store's ``sweeps.jsonl`` when it ends, however it ends (finished,
    interrupted, or an error; a SIGKILL leaves no line): its start, wall time, workers and threads, the
    processor, the runs already complete before it, and the runs it planned, finished and lost. A config's
    measured wall time over several sessions is the union of these spans (``results.sweep_wall_s``; the
    leaderboard prints it, and says when the last sweep stopped short)."""
    import datetime as dt
    import time

    from unlearnbench.environment import git_sha, processor
    from unlearnbench.results import Store

    started, t0 = time.time(), time.perf_counter()
    status = "error"
    try:
        yield
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        Store(store_root).log_sweep(
            {
                "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
                "started_unix": round(started, 3),
                "wall_s": round(time.perf_counter() - t0, 3),
                "status": status,
                "backend": runner.name,
                "workers": workers,
                "threads_per_run": runner.threads,
                "processor": processor(),
                "cpus": os.cpu_count(),
                "already_complete": report.skipped,
                "planned": planned,
                "done": report.done,
                "failed": report.failed,
                "git_commit": git_sha(),
            }
        )
