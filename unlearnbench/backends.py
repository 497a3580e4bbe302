"""Sweep backends: where planned runs execute.

A backend does three things: start (or join) its workers and prove that every one of them can write the
store, accept one planned run at a time (:meth:`Backend.submit`), and stream the runs that finish
(:meth:`Backend.finished`). ``local`` is a pool of processes on this machine; ``ray`` submits each run as a
Ray task on a local or running cluster. The store is the only state they share: each run writes its own
files atomically (:meth:`unlearnbench.results.Store.write_run`), so a run is either complete or absent.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import socket
import sys
import traceback
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from unlearnbench.errors import UserError
from unlearnbench.spec import RunSpec

BACKENDS = ("local", "ray")
RAY_MISSING = "the ray backend needs Ray, which is not installed: pip install -e '.[ray]' (or pip install 'ray>=2.9')"


@dataclass(frozen=True)
class Finished:
    """A run that left the backend. ``status`` is the run's (``ok``/``failed``, both written to the store),
    or ``error`` when the task itself died (nothing written; a resumed sweep runs it again)."""

    run_id: str
    status: str
    error: str = ""


# ---------------------------------------------------------------------------------------------
# What a worker does (the same function on every backend)
# ---------------------------------------------------------------------------------------------


def setup_worker(threads: int, plugins: Sequence[str] = (), compile: bool = False) -> None:
    """Threads (torch's and the BLAS pools', :func:`~unlearnbench.environment.set_threads`), no progress
    bars, the ``--plugin`` modules and ``--compile`` (as the driver was asked), in a worker process, on
    this machine or on a cluster node whose environment the driver does not set."""
    from unlearnbench import progress, registry
    from unlearnbench.environment import set_threads

    set_threads(threads)
    os.environ["UNLEARNBENCH_COMPILE"] = "1" if compile else "0"
    progress.set_enabled(False)
    for module in plugins:
        registry.load_module_plugin(module)


_in_run = False  # a run is executing in this process (a local worker's signal handler interrupts it at once)


def execute_run(
    store_root: str,
    device: str,
    spec: dict[str, Any],
    threads: int,
    plugins: Sequence[str] = (),
    compile: bool = False,
    max_minutes: float | None = None,
) -> tuple[str, str, str]:
    """Run one planned spec into the store. Returns ``(run_id, status, error)``."""
    global _in_run
    from unlearnbench.results import Store
    from unlearnbench.runner import Runner

    setup_worker(threads, plugins, compile)
    _in_run = True
    try:
        df = Runner(Store(store_root), device=device, max_minutes=max_minutes).run(RunSpec.from_dict(spec))
    finally:
        _in_run = False
    error = df["error"].iloc[0]
    return str(df["run_id"].iloc[0]), str(df["status"].iloc[0]), error if isinstance(error, str) else ""


def probe_store(store_root: str, name: str, remove: bool = False) -> tuple[str, str]:
    """Write (or remove) ``runs/<name>`` in the store from wherever this runs: ``(host, error or '')``."""
    host = socket.gethostname()
    path = Path(store_root) / "runs" / name
    try:
        if remove:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(host)
    except OSError as e:
        return host, str(e.strerror or e)
    return host, ""


def _one_line(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()[0]


# ---------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------


class Backend(ABC):
    """Executes planned runs. Use as a context manager: leaving it on an exception cancels what is
    outstanding (a running run stops before it writes), and leaving it always releases the workers."""

    name: ClassVar[str]

    def __init__(
        self, *, threads: int = 1, device: str = "cpu", plugins: Sequence[str] = (), max_minutes: float | None = None
    ) -> None:
        self.threads = threads  # torch threads per run (the same on every backend: rows record it)
        self.device = device
        self.plugins = list(plugins)
        self.max_minutes = max_minutes  # each run's time limit (--max-minutes), or None
        self.store_root = ""
        from unlearnbench.environment import compile_enabled

        self.compile = compile_enabled()  # the driver's --compile, handed to every worker

    def configure(self, *, threads: int, device: str, plugins: Sequence[str], max_minutes: float | None = None) -> None:
        self.threads, self.device, self.plugins = threads, device, list(plugins)
        self.max_minutes = max_minutes

    def run_args(self, spec: RunSpec) -> tuple[Any, ...]:
        """:func:`execute_run`'s arguments for ``spec``, on every backend."""
        config = (self.threads, self.plugins, self.compile, self.max_minutes)
        return (self.store_root, self.device, spec.to_dict(), *config)

    @abstractmethod
    def start(self, store_root: str) -> None:
        """Start or join the workers; :class:`UserError` if one of them cannot write ``store_root``."""

    @abstractmethod
    def submit(self, spec: RunSpec) -> None:
        """Queue one planned run."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Runs submitted and not yet streamed by :meth:`finished`."""

    @abstractmethod
    def _wait(self, timeout: float) -> list[Finished]:
        """Runs that finished within ``timeout`` seconds (possibly none)."""

    @abstractmethod
    def cancel(self) -> None:
        """Drop queued runs and stop running ones before they write."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers."""

    def finished(self) -> Iterator[Finished]:
        """Finished runs as they come, until none is pending (runs submitted meanwhile included). The short
        wait keeps Ctrl-C responsive."""
        while self.pending:
            yield from self._wait(timeout=0.5)

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is not None:
                self.cancel()
        finally:
            self.close()


