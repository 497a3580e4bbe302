"""``RunSpec``: one run as frozen plain data. Objects are built from its names at run time."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from unlearnbench.api import SamplerSettings
from unlearnbench.args import canonical_json
from unlearnbench.conditioning import concept_name
from unlearnbench.evaluate import EvalSettings

SPEC_VERSION = 1

# Settings added after runs were first stored, with the value every earlier run used. A spec at that value
# hashes as if the field did not exist, so adding a setting does not orphan the stores that predate it
# (a sweep over them resumes instead of rerunning everything); any other value is part of the hash.
ADDED_LATER: dict[tuple[str, ...], Any] = {
    ("eval", "sampler", "precision"): "float32",
    ("unlearn_precision",): "float32",
    ("attack_args", "curve_steps"): [],  # relearning's checkpoint list: empty is every eval_every, as before
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
    # The concepts to forget, as the testbed names them ("3" on digits16, "circle" elsewhere).
    forget: tuple[str, ...] = ("0",)
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

    def __post_init__(self) -> None:
        # A class number is its concept's name: (3,) and ("3",) are one spec.
        object.__setattr__(self, "forget", tuple(concept_name(c) for c in self.forget))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists), as the run's file stores it and reads it back."""
        d = json.loads(json.dumps(asdict(self)))
        d["spec_version"] = SPEC_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """From :meth:`to_dict`'s form, or a run file written before concepts (``forget_classes``: ints)."""
        d = dict(d)
        d.pop("spec_version", None)
        if "forget_classes" in d:
            d["forget"] = d.pop("forget_classes")
        ev = dict(d.pop("eval", {}) or {})  # copies: the caller's dict stays as it was
        # a run stored before the sampler's precision was a setting sampled in float32, whatever today's default
        sampler = SamplerSettings(**{"precision": "float32", **ev.pop("sampler", {})})
        return cls(
            **{**d, "forget": tuple(d.get("forget", ("0",))), "metrics": tuple(d.get("metrics", ()))},
            eval=EvalSettings(**ev, sampler=sampler),
        )

    def canonical(self) -> str:
        d = self.to_dict()
        # Runs were hashed with ``forget_classes`` (ints) before concepts had names; where every concept is a
        # class number they still are, so the stores from before keep their run ids.
        classes = class_numbers(self.forget)
        if classes is not None:
            d["forget_classes"] = list(classes)
            del d["forget"]
        for path, before in ADDED_LATER.items():
            *parents, name = path
            node = d
            for key in parents:
                node = node[key]
            if name in node and _plain(node[name]) == before:
                del node[name]
        return canonical_json(d)

    def recorded_args(self, which: str) -> dict[str, Any]:
        """``method_args`` or ``attack_args`` as rows record them: an argument added later, at the value every
        earlier run used, is left out, so old and new rows of one setting read alike (``check``'s keys)."""
        args = dict(getattr(self, which))
        for (where, *rest), before in ADDED_LATER.items():
            if where == which and len(rest) == 1 and rest[0] in args and _plain(args[rest[0]]) == before:
                del args[rest[0]]
        return args

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
            "forget": list(class_numbers(self.forget) or self.forget),  # class numbers as before concepts
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
        """The forgotten concepts, comma-joined (the ``forget_concept`` column)."""
        return ",".join(self.forget)

    @property
    def forget_class(self) -> int | None:
        """The forgotten class number when exactly one concept that is a class number is forgotten (the
        ``forget_class`` column), else None."""
        classes = class_numbers(self.forget)
        return classes[0] if classes is not None and len(classes) == 1 else None


def _plain(value: Any) -> Any:
    """A value as JSON reads it back (tuples as lists), so a spec compares alike before and after a round trip."""
    return list(value) if isinstance(value, tuple) else value


def class_numbers(concepts: tuple[str, ...]) -> tuple[int, ...] | None:
    """The concepts as class numbers when every name is one (``"3"``, not ``"03"`` or ``"circle"``), else None."""
    if concepts and all(c.isdigit() and c.isascii() and str(int(c)) == c for c in concepts):
        return tuple(int(c) for c in concepts)
    return None
