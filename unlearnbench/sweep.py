"""Sweeps: a grid of methods x attacks x forget classes x seeds (or a union of such grids, ``[[parts]]``),
resumable, on a backend.

The backend (``unlearnbench.backends``) is a pool of local processes (default) or a Ray cluster. Runs
that share an unlearning (same method, arguments, forget class and seed; different attacks, and for a method
that does not sample while unlearning, different sampler settings) form one job: its first run computes the
unlearned model, the others follow and read it from the store's cache.
A finished run is never redone; a killed sweep loses only the runs in flight.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlearnbench.backends import Backend, make_backend
from unlearnbench.errors import UserError
from unlearnbench.estimate import estimate
from unlearnbench.spec import RunSpec

if TYPE_CHECKING:
    from unlearnbench.api import Task

# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Job(list[RunSpec]):
    """Runs that share one unlearned model (a list of specs); ``cached``: the store already holds that model,
    or the testbed ships it (``UnlearningMethod.shipped``: a retrain reference), so it costs no unlearning."""

    cached: bool = False
    # The folder of a prior its unlearning needs that is neither shipped nor cached ("" when none): the sweep
    # sends out the first job needing it, and the others once that job's first run has ended.
    prior: str = ""


def plan(
    specs: Iterable[RunSpec], store_root: str, backend: Backend | None = None, *, download: bool = False
) -> tuple[list[Job], list[str]]:
    """Resolve and validate every spec (fail before any work), drop finished runs, group by unlearning:
    the jobs to run, and the ids of the runs already complete.

    With a backend (a sweep that will run), the store must be writable and, with work to do, the backend's
    workers are started and each must be able to write the store (else :class:`UserError`), so a store that
    a worker cannot reach fails here too. Without one (``--plan``) nothing is started or written.
    """
    import dataclasses

    from unlearnbench.api import SamplerSettings
    from unlearnbench.priors import PriorCache, prior_folder_name
    from unlearnbench.results import Store
    from unlearnbench.runner import check_budgets, resolve, testbed_for, validate

    store = Store(store_root)
    groups: dict[str, Job] = {}
    tasks: dict[tuple[int, tuple[str, ...]], Task] = {}  # each testbed's task per forget set, for the budget checks
    complete: list[str] = []
    for spec in specs:
        resolved = resolve(spec)
        tb = testbed_for(spec, download=download)
        resolved.spec = validate(resolved.spec, tb)
        check_budgets(resolved, tb, tasks)
        if store.rows_path(resolved.run_id).is_file():
            verdict = store.verify(resolved.run_id)[0]
            if verdict.ok:
                complete.append(resolved.run_id)
                continue
            print(f"warning: run {resolved.run_id} runs again: {verdict.problem}", file=sys.stderr)
        key = resolved.unlearn_key(tb.model_sha)
        if key not in groups:
            groups[key] = Job()
            in_store = (store.cache / "unlearned" / key / "cost.json").is_file()
            groups[key].cached = in_store or resolved.method.shipped(tb.references, resolved.spec.forget)
            needs = resolved.method.prior(SamplerSettings(**dataclasses.asdict(resolved.spec.eval.sampler)))
            priors = PriorCache(store.cache / "priors", tb.model_sha, tb.priors)
            if needs is not None and not groups[key].cached and not priors.ready(*needs):
                groups[key].prior = prior_folder_name(needs[0], tb.model_sha, needs[1])
        groups[key].append(resolved.spec)
    if backend is None:
        return list(groups.values()), complete
    store.check_writable()  # after every spec is validated: a refused sweep leaves its folder untouched
    if groups:
        backend.start(str(store_root))
    return list(groups.values()), complete


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
    max_minutes: float | None = None,
    config: str | None = None,
) -> SweepReport:
    """Plan, then run every unfinished spec on ``backend`` (``local``, ``ray`` or a :class:`Backend`).

    Each run gets ``threads // workers`` torch threads on every backend. Runs that share an unlearning
    form a job: its first run goes first, and the others follow once it has finished, so the unlearned
    model is computed once and read from the store's cache (in parallel, where the backend has room). A job
    whose model is already cached or shipped goes out whole, in config order. Jobs whose unlearnings need one
    prior that is neither shipped nor cached (``UnlearningMethod.prior``: Selective Amnesia's Fisher) go out
    one after another until it is computed: the first computes it, and the others follow once its first run
    has ended, rather than holding a worker on the prior's lock (if that run ended without it, failed or out of
    time, the next held job computes it). ``config``, the file the specs
    came from, is named in the store's sweep log, so a store that several configs wrote states each one's time.
    """
    from unlearnbench.progress import bar
    from unlearnbench.results import Store

    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if address is not None and backend == "local":
        raise UserError("--address needs --backend ray")
    per_run = max(1, threads // workers)
    options: dict[str, Any] = {"address": address, "num_cpus": threads} if backend == "ray" else {}
    options["max_minutes"] = max_minutes
    runner = make_backend(backend, threads=per_run, device=device, plugins=plugins or [], workers=workers, **options)
    with runner:
        jobs, complete = plan(specs, store_root, None if plan_only else runner, download=download)
        skipped = len(complete)
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
        run_ids = complete + [s.run_id for job in jobs for s in job]
        with logged(store_root, runner, workers, run_ids, report, config) as progress:
            by_id = {s.run_id: s for job in jobs for s in job}
            followers: dict[str, list[RunSpec]] = {}
            held: dict[str, list[Job]] = {}  # an uncomputed prior -> the jobs held back for it, in config order
            computing: dict[str, str] = {}  # the run computing a prior -> that prior
            for job in jobs:  # in config order; a job's unlearning is computed by its first run, once
                followers[job[0].run_id] = [] if job.cached else job[1:]
                if job.prior in held:  # wait for it here, not on the prior's lock in a worker
                    held[job.prior].append(job)
                    continue
                if job.prior:
                    held[job.prior], computing[job[0].run_id] = [], job.prior
                for spec in job if job.cached else job[:1]:  # a model in the cache or shipped: no need to wait
                    runner.submit(spec)
            priors = Store(store_root).cache / "priors"
            ticker = iter(bar(range(total), desc="sweep", total=total, leave=True))
            for finished in runner.finished():
                for spec in followers.pop(finished.run_id, []):
                    runner.submit(spec)
                if finished.run_id in computing:
                    prior = computing.pop(finished.run_id)
                    waiting = held.pop(prior)
                    if waiting and not (priors / prior / "cost.json").is_file():  # it ended without computing it
                        computing[waiting[0][0].run_id], held[prior] = prior, waiting[1:]  # (failed, out of time)
                        waiting = waiting[:1]
                    for job in waiting:
                        runner.submit(job[0])
                if finished.status == "error":  # the task died: nothing was written, a resumed sweep reruns it
                    spec = by_id[finished.run_id]
                    report.errors.append(f"{spec.method}/{spec.attack}/{spec.forget_label}: {finished.error}")
                    report.failed += 1
                else:
                    report.done += 1
                    report.failed += finished.status != "ok"
                progress()
                next(ticker, None)
            for _ in ticker:
                pass
    return report


def config_record(config: str | None) -> dict[str, str]:
    """The sweep log's record of the config a sweep ran: its path (from the top of the git work tree it is in,
    so ``configs/text.toml`` from any folder, else absolute) and its bytes' sha256; ``"(flags)"`` for a sweep
    the command line alone described."""
    if not config:
        return {"config": "(flags)"}
    import hashlib

    path = Path(config).resolve()
    top = next((p for p in path.parents if (p / ".git").exists()), None)
    name = path.relative_to(top).as_posix() if top else path.as_posix()
    return {"config": name, "config_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


@contextmanager
def logged(
    store_root: str,
    runner: Backend,
    workers: int,
    run_ids: list[str],
    report: SweepReport,
    config: str | None = None,
) -> Iterator[Callable[[], None]]:
    """Log the sweep in the store's ``sweeps.jsonl``: a line when it starts, one each time a run finishes
    (status ``running``: what it has done so far, so a sweep the machine kills, which runs no ``finally``, still
    leaves its wall time up to its last saved run), and its last when it ends, however it ends (finished,
    interrupted, or an error). Each line holds its start, wall time, workers and threads, the processor, the runs
    already complete before it, the runs it planned, finished and lost, and its config (``config_record``); its
    first line also lists every run id of its grid (``run_ids``: which runs the config's share of the page
    counts, and which sweeps ran the same grid). The lines of one sweep share its ``started_unix``, and
    ``Store.sweeps`` merges them, the latest winning. A config's measured wall time over several sessions is
    the union of these spans (``results.sweep_wall_s``; the leaderboard prints it, and says when the last sweep
    stopped short). Yields the callable the sweep calls after each finished run."""
    import datetime as dt
    import time

    from unlearnbench.environment import git_sha, processor
    from unlearnbench.results import Store

    started, t0 = time.time(), time.perf_counter()
    fixed = {
        "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "started_unix": round(started, 3),
        "backend": runner.name,
        "workers": workers,
        "threads_per_run": runner.threads,
        "processor": processor(),
        "cpus": os.cpu_count(),
        "already_complete": report.skipped,
        "planned": len(run_ids) - report.skipped,
        "git_commit": git_sha(),
        **config_record(config),
    }
    store = Store(store_root)

    def log(status: str, **first: Any) -> None:
        wall = round(time.perf_counter() - t0, 3)
        progress = {"wall_s": wall, "status": status, "done": report.done, "failed": report.failed}
        store.log_sweep({**fixed, **progress, **first})

    log("running", run_ids=sorted(run_ids))
    status = "error"
    try:
        yield lambda: log("running")
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        log(status)
