"""``--method given``: attack and score a model unlearned elsewhere, as any method's output."""

from __future__ import annotations

import json

import pandas as pd

from unlearnbench.cli import main

SMOKE = ["--forget-samples", "6", "--retain-samples", "2", "--curve-samples", "2", "--sample-steps", "3", "--quiet"]
SCORES = ["metric", "split", "class_id"]


def unlearned(path) -> pd.Series:
    rows = pd.read_parquet(path)
    rows = rows[(rows.phase == "unlearned") & ~rows.metric.str.contains("cost")]
    return rows.set_index(SCORES).value.sort_index()


def test_a_saved_model_given_back_reproduces_its_runs_unlearned_scores(tmp_path, capsys):
    store, saved = tmp_path / "store", tmp_path / "saved"
    made = ["run", "--method", "safemax", "--forget", "3", "--method-args", '{"steps": 2, "batch_size": 8}']
    assert main([*made, "--out", str(store), "--save-model", str(saved), *SMOKE]) == 0
    first = next((store / "runs").glob("*.parquet"))
    given = ["run", "--method", "given", "--model-path", str(saved / "unlearned"), "--forget", "3"]
    assert main([*given, "--out", str(store), *SMOKE]) == 0
    second = next(p for p in (store / "runs").glob("*.parquet") if p != first)
    pd.testing.assert_series_equal(unlearned(first), unlearned(second))
    rows = pd.read_parquet(second)
    args = json.loads(rows.method_args.iloc[0])
    assert len(args["sha256"]) == 64 and rows.method_args.nunique() == 1  # the weights' sha256 in every row
    cost = rows[(rows.phase == "unlearned") & (rows.metric == "cost_wall_s")].value
    assert cost.isna().all()  # unknown here: not the load time dressed up as an unlearning cost


def test_given_refuses_a_wrong_folder_and_a_stray_model_path(tmp_path, capsys):
    assert main(["run", "--method", "given", "--model-path", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["run", "--method", "noop", "--model-path", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "--model-path goes with --method given" in capsys.readouterr().err
