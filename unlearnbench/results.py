"""The results store: one tidy long table, written one run at a time, atomically.

Layout of a store folder::

    runs/<run_id>.parquet      the run's rows (its presence means the run is complete)
    runs/<run_id>.json         its resolved spec, status, environment and the hashes of its files
    runs/<run_id>.samples.npz  its sample grids (for the report's figures)
    sweeps.jsonl               the sweeps that ran here, a line as each starts, saves a run and ends: when,
                               how long, on what, how it ended
    cache/                     reusable work (original-model scores, unlearned models); safe to delete

Every file is written to a temporary name in the same folder and renamed into place, so a crash or a
SIGKILL leaves either the old state or the new one, never a partial file. Two processes writing the same
run write identical content; the last rename wins.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from unlearnbench import integrity
from unlearnbench.errors import UserError
from unlearnbench.integrity import INTEGRITY
from unlearnbench.io import (
    atomic_write,
    atomic_write_frame,
    atomic_write_text,
    check_writable_folder,
    seal,
    seal_path,
    sha256_file,
)

# Column: (pandas dtype, meaning). The README's table of columns is generated from this.
SCHEMA: dict[str, tuple[str, str]] = {
    "run_id": ("string", "stable hash of the resolved run spec"),
    "method": ("string", "unlearning method"),
    "attack": ("string", "attack ('none' for none)"),
    "label": ("string", "free label of the spec, e.g. 'paper' or 'tuned'"),
    "phase": ("string", "original | unlearned | attacked"),
    "attack_step": ("Int64", "attack step of a recovery-curve point; empty for final rows"),
    "forget_concept": ("string", "the forgotten concept(s), comma-joined, as the testbed names them"),
    "n_forget": ("Int64", "how many concepts the run forgets"),
    "forget_class": ("Int64", "the forgotten class number when one class-numbered concept is forgotten; else empty"),
    "split": ("string", "forget | retain | all"),
    "class_id": ("Int64", "class of a per-class row; empty for aggregates"),
    "metric": ("string", "metric name"),
    "value": ("float64", "the number"),
    "stderr": ("float64", "standard error where defined (binomial, mean, or bootstrap: FID, KID, noise W1)"),
    "lo": ("float64", "lower end of the 95% bootstrap interval over the samples behind the number"),
    "hi": ("float64", "upper end of that interval"),
    "n": ("Int64", "samples behind the number"),
    "goal": ("string", "min or max: which direction is better for this metric on this split"),
    "status": ("string", "ok | failed"),
    "error": ("string", "why a failed run failed"),
    "testbed": ("string", "testbed name"),
    "dataset": ("string", "dataset name"),
    "model_sha": ("string", "sha256 of the base model's weights"),
    "evaluator_sha": ("string", "sha256 of the evaluator's weights"),
    "attacker_sha": ("string", "sha256 of the attacker classifier's weights"),
    "second_judge_sha": ("string", "sha256 of the second evaluator's weights (empty without one)"),
    "clip_scorer_sha": ("string", "sha256 of the CLIP-score model's weights (empty without a CLIP score)"),
    "seed": ("Int64", "run seed"),
    "method_args": ("string", "resolved method arguments, canonical JSON"),
    "attack_args": ("string", "resolved attack arguments, canonical JSON"),
    "attack_prompt": (
        "string",
        "the prompt a discrete prompt attack found, as text (per forget concept on its class_id rows; every forget "
        "concept's, joined by '; ', on the others); empty otherwise",
    ),
    "label_dropout": (
        "float64",
        "share of the method's training forwards given the null label (upstream's cond_drop_prob)",
    ),
    "unlearn_precision": (
        "string",
        "the unlearning method's gradient steps: float32, or bfloat16 autocast (a loaded reference keeps its own)",
    ),
    "guidance": ("float64", "classifier-free guidance scale used for sampling"),
    "sample_steps": ("Int64", "DDIM steps"),
    "eta": ("float64", "DDIM eta"),
    "clip_sample": ("boolean", "predicted x0 clipped to [-1, 1] at every sampler step (upstream: no)"),
    "sampler_precision": ("string", "the sampler's model forwards: float32, or bfloat16 autocast"),
    "protocol": (
        "string",
        "the named sampler setting: testbed (its default guidance, eta 0), papers (s 3, eta 1), custom",
    ),
    "n_forget_samples": ("Int64", "samples per forget class"),
    "n_retain_samples": ("Int64", "samples per retained class"),
    "fid_features": ("string", "feature space of FID/KID"),
    "device": ("string", "cpu or the CUDA device name"),
    "threads": ("Int64", "torch intra-op threads"),
    "compiled": ("boolean", "the sampler's model forwards compiled with torch.compile (--compile)"),
    "wall_s": ("float64", "wall seconds of the whole run"),
    "version": ("string", "unlearnbench version"),
    "git_sha": ("string", "git commit of the unlearnbench checkout, if any"),
    "torch_version": ("string", "torch version"),
    "diffusers_version": ("string", "diffusers version"),
    "fidelity_version": ("string", "torch-fidelity version"),
    "started_at": ("string", "UTC start time, ISO 8601"),
}
COLUMNS = list(SCHEMA)


def to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=COLUMNS)
    return df.astype({c: t for c, (t, _) in SCHEMA.items()})


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The final numbers of complete runs: no recovery-curve point, no per-class row, status ok."""
    return df[df["attack_step"].isna() & df["class_id"].isna() & (df["status"] == "ok")]