def make_backend(
    name: str | Backend,
    *,
    threads: int,
    device: str,
    plugins: Sequence[str] = (),
    workers: int = 1,
    max_minutes: float | None = None,
    **options: Any,
) -> Backend:
    """A backend by name (``local`` or ``ray``), or a configured instance passed through."""
    if isinstance(name, Backend):
        name.configure(threads=threads, device=device, plugins=plugins, max_minutes=max_minutes)
        return name
    common = {"threads": threads, "device": device, "plugins": plugins, "max_minutes": max_minutes}
    if name == "local":
        return LocalBackend(workers=workers, **common)
    if name == "ray":
        return RayBackend(**common, **options)
    raise UserError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")


# ---------------------------------------------------------------------------------------------
# local: processes on this machine
# ---------------------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Linux: a worker gets SIGKILL when the sweep process dies, even by SIGKILL (no orphans burning CPU).
    The request only covers a parent alive when it is made: a sweep killed while its workers were still
    importing torch (seconds) had already handed them to init, and they lived on, a GiB each, until the
    machine restarted. So a worker whose parent is no longer ``parent`` exits at once."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _local_worker_init(parent: int, threads: int, plugins: Sequence[str], compile: bool) -> None:
    from unlearnbench.progress import STOP_SIGNALS, install_interrupt_handler

    _die_with_parent(parent)
    # SIGINT or SIGTERM (from :meth:`LocalBackend.cancel`, a terminal or a process-group kill) stops the run in
    # flight before it writes, even where a library swallows the KeyboardInterrupt, and a run already queued to
    # this worker at its first step. Between runs it only sets the flag: a worker prints nothing (the sweep's
    # one line is its parent's). The signals were blocked since the worker was spawned (see
    # :meth:`LocalBackend.submit`); one that came meanwhile is delivered here, to this handler.
    install_interrupt_handler(raise_now=lambda: _in_run)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    setup_worker(threads, plugins, compile)


class LocalBackend(Backend):
    """``workers`` spawned processes on this machine (the default)."""

    name = "local"

    def __init__(self, *, workers: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future[tuple[str, str, str]], str] = {}

    def start(self, store_root: str) -> None:
        from unlearnbench.results import Store

        Store(store_root).check_writable()  # the workers are this machine's processes
        self.store_root = store_root
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_local_worker_init,
            initargs=(os.getpid(), self.threads, self.plugins, self.compile),
        )

    def submit(self, spec: RunSpec) -> None:
        from unlearnbench.progress import STOP_SIGNALS

        if self._pool is None:
            raise RuntimeError("LocalBackend.submit before start()")
        # A worker is spawned here when the pool has none idle: with SIGINT and SIGTERM blocked, which it inherits
        # until its initializer has installed its handler, so a signal while it imports torch is neither a
        # traceback nor a kill. Here they wait until submit returns.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            fut = self._pool.submit(execute_run, *self.run_args(spec))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self._futures[fut] = spec.run_id

    @property
    def pending(self) -> int:
        return len(self._futures)

    def _wait(self, timeout: float) -> list[Finished]:
        done, _ = wait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        for fut in done:
            run_id = self._futures.pop(fut)
            try:
                out.append(Finished(*fut.result()))
            except Exception as e:  # a bug or a dead worker must not stop the grid
                out.append(Finished(run_id, "error", _one_line(e)))
        return out

    def cancel(self) -> None:
        """Drop the queued runs and interrupt the running ones: a Ctrl-C at a terminal reaches the workers
        too (one process group), but a SIGINT sent to the sweep's pid alone would otherwise leave
        :meth:`close` waiting for every run in flight to finish."""
        for fut in self._futures:
            fut.cancel()
        self._futures.clear()
        processes = getattr(self._pool, "_processes", None) or {}  # CPython's pool keeps them by pid
        for process in list(processes.values()):
            if process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGINT)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# ---------------------------------------------------------------------------------------------
# ray: one task per run on a Ray cluster
# ---------------------------------------------------------------------------------------------


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


