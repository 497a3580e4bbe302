"""Sweep backends: local and Ray plan and write the same runs; faults and resumes lose or duplicate nothing.

The end-to-end Ray tests start local Ray clusters of two CPUs and take minutes, so they are in the slow
suite (``tox -e slow``; ``.ci/run`` installs the ``ray`` extra and runs this file). The error paths are
in the default suite; those that need Ray skip without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import check_store
from unlearnbench.backends import Backend, Finished
from unlearnbench.cli import main
from unlearnbench.results import Store

ROOT = Path(__file__).resolve().parent.parent

# Two methods x two attacks x two classes: 8 runs in 4 jobs (a relearning run follows its unlearning).
GRID = """
methods = [{ name = "noop" }, { name = "safemax", args = { steps = 2, batch_size = 8 } }]
attacks = [{ name = "none" }, { name = "relearn", args = { steps = 2, k = 2, batch_size = 2, eval_every = 1 } }]
forget_classes = [1, 7]

[eval]
forget_samples = 3
retain_samples = 1
curve_samples = 2
sample_steps = 3
"""
RUNS = 8

# What measures the run itself, and so differs between any two executions; everything else must match.
RUN_MEASURE_COLUMNS = ["wall_s", "started_at", "host"]  # wall seconds, start time, host (where recorded)
RUN_MEASURE_METRICS = [  # rows whose value is wall or CPU seconds or peak memory
    f"{prefix}cost_{what}" for prefix in ("", "attack_") for what in ("wall_s", "cpu_s", "peak_mem_mb", "prior_wall_s")
]
KEY = ["run_id", "phase", "attack_step", "split", "class_id", "metric"]


def specs() -> list[Any]:
    import tomllib

    from unlearnbench.grid import grid_from_config

    return grid_from_config(tomllib.loads(GRID)).specs()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unlearnbench.cli", *args]


def env() -> dict[str, str]:
    return {**os.environ, "UNLEARNBENCH_PROGRESS": "0", "UNLEARNBENCH_THREADS": "1"}


def sweep_cmd(config: Path, store: Path, backend: str) -> list[str]:
    args = ["sweep", "--config", str(config), "--out", str(store), "--workers", "2", "--threads", "2"]
    return cli(*args, "--backend", backend, "--quiet")


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    """Every column, less the run's own measurements (named above), sorted by the row key."""
    df = df.drop(columns=[c for c in RUN_MEASURE_COLUMNS if c in df.columns]).copy()
    df.loc[df.metric.isin(RUN_MEASURE_METRICS), "value"] = np.nan
    return df.sort_values(KEY).reset_index(drop=True)


def assert_same_runs(store: Path, reference: Path) -> None:
    """Zero runs lost, zero duplicated, and the same rows as the reference."""
    got, want = check_store(store), check_store(reference)
    assert sorted(got.run_id.unique()) == sorted(want.run_id.unique()), "a run is missing or extra"
    assert len(got) == len(want), "rows lost or duplicated"
    pd.testing.assert_frame_equal(comparable(got), comparable(want))


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        children = parents.get(stack.pop(), [])
        out += children
        stack += children
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pids: list[int]) -> list[int]:
    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    return [p for p in pids if running(p)]


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def complete_runs(store: Path) -> int:
    return len(list((store / "runs").glob("*.parquet"))) if (store / "runs").is_dir() else 0


# ---------------------------------------------------------------------------------------------
# Error paths (default suite)
# ---------------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_ray_backend_without_ray_is_one_error_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    store = tmp_path / "s"
    code, err = run_cli(capsys, "sweep", "--methods", "noop", "--backend", "ray", "--out", str(store), "--quiet")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: the ray backend needs Ray")
    assert "pip install -e '.[ray]'" in err and "Traceback" not in err
    assert not list(store.glob("runs/*.parquet"))


