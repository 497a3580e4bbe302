"""Sweeps: a grid of methods x attacks x forget classes x seeds, resumable, in bounded local processes.

Runs that share an unlearning (same method, arguments, forget class and seed; different attacks) form
one job and run in order in one worker, so the unlearned model is computed once and reused from the
cache. A finished run is never redone; a killed sweep loses only the runs in flight.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing as mp
import os
import sys
import traceback
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings, eval_settings
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

    def with_tuned(self, tuned: dict[str, dict[str, Any]]) -> tuple[Grid, list[str]]:
        """Each method at the setting ``unlearnbench tune`` chose for it, labelled ``tuned``. A method with no
        tuned setting is left out (and named in the second return value), never run at defaults as "tuned"."""
        names = list(dict.fromkeys(m for m, _, _ in self.methods))
        kept = [(m, dict(tuned[m]["args"]), "tuned") for m in names if m in tuned]
        skipped = [m for m in names if m not in tuned]
        if not kept:
            raise UserError(f"--tuned: none of {', '.join(skipped)} has a tuned setting")
        return dataclasses.replace(self, methods=kept), skipped

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
                                eval=dataclasses.replace(self.eval, seed=seed),
                                label=label,
                                **self.testbed,
                            )
                        )
        return out


def grid_from_config(cfg: dict[str, Any]) -> Grid:
    """Build a :class:`Grid` from a parsed TOML/JSON config (see ``results/*.toml``).

    The document is validated by :class:`unlearnbench.schema.SweepConfig` first: an unknown key, a wrong
    type, a non-finite number or an out-of-range value is one :class:`UserError` line.
    """
    from unlearnbench.schema import parse_sweep_config

    config = parse_sweep_config(cfg)
    methods = []
    for m in config.methods:
        keys = sorted(m.grid)
        for combo in itertools.product(*(m.grid[k] for k in keys)):
            merged = {**m.args, **dict(zip(keys, combo, strict=True))}
            methods.append((m.name, merged, config.label if m.label is None else m.label))
    attacks = [(a.name, dict(a.args)) for a in config.attacks]
    classes = [tuple(fc) if isinstance(fc, list) else (fc,) for fc in config.forget_classes]
    ev = config.eval.model_dump(exclude_unset=True)
    testbed = config.testbed.model_dump(exclude_unset=True)
    settings = eval_settings({k: v for k, v in ev.items() if v is not None})
    return Grid(methods, attacks, classes, list(config.seeds), settings, testbed)


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


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when the sweep process dies, even by SIGKILL (no orphans burning CPU)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_init(threads: int) -> None:
    import torch

    from unlearnbench import progress

    _die_with_parent()

    torch.set_num_threads(threads)
    progress.set_enabled(False)


def _run_job(store_root: str, device: str, specs: list[dict[str, Any]], plugins: list[str]) -> list[tuple[str, str]]:
    """Run specs that share an unlearning, in order. Returns (run_id, status) pairs."""
    from unlearnbench import registry
    from unlearnbench.results import Store
    from unlearnbench.runner import Runner

    for module in plugins:
        registry.load_module_plugin(module)
    runner = Runner(Store(store_root), device=device)
    out = []
    for d in specs:
        spec = RunSpec.from_dict(d)
        df = runner.run(spec)
        out.append((str(df["run_id"].iloc[0]), str(df["status"].iloc[0])))
    return out


@dataclass
class SweepReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def plan(specs: Iterable[RunSpec], store_root: str, *, download: bool = False) -> tuple[list[list[RunSpec]], int]:
    """Resolve and validate every spec (fail before any work), drop finished runs, group by unlearning."""
    from unlearnbench.results import Store
    from unlearnbench.runner import resolve, testbed_for, validate

    store = Store(store_root)
    groups: dict[str, list[RunSpec]] = {}
    skipped = 0
    for spec in specs:
        resolved = resolve(spec)
        tb = testbed_for(spec, download=download)
        validate(resolved.spec, tb.num_classes)
        if store.is_complete(resolved.run_id):
            skipped += 1
            continue
        key = resolved.spec.unlearn_key(tb.model_sha, resolved.spec.method_args)
        groups.setdefault(key, []).append(resolved.spec)
    store.check_writable()  # after every spec is validated: a refused sweep leaves its folder untouched
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
) -> SweepReport:
    from unlearnbench.progress import bar

    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    jobs, skipped = plan(specs, store_root, download=download)
    report = SweepReport(skipped=skipped)
    total = sum(len(j) for j in jobs)
    print(
        f"sweep: {total + skipped} runs, {skipped} already complete, {total} to run in {len(jobs)} jobs "
        f"on {workers} worker(s)",
        file=sys.stderr,
    )
    if not jobs:
        return report
    per_worker = max(1, threads // workers)
    ctx = mp.get_context("spawn")
    progress = bar(range(total), desc="sweep", total=total, leave=True)
    ticker = iter(progress)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(per_worker,)
    ) as pool:
        pending: dict[Future[list[tuple[str, str]]], list[RunSpec]] = {
            pool.submit(_run_job, str(store_root), device, [s.to_dict() for s in job], plugins or []): job
            for job in jobs
        }
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    try:
                        results = fut.result()
                    except Exception as e:  # a bug in one run must not stop the grid
                        msg = "".join(traceback.format_exception_only(type(e), e)).strip()
                        report.errors.append(f"{job[0].method}/{job[0].forget_label}: {msg}")
                        report.failed += len(job)
                        for _ in job:
                            next(ticker, None)
                        continue
                    for _run_id, status in results:
                        report.done += 1
                        report.failed += status != "ok"
                        next(ticker, None)
        except KeyboardInterrupt:
            for fut in pending:
                fut.cancel()
            raise
    for _ in ticker:
        pass
    return report