class Store:
    """A results folder. ``Store(path).check_writable()`` fails early with one line."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.cache = self.root / "cache"

    def check_writable(self) -> None:
        check_writable_folder(self.runs, "results folder")

    def rows_path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.parquet"

    def samples_path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.samples.npz"

    def is_complete(self, run_id: str) -> bool:
        """Whether the run's rows exist and pass :meth:`verify` (a run that does not is done again)."""
        return self.rows_path(run_id).is_file() and self.verify(run_id)[0].ok

    def write_run(
        self, run_id: str, df: pd.DataFrame, meta: dict[str, Any], samples: dict[str, Any] | None = None
    ) -> None:
        """Spec (with the hashes of the files to come) and sample grid first: a run counts as complete only once
        its rows exist, and its rows and grid are hashed before they are written (:mod:`unlearnbench.integrity`)."""
        rows = _parquet_bytes(df)
        grid = _npz_bytes(samples) if samples else None
        hashes = (integrity.sha256_bytes(rows), None if grid is None else integrity.sha256_bytes(grid))
        meta = {**meta, INTEGRITY: integrity.record(run_id, *hashes)}
        atomic_write_text(self.runs / f"{run_id}.json", json.dumps(meta, indent=2, sort_keys=True))
        if grid is not None:
            atomic_write(self.samples_path(run_id), lambda p: p.write_bytes(grid))
        atomic_write(self.rows_path(run_id), lambda p: p.write_bytes(rows))

    def write_meta(self, run_id: str, meta: dict[str, Any]) -> None:
        """Rewrite a run's JSON, keeping the hashes recorded when its files were written."""
        path = self.runs / f"{run_id}.json"
        if INTEGRITY not in meta and path.is_file():
            recorded = json.loads(path.read_text()).get(INTEGRITY)
            meta = {**meta, INTEGRITY: recorded} if recorded is not None else meta
        atomic_write_text(path, json.dumps(meta, indent=2, sort_keys=True))

    def verify(self, run_id: str) -> tuple[integrity.Verdict, pd.DataFrame | None]:
        """Check one complete run (:mod:`unlearnbench.integrity`); its rows when it passes."""

        def bad(problem: str) -> tuple[integrity.Verdict, None]:
            return integrity.Verdict(run_id, problem), None

        try:
            meta = json.loads((self.runs / f"{run_id}.json").read_text())
        except (OSError, ValueError) as e:
            return bad(f"its JSON is missing or unreadable ({type(e).__name__})")
        if not isinstance(meta, dict):
            return bad("its JSON is not a run's record")
        problem = integrity.spec_problem(run_id, meta)
        if problem:
            return bad(problem)
        recorded = meta.get(INTEGRITY)
        if recorded is not None:
            if not isinstance(recorded, dict) or recorded.get("run_id") != run_id:
                return bad("its recorded hashes belong to another run")
            if sha256_file(self.rows_path(run_id)) != recorded.get("rows_sha256"):
                return bad("its rows (parquet) do not match their recorded sha256: edited or cut short")
            grid, expected = self.samples_path(run_id), recorded.get("samples_sha256")
            if expected is not None and (not grid.is_file() or sha256_file(grid) != expected):
                return bad("its sample grid (npz) is missing or does not match its recorded sha256")
        try:
            rows = read_rows(self.rows_path(run_id))
        except UserError as e:
            return bad(str(e))
        strangers = sorted(set(rows["run_id"].dropna().astype(str)) - {run_id})
        if strangers:
            return bad(f"its rows belong to run {strangers[0]}")
        problem = integrity.range_problem(rows)
        if problem:
            return bad(problem)
        return integrity.Verdict(run_id, sealed=recorded is not None), rows

    def seal(self, run_id: str) -> None:
        """Record the hashes of an unverified run's files as they are (``unlearnbench verify --seal``)."""
        path = self.runs / f"{run_id}.json"
        meta = json.loads(path.read_text())
        grid = self.samples_path(run_id)
        grid_sha = sha256_file(grid) if grid.is_file() else None
        meta[INTEGRITY] = integrity.record(run_id, sha256_file(self.rows_path(run_id)), grid_sha)
        atomic_write_text(path, json.dumps(meta, indent=2, sort_keys=True))

    def seal_caches(self) -> int:
        """Seal the cache entries written before entries carried seals, as they are now (``verify --seal``): score
        files with their sample grid, and model and prior folders. Returns how many were sealed."""
        count = 0
        for rows in sorted(self.cache.glob("*/*.parquet")):
            grid = rows.with_suffix(".npz")
            if grid.is_file() and not seal_path(rows).is_file():
                seal(rows, [rows, grid])
                count += 1
        for folder in sorted(p for p in self.cache.glob("*/*") if p.is_dir() and (p / "cost.json").is_file()):
            if not seal_path(folder).is_file():
                seal(folder, sorted(f for f in folder.iterdir() if f.is_file()))
                count += 1
        return count

    def verdicts(self) -> list[tuple[integrity.Verdict, pd.DataFrame | None]]:
        return [self.verify(r) for r in self.run_ids()]

    def samples(self, run_id: str) -> dict[str, Any]:
        import numpy as np

        path = self.samples_path(run_id)
        if not path.is_file():
            return {}
        with np.load(path) as z:
            return dict(z)

    def run_ids(self) -> list[str]:
        return sorted(p.stem for p in self.runs.glob("*.parquet")) if self.runs.is_dir() else []

    def load(self) -> pd.DataFrame:
        """Every complete run's rows as one frame (empty with the schema's columns if none). A run that fails
        :meth:`verify` is named on stderr and left out; unverified runs are counted there."""
        checked = self.verdicts()
        frames = [rows for v, rows in checked if v.ok and rows is not None and len(rows)]
        for verdict, _ in checked:
            if not verdict.ok:
                print(f"warning: {self.root}: run {verdict.run_id} left out: {verdict.problem}", file=sys.stderr)
        unsealed = sum(v.ok and not v.sealed for v, _ in checked)
        if unsealed:
            print(
                f"warning: {self.root}: {unsealed} run(s) unverified (written before runs recorded their hashes); "
                f"'unlearnbench verify --seal {self.root}' records them",
                file=sys.stderr,
            )
        if not frames:
            return to_frame([])
        return pd.concat(frames, ignore_index=True)

    def meta(self, run_id: str) -> dict[str, Any]:
        return json.loads((self.runs / f"{run_id}.json").read_text())

    @property
    def sweep_log(self) -> Path:
        return self.root / SWEEP_LOG

    def log_sweep(self, record: dict[str, Any]) -> None:
        """Append one sweep's record as one line (one ``write`` in append mode: two sweeps logging at once
        do not interleave their lines). A line a crash cut short is ended first, so it spoils only itself."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self.sweep_log, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def sweeps(self) -> list[dict[str, Any]]:
        """The sweeps that ran here, oldest first, each its lines merged, the latest winning (a sweep logs as it
        goes: its lines share its ``started_unix``, and its first lists its runs); a damaged line (a crash
        mid-write) is skipped. A sweep whose latest line says
        ``running`` was stopped without its last line (a killed machine), unless it is still running."""
        if not self.sweep_log.is_file():
            return []
        records: dict[float, dict[str, Any]] = {}
        for line in self.sweep_log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("started_unix"), int | float):
                key = record["started_unix"]  # appended in time order: the later line wins
                records[key] = {**records.get(key, {}), **record}
        return sorted(records.values(), key=lambda r: r["started_unix"])


SWEEP_LOG = "sweeps.jsonl"


def sweep_wall_s(records: Iterable[dict[str, Any]]) -> float:
    """The wall time the sweeps covered: the union of their ``[started, started + wall]`` spans, so two sweeps
    that ran at once (on one store) count once."""
    spans = sorted((r["started_unix"], r["started_unix"] + r.get("wall_s", 0.0)) for r in records)
    total, end = 0.0, -float("inf")
    for a, b in spans:
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def _before_concepts(df: pd.DataFrame) -> pd.DataFrame:
    """Rows written before concepts had names (and before the settings' columns were renamed) in today's
    columns: ``forget_class`` held the comma-joined classes as a string, the sampler's precision was
    ``precision``, and the protocol was not recorded."""
    if "precision" in df.columns and "sampler_precision" not in df.columns:
        df = df.rename(columns={"precision": "sampler_precision"})
    if "forget_concept" not in df.columns and "forget_class" in df.columns:
        concepts = df["forget_class"].astype("string")
        n = concepts.str.count(",") + 1
        single = pd.to_numeric(concepts.where(n == 1), errors="coerce").astype("Int64")
        df = df.assign(forget_concept=concepts, n_forget=n.astype("Int64"), forget_class=single)
    if "protocol" not in df.columns and {"guidance", "eta", "testbed"} <= set(df.columns):
        df = df.assign(protocol=_protocols(df))
    return df


def _protocols(df: pd.DataFrame) -> pd.Series:
    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import protocol_of
    from unlearnbench.testbeds import default_guidance

    settings = df[["testbed", "guidance", "eta"]].drop_duplicates()

    def default(testbed: str) -> float:
        try:
            return default_guidance(testbed)
        except UserError:  # a testbed whose plugin is not loaded: only the papers' fixed setting can be named
            return math.nan

    named = {
        (t, g, e): protocol_of(SamplerSettings(guidance_scale=g, eta=e), default(t))
        for t, g, e in settings.itertuples(index=False)
    }
    keys = zip(df["testbed"], df["guidance"], df["eta"], strict=True)
    return pd.Series([named.get(k, "custom") for k in keys], index=df.index)  # a NaN setting names nothing


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Rows written before a column existed get it, empty, with its type (so old and new stores compare)."""
    df = _before_concepts(df)
    missing = [c for c in SCHEMA if c not in df.columns]
    if not missing:
        return df
    empty = pd.DataFrame({c: pd.Series(index=df.index, dtype=SCHEMA[c][0]) for c in missing})
    return pd.concat([df, empty], axis=1)


def read_rows(path: Path) -> pd.DataFrame:
    """One parquet file of rows; a truncated or foreign file is one line, not a traceback."""
    try:
        rows = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise UserError(
            f"results file {str(path)!r} cannot be read ({type(e).__name__}: {e}); is it truncated?"
        ) from None
    return conform(rows)


def read_csv_rows(path: Path) -> pd.DataFrame:
    """A CSV file of rows; one that does not parse, or a value of the wrong type, is one line naming the column."""
    try:
        rows = _before_concepts(pd.read_csv(path))  # an old file's forget_class "0,3" becomes forget_concept first
    except (ValueError, TypeError) as e:  # pandas' ParserError and UnicodeDecodeError are ValueErrors
        raise UserError(f"results file {str(path)!r} cannot be read ({type(e).__name__}: {_first_line(e)})") from None
    for column, (dtype, _) in SCHEMA.items():
        if column in rows.columns:
            try:
                rows = rows.astype({column: dtype})
            except (ValueError, TypeError) as e:
                raise UserError(
                    f"results file {str(path)!r}: column {column!r} must hold {dtype} values ({_first_line(e)})"
                ) from None
    return conform(rows)


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load a store folder, or a single parquet/CSV file of rows."""
    p = Path(path)
    if p.is_dir():
        return Store(p).load()
    if p.suffix in (".parquet", ".csv") and p.is_file():
        rows = read_rows(p) if p.suffix == ".parquet" else read_csv_rows(p)
        problem = integrity.range_problem(rows)
        if problem:
            runs = ", ".join(sorted(set(rows["run_id"].dropna().astype(str))))[:200] or "no run id"
            raise UserError(f"results file {str(p)!r} (run {runs}): {problem}")
        return rows
    raise UserError(f"no results at {str(p)!r} (expected a results folder, or a .parquet/.csv file)")


__all__ = [
    "COLUMNS",
    "SCHEMA",
    "Store",
    "atomic_write",
    "atomic_write_frame",
    "atomic_write_text",
    "final_rows",
    "load_results",
    "to_frame",
]