def test_address_without_ray_backend_and_unknown_backend(capsys, tmp_path):
    code, err = run_cli(capsys, "sweep", "--methods", "noop", "--address", "auto", "--out", str(tmp_path / "s"))
    assert code == 2 and err.strip() == "error: --address needs --backend ray"
    code, err = run_cli(capsys, "sweep", "--methods", "noop", "--backend", "dask", "--out", str(tmp_path / "s"))
    assert code == 2 and err.startswith("error: argument --backend: invalid choice: 'dask'")


def test_ray_address_without_a_cluster_is_one_error_line(capsys, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    store = tmp_path / "s"
    argv = ["sweep", "--methods", "noop", "--backend", "ray", "--address", "auto", "--out", str(store), "--quiet"]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --address 'auto': no Ray cluster there (Could not find any running Ray instance")
    assert not list(store.glob("runs/*.parquet"))


class RecordingBackend(Backend):
    """Runs nothing: logs what the sweep submits, and finishes runs one at a time in submission order."""

    name = "recording"

    def start(self, store_root: str) -> None:
        self.log: list[tuple[str, str, str, int]] = []  # (event, method, attack, forget class)
        self.queue: list[Any] = []
        self.closed = False

    def submit(self, spec: Any) -> None:
        self.log.append(("submit", spec.method, spec.attack, int(spec.forget[0])))
        self.queue.append(spec)

    @property
    def pending(self) -> int:
        return len(self.queue)

    def _wait(self, timeout: float) -> list[Finished]:
        spec = self.queue.pop(0)
        self.log.append(("finish", spec.method, spec.attack, int(spec.forget[0])))
        return [Finished(spec.run_id, "ok")]

    def cancel(self) -> None:
        self.queue.clear()

    def close(self) -> None:
        self.closed = True


def test_a_job_runs_its_unlearning_first_and_its_attacks_after_it(tmp_path):
    from unlearnbench.sweep import run_sweep

    backend = RecordingBackend()
    report = run_sweep(specs(), str(tmp_path / "s"), workers=2, threads=2, backend=backend)
    assert (report.done, report.failed, report.skipped) == (RUNS, 0, 0)
    assert backend.closed and backend.threads == 1  # threads // workers, as on every backend
    # The four jobs' first runs (attack 'none' computes the unlearning) go out at once ...
    assert backend.log[:4] == [("submit", m, "none", fc) for m in ("noop", "safemax") for fc in (1, 7)]
    # ... and each relearning run only once its own job's first run has finished.
    for m in ("noop", "safemax"):
        for fc in (1, 7):
            assert backend.log.index(("submit", m, "relearn", fc)) > backend.log.index(("finish", m, "none", fc))
    assert sum(event == "submit" for event, *_ in backend.log) == RUNS


def test_a_job_whose_unlearned_model_is_ready_goes_out_whole_in_config_order(tmp_path):
    """retrain's model is shipped for classes 1 and 7: its attack runs need not wait behind anything, so
    they go out at once, in the config's order, before the other jobs' followers."""
    import tomllib

    from unlearnbench.grid import grid_from_config
    from unlearnbench.sweep import run_sweep

    grid = tomllib.loads(GRID.replace('{ name = "noop" }', '{ name = "retrain" }'))
    backend = RecordingBackend()
    report = run_sweep(grid_from_config(grid).specs(), str(tmp_path / "s"), workers=2, threads=2, backend=backend)
    assert (report.done, report.failed) == (RUNS, 0)
    submitted = [entry for entry in backend.log if entry[0] == "submit"]
    assert submitted[:6] == [
        ("submit", "retrain", "none", 1), ("submit", "retrain", "relearn", 1),
        ("submit", "retrain", "none", 7), ("submit", "retrain", "relearn", 7),
        ("submit", "safemax", "none", 1), ("submit", "safemax", "none", 7),
    ]  # fmt: skip
    for fc in (1, 7):  # safemax's model is not ready: its relearning still waits for its unlearning
        assert backend.log.index(("submit", "safemax", "relearn", fc)) > backend.log.index(
            ("finish", "safemax", "none", fc)
        )


def test_each_sweep_logs_how_long_it_ran_and_how_it_ended_even_when_interrupted(tmp_path, monkeypatch):
    from unlearnbench.results import Store
    from unlearnbench.sweep import run_sweep

    root = str(tmp_path / "s")
    seen: list[list[dict]] = []

    class Interrupted(RecordingBackend):
        def _wait(self, timeout: float) -> list[Finished]:
            if sum(event == "finish" for event, *_ in self.log) == 3:
                seen.append(Store(root).sweeps())  # what a SIGKILL here (no finally) would leave
                raise KeyboardInterrupt  # Ctrl-C after three runs
            return super()._wait(timeout)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(specs(), root, workers=2, threads=2, backend=Interrupted())
    [running] = seen[0]  # one sweep, by its latest line: the progress after its third saved run
    assert (running["status"], running["done"], running["planned"]) == ("running", 3, RUNS)
    assert running["wall_s"] >= 0 and running["workers"] == 2
    config = tmp_path / "grid.toml"
    config.write_text("methods = ['safemax']\n")
    run_sweep(specs(), root, workers=2, threads=2, backend=RecordingBackend(), config=str(config))
    first, second = Store(root).sweeps()
    assert first["config"] == "(flags)" and "config_sha256" not in first  # the command line alone described it
    assert second["config"] == config.resolve().as_posix()  # outside a git work tree: absolute
    assert second["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    from unlearnbench.prepare import resolve, testbed_for, validate
    from unlearnbench.sweep import config_record

    ids = sorted(validate(resolve(s).spec, testbed_for(s)).run_id for s in specs())
    assert first["run_ids"] == second["run_ids"] == ids  # the grid's runs, from its first line
    assert (first["status"], first["done"], first["planned"]) == ("interrupted", 3, RUNS)
    assert (second["status"], second["done"], second["planned"]) == ("finished", RUNS, RUNS)
    assert first["already_complete"] == second["already_complete"] == 0  # this backend writes no run
    assert first["workers"] == 2 and first["threads_per_run"] == 1 and first["backend"] == "recording"
    assert 0 <= first["wall_s"] < 60 and second["started_unix"] >= first["started_unix"] + first["wall_s"]
    assert first["processor"] and first["started"].endswith("+00:00")
    monkeypatch.chdir(tmp_path)  # inside a git work tree: from its top, whatever the folder
    text = ROOT / "configs" / "text.toml"
    in_git = "configs/text.toml" if (ROOT / ".git").exists() else text.as_posix()  # a clone, or an unpacked tarball
    assert config_record(str(text))["config"] == in_git
    planner = RecordingBackend()
    run_sweep(specs(), str(tmp_path / "plan"), workers=2, threads=2, backend=planner, plan_only=True)
    run_sweep(specs(), root, workers=2, threads=2, backend=RecordingBackend(), plan_only=True)
    assert len(Store(root).sweeps()) == 2  # a plan runs nothing and logs nothing,
    assert not hasattr(planner, "log") and not (tmp_path / "plan").exists()  # starts no worker, writes nothing


def test_seeds_share_one_unlearning_only_for_a_method_that_ignores_the_run_seed(tmp_path):
    from unlearnbench.spec import RunSpec
    from unlearnbench.sweep import plan

    grid = [
        RunSpec(method=m, forget=(1,), seed=seed, method_args=args)
        for m, args in (("retrain", {"steps": 2}), ("safemax", {}))
        for seed in (0, 1)
    ]
    jobs, _ = plan(grid, str(tmp_path / "s"))
    by_method = {m: [[s.seed for s in job] for job in jobs if job[0].method == m] for m in ("retrain", "safemax")}
    assert by_method == {"retrain": [[0, 1]], "safemax": [[0], [1]]}  # retrain follows its recipe's seed


def test_ray_store_that_a_worker_cannot_write_fails_at_plan_time(tmp_path):
    pytest.importorskip("ray")
    from unlearnbench.backends import RayBackend
    from unlearnbench.errors import UserError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    backend = RayBackend(threads=1, num_cpus=1)
    with backend, pytest.raises(UserError, match=r"Ray node .* cannot write it .* every Ray node can write"):
        backend.start(str(blocker / "store"))  # the workers' own check, not this process's


def test_ray_store_on_each_nodes_own_disk_fails_at_plan_time(tmp_path):
    pytest.importorskip("ray")
    from unlearnbench.backends import RayBackend
    from unlearnbench.errors import UserError

    class NodeLocalStore(RayBackend):
        """One machine cannot have a disk that its Ray node does not share: this driver plays one that
        does not see what the node wrote (the node's probe itself is real)."""

        def _sees(self, path: Path) -> bool:
            assert path.is_file()  # the real node did write it
            return False

    backend = NodeLocalStore(threads=1, num_cpus=1)
    with backend, pytest.raises(UserError, match=r"wrote a file there that this machine does not see: not shared"):
        backend.start(str(tmp_path / "store"))
    assert not list((tmp_path / "store" / "runs").glob(".probe.*")), "the probe files were not removed"


# ---------------------------------------------------------------------------------------------
# Ray end to end (slow suite)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grid") / "grid.toml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The grid swept once by the local backend."""
    from unlearnbench.sweep import run_sweep

    store = tmp_path_factory.mktemp("local") / "store"
    report = run_sweep(specs(), str(store), workers=2, threads=2, backend="local")
    assert (report.done, report.failed) == (RUNS, 0), report.errors
    return store


@pytest.fixture
def ray_cluster() -> Any:
    """A local Ray cluster of two CPUs in this process, stopped after the test."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_backend_gives_the_local_backends_plan_and_rows(tmp_path, reference, ray_cluster):
    from unlearnbench.backends import RayBackend
    from unlearnbench.sweep import plan, run_sweep

    store = tmp_path / "ray"
    local_plan, _ = plan(specs(), str(tmp_path / "empty"))
    backend = RayBackend()
    report = run_sweep(specs(), str(store), workers=2, threads=2, backend=backend)
    assert (report.done, report.failed, report.errors) == (RUNS, 0, [])
    assert ray_cluster.is_initialized(), "the backend must leave a cluster it did not start running"

    got, want = check_store(store), check_store(reference)
    planned = sorted(s.run_id for job in local_plan for s in job)
    assert sorted(got.run_id.unique()) == planned == sorted(want.run_id.unique())
    assert len(got) == len(want) > 0
    assert set(got.columns) == set(want.columns)
    pd.testing.assert_frame_equal(comparable(got), comparable(want))  # every other column, exactly
    measured = got[got.metric.isin(RUN_MEASURE_METRICS)]
    assert len(measured) and measured.value.notna().all()  # the excluded rows exist and were measured
    for run_id in planned:  # the per-run work: spec and sample grids
        assert Store(store).meta(run_id)["spec"] == Store(reference).meta(run_id)["spec"]
        ray_samples, local_samples = Store(store).samples(run_id), Store(reference).samples(run_id)
        assert ray_samples.keys() == local_samples.keys() and ray_samples
        for name, array in ray_samples.items():
            np.testing.assert_array_equal(array, local_samples[name])


@pytest.mark.slow
def test_ray_worker_killed_mid_sweep_then_resume_loses_nothing(tmp_path, reference, ray_cluster):
    from unlearnbench.backends import RayBackend
    from unlearnbench.sweep import run_sweep

    store = tmp_path / "store"
    outcome: dict[str, Any] = {}

    def sweep() -> None:
        try:  # Ray's own retries off: the resumed sweep must be what recovers the run
            outcome["report"] = run_sweep(specs(), str(store), workers=2, threads=2, backend=RayBackend(max_retries=0))
        except BaseException as e:  # surfaced below
            outcome["error"] = e

    thread = threading.Thread(target=sweep)
    thread.start()
    try:

        def a_running_task() -> list[int]:
            return [p for p in descendants(os.getpid()) if cmdline(p).startswith("ray::unlearnbench ")]

        victim = wait_for(a_running_task, 900, "a Ray worker running a sweep task")[0]
        victim_task = cmdline(victim).strip()
        os.kill(victim, signal.SIGKILL)
    finally:
        thread.join(timeout=1800)
    assert not thread.is_alive(), "the sweep did not finish after its worker was killed"
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert report.failed == len(report.errors) == 1, (victim_task, report.errors)
    assert "died" in report.errors[0].lower() or "crash" in report.errors[0].lower(), report.errors
    assert report.done == RUNS - 1
    assert check_store(store).run_id.nunique() == RUNS - 1  # the killed run wrote nothing

    resumed = run_sweep(specs(), str(store), workers=2, threads=2, backend=RayBackend(max_retries=0))
    assert (resumed.skipped, resumed.done, resumed.failed) == (RUNS - 1, 1, 0)
    assert_same_runs(store, reference)


@contextlib.contextmanager
def ray_sweep_once(grid_file: Path, store: Path, runs: int) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """A Ray-backend sweep in a subprocess, handed over once ``runs`` runs are complete; afterwards no process
    of it (driver or its local cluster) is left behind."""
    proc = subprocess.Popen(
        sweep_cmd(grid_file, store, "ray"), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    cluster: list[int] = []
    try:
        wait_for(lambda: complete_runs(store) >= runs or proc.poll() is not None, 1800, f"{runs} finished run(s)")
        assert proc.poll() is None, "the sweep ended too early: " + proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        cluster = descendants(proc.pid)  # the local Ray cluster it started, with its workers
        yield proc, cluster
        wait_for(lambda: not alive(cluster), 600, "the sweep's Ray processes to exit")
    finally:
        for pid in alive(cluster):  # only on failure: do not leave them behind
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_ray_driver_killed_mid_sweep_then_resume_loses_nothing(tmp_path, reference, grid_file):
    pytest.importorskip("ray")
    store = tmp_path / "store"
    with ray_sweep_once(grid_file, store, 2) as (proc, cluster):
        assert any(cmdline(p).startswith("ray::") for p in cluster)
        proc.send_signal(signal.SIGKILL)
        proc.wait()  # the cluster shares the driver's fate: checked on leaving the block
    before = check_store(store).run_id.nunique()
    assert 2 <= before < RUNS

    # Resume on the other backend: the store, not the backend, is what a sweep resumes from.
    done = subprocess.run(sweep_cmd(grid_file, store, "local"), env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{before} already complete, {RUNS - before} to run" in done.stderr
    assert_same_runs(store, reference)


@pytest.mark.slow
def test_ray_ctrl_c_cancels_outstanding_runs_and_writes_nothing_partial(tmp_path, grid_file):
    pytest.importorskip("ray")
    store = tmp_path / "store"
    with ray_sweep_once(grid_file, store, 1) as (proc, _cluster):
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    text = err.decode()
    assert proc.returncode == 130, text[-2000:]
    assert "interrupted" in text and "Traceback" not in text
    assert check_store(store).run_id.nunique() < RUNS  # outstanding runs were cancelled, finished ones kept


def test_a_plan_builds_one_task_per_forget_set_and_none_for_an_attack_that_checks_nothing(tmp_path, monkeypatch):
    """The budget checks read the task's images; on text16 a task encodes every training caption, so a plan that
    built one per run took minutes on configs/text.toml. 'none' checks nothing; relearn's four runs share two."""
    from unlearnbench import prepare
    from unlearnbench.sweep import plan

    built: list[tuple[str, ...]] = []
    real = prepare.build_task

    def counting(spec: Any, tb: Any, device: Any) -> Any:
        built.append(tuple(spec.forget))
        return real(spec, tb, device)

    monkeypatch.setattr(prepare, "build_task", counting)
    jobs, complete = plan(specs(), str(tmp_path / "s"))
    assert (sum(len(j) for j in jobs), complete) == (RUNS, [])
    assert sorted(built) == [("1",), ("7",)]


def test_jobs_that_need_one_uncomputed_prior_wait_for_its_first_in_the_sweep_not_in_a_worker(tmp_path):
    """Selective Amnesia's Fisher, at a setting the testbed does not ship: the job computing it goes out, the
    other job needing it follows its first run, and a job needing no prior goes out at once, ahead of it."""
    import tomllib

    from unlearnbench.grid import grid_from_config
    from unlearnbench.sweep import plan, run_sweep

    sa = '{ name = "selective_amnesia", args = { steps = 2, batch_size = 8, samples_per_class = 1, replay_steps = 3 } }'
    grid = tomllib.loads(GRID.replace('{ name = "noop" }', sa))
    jobs, _ = plan(grid_from_config(grid).specs(), str(tmp_path / "s"))
    assert [(j[0].method, bool(j.prior)) for j in jobs] == [
        ("selective_amnesia", True), ("selective_amnesia", True), ("safemax", False), ("safemax", False),
    ]  # fmt: skip
    assert jobs[0].prior == jobs[1].prior and jobs[0].prior.startswith("selective_amnesia-")
    backend = RecordingBackend()
    report = run_sweep(grid_from_config(grid).specs(), str(tmp_path / "s"), workers=2, threads=2, backend=backend)
    assert (report.done, report.failed) == (RUNS, 0)
    submitted = [entry for entry in backend.log if entry[0] == "submit"]
    assert submitted[:3] == [
        ("submit", "selective_amnesia", "none", 1), ("submit", "safemax", "none", 1), ("submit", "safemax", "none", 7),
    ]  # fmt: skip
    assert backend.log.index(("submit", "selective_amnesia", "none", 7)) > backend.log.index(
        ("finish", "selective_amnesia", "none", 1)
    )

    # a run that ends without the prior (it failed) hands it to the next held job alone, not to every job at once
    class FailsFirst(RecordingBackend):
        def _wait(self, timeout: float) -> list[Finished]:
            [done] = super()._wait(timeout)
            return (
                [Finished(done.run_id, "error", "killed")]
                if self.log[-1][1:] == ("selective_amnesia", "none", 1)
                else [done]
            )

    three = tomllib.loads(GRID.replace('{ name = "noop" }', sa).replace("[1, 7]", "[1, 4, 7]"))
    backend = FailsFirst()
    report = run_sweep(grid_from_config(three).specs(), str(tmp_path / "u"), workers=2, threads=2, backend=backend)
    assert report.failed == 1 and sum(event == "submit" for event, *_ in backend.log) == 12
    first_sa = [e for e in backend.log if e[1:] in {("selective_amnesia", "none", c) for c in (1, 4, 7)}]
    assert first_sa == [
        ("submit", "selective_amnesia", "none", 1), ("finish", "selective_amnesia", "none", 1),
        ("submit", "selective_amnesia", "none", 4), ("finish", "selective_amnesia", "none", 4),
        ("submit", "selective_amnesia", "none", 7), ("finish", "selective_amnesia", "none", 7),
    ]  # fmt: skip
    # the testbed's shipped prior (its default setting) is ready: nothing waits for it
    shipped = tomllib.loads(GRID.replace('{ name = "noop" }', '{ name = "selective_amnesia" }'))
    jobs, _ = plan(grid_from_config(shipped).specs(), str(tmp_path / "t"))
    assert [j.prior for j in jobs] == ["", "", "", ""]
