"""The runner: the only piece that knows the order. One :class:`RunSpec` in, tidy rows out.

    spec -> testbed -> original scores (cached) -> method.unlearn (cached) -> unlearned scores
         -> attack.attack (+ recovery-curve checkpoints) -> attacked scores -> one atomic write

Methods and attacks never write results; metrics never train.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from diffusers import UNet2DModel

from unlearnbench import registry
from unlearnbench.api import (
    Metric,
    RecoveryCurve,
    Score,
    Task,
    run_attack,
    run_unlearning,
)
from unlearnbench.args import canonical_json
from unlearnbench.cost import Cost
from unlearnbench.defaults import PRIMARY_ASR
from unlearnbench.environment import environment
from unlearnbench.errors import RunFailed, UserError
from unlearnbench.evaluate import EvalSettings, Reference, Samples, noise_reference, protocol_of, sample_and_judge
from unlearnbench.io import atomic_write, atomic_write_frame, check_writable_folder, is_sealed, seal
from unlearnbench.models import UNET_WEIGHTS, load_unet
from unlearnbench.prepare import Resolved, build_task, check_budgets, resolve, testbed_for, validate
from unlearnbench.priors import PriorCache
from unlearnbench.progress import time_limit
from unlearnbench.results import Store, to_frame
from unlearnbench.spec import RunSpec, class_numbers
from unlearnbench.testbeds import Testbed, default_guidance
from unlearnbench.timing import part, recording

# Bumped when the scores computed from the same samples change (new rows, intervals, references), so that a
# store's cached scores from before are not reused.
SCORES_VERSION = 3


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Runner:
    """Runs specs into a store. Reuses the original model's scores and unlearned models across runs.

    ``max_minutes``: a run still working after this many minutes stops at its next step and is recorded as
    failed, "exceeded --max-minutes M" (an execution limit like the threads: not part of the run id)."""

    def __init__(
        self,
        store: Store,
        *,
        device: str | torch.device = "cpu",
        save_model: str | None = None,
        download: bool = False,
        max_minutes: float | None = None,
    ) -> None:
        self.store = store
        self.max_minutes = max_minutes
        self.device = torch.device(device)
        self.download = download
        self.save_model = Path(save_model) if save_model else None
        self._metrics: list[Metric] = []
        self.last_split: dict[str, float] = {}  # the time split of the last run (unlearnbench.timing)

    # -- public ------------------------------------------------------------------------------

    def prepare(self, spec: RunSpec) -> tuple[Resolved, Testbed]:
        """Resolve and validate everything; raises :class:`UserError` before any row can be written."""
        resolved = resolve(spec)
        tb = testbed_for(spec, device=self.device, download=self.download)
        resolved.spec = validate(resolved.spec, tb)
        check_budgets(resolved, tb)
        self.store.check_writable()
        if self.save_model is not None:
            check_writable_folder(self.save_model, "--save-model")
        return resolved, tb

    @property
    def time_limit_reason(self) -> str:
        """What a run stopped by ``max_minutes`` is recorded with."""
        return f"exceeded --max-minutes {self.max_minutes:g}"

    def run(self, spec: RunSpec) -> pd.DataFrame:
        resolved, tb = self.prepare(spec)
        return self.execute(resolved, tb)

    def execute(self, resolved: Resolved, tb: Testbed) -> pd.DataFrame:
        with recording() as split:
            df, meta, grids = self._execute(resolved, tb)
            with part("writing"):
                self.store.write_run(resolved.spec.run_id, df, meta, grids)
        # the split is complete only now: add it to the run's small meta file (its rows are already final)
        self.store.write_meta(resolved.spec.run_id, {**meta, "time_split_s": split})
        self.last_split = split
        return df

    def _execute(self, resolved: Resolved, tb: Testbed) -> tuple[pd.DataFrame, dict[str, Any], dict[str, np.ndarray]]:
        spec = resolved.spec
        self._metrics = [registry.get("metric", name)() for name in spec.metrics or registry.names("metric")]
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        t0, cpu0, t0_monotonic = time.perf_counter(), time.process_time(), time.monotonic()
        generator = torch.Generator().manual_seed(spec.seed)
        task = build_task(spec, tb, self.device)
        task.priors = PriorCache(self.store.cache / "priors", tb.model_sha, tb.priors)
        reference = Reference(
            retain_real=tb.real_images(task.retain_concepts, exclude=task.forget_concepts),
            forget_real=tb.real_images(task.forget_concepts),
            evaluator=tb.evaluator,
            evaluator_path=tb.evaluator_path,
            noise=noise_reference(tb.model, tb.schedule, spec.eval.sampler, spec.seed),
            second_judge=tb.second_judge,
            families=tuple(tb.conditioner.family(c) for c in tb.concepts),
            clip_score=tb.clip_score if tb.has_clip_score else None,
            probes=tb.run_probes(task.forget_concepts, spec.eval.forget_samples, spec.eval.retain_samples),
        )
        records: list[dict[str, Any]] = []
        grids: dict[str, dict[str, np.ndarray]] = {}
        status, error = "ok", ""
        limit, reason = (None, "") if self.max_minutes is None else (60 * self.max_minutes, self.time_limit_reason)
        try:
            with time_limit(limit, reason, since=t0_monotonic):
                original_rows, grids["original"] = self._original(spec, tb, task, reference)
                model, unlearned_rows, grids["unlearned"] = self._unlearned(resolved, tb, task, reference, generator)
                records += original_rows + unlearned_rows
                if spec.attack != "none":
                    rows, grids["attacked"] = self._attacked(
                        resolved, tb, task, reference, model, original_rows, generator
                    )
                    records += rows
        except RunFailed as e:
            status, error, grids = "failed", str(e), {}
            records = [{"phase": "unlearned", "metric": "failed", "split": "all", "value": math.nan, "goal": "min"}]
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        df = self._frame(records, resolved, tb, status, error, wall, started)
        meta = {"spec": spec.to_dict(), "run_id": spec.run_id, "status": status, "error": error, "wall_s": wall}
        meta["cpu_s"] = cpu  # the process's CPU seconds (all threads): the plan's estimate reads it
        meta.update(environment(self.device))
        return df, meta, {f"{phase}.{k}": v for phase, g in grids.items() for k, v in g.items()}

    # -- phases ------------------------------------------------------------------------------

    def _eval(
        self,
        model: UNet2DModel,
        tb: Testbed,
        task: Task,
        reference: Reference,
        settings: EvalSettings,
        phase: str,
        *,
        cond: torch.Tensor | None = None,
        x_T: torch.Tensor | None = None,
        include_retain: bool = True,
        curve_point: bool = False,
    ) -> tuple[list[Score], dict[str, np.ndarray]]:
        samples = sample_and_judge(
            model,
            tb.schedule,
            tb.evaluator,
            settings,
            task.forget_concepts,
            task.retain_concepts,
            conditioner=task.conditioner,
            forget_cond=cond,
            forget_x_T=x_T,
            include_retain=include_retain,
            # the run probes read the model as unlearning left it (original and unlearned): not after an attack,
            # whose own rows measure what came back (a prompt attack's model is the unlearned one)
            probes=reference.probes if include_retain and phase != "attacked" else (),
            desc=phase,
        )
        metrics = [m for m in self._metrics if m.curve_point] if curve_point else self._metrics
        with part("metrics"):
            return [s for m in metrics for s in m.on_samples(samples, reference)], sample_grid(samples)

    def _cached_eval(self, folder: str, key: str, compute: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        """Scores (as rows) and a sample grid, from the cache or from ``compute()``, which returns both."""
        rows_path = self.store.cache / folder / f"{key}.parquet"
        grid_path = self.store.cache / folder / f"{key}.npz"
        if rows_path.is_file():
            if is_sealed(rows_path, [rows_path, grid_path]):
                with np.load(grid_path) as z:
                    return pd.read_parquet(rows_path).to_dict("records"), dict(z)
            _recomputing(rows_path)
        rows, grid = compute()
        with part("writing"):
            atomic_write(grid_path, lambda p: _save_npz(p, grid))
            atomic_write_frame(rows_path, pd.DataFrame(rows))
            seal(rows_path, [rows_path, grid_path])
        return rows, grid

    def _original(self, spec: RunSpec, tb: Testbed, task: Task, reference: Reference):
        key = _key(
            "original",
            SCORES_VERSION,
            tb.second_judge_sha,
            tb.model_sha,
            tb.evaluator_sha,
            tb.data.name,
            list(class_numbers(spec.forget) or spec.forget),  # class numbers, as before concepts had names
            dataclasses.asdict(spec.eval),
            *[p.name for p in reference.probes],  # none on digits16: its keys as before
        )

        def compute():
            scores, grid = self._eval(tb.model, tb, task, reference, spec.eval, "original")
            return [_row(s, "original") for s in scores], grid

        return self._cached_eval("original", key, compute)

    def _unlearned(self, resolved: Resolved, tb: Testbed, task: Task, reference: Reference, generator: torch.Generator):
        spec = resolved.spec
        ukey = resolved.unlearn_key(tb.model_sha)
        cached = self.store.cache / "unlearned" / ukey
        model = _cached_model(cached)
        if model is not None:
            model = model.to(self.device)
            cost = Cost(**json.loads((cached / "cost.json").read_text()))
        else:
            unlearned = run_unlearning(resolved.method, tb.model, task, generator=generator)
            model, cost = unlearned.model, unlearned.cost
            with part("writing"):
                _save_cache_dir(cached, model, cost)
        if self.save_model:
            _save_model(self.save_model / "unlearned", model, tb)
        # The run's generator continues from the same state whether or not the cache was hit.
        generator.manual_seed(spec.seed + 1)

        def compute():
            scores, grid = self._eval(model, tb, task, reference, spec.eval, "unlearned")
            scores += [s for m in self._metrics for s in m.on_cost(cost, attack=False)]
            return [_row(s, "unlearned") for s in scores], grid

        rows, grid = self._cached_eval(
            "unlearned-scores",
            _key(
                ukey,
                SCORES_VERSION,
                tb.second_judge_sha,
                tb.evaluator_sha,
                dataclasses.asdict(spec.eval),
                *[p.name for p in reference.probes],
            ),
            compute,
        )
        return model, rows, grid

    def _attacked(
        self,
        resolved: Resolved,
        tb: Testbed,
        task: Task,
        reference: Reference,
        model: UNet2DModel,
        original_rows: list[dict[str, Any]],
        generator: torch.Generator,
    ):
        spec = resolved.spec
        curve_settings = dataclasses.replace(spec.eval, forget_samples=spec.eval.curve_samples)
        curve: list[dict[str, Any]] = []

        def on_curve(step: int, scores: list[Score]) -> None:
            curve.extend(
                _row(s, "attacked", attack_step=step)
                for s in scores
                if s.split == "forget" and s.metric.startswith(("asr", "unlearning_accuracy"))
            )

        def checkpoint(step: int, m: UNet2DModel, cond: torch.Tensor | None) -> None:
            on_curve(
                step,
                self._eval(
                    m,
                    tb,
                    task,
                    reference,
                    curve_settings,
                    f"step {step}",
                    cond=cond,
                    include_retain=False,
                    curve_point=True,
                )[0],
            )

        task.checkpoint = checkpoint
        checkpoint(0, model, None)
        attacked, cost = run_attack(resolved.attack, model, task, generator=generator)
        scores, grid = self._eval(
            attacked.model,
            tb,
            task,
            reference,
            spec.eval,
            "attacked",
            cond=attacked.cond,
            x_T=attacked.x_T,
            include_retain=resolved.attack.changes_weights,
        )
        recovery = attacked.recovery
        if recovery is not None:  # the final point from as many samples as every other point
            checkpoint(recovery.final_step, attacked.model, attacked.cond)
        scores += [dataclasses.replace(s, metric=f"attack_{s.metric}") for s in attacked.extra]
        scores += [s for m in self._metrics for s in m.on_cost(cost, attack=True)]
        if recovery is not None and len({r["attack_step"] for r in curve}) > 2:  # a curve, not just before/after
            asr = PRIMARY_ASR
            original_asr = next((r["value"] for r in original_rows if r["metric"] == asr), math.nan)
            points = [(int(r["attack_step"]), float(r["value"])) for r in curve if r["metric"] == asr]
            curve_in = RecoveryCurve(points, original_asr, recovery, asr)
            scores += [s for m in self._metrics for s in m.on_curve(curve_in)]
        if self.save_model and resolved.attack.changes_weights:
            _save_model(self.save_model / "attacked", attacked.model, tb)
        rows = curve + [_row(s, "attacked") for s in scores]
        if attacked.prompts:  # what a discrete prompt attack found, as text: each concept's on its own rows
            found = dict(zip(task.forget_classes, attacked.prompts, strict=True))
            for r in rows:
                r["attack_prompt"] = found.get(r["class_id"], "; ".join(attacked.prompts))
        return rows, grid

    # -- rows --------------------------------------------------------------------------------

    def _frame(
        self,
        records: list[dict[str, Any]],
        resolved: Resolved,
        tb: Testbed,
        status: str,
        error: str,
        wall: float,
        started: str,
    ) -> pd.DataFrame:
        spec = resolved.spec
        common = {
            "run_id": spec.run_id,
            "method": spec.method,
            "attack": spec.attack,
            "label": spec.label,
            "forget_concept": spec.forget_label,
            "n_forget": len(spec.forget),
            "forget_class": spec.forget_class,
            "protocol": protocol_of(spec.eval.sampler, default_guidance(spec.testbed, spec.model)),
            "status": status,
            "error": error,
            "testbed": tb.name,
            "dataset": tb.data.name,
            "model_sha": tb.model_sha,
            "evaluator_sha": tb.evaluator_sha,
            "attacker_sha": tb.attacker_sha,
            "second_judge_sha": tb.second_judge_sha,
            "clip_scorer_sha": tb.clip_scorer_sha,
            "seed": spec.seed,
            "method_args": canonical_json(spec.recorded_args("method_args")),
            "attack_args": canonical_json(spec.recorded_args("attack_args")),
            "label_dropout": spec.label_dropout,
            "unlearn_precision": spec.unlearn_precision,
            "guidance": spec.eval.sampler.guidance_scale,
            "sample_steps": spec.eval.sampler.steps,
            "eta": spec.eval.sampler.eta,
            "clip_sample": spec.eval.sampler.clip_sample,
            "sampler_precision": spec.eval.sampler.precision,
            "n_forget_samples": spec.eval.forget_samples,
            "n_retain_samples": spec.eval.retain_samples,
            "fid_features": "evaluator-penultimate",
            "wall_s": wall,
            "started_at": started,
            **environment(self.device),
        }
        return to_frame({**common, **r} for r in records)


def sample_grid(samples: Samples, per_row: int = 8) -> dict[str, np.ndarray]:
    """A few samples as uint8, for the leaderboard's grids: forget samples, and one per retained class."""
    out = {}
    if samples.forget is not None:
        out["forget"] = _to_uint8(samples.forget.images[:per_row])
    if samples.retain is not None:
        labels = samples.retain.labels
        firsts = [int((labels == c).nonzero()[0]) for c in sorted(set(labels.tolist()))]
        out["retain"] = _to_uint8(samples.retain.images[firsts])
        out["retain_labels"] = labels[firsts].numpy().astype(np.int16)
    return out


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _save_model(directory: Path, model: UNet2DModel, tb: Testbed) -> None:
    from unlearnbench.models import save_diffusion

    try:
        save_diffusion(model, tb.schedule, directory)
    except OSError as e:
        raise UserError(f"--save-model: cannot write {directory} ({e.strerror or e})") from None


