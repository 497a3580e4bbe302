"""``RunSpec``: one run as frozen plain data. Objects are built from its names at run time."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from unlearnbench.api import SamplerSettings
from unlearnbench.args import canonical_json
from unlearnbench.evaluate import EvalSettings

SPEC_VERSION = 1

# Settings added after runs were first stored, with the value every earlier run used. A spec at that value
# hashes as if the field did not exist, so adding a setting does not orphan the stores that predate it
# (a sweep over them resumes instead of rerunning everything); any other value is part of the hash.
ADDED_LATER: dict[tuple[str, ...], Any] = {
    ("eval", "sampler", "precision"): "float32",
    ("unlearn_precision",): "float32",
}


@dataclass(frozen=True)
class RunSpec:
    """A method, an attack, what to forget, on which testbed, evaluated how, with which seed.

    ``method_args``/``attack_args`` hold only what the user set; defaults are filled in (and recorded)
    by the runner, so a spec written today keeps its meaning if a default changes (the ``run_id``
    then changes with it, because rows record the resolved arguments).
    """

    method: str
    attack: str = "none"
    forget_classes: tuple[int, ...] = (0,)
    method_args: dict[str, Any] = field(default_factory=dict)
    attack_args: dict[str, Any] = field(default_factory=dict)
    testbed: str = "digits16"
    model: str | None = None
    dataset: str | None = None
    evaluator: str | None = None
    attacker: str | None = None
    seed: int = 0
    # Share of the method's training forwards with the null label; None: the method's upstream value.
    label_dropout: float | None = None
    # The arithmetic of the method's gradient steps: "float32", or "bfloat16" autocast (the sampler's is
    # ``eval.sampler.precision``; attacks always train in float32).
    unlearn_precision: str = "float32"
    eval: EvalSettings = field(default_factory=EvalSettings)
    label: str = ""
    metrics: tuple[str, ...] = ()  # empty: every registered metric

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["forget_classes"] = list(self.forget_classes)
        d["metrics"] = list(self.metrics)
        d["spec_version"] = SPEC_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        d = dict(d)
        d.pop("spec_version", None)
        ev = dict(d.pop("eval", {}) or {})  # copies: the caller's dict stays as it was
        sampler = SamplerSettings(**ev.pop("sampler", {}))
        return cls(
            **{**d, "forget_classes": tuple(d.get("forget_classes", (0,))), "metrics": tuple(d.get("metrics", ()))},
            eval=EvalSettings(**ev, sampler=sampler),
        )

    def canonical(self) -> str:
        d = self.to_dict()
        for path, before in ADDED_LATER.items():
            *parents, name = path
            node = d
            for key in parents:
                node = node[key]
            if node.get(name) == before:
                del node[name]
        return canonical_json(d)

    @property
    def run_id(self) -> str:
        """Stable hash of everything that defines the run (not of when or where it ran)."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]

    def unlearn_key(
        self,
        model_sha: str,
        resolved_method_args: dict[str, Any],
        *,
        uses_sampler: bool = True,
        uses_seed: bool = True,
    ) -> str:
        """What determines the unlearned model: runs that share it share one unlearning. The sampler setting is
        part of it only for a method that samples while unlearning (``UnlearningMethod.uses_sampler``), the
        run's seed only for one that draws from the run's generator (``UnlearningMethod.uses_seed``)."""
        key = {
            "method": self.method,
            "args": resolved_method_args,
            "forget": list(self.forget_classes),
            "model_sha": model_sha,
            "dataset": self.dataset,
            "label_dropout": self.label_dropout,
        }
        if self.unlearn_precision != "float32":  # absent at float32: keys from before the setting stay valid
            key["precision"] = self.unlearn_precision
        if uses_seed:
            key["seed"] = self.seed
        if uses_sampler:
            key["guidance"] = self.eval.sampler.guidance_scale  # replay, saliency, ESD's x_t: guided
            key["sampler"] = "ddim, x0 not clipped"  # how replay samples are drawn (clipped before 2026-11-29)
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def with_(self, **changes: Any) -> RunSpec:
        return replace(self, **changes)

    @property
    def forget_label(self) -> str:
        return ",".join(str(c) for c in self.forget_classes)
