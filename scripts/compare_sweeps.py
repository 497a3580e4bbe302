"""Compare two result stores row by row: are they identical except for what measures the run itself?

Used to check that a refactor changes no number (issue 11, item 6): run the CI sweep on the parent
commit and on the change, then

    python scripts/compare_sweeps.py /tmp/cond-parent /tmp/cond-new

Excluded: the columns ``wall_s``, ``started_at`` and ``git_sha``, and the *values* of the ``cost_*`` and
``attack_cost_*`` metrics (wall and CPU seconds, peak memory: they measure the run). Everything else,
NaNs included, must be equal; exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from unlearnbench.results import load_results

RUN_COLUMNS = ("wall_s", "started_at", "git_sha")
KEY = ["run_id", "phase", "attack_step", "split", "class_id", "metric"]


def is_run_measure(metric: pd.Series) -> pd.Series:
    return metric.str.startswith(("cost_", "attack_cost_"))


def same(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a == b) | (a.isna() & b.isna())


def compare(parent: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """Every difference, one line each (empty when the stores agree)."""
    problems = []
    if list(parent.columns) != list(new.columns):
        return [f"columns differ: {list(parent.columns)} vs {list(new.columns)}"]
    a = parent.sort_values(KEY, na_position="first").reset_index(drop=True)
    b = new.sort_values(KEY, na_position="first").reset_index(drop=True)
    if len(a) != len(b):
        return [f"row counts differ: {len(a)} vs {len(b)}"]
    measured = is_run_measure(a.metric)
    for col in a.columns:
        if col in RUN_COLUMNS:
            continue
        ok = same(a[col], b[col])
        if col == "value":
            ok |= measured & is_run_measure(b.metric)
        for i in (~ok).to_numpy().nonzero()[0][:20]:
            key = ", ".join(f"{k}={a.at[i, k]}" for k in KEY)
            problems.append(f"{col}: {a.at[i, col]} vs {b.at[i, col]} ({key})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parent")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    parent, new = load_results(args.parent), load_results(args.new)
    compared = [c for c in parent.columns if c not in RUN_COLUMNS]
    measured = int(is_run_measure(parent.metric).sum())
    print(
        f"parent: {len(parent)} rows, {parent.run_id.nunique()} runs; new: {len(new)} rows, {new.run_id.nunique()} runs"
    )
    print(f"compared {len(compared)} of {len(parent.columns)} columns (not {', '.join(RUN_COLUMNS)}); the values of")
    print(f"{measured} cost_*/attack_cost_* rows are not compared")
    problems = compare(parent, new)
    for line in problems:
        print("DIFF", line)
    print("identical" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
