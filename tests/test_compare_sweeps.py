"""scripts/compare_sweeps.py: identical stores pass; a changed number fails; what measures the run is ignored."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from unlearnbench.results import to_frame

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_sweeps.py"


def load():
    spec = importlib.util.spec_from_file_location("compare_sweeps", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(changes: dict | None = None) -> pd.DataFrame:
    base = {"run_id": "r", "phase": "unlearned", "split": "forget", "goal": "max", "wall_s": 1.0}
    df = to_frame(
        [
            {**base, "metric": "unlearning_accuracy_10way", "value": 0.5, "stderr": float("nan")},
            {**base, "metric": "cost_wall_s", "value": 12.0, "split": "all"},
            {**base, "metric": "attack_cost_peak_mem_mb", "value": 99.0, "split": "all"},
        ]
    )
    for (metric, column), value in (changes or {}).items():
        df.loc[df.metric == metric, column] = value
    return df


def test_identical_up_to_what_measures_the_run():
    compare = load().compare
    parent = rows()
    assert compare(parent, rows()) == []
    assert compare(parent, rows({("cost_wall_s", "value"): 30.0, ("attack_cost_peak_mem_mb", "value"): 1.0})) == []
    assert compare(parent, rows({("cost_wall_s", "wall_s"): 5.0})) == []
    # row order does not matter
    assert compare(parent, rows().iloc[::-1].reset_index(drop=True)) == []


def test_a_changed_number_or_setting_is_reported():
    compare = load().compare
    parent = rows()
    diff = compare(parent, rows({("unlearning_accuracy_10way", "value"): 0.52}))
    assert len(diff) == 1 and diff[0].startswith("value: 0.5 vs 0.52")
    assert compare(parent, rows({("unlearning_accuracy_10way", "stderr"): 0.1}))[0].startswith("stderr:")
    assert compare(parent, rows({("cost_wall_s", "goal"): "min"}))[0].startswith("goal:")
    assert "row counts differ" in compare(parent, rows().iloc[:2])[0]
