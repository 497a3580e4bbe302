"""What the store checks before it shows, compares or skips a run (``unlearnbench verify``).

The threat is damage and mistakes: a copy cut short, a number edited by hand, a run file from another store or
renamed, a cache entry left half-written. It is not a forger: whoever rewrites a file and the hash recorded
beside it passes. Each run's JSON records, under ``"integrity"``, its run id and the sha256 of its rows
(parquet) and of its sample grid (npz), hashed before the parquet that marks the run complete is written.
A run is then checked on every read for:

- its JSON names this run, and the spec in it hashes to the file name (not copied, renamed or edited);
- its rows and sample grid have the recorded hashes (not truncated or edited);
- its rows all carry its run id, and every value lies in the range its row declares
  (``Row.valid``: a rate in [0, 1], FID >= 0; KID may be negative).

Runs written before runs recorded their hashes are "unverified" until ``unlearnbench verify --seal STORE``
records the hashes of the files as they are (after the checks that need no hash pass). Cache entries carry
their key and the checksums of their files in the same way (:func:`unlearnbench.io.seal` and
:func:`unlearnbench.io.is_sealed`); an entry that does not match is recomputed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench import registry
from unlearnbench.args import canonical_json
from unlearnbench.spec import RunSpec

INTEGRITY = "integrity"  # the key of a run's JSON that holds its hashes


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """One run's check: ``problem`` says what is wrong (empty when nothing is); ``sealed`` is False for a run
    written before runs recorded their hashes (its files could only be checked for what needs no hash)."""

    run_id: str
    problem: str = ""
    sealed: bool = True

    @property
    def ok(self) -> bool:
        return not self.problem


def record(run_id: str, rows_sha256: str, samples_sha256: str | None) -> dict[str, Any]:
    """A run's ``"integrity"`` entry: its id and its files' hashes (the rows', and the sample grid's if any)."""
    return {"run_id": run_id, "rows_sha256": rows_sha256, "samples_sha256": samples_sha256}


def spec_problem(run_id: str, meta: dict[str, Any]) -> str:
    """Whether the JSON is this run's: it names the run, and its spec hashes to the run id (as the runner hashes
    it today, or as it was hashed when the run was written, before a later setting existed)."""
    named = meta.get("run_id")
    if named != run_id:
        return f"its JSON names run {named!r}: the file was renamed or copied from another run"
    spec = meta.get("spec")
    if not isinstance(spec, dict):
        return "its JSON holds no spec"
    try:
        today = RunSpec.from_dict(spec).run_id
    except (TypeError, ValueError) as e:
        return f"its JSON's spec does not parse ({type(e).__name__}: {e})"
    if run_id in (today, sha256_bytes(canonical_json(spec).encode())[:16]):
        return ""
    return f"its JSON describes another spec (run {today}): the spec was edited or the file comes from another run"


def range_problem(df: pd.DataFrame) -> str:
    """The first value outside the range its row declares; empty when none is. Rows that no loaded metric or
    attack declares are not judged. Interval ends are not judged either: an interval centred on its estimate
    (FID's half-sample interval) can cross a bound the value cannot (the forget split's FID near 0)."""
    if df.empty:
        return ""
    declared = registry.rows()
    unbounded = (-math.inf, math.inf)
    bounds = [declared[k].valid if k in declared else unbounded for k in zip(df["metric"], df["split"], strict=True)]
    low, high = (np.array(b, dtype=float) for b in zip(*bounds, strict=True))
    values = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=float)
    slack = 1e-6 * np.maximum(1.0, np.where(np.isfinite(high), np.abs(high), 1.0))
    outside = np.flatnonzero((values < low - slack) | (values > high + slack))  # NaN compares False: a gap is no value
    if not len(outside):
        return ""
    i = outside[0]
    metric, split = df["metric"].iloc[i], df["split"].iloc[i]
    return f"{metric} on {split} = {values[i]:g}, outside its valid range [{low[i]:g}, {high[i]:g}]"


__all__ = ["INTEGRITY", "Verdict", "range_problem", "record", "spec_problem"]
