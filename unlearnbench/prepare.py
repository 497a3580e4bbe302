"""What a run needs before any work: its spec resolved (every default filled in, so it can be hashed), checked
(one line per problem), its testbed and its task (the concepts' images and conditionings)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from unlearnbench import registry
from unlearnbench.api import Attack, Task, UnlearningMethod
from unlearnbench.args import to_dict
from unlearnbench.diffusion import PRECISIONS
from unlearnbench.errors import UserError
from unlearnbench.spec import RunSpec
from unlearnbench.testbeds import Testbed, default_guidance, load_testbed


@dataclass
class Resolved:
    """A spec with every default filled in, and the objects built from its names."""

    spec: RunSpec
    method: UnlearningMethod
    attack: Attack

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    def unlearn_key(self, model_sha: str) -> str:
        """The unlearned model's cache key (the sampler in it only for a method that samples while unlearning)."""
        return self.spec.unlearn_key(
            model_sha, self.spec.method_args, uses_sampler=self.method.uses_sampler, uses_seed=self.method.uses_seed
        )


def resolve(spec: RunSpec) -> Resolved:
    """Build the method and attack (validating their arguments), and fill in every default: the resolved
    arguments, the method's upstream label dropout and, when the spec leaves it out, the testbed's guidance.
    The run is hashed after this."""
    for metric in spec.metrics:
        registry.get("metric", metric)
    method_cls = registry.get("method", spec.method)
    method = method_cls(method_cls(spec.method_args).resolved())
    attack = registry.get("attack", spec.attack)(spec.attack_args)
    sampler = spec.eval.sampler
    if sampler.guidance_scale is None:
        sampler = dataclasses.replace(sampler, guidance_scale=default_guidance(spec.testbed, spec.model))
    label_dropout = spec.label_dropout if spec.label_dropout is not None else type(method).upstream_label_dropout
    full = dataclasses.replace(
        spec,
        label_dropout=label_dropout,
        method_args=to_dict(method.args),
        attack_args=to_dict(attack.args),
        eval=dataclasses.replace(spec.eval, sampler=sampler),
    )
    return Resolved(full, method, attack)


def check_budgets(
    resolved: Resolved, tb: Testbed, tasks: dict[tuple[int, tuple[str, ...]], Task] | None = None
) -> None:
    """The attack's budget fits the data the task holds (one line if not); before any work.

    An attack that checks nothing builds no task. ``tasks`` keeps the tasks built so far by testbed and forget
    concepts (what an attack's check reads), so a sweep's plan builds each once: on text16 a task encodes every
    training caption, seconds per run."""
    if type(resolved.attack).check is Attack.check:
        return
    key = (id(tb), tuple(resolved.spec.forget))
    task = tasks.get(key) if tasks is not None else None
    if task is None:
        task = build_task(resolved.spec, tb, torch.device("cpu"))
        if tasks is not None:
            tasks[key] = task
    resolved.attack.check(task)


def testbed_for(spec: RunSpec, *, device: torch.device | str = "cpu", download: bool = False) -> Testbed:
    """The (cached, shared, read-only) testbed a spec runs on."""
    return load_testbed(
        spec.testbed,
        model=spec.model,
        dataset=spec.dataset,
        evaluator=spec.evaluator,
        attacker=spec.attacker,
        device=str(device),
        download=download,
    )


def validate(spec: RunSpec, tb: Testbed, train_steps: int | None = None) -> RunSpec:
    """Every check that can fail before any work is done: one line each. Returns the spec with its forget
    concepts as the testbed names them (a synonym, ``--forget 7`` on text16, is the run ``--forget seven``).

    The forget concepts must be the testbed's (a did-you-mean otherwise), distinct, and leave one retained.

    Sample counts, sampler steps (1 to the schedule's ``train_steps``, 1000 unless given), guidance
    (finite, 0 to 50), eta and the seed (0 <= seed < 2**63) are range-checked by
    :func:`unlearnbench.schema.check_run_settings`.
    """
    from unlearnbench.schema import TRAIN_STEPS, check_eval_settings

    if spec.label_dropout is not None and not 0 <= spec.label_dropout < 1:
        raise UserError(f"--label-dropout must be in [0, 1), got {spec.label_dropout}")
    if spec.unlearn_precision not in PRECISIONS:
        raise UserError(f"--unlearn-precision must be one of {', '.join(PRECISIONS)}, got {spec.unlearn_precision!r}")
    forget = tb.check_forget(spec.forget)
    check_eval_settings(spec.eval, spec.seed, TRAIN_STEPS if train_steps is None else train_steps)
    return spec if forget == tuple(spec.forget) else dataclasses.replace(spec, forget=forget)


def build_task(spec: RunSpec, tb: Testbed, device: torch.device) -> Task:
    from unlearnbench.api import SamplerSettings
    from unlearnbench.cost import CostMeter

    forget = tb.check_forget(spec.forget)
    retain = tb.retained(forget)
    fx, fc = tb.images("train", forget)
    rx, rc = tb.images("train", retain, exclude=forget)
    return Task(
        data=tb.data,
        schedule=tb.schedule,
        conditioner=tb.conditioner,
        forget_concepts=forget,
        retain_concepts=retain,
        forget_x=fx.to(device),
        forget_cond=fc.to(device),
        retain_x=rx.to(device),
        retain_cond=rc.to(device),
        sampler=SamplerSettings(**dataclasses.asdict(spec.eval.sampler)),
        attacker=tb.attacker,
        meter=CostMeter(device),
        device=device,
        recipe=tb.recipe,
        references=tb.references,
        original_model=tb.model,
        eval_forget_samples=spec.eval.forget_samples,
        label_dropout=spec.label_dropout or 0.0,
        unlearn_precision=spec.unlearn_precision,
    )
