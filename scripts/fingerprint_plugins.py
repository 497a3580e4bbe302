"""Fingerprint every method and attack at smoke budgets (tiny UNet, real digits16 data): sha256 of the
returned weights, conditioning and seeds, and of the evaluation samples, at guidance 1 and 2, with one and
two forget classes. Run it on two commits and diff the outputs: a refactor that keeps every random draw
and every number prints the same lines.

    UNLEARNBENCH_PROGRESS=0 python scripts/fingerprint_plugins.py [NAME ...] > out.txt
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys

import torch

from unlearnbench import registry
from unlearnbench.api import SamplerSettings, run_attack, run_unlearning
from unlearnbench.evaluate import EvalSettings, sample_and_judge
from unlearnbench.models import UNetArch
from unlearnbench.runner import build_task
from unlearnbench.spec import RunSpec
from unlearnbench.testbeds import load_testbed

TINY = UNetArch(block_out_channels=(8, 16), layers_per_block=1, attention=False, norm_num_groups=4)


def h(t: torch.Tensor | None) -> str:
    if t is None:
        return "-"
    t = t if isinstance(t, torch.Tensor) else t.values
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:12]


def hm(model: torch.nn.Module) -> str:
    d = hashlib.sha256()
    for k, v in model.state_dict().items():
        d.update(k.encode())
        d.update(v.detach().cpu().contiguous().numpy().tobytes())
    return d.hexdigest()[:12]


torch.set_num_threads(1)
tb = load_testbed("digits16")
only = sys.argv[1:]
for guidance in (1.0, 2.0):
    for forget in ((0,), (3, 4)):
        spec = RunSpec(method="noop", forget=forget)
        torch.manual_seed(0)
        base = TINY.build().eval()
        for name in registry.names("method"):
            if only and name not in only:
                continue
            if name == "retrain" and (guidance != 1.0 or forget != (0,)):
                continue
            cls = registry.get("method", name)
            args = dict(cls.smoke_args)
            if name == "random_label":
                for relabel in ("next", "random"):
                    task = build_task(spec, tb, torch.device("cpu"))
                    task.sampler = SamplerSettings(steps=3, guidance_scale=guidance)
                    out = run_unlearning(
                        cls({**args, "relabel": relabel}), base, task, generator=torch.Generator().manual_seed(0)
                    )
                    print(f"g={guidance} f={forget} method {name}/{relabel}: {hm(out.model)}", flush=True)
                continue
            if name == "erasediff":
                args["forget_loss"] = "random_label"
            task = build_task(spec, tb, torch.device("cpu"))
            task.sampler = SamplerSettings(steps=3, guidance_scale=guidance)
            out = run_unlearning(cls(args), base, task, generator=torch.Generator().manual_seed(0))
            print(f"g={guidance} f={forget} method {name}: {hm(out.model)}", flush=True)
        for name in registry.names("attack"):
            if only and name not in only:
                continue
            cls = registry.get("attack", name)
            starts = (
                ["null", "other", "random", "forget"]
                if "start" in {f.name for f in dataclasses.fields(cls.Args)}
                else [None]
            )
            for start in starts:
                args = dict(cls.smoke_args, **({"start": start} if start else {}))
                task = build_task(spec, tb, torch.device("cpu"))
                task.sampler = SamplerSettings(steps=3, guidance_scale=guidance)
                task.eval_forget_samples = 4
                att, _ = run_attack(cls(args), base, task, generator=torch.Generator().manual_seed(0))
                settings = EvalSettings(
                    forget_samples=4, retain_samples=2, sampler=SamplerSettings(steps=3, guidance_scale=guidance)
                )
                s = sample_and_judge(
                    att.model,
                    tb.schedule,
                    tb.evaluator,
                    settings,
                    task.forget_concepts,
                    task.retain_concepts,
                    conditioner=task.conditioner,
                    forget_cond=att.cond,
                    forget_x_T=att.x_T,
                )
                print(
                    f"g={guidance} f={forget} attack {name}/{start}: model {hm(att.model)} cond {h(att.cond)} "
                    f"x_T {h(att.x_T)} forget {h(s.forget.images)} retain {h(s.retain.images)}",
                    flush=True,
                )
