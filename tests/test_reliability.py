"""Crash safety, interruption, concurrent writers, safe loading."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import check_store
from unlearnbench.results import Store

ROOT = Path(__file__).resolve().parent.parent
SMOKE = [
    "--forget-samples",
    "3",
    "--retain-samples",
    "1",
    "--curve-samples",
    "2",
    "--sample-steps",
    "3",
    "--quiet",
]
GRID = """
methods = [{ name = "noop" }, { name = "safemax", args = { steps = 2, batch_size = 8 } },
           { name = "finetune", args = { steps = 2, batch_size = 8 } }]
attacks = [{ name = "none" }, { name = "relearn", args = { steps = 2, k = 2, batch_size = 2, eval_every = 1 } }]
forget_classes = [1, 7]
"""
# The default suite's grid: still two writers on every run and every shared cache, a third of the runs.
SMALL_GRID = """
methods = [{ name = "noop" }, { name = "safemax", args = { steps = 2, batch_size = 8 } }]
attacks = [{ name = "relearn", args = { steps = 2, k = 2, batch_size = 2, eval_every = 1 } }]
forget_classes = [1, 7]
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unlearnbench.cli", *args]


def env() -> dict[str, str]:
    return {**os.environ, "UNLEARNBENCH_PROGRESS": "0", "UNLEARNBENCH_THREADS": "1"}


def sweep_cmd(config: Path, store: Path, workers: int = 2) -> list[str]:
    return cli(
        "sweep", "--config", str(config), "--out", str(store), "--workers", str(workers), "--threads", "2", *SMOKE
    )


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    keep = ["run_id", "phase", "attack_step", "split", "class_id", "metric", "value"]
    noisy = df.metric.str.contains("cost")
    return df[~noisy][keep].sort_values(keep[:-1]).reset_index(drop=True)


