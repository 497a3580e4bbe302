"""Priors: expensive per-model work a method needs before it unlearns (Selective Amnesia's Fisher
matrix and replay samples). They depend on the base model, not on the forget class, so they are
computed once per (model, arguments) and cached with their measured cost; every run that uses them is
charged that recorded cost, so the reported cost is the same whether or not the cache was hit.

The shipped testbed also carries priors for its own base model (``ShippedPriors``, under the testbed's
``priors/``, sha256 in the manifest), shipped from a cache by ``unlearnbench pretrain --what prior --ship``.
A run looks there first, then in its store's cache. A cached folder records what it was made from
(``key.json``: name, base model sha256, arguments, threads), so shipping can check it belongs to the model.
Priors are drawn from the generator of the run that first computed them; any later run, of any seed,
reads the same ones (the key leaves the seed out on purpose: one Fisher per model, as the method intends).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unlearnbench.cost import Cost, CostMeter
from unlearnbench.errors import UserError
from unlearnbench.io import is_sealed, locked, seal

TENSORS = "tensors.safetensors"


def prior_folder_name(name: str, model_sha: str, key: dict[str, Any]) -> str:
    """The folder a prior is cached (and shipped) under: the method's name and a digest of what it depends on."""
    return f"{name}-{hashlib.sha256(json.dumps([name, model_sha, key], sort_keys=True).encode()).hexdigest()[:16]}"


def charged_cost(cost: dict[str, Any], made_from: dict[str, Any]) -> dict[str, Any]:
    """The cost every run that reads a prior is charged, from its measured cost (``cost.json``) and what it was
    made from (``key.json``). A prior computed on one CPU thread is charged its CPU seconds: compute-bound work
    on one thread takes its CPU time on a free core, whatever else shared the machine while it ran (its own
    wall time is kept as ``measured_wall_s``). Otherwise its own wall time."""
    threads, device = int(made_from.get("threads", 0)), str(made_from.get("device", "cpu"))
    own = {**cost, "measured_wall_s": cost["wall_s"]}
    if device == "cpu" and threads == 1 and cost.get("cpu_s"):
        basis = "its CPU seconds: computed on one thread, so its CPU time is its wall time on a free core"
        return {**own, "wall_s": cost["cpu_s"], "wall_basis": basis}
    return {**own, "wall_basis": f"its own wall time on {threads} {device} threads (load not controlled)"}


def _cost(record: dict[str, Any]) -> Cost:
    return Cost(**{k: v for k, v in record.items() if k in Cost.__dataclass_fields__})