_MODEL_FILES = ("config.json", UNET_WEIGHTS, "cost.json")


def _recomputing(entry: Path) -> None:
    print(f"warning: cache entry {entry} does not match its seal (damaged, edited or older): computed again",
          file=sys.stderr)  # fmt: skip


def _cached_model(folder: Path) -> UNet2DModel | None:
    """A cached unlearned model, if its folder is sealed and the model passes every check ``--model`` gets."""
    if not (folder / "cost.json").is_file():
        return None
    if is_sealed(folder, [folder / name for name in _MODEL_FILES]):
        try:
            return load_unet(folder)
        except UserError:
            pass
    _recomputing(folder)
    return None


def _save_cache_dir(target: Path, model: UNet2DModel, cost: Cost) -> None:
    """Write a model and its cost to a temporary folder, then rename it into place (or drop it if another
    process got there first: the content is the same)."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "cost.json").write_text(json.dumps(cost.as_dict()))
        seal(tmp, [tmp / name for name in _MODEL_FILES], key=target.name)
        try:
            os.replace(tmp, target)
        except OSError:
            if _cached_model(target) is None:  # a stale, partial or damaged folder: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _row(s: Score, phase: str, attack_step: int | None = None) -> dict[str, Any]:
    """A score as a row; its goal comes from the declaration of its metric (one home per metric)."""
    return {
        "phase": phase,
        "attack_step": attack_step,
        "split": s.split,
        "class_id": s.class_id,
        "metric": s.metric,
        "value": s.value,
        "stderr": s.stderr,
        "lo": s.lo,
        "hi": s.hi,
        "n": s.n,
        "goal": registry.row(s.metric, s.split).goal,
    }


__all__ = ["Runner", "resolve", "validate", "Resolved", "Samples"]