class RayBackend(Backend):
    """Each run is a Ray task asking for ``threads`` CPUs (and one GPU with ``device='cuda'``).

    ``address``: a running cluster (``auto`` or ``host:port``; ``RAY_ADDRESS`` is honoured too); without
    one, a local cluster of ``num_cpus`` CPUs is started and stopped with the sweep. If Ray is already
    initialised in this process, that cluster is used and left running. ``max_retries`` is Ray's
    task-retry count after a worker dies (Ray's default when None); a run that still fails is reported,
    writes nothing, and runs again when the sweep is resumed.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ray = import_ray()  # fail before any work when Ray is missing
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self._owns_connection = False
        self._refs: dict[Any, str] = {}
        self._task: Any = None
        self._options: dict[str, Any] = {}

    def start(self, store_root: str) -> None:
        ray = self.ray
        # Workers on other machines resolve the path themselves, so it must not depend on this cwd.
        self.store_root = str(Path(store_root).resolve())
        if not ray.is_initialized():
            common: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
            if self.address or os.environ.get("RAY_ADDRESS"):
                where = self.address or os.environ["RAY_ADDRESS"]
                try:
                    ray.init(address=self.address, **common)
                except (ConnectionError, ValueError) as e:
                    raise UserError(f"--address {where!r}: no Ray cluster there ({str(e).splitlines()[0]})") from None
            else:
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, **common)
            self._owns_connection = True
        self._check_resources()
        self._check_store()
        options: dict[str, Any] = {"num_cpus": self.threads, "num_gpus": 1 if self.device.startswith("cuda") else 0}
        if self.max_retries is not None:
            options["max_retries"] = self.max_retries
        self._options = options
        self._task = ray.remote(execute_run)

    def _nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def _check_resources(self) -> None:
        need = {"CPU": self.threads, "GPU": 1 if self.device.startswith("cuda") else 0}
        for resource, amount in need.items():
            largest = max((n["Resources"].get(resource, 0) for n in self._nodes()), default=0)
            if amount and largest < amount:
                print(
                    f"warning: no Ray node has {amount} {resource} (largest: {largest:g}); "
                    "runs wait until such a node joins",
                    file=sys.stderr,
                )

    def _check_store(self) -> None:
        """Every node writes a probe file into the store, and this machine must see each one: a path that
        is local to each node (not shared) fails here, before any work."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        probe = ray.remote(probe_store)

        def on(node: dict[str, Any]) -> Any:
            return probe.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            )

        names = {n["NodeID"]: f".probe.{uuid.uuid4().hex}" for n in self._nodes()}
        nodes = {n["NodeID"]: n for n in self._nodes()}
        results = ray.get([on(nodes[i]).remote(self.store_root, names[i]) for i in names])
        problems = []
        for (node_id, name), (host, error) in zip(names.items(), results, strict=True):
            where = f"Ray node {host} ({nodes[node_id].get('NodeManagerAddress', '?')})"
            if error:
                problems.append(f"{where} cannot write it ({error})")
            elif not self._sees(Path(self.store_root) / "runs" / name):
                problems.append(f"{where} wrote a file there that this machine does not see: not shared storage")
        ray.get([on(nodes[i]).remote(self.store_root, names[i], True) for i in names])
        if problems:
            raise UserError(
                f"results folder {self.store_root!r}: {problems[0]}; the store must be one shared path "
                "that every Ray node can write"
            )

    def _sees(self, path: Path) -> bool:
        """Whether this machine sees a file that a node wrote (the store is shared)."""
        return path.is_file()

    def submit(self, spec: RunSpec) -> None:
        if self._task is None:
            raise RuntimeError("RayBackend.submit before start()")
        task = self._task.options(
            **self._options, name=f"unlearnbench {spec.method}/{spec.attack}/forget {spec.forget_label}"
        )
        ref = task.remote(*self.run_args(spec))
        self._refs[ref] = spec.run_id

    @property
    def pending(self) -> int:
        return len(self._refs)

    def _wait(self, timeout: float) -> list[Finished]:
        ray = self.ray
        done, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if done:  # collect everything else that is ready too, without waiting
            done, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        out = []
        for ref in done:
            run_id = self._refs.pop(ref)
            try:
                out.append(Finished(*ray.get(ref)))
            except ray.exceptions.RayTaskError as e:  # the run raised: report its own exception
                cause = e.cause if isinstance(e.cause, BaseException) else e
                out.append(Finished(run_id, "error", _one_line(cause)))
            except ray.exceptions.RayError as e:  # the worker or its node died
                out.append(Finished(run_id, "error", _one_line(e)))
        return out

    def cancel(self) -> None:
        """Queued tasks are dropped; running ones get KeyboardInterrupt, so they stop before writing (the
        store's writes are atomic, so even a run stopped inside a write leaves no partial file)."""
        ray = self.ray
        refs = list(self._refs)
        for ref in refs:
            ray.cancel(ref, force=False)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=30)
        self._refs.clear()

    def close(self) -> None:
        if self._owns_connection:
            self.ray.shutdown()  # stops a cluster this backend started; only disconnects from a running one
            self._owns_connection = False