class ShippedPriors:
    """The priors a testbed ships for its own base model: ``root/<folder>/`` holds ``tensors.safetensors``
    (sha256 in the manifest's ``files`` as ``priors/<folder>/tensors.safetensors``) and ``prior.json`` (what
    it was made from and the cost every run that reads it is charged)."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        self.files = files

    def has(self, folder_name: str) -> bool:
        return f"priors/{folder_name}/{TENSORS}" in self.files

    def load(self, folder_name: str) -> tuple[dict[str, Tensor], Cost] | None:
        from safetensors.torch import load_file

        from unlearnbench.models import verify_sha256

        folder = self.root / folder_name
        sha = self.files.get(f"priors/{folder_name}/{TENSORS}")
        if sha is None:
            return None
        if not (folder / TENSORS).is_file() or not (folder / "prior.json").is_file():
            raise UserError(f"{folder}: the manifest lists this shipped prior but its files are missing; reinstall")
        verify_sha256(folder / TENSORS, sha)
        record = json.loads((folder / "prior.json").read_text())
        return load_file(str(folder / TENSORS)), _cost(record["cost"])

    def available(self) -> list[str]:
        return sorted(p.split("/")[1] for p in self.files if p.startswith("priors/") and p.endswith(TENSORS))


class PriorCache:
    def __init__(self, root: Path | None, model_sha: str, shipped: ShippedPriors | None = None) -> None:
        self.root = root
        self.model_sha = model_sha
        self.shipped = shipped

    def ready(self, name: str, key: dict[str, Any]) -> bool:
        """Whether this prior ships with the testbed or is whole in the cache (``get`` would compute nothing)."""
        folder_name = prior_folder_name(name, self.model_sha, key)
        if self.shipped is not None and self.shipped.has(folder_name):
            return True
        return self.root is not None and _cached(self.root / folder_name)

    def get(
        self, name: str, key: dict[str, Any], compute: Callable[[CostMeter], dict[str, Tensor]], meter: CostMeter
    ) -> dict[str, Tensor]:
        """Return shipped or cached tensors (charging their recorded cost) or compute, measure and cache them."""
        from safetensors.torch import load_file

        folder_name = prior_folder_name(name, self.model_sha, key)
        if self.shipped is not None:
            with meter.prior():
                found = self.shipped.load(folder_name)
                if found is not None:
                    meter.charge_prior(found[1])
            if found is not None:
                return found[0]
        folder = self.root / folder_name if self.root else None
        with ExitStack() as turn:
            if folder is not None:  # one process computes a prior; others wanting it wait here, then read it
                with meter.excluded():  # waiting for another process is not this method's cost
                    turn.enter_context(locked(folder.parent / f".{folder.name}.lock"))
            with meter.prior():
                if folder is not None and (folder / "cost.json").is_file() and not _whole(folder):
                    print(f"warning: cache entry {folder} does not match its seal: computed again", file=sys.stderr)
                    shutil.rmtree(folder, ignore_errors=True)
                if folder is not None and (folder / "cost.json").is_file():  # whole: checked just above
                    cost = json.loads((folder / "cost.json").read_text())
                    if (folder / "key.json").is_file():  # charged as the shipped copy would be
                        cost = charged_cost(cost, json.loads((folder / "key.json").read_text()))
                    meter.charge_prior(_cost(cost))
                    return load_file(str(folder / TENSORS))
                sub = CostMeter(meter.device)
                with sub.measure():
                    tensors = compute(sub)
                meter.cost.steps += sub.cost.steps
                meter.cost.prior_steps += sub.cost.steps
                meter.cost.peak_mem_mb = max(meter.cost.peak_mem_mb, sub.cost.peak_mem_mb)
                if folder is not None:
                    threads = torch.get_num_threads()
                    made_from = {
                        "name": name,
                        "model_sha": self.model_sha,
                        "key": key,
                        "threads": threads,
                        "device": meter.device.type,
                    }
                    _save(folder, tensors, sub.cost, made_from)
            return tensors


_FILES = (TENSORS, "key.json", "cost.json")


def _cached(folder: Path) -> bool:
    """A cached prior ``get`` reads rather than computes: written whole (its cost last) and matching its seal."""
    return (folder / "cost.json").is_file() and _whole(folder)


def _whole(folder: Path) -> bool:
    return is_sealed(folder, [folder / name for name in _FILES])


def _save(folder: Path, tensors: dict[str, Tensor], cost: Cost, made_from: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / TENSORS))
        (tmp / "key.json").write_text(json.dumps(made_from, sort_keys=True))
        (tmp / "cost.json").write_text(json.dumps(cost.as_dict()))
        seal(tmp, [tmp / name for name in _FILES], key=folder.name)
        try:
            os.replace(tmp, folder)
        except OSError:
            pass  # another process cached the same priors first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ship_priors(
    cache: Path, model_sha: str, root: Path, record_sha256: Callable[[str, str], None] | None = None
) -> list[str]:
    """Ship the priors in ``cache``, a store's ``cache/priors`` folder (every prior in it that was made from the
    base model ``model_sha``) or one prior's folder in it, under ``root/priors/``: its tensors, and
    ``prior.json`` with what it was made from and the cost runs are charged (:func:`charged_cost`);
    ``record_sha256(path, sha256)`` enters each tensors file in the testbed's manifest (its path from ``root``).
    Everything is checked first, so a refused cache ships nothing. Each testbed's ``pretrain --what prior``."""
    import diffusers

    from unlearnbench.io import atomic_write_text, sha256_file

    if not cache.is_dir():
        raise UserError(f"no priors cache at {cache} (a store's cache/priors folder, or one prior's folder in it)")
    folders = (
        [cache]
        if (cache / TENSORS).is_file()
        else sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    chosen = []
    for folder in folders:
        missing = [f for f in ("key.json", "cost.json", TENSORS) if not (folder / f).is_file()]
        if missing:
            print(f"{folder.name}: skipped (no {', '.join(missing)}: cached before priors recorded what made them)")
            continue
        made_from = json.loads((folder / "key.json").read_text())
        if made_from["model_sha"] != model_sha:
            print(f"{folder.name}: skipped (made from another base model)")
            continue
        if prior_folder_name(made_from["name"], made_from["model_sha"], made_from["key"]) != folder.name:
            raise UserError(f"{folder}: key.json does not match the folder's name; the cache was edited")
        chosen.append((folder, made_from))
    if not chosen:
        raise UserError(f"no prior in {cache} was made from the shipped base model")
    for folder, made_from in chosen:
        target = root / "priors" / folder.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / TENSORS, target / TENSORS)
        record = {
            **made_from,
            "cost": charged_cost(json.loads((folder / "cost.json").read_text()), made_from),
            "note": "cost.wall_s is what every run that reads this prior is charged (cost.wall_basis says why)",
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
        }
        atomic_write_text(target / "prior.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
        if record_sha256 is not None:
            record_sha256(f"priors/{folder.name}/{TENSORS}", sha256_file(target / TENSORS))
        print(f"{folder.name}: shipped ({record['cost']['wall_s']:.0f} s recorded)")
    return [folder.name for folder, _ in chosen]