def kill_and_resume(tmp_path: Path, points: int, seed: int = 0, grid: str = GRID) -> dict[str, int]:
    config = tmp_path / "grid.toml"
    config.write_text(grid)
    clean = tmp_path / "clean"
    subprocess.run(sweep_cmd(config, clean), env=env(), check=True, capture_output=True)
    reference = comparable(check_store(clean))
    rng = random.Random(seed)
    kills = attempts = rounds = 0
    store = tmp_path / "killed-0"

    def finish_and_compare(store: Path) -> pd.DataFrame:
        subprocess.run(sweep_cmd(config, store), env=env(), check=True, capture_output=True)
        final = comparable(check_store(store))
        assert set(final.run_id) == set(reference.run_id), "a run is missing"
        assert len(final) == len(reference), "rows lost or duplicated"
        pd.testing.assert_frame_equal(final, reference)
        return final

    # Kill until `points` SIGKILLs have landed. When a sweep completes before its kill (the grid is done),
    # that store is resumed, compared with the reference, and a fresh store takes over.
    while kills < points and attempts < 4 * points:
        attempts += 1
        proc = subprocess.Popen(
            sweep_cmd(config, store), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.5, 12.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        check_store(store)  # readable and never partial after every kill
        if proc.returncode == 0:
            finish_and_compare(store)
            rounds += 1
            store = tmp_path / f"killed-{rounds}"
    final = finish_and_compare(store)
    return {
        "kills": kills,
        "attempts": attempts,
        "stores": rounds + 1,
        "runs": final.run_id.nunique(),
        "rows": len(final),
    }


def test_sigkill_at_random_points_then_resume_loses_nothing(tmp_path):
    result = kill_and_resume(tmp_path, points=3, grid=SMALL_GRID)
    assert result["kills"] >= 3


@pytest.mark.slow
def test_sigkill_at_twelve_random_points(tmp_path):
    result = kill_and_resume(tmp_path, points=12, seed=1)
    print(f"kill-and-resume: {result}")
    assert result["kills"] >= 12


def test_two_sweeps_on_one_store_at_once(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text(SMALL_GRID)
    store = tmp_path / "shared"
    procs = [subprocess.Popen(sweep_cmd(config, store, workers=1), env=env(), stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=1800)  # bounds a hang; never fails for slowness alone
        assert p.returncode == 0, err.decode()[-2000:]
    df = check_store(store)
    assert df.run_id.nunique() == 4  # 2 methods x 1 attack x 2 classes, each exactly once
    per_run = df.groupby("run_id").size()
    assert per_run.min() > 0


def _left_after(mark: str, seconds: float = 60.0) -> list[int]:
    """The processes carrying ``mark`` still alive after waiting up to ``seconds`` for them to exit."""
    deadline = time.time() + seconds
    while time.time() < deadline and _marked(mark):
        time.sleep(0.2)
    return _marked(mark)


def _marked(mark: str) -> list[int]:
    """Live processes whose environment carries ``mark`` (a sweep and its workers inherit it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if mark.encode() in (proc / "environ").read_bytes().split(b"\0"):
                status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if status != "Z":  # a zombie is gone, only not yet reaped
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
def test_workers_of_a_sweep_killed_while_they_start_do_not_outlive_it(tmp_path):
    """SIGKILL the sweep while its workers are still importing (before they can ask to die with it):
    they must not live on as orphans."""
    config = tmp_path / "grid.toml"
    config.write_text(SMALL_GRID)
    mark = f"UNLEARNBENCH_TEST_MARK={os.getpid()}-{time.time_ns()}"
    name, value = mark.split("=")
    proc = subprocess.Popen(
        sweep_cmd(config, tmp_path / "store"), env={**env(), name: value}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def workers() -> list[int]:  # not the sweep, nor multiprocessing's resource tracker
        return [p for p in _marked(mark) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

    deadline = time.time() + 120
    while time.time() < deadline and len(workers()) < 2:
        time.sleep(0.05)  # until both workers exist
    started = workers()
    proc.kill()
    proc.wait()
    assert len(started) == 2, "the sweep never started its workers"
    deadline = time.time() + 300  # a bound for a loaded machine; passes as soon as they are gone
    while time.time() < deadline and _marked(mark):
        time.sleep(0.5)
    left = _marked(mark)
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # leave no orphan behind, whatever the outcome
    assert not left, f"{len(left)} worker(s) outlived the killed sweep"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
def test_sigint_to_the_sweep_alone_stops_its_running_runs_before_they_write(tmp_path):
    """``kill -INT <sweep pid>`` (not a terminal's Ctrl-C, which signals the whole process group) on a sweep
    started in the background, SIGINT ignored as ``nohup ... &`` leaves it: the runs in flight (each hours
    long here) stop at their next step, nothing is written, and no worker outlives the sweep."""
    config = tmp_path / "grid.toml"
    config.write_text(
        'methods = [{ name = "safemax", args = { steps = 1000000, batch_size = 8 } }]\n'
        'attacks = [{ name = "none" }]\nforget_classes = [1, 7]\n'
    )
    mark = f"UNLEARNBENCH_TEST_MARK={os.getpid()}-{time.time_ns()}"
    name, value = mark.split("=")
    store = tmp_path / "store"
    proc = subprocess.Popen(
        sweep_cmd(config, store), env={**env(), name: value}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip

    def workers() -> list[int]:
        return [p for p in _marked(mark) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (store / "cache" / "original").is_dir():
            time.sleep(0.2)  # until the runs are inside their work
        assert len(workers()) == 2, "the sweep never started its workers"
        time.sleep(5)  # both into the unlearning loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)  # a bound for a loaded machine; without the fix: hours
        left = _left_after(mark)
    finally:
        for pid in _marked(mark):  # leave no orphan behind, whatever the outcome
            os.kill(pid, signal.SIGKILL)
    text = err.decode()
    assert proc.returncode == 130, text[-2000:]
    assert "interrupted" in text and "Traceback" not in text
    assert not list((store / "runs").glob("*.parquet"))
    assert not left, f"{len(left)} worker(s) outlived the interrupted sweep"


def test_ctrl_c_stops_a_run_cleanly_and_writes_nothing(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.Popen(
        cli("run", "--method", "safemax", "--method-args", '{"steps": 200}', "--out", str(store), "--quiet"),
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (store / "cache" / "original").is_dir():
        time.sleep(0.5)  # wait until the run is inside its work
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()
    assert not list((store / "runs").glob("*.parquet"))


def test_no_unsafe_torch_load_anywhere():
    sources = list(ROOT.glob("unlearnbench/**/*.py"))
    for path in sources:
        for line in path.read_text().splitlines():
            if re.search(r"torch\.load\(", line):
                assert "weights_only=True" in line, f"{path}: {line.strip()}"


# A grid whose runs take hours: a signal always finds them in flight.
ENDLESS_GRID = """
methods = [{ name = "safemax", args = { steps = 1000000, batch_size = 8 } }]
attacks = [{ name = "none" }]
forget_classes = [1, 7]
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["sweep", "run"])
def test_a_signal_to_the_parent_is_one_line_exit_130_and_a_clean_store(tmp_path, command, signum):
    """SIGINT or SIGTERM to the parent alone, once its runs are inside their work: one line from the parent
    (none from the workers, no traceback), exit 130, no run written, nothing partial, no worker left."""
    store = tmp_path / "store"
    if command == "sweep":
        config = tmp_path / "grid.toml"
        config.write_text(ENDLESS_GRID)
        argv = cli("sweep", "--config", str(config), "--out", str(store), "--workers", "2", "--threads", "1", *SMOKE)
    else:
        args = '{"steps": 1000000, "batch_size": 8}'
        argv = cli("run", "--method", "safemax", "--method-args", args, "--out", str(store), "--threads", "1", *SMOKE)
    mark = f"UNLEARNBENCH_TEST_MARK={os.getpid()}-{time.time_ns()}"
    name, value = mark.split("=")
    err_path = tmp_path / "stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, env={**env(), name: value}, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.time() + 300  # a bound for a loaded machine
            while time.time() < deadline and proc.poll() is None and not (store / "cache" / "original").is_dir():
                time.sleep(0.2)  # until a run is inside its work (its original model's scores are cached)
            assert proc.poll() is None, err_path.read_text()[-2000:]
            before = len(err_path.read_text())  # what it printed before the signal (the plan, the run's line)
            proc.send_signal(signum)
            proc.wait(timeout=300)
            left = _left_after(mark)
        finally:
            for pid in _marked(mark):  # leave no process behind, whatever the outcome
                os.kill(pid, signal.SIGKILL)
    text = err_path.read_text()
    after = [line for line in text[before:].splitlines() if line.strip()]
    assert proc.returncode == 130, text[-2000:]
    assert after == ["interrupted: finished runs are kept, the run in flight wrote nothing"], text[-2000:]
    assert "Traceback" not in text
    assert check_store(store).empty  # every run was in flight: none written
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]
    assert not left, f"{len(left)} process(es) outlived the interrupted {command}"
    if command == "sweep":
        assert Store(store).sweeps()[-1]["status"] == "interrupted"
