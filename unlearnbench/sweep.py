"""Sweeps: a grid of methods x attacks x forget classes x seeds, resumable, on a backend.

The backend (``unlearnbench.backends``) is a pool of local processes (default) or a Ray cluster. Runs
that share an unlearning (same method, arguments, forget class and seed; different attacks) form one
job: its first run computes the unlearned model, the others follow and read it from the store's cache.
A finished run is never redone; a killed sweep loses only the runs in flight.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearnbench.api import SamplerSettings
from unlearnbench.backends import Backend, make_backend
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings
from unlearnbench.spec import RunSpec


@dataclass
class Grid:
    """What a sweep runs. ``methods``/``attacks`` entries are ``(name, args, label)``."""

    methods: list[tuple[str, dict[str, Any], str]]
    attacks: list[tuple[str, dict[str, Any]]]
    forget_classes: list[tuple[int, ...]]
    seeds: list[int]
    eval: EvalSettings = field(default_factory=EvalSettings)
    testbed: dict[str, Any] = field(default_factory=dict)

    def specs(self) -> list[RunSpec]:
        out = []
        for method, margs, label in self.methods:
            for fc in self.forget_classes:
                for seed in self.seeds:
                    for attack, aargs in self.attacks:
                        out.append(
                            RunSpec(
                                method=method,
                                attack=attack,
                                forget_classes=fc,
                                method_args=margs,
                                attack_args=aargs,
                                seed=seed,
                                eval=EvalSettings(**{**self.eval.__dict__, "seed": seed}),
                                label=label,
                                **self.testbed,
                            )
                        )
        return out


def _entries(raw: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise UserError(f"config: '{what}' must be a non-empty list")
    out = []
    for item in raw:
        if isinstance(item, str):
            out.append({"name": item})
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append(item)
        else:
            raise UserError(f"config: each of '{what}' must be a name or a table with 'name', got {item!r}")
    return out


def grid_from_config(cfg: dict[str, Any]) -> Grid:
    """Build a :class:`Grid` from a parsed TOML/JSON config (see ``results/*.toml``)."""
    known = {"methods", "attacks", "forget_classes", "seeds", "eval", "testbed", "label"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        from unlearnbench.registry import suggest

        raise UserError(
            f"config: unknown key {unknown[0]!r}{suggest(unknown[0], known)} (known: {', '.join(sorted(known))})"
        )
    default_label = str(cfg.get("label", ""))
    methods = []
    for m in _entries(cfg.get("methods"), "methods"):
        args = m.get("args", {})
        grid = m.get("grid", {})
        if not isinstance(args, dict) or not isinstance(grid, dict):
            raise UserError(f"config: 'args' and 'grid' of method {m['name']!r} must be tables")
        bad = [k for k, v in grid.items() if not isinstance(v, list) or not v]
        if bad:
            raise UserError(f"config: grid value {bad[0]!r} of method {m['name']!r} must be a non-empty list")
        keys = sorted(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            merged = {**args, **dict(zip(keys, combo, strict=True))}
            methods.append((m["name"], merged, str(m.get("label", default_label))))
    attacks = [(a["name"], a.get("args", {})) for a in _entries(cfg.get("attacks", ["none"]), "attacks")]
    classes = []
    for fc in cfg.get("forget_classes", [0]):
        if isinstance(fc, bool) or not isinstance(fc, (int, list)):
            raise UserError(f"config: forget_classes entries must be ints or lists of ints, got {fc!r}")
        classes.append(tuple(fc) if isinstance(fc, list) else (fc,))
    seeds = cfg.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError(f"config: seeds must be a list of ints, got {seeds!r}")
    ev = dict(cfg.get("eval", {}))
    sampler_keys = {"sample_steps": "steps", "guidance": "guidance_scale", "eta": "eta"}
    sampler = {v: ev.pop(k) for k, v in sampler_keys.items() if k in ev}
    if "guidance_scale" not in sampler:
        sampler["guidance_scale"] = _default_guidance(cfg.get("testbed", {}))
    eval_known = {"forget_samples", "retain_samples", "curve_samples"}
    bad = sorted(set(ev) - eval_known)
    if bad:
        raise UserError(
            f"config: unknown eval key {bad[0]!r} (known: {', '.join(sorted(eval_known | set(sampler_keys)))})"
        )
    try:
        settings = EvalSettings(**ev, sampler=SamplerSettings(**sampler))
    except TypeError as e:
        raise UserError(f"config: bad eval settings ({e})") from None
    testbed = dict(cfg.get("testbed", {}))
    tb_known = {"testbed", "model", "dataset", "evaluator", "attacker"}
    if set(testbed) - tb_known:
        raise UserError(f"config: unknown testbed key {sorted(set(testbed) - tb_known)[0]!r}")
    return Grid(methods, attacks, classes, seeds, settings, testbed)


def _default_guidance(testbed: dict[str, Any]) -> float:
    from unlearnbench.testbeds import read_manifest

    if testbed.get("model"):
        return 1.0
    return float(read_manifest(testbed.get("testbed", "digits16"))["sampler"]["guidance_scale"])


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config {str(p)!r}: no such file")
    text = p.read_text()
    try:
        if p.suffix == ".json":
            return json.loads(text)
        import tomllib

        return tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"config {str(p)!r} does not parse: {e.msg} at line {e.lineno}") from None
    except Exception as e:  # tomllib.TOMLDecodeError
        raise UserError(f"config {str(p)!r} does not parse: {e}") from None


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def plan(specs: Iterable[RunSpec], store_root: str, backend: Backend | None = None) -> tuple[list[list[RunSpec]], int]:
    """Resolve and validate every spec (fail before any work), drop finished runs, group by unlearning.

    With a backend and work to do, its workers are started and each must be able to write the store
    (else :class:`UserError`), so a store that a worker cannot reach fails here too.
    """
    from unlearnbench.results import Store
    from unlearnbench.runner import resolve, validate
    from unlearnbench.testbeds import load_testbed

    store = Store(store_root)
    store.check_writable()
    groups: dict[str, list[RunSpec]] = {}
    skipped = 0
    for spec in specs:
        resolved = resolve(spec)
        tb = load_testbed(
            spec.testbed, model=spec.model, dataset=spec.dataset, evaluator=spec.evaluator, attacker=spec.attacker
        )
        validate(resolved.spec, tb.num_classes)
        if store.is_complete(resolved.run_id):
            skipped += 1
            continue
        key = resolved.spec.unlearn_key(tb.model_sha, resolved.spec.method_args)
        groups.setdefault(key, []).append(resolved.spec)
    if backend is not None and groups:
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
    backend: str | Backend = "local",
    address: str | None = None,
) -> SweepReport:
    """Plan, then run every unfinished spec on ``backend`` (``local``, ``ray`` or a :class:`Backend`).

    Each run gets ``threads // workers`` torch threads on every backend. Runs that share an unlearning
    form a job: its first run goes first, and the others follow once it has finished, so the unlearned
    model is computed once and read from the store's cache (in parallel, where the backend has room).
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
        jobs, skipped = plan(specs, store_root, runner)
        report = SweepReport(skipped=skipped)
        total = sum(len(j) for j in jobs)
        print(
            f"sweep: {total + skipped} runs, {skipped} already complete, {total} to run in {len(jobs)} jobs "
            f"on the {runner.name} backend ({per_run} thread(s) per run)",
            file=sys.stderr,
        )
        if not jobs:
            return report
        by_id = {s.run_id: s for job in jobs for s in job}
        followers: dict[str, list[RunSpec]] = {}
        for job in jobs:
            runner.submit(job[0])
            followers[job[0].run_id] = job[1:]
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
