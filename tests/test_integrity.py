"""A verified store: runs record the hashes of their files, every read checks them, caches carry seals."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.test_reliability import SMOKE, cli, env
from unlearnbench import registry
from unlearnbench.api import NONNEGATIVE, RATE
from unlearnbench.errors import UserError
from unlearnbench.integrity import INTEGRITY, range_problem
from unlearnbench.results import Store, load_results

GRID = """
methods = [{ name = "noop" }, { name = "safemax", args = { steps = 2, batch_size = 8 } }]
attacks = [{ name = "none" }]
forget_classes = [1, 7]
"""


def sweep(config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    command = cli("sweep", "--config", str(config), "--out", str(store), "--workers", "1", "--threads", "1", *SMOKE)
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)


def verify(store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli("verify", str(store), *extra), env=env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    """Four smoke runs (noop and a two-step SAFEMax on two classes), written by a real sweep."""
    root = tmp_path_factory.mktemp("integrity")
    config = root / "grid.toml"
    config.write_text(GRID)
    store = root / "store"
    done = sweep(config, store)
    assert done.returncode == 0, done.stderr
    return config, store


@pytest.fixture
def store(made, tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(made[1], copy)
    return copy


def runs_of(store: Path) -> list[str]:
    return Store(store).run_ids()


def test_every_run_records_its_id_and_the_hashes_of_its_files_and_verifies_clean(store):
    ids = runs_of(store)
    assert len(ids) == 4
    for run_id in ids:
        recorded = json.loads((store / "runs" / f"{run_id}.json").read_text())[INTEGRITY]
        assert recorded["run_id"] == run_id
        assert len(recorded["rows_sha256"]) == 64 and len(recorded["samples_sha256"]) == 64
    done = verify(store)
    assert done.returncode == 0, done.stderr
    assert "4 run(s), 4 verified, 0 failed" in done.stdout


def tamper_value(store: Path, run_id: str, metric: str, value: float) -> None:
    path = store / "runs" / f"{run_id}.parquet"
    df = pd.read_parquet(path)
    df.loc[df.metric == metric, "value"] = value
    df.to_parquet(path, index=False)


def test_verify_names_a_tampered_value_a_foreign_spec_a_renamed_run_and_a_truncated_parquet(store):
    edited, foreign, renamed, truncated = runs_of(store)
    tamper_value(store, edited, "unlearning_accuracy_11way", 7.5)
    meta_path = store / "runs" / f"{foreign}.json"
    meta = json.loads(meta_path.read_text())
    meta["spec"]["seed"] = 5  # the JSON now describes another run
    meta_path.write_text(json.dumps(meta))
    new_id = "0123456789abcdef"
    for suffix in (".json", ".parquet", ".samples.npz"):
        (store / "runs" / f"{renamed}{suffix}").rename(store / "runs" / f"{new_id}{suffix}")
    rows = store / "runs" / f"{truncated}.parquet"
    rows.write_bytes(rows.read_bytes()[: rows.stat().st_size // 2])

    done = verify(store)
    assert done.returncode == 1
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert "do not match their recorded sha256" in lines[edited]
    assert "describes another spec" in lines[foreign]
    assert f"names run {renamed!r}" in lines[new_id]
    assert "do not match their recorded sha256" in lines[truncated]
    assert "4 run(s), 0 verified, 4 failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unverified_run_is_checked_for_what_needs_no_hash_and_sealed_on_request(store):
    ids = runs_of(store)
    for run_id in ids:  # as written before runs recorded their hashes
        path = store / "runs" / f"{run_id}.json"
        meta = json.loads(path.read_text())
        del meta[INTEGRITY]
        path.write_text(json.dumps(meta))
    tamper_value(store, ids[0], "unlearning_accuracy_11way", 7.5)
    done = verify(store)
    assert done.returncode == 1
    assert "unlearning_accuracy_11way on forget = 7.5, outside its valid range [0, 1]" in done.stdout
    assert "3 unverified" in done.stderr
    sealed = verify(store, "--seal")
    assert "sealed 3 unverified run(s)" in sealed.stdout and sealed.returncode == 1  # the damaged run stays failed
    (store / "runs" / f"{ids[0]}.parquet").unlink()  # with the damaged run gone (as a rerun would replace it)
    assert verify(store).returncode == 0


def test_the_leaderboard_and_check_read_a_damaged_run_as_absent_and_say_which(store, capsys):
    damaged = runs_of(store)[0]
    tamper_value(store, damaged, "fid", 1.0)  # in range: only its hash tells
    df = load_results(store)
    assert damaged not in set(df.run_id) and df.run_id.nunique() == 3
    assert f"run {damaged} left out: its rows (parquet) do not match" in capsys.readouterr().err


def test_a_resumed_sweep_runs_a_damaged_run_again(made, store):
    config = made[0]
    damaged = runs_of(store)[1]
    rows = store / "runs" / f"{damaged}.parquet"
    rows.write_bytes(rows.read_bytes()[:100])
    done = sweep(config, store)
    assert done.returncode == 0, done.stderr
    assert f"run {damaged} runs again" in done.stderr
    assert verify(store).returncode == 0
    assert Store(store).verify(damaged)[0].ok


def test_a_single_results_file_with_a_value_out_of_range_is_refused_naming_the_run(store, tmp_path):
    run_id = runs_of(store)[0]
    path = tmp_path / "rows.parquet"
    df = pd.read_parquet(store / "runs" / f"{run_id}.parquet")
    df.loc[df.metric == "fid", "value"] = -3.0
    df.to_parquet(path, index=False)
    with pytest.raises(UserError, match=rf"run {run_id}\): fid on \w+ = -3, outside its valid range \[0, inf\]"):
        load_results(path)


def test_an_edited_cached_score_and_a_damaged_cached_model_are_computed_again(made, store):
    config = made[0]
    cache = store / "cache"
    original = sorted((cache / "original").glob("*.parquet"))[0]
    scores = pd.read_parquet(original)
    scores.loc[scores.metric == "unlearning_accuracy_11way", "value"] = 0.5
    scores.to_parquet(original, index=False)
    weights = next((cache / "unlearned").glob("*/diffusion_pytorch_model.safetensors"))
    blob = bytearray(weights.read_bytes())
    blob[-8:] = b"\xff" * 8  # the last weights' bytes: a NaN-like pattern, no longer what was sealed
    weights.write_bytes(bytes(blob))
    for parquet in (store / "runs").glob("*.parquet"):
        parquet.unlink()  # every run again, from the cache
    done = sweep(config, store)
    assert done.returncode == 0, done.stderr
    assert f"cache entry {original} does not match its seal" in done.stderr
    assert f"cache entry {weights.parent} does not match its seal" in done.stderr
    recomputed = pd.read_parquet(original)
    assert (recomputed.loc[recomputed.metric == "unlearning_accuracy_11way", "value"] != 0.5).all()
    assert verify(store).returncode == 0


def test_rates_and_distances_declare_their_ranges():
    declared = registry.rows()
    assert declared[("unlearning_accuracy_11way", "forget")].valid == RATE
    assert declared[("retain_accuracy_10way", "retain")].valid == RATE
    assert declared[("fid", "retain")].valid == NONNEGATIVE
    assert declared[("kid", "retain")].valid[0] == float("-inf")  # the unbiased KID estimate can be negative
    frame = pd.DataFrame(
        {"metric": ["kid", "fid", "entropy"], "split": ["retain", "retain", "forget"], "value": [-0.01, 2.0, None]}
    )
    assert range_problem(frame) == ""
    frame.loc[2, "value"] = -0.5
    assert range_problem(frame) == "entropy on forget = -0.5, outside its valid range [0, inf]"
