"""``unlearnbench testbed check``: measure the shipped models against the testbed's quality bars."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass

import torch

from unlearnbench.api import SamplerSettings
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings, draw, eval_settings, judge, sample_and_judge
from unlearnbench.metrics.fid import fidelity
from unlearnbench.pretrain import noise_images
from unlearnbench.schema import check_eval_settings
from unlearnbench.testbeds import DEFAULT, Testbed, default_guidance, load_testbed


def bars(tb: Testbed) -> dict[str, tuple[str, float]]:
    """The testbed's quality bars (:class:`~unlearnbench.testbed.QualityBars`) as (direction, limit) by check."""
    b = tb.bars
    return {
        "model_accuracy": (">=", b.model_accuracy),
        "model_min_class_accuracy": (">=", b.model_min_class_accuracy),
        "fid_ratio": ("<=", b.fid_ratio),
        "evaluator_accuracy": (">=", b.evaluator_accuracy),
        "evaluator_gaussian_none": (">=", b.evaluator_gaussian_none),
        "evaluator_uniform_none": (">=", b.evaluator_uniform_none),
    }


@dataclass
class Check:
    name: str
    value: float
    bar: tuple[str, float] | None

    @property
    def ok(self) -> bool:
        if self.bar is None:
            return True
        op, limit = self.bar
        return self.value >= limit if op == ">=" else self.value <= limit


@torch.no_grad()
def classifier_figures(clf: torch.nn.Module, tb: Testbed, n_noise: int = 2000, seed: int = 0) -> dict[str, float]:
    """Held-out accuracy (11-way) and the share of Gaussian / uniform noise labelled 'none'."""
    none = tb.num_classes
    test = judge(clf, tb.data.test_x, tb.data.test_y)
    g = torch.Generator().manual_seed(seed)
    shape = (n_noise, *tb.data.image_shape)
    gauss = torch.randn(shape, generator=g).clamp(-1, 1)
    unif = torch.rand(shape, generator=g) * 2 - 1
    mixed = noise_images(n_noise, tb.data.image_shape, g)
    zeros = torch.zeros(n_noise, dtype=torch.long)  # read as the first concept's family (a digit on text16)
    return {
        "accuracy": float((test.logits.argmax(-1) == tb.data.test_y).float().mean()),
        "accuracy_10way": float((test.probs10.argmax(-1) == tb.data.test_y).float().mean()),
        "gaussian_none": float((judge(clf, gauss, zeros).logits.argmax(-1) == none).float().mean()),
        "uniform_none": float((judge(clf, unif, zeros).logits.argmax(-1) == none).float().mean()),
        "mixed_noise_none": float((judge(clf, mixed, zeros).logits.argmax(-1) == none).float().mean()),
    }


def run_checks(tb: Testbed, per_class: int = 50, sampler: SamplerSettings | None = None, seed: int = 0) -> list[Check]:
    """Every figure of the check; ``sampler`` defaults to the testbed's default guidance."""
    sampler = sampler or SamplerSettings()
    if sampler.guidance_scale is None:
        sampler = dataclasses.replace(sampler, guidance_scale=default_guidance(tb.name, tb.model_source))
    checks: list[Check] = []
    limits = bars(tb)
    ev = classifier_figures(tb.evaluator, tb)
    at = classifier_figures(tb.attacker, tb)
    classes = tuple(range(tb.num_classes))
    settings = EvalSettings(forget_samples=per_class, retain_samples=0, sampler=sampler, seed=seed)
    samples = sample_and_judge(
        tb.model, tb.schedule, tb.evaluator, settings, tb.concepts, (), conditioner=tb.conditioner, desc="testbed check"
    )
    s = samples.forget
    assert s is not None
    hits = s.probs10.argmax(-1) == s.labels
    per = [float(hits[s.labels == c].float().mean()) for c in classes]
    hits11 = s.probs11.argmax(-1) == s.labels
    generated = fidelity(s.images, tb.data.test_x, tb.evaluator_path, prc=True)
    fid_gen = generated["frechet_inception_distance"]
    fid_real = fidelity(tb.data.train_x, tb.data.test_x, tb.evaluator_path, prc=False)["frechet_inception_distance"]
    checks += [
        Check("model_accuracy", float(hits.float().mean()), limits["model_accuracy"]),
        Check("model_accuracy_11way", float(hits11.float().mean()), None),
        Check("model_min_class_accuracy", min(per), limits["model_min_class_accuracy"]),
        *[Check(f"model_accuracy_class_{c}", a, None) for c, a in zip(tb.concepts, per, strict=True)],
        Check("fid_generated_vs_test", fid_gen, None),
        Check("fid_train_vs_test", fid_real, None),
        Check("fid_ratio", fid_gen / fid_real, limits["fid_ratio"]),
        # fidelity and diversity apart (no bars): guidance trades recall for precision
        Check("precision_vs_test", generated.get("precision", float("nan")), None),
        Check("recall_vs_test", generated.get("recall", float("nan")), None),
        Check("evaluator_accuracy", ev["accuracy"], limits["evaluator_accuracy"]),
        Check("evaluator_gaussian_none", ev["gaussian_none"], limits["evaluator_gaussian_none"]),
        Check("evaluator_uniform_none", ev["uniform_none"], limits["evaluator_uniform_none"]),
        Check("evaluator_mixed_noise_none", ev["mixed_noise_none"], None),
        Check("attacker_accuracy", at["accuracy"], None),
        Check("attacker_gaussian_none", at["gaussian_none"], None),
    ]
    if tb.second_judge is not None:  # it reports numbers beside the evaluator's: the same bars
        j2 = classifier_figures(tb.second_judge, tb)
        second = judge(tb.second_judge, s.images, s.labels)
        checks += [
            Check("judge2_accuracy", j2["accuracy"], limits["evaluator_accuracy"]),
            Check("judge2_gaussian_none", j2["gaussian_none"], limits["evaluator_gaussian_none"]),
            Check("judge2_uniform_none", j2["uniform_none"], limits["evaluator_uniform_none"]),
            Check("judge2_mixed_noise_none", j2["mixed_noise_none"], None),
            Check(
                "judges_agree_on_samples", float((second.logits.argmax(-1) == s.logits.argmax(-1)).float().mean()), None
            ),
        ]
    return checks + probe_checks(tb, per_class, sampler, seed)


@torch.no_grad()
def probe_checks(tb: Testbed, per_class: int, sampler: SamplerSettings, seed: int) -> list[Check]:
    """The testbed's own figures (:meth:`~unlearnbench.testbed.Testbed.probes`): each probe's accuracy, and its
    worst group's (named) when its rows are grouped."""
    checks: list[Check] = []
    for probe in tb.probes(per_class):
        images = draw(tb.model, tb.schedule, probe.cond, sampler, seed, stream=5, desc=probe.name)
        right = torch.ones(len(images), dtype=torch.bool)
        for meant in probe.read:
            right &= judge(tb.evaluator, images, meant).logits.argmax(-1) == meant
        bar = None if probe.bar is None else (">=", probe.bar)
        checks.append(Check(probe.name, float(right.float().mean()), bar))
        if probe.groups:
            by_group = {g: float(right[[i for i, x in enumerate(probe.groups) if x == g]].float().mean())
                        for g in dict.fromkeys(probe.groups)}  # fmt: skip
            worst = min(by_group, key=lambda g: by_group[g])
            group_bar = bar if probe.bar_every_group else None
            checks.append(Check(f"{probe.name}_worst ({worst})", by_group[worst], group_bar))
    return checks


def print_checks(checks: list[Check], beside: list[Check] | None, beside_label: str) -> None:
    values = {c.name.split(" (")[0]: c for c in beside or []}
    head = f"  {'':<44} {'value':>9}  {'bar':<8} {'verdict':<9}"
    print(head + (f" {beside_label:>12}" if beside is not None else ""))
    for c in checks:
        bar = f"{c.bar[0]} {c.bar[1]}" if c.bar else ""
        verdict = ("ok" if c.ok else "BELOW BAR") if c.bar else ""
        other = values.get(c.name.split(" (")[0])
        extra = "" if beside is None else f" {other.value:>12.4f}" if other is not None else f" {'':>12}"
        print(f"  {c.name:<44} {c.value:>9.4f}  {bar:<8} {verdict:<9}{extra}".rstrip())


def main(args: argparse.Namespace) -> int:
    """``unlearnbench testbed check``: print every figure; exit 1 when one is below its bar."""
    if args.per_class < 1:
        raise UserError(f"--per-class must be >= 1, got {args.per_class}")
    given = {
        k: getattr(args, k)
        for k in ("sample_steps", "guidance", "eta", "clip_sample", "precision", "protocol")
        if getattr(args, k) is not None
    }
    settings = eval_settings(given, seed=args.seed)
    check_eval_settings(settings, args.seed)  # as 'run' checks them, before anything loads
    sampler = settings.sampler
    parts = {k: getattr(args, k) for k in ("model", "dataset", "evaluator", "attacker")}
    tb = load_testbed(args.testbed or DEFAULT, **parts, device=args.device, download=args.download)
    if sampler.guidance_scale is None:
        sampler = dataclasses.replace(sampler, guidance_scale=default_guidance(tb.name, args.model))
    checks = run_checks(tb, per_class=args.per_class, sampler=sampler, seed=args.seed)
    papers = dataclasses.replace(sampler, guidance_scale=3.0, eta=1.0)
    beside = None
    if (sampler.guidance_scale, sampler.eta) != (papers.guidance_scale, papers.eta):
        beside = run_checks(tb, per_class=args.per_class, sampler=papers, seed=args.seed)
    if args.stability:
        from unlearnbench.stability import stability_test

        result = stability_test(tb)
        for row in result["rows"]:
            print(
                f"  stability: forget {row['forget']}, s = {row['guidance']}, eta = {row['eta']}: retained accuracy "
                f"{row['retain_accuracy_before']:.3f} -> {row['retain_accuracy_after']:.3f}, FID ratio "
                f"{row['fid_ratio_before']:.2f} -> {row['fid_ratio_after']:.2f} ({'ok' if row['ok'] else 'MOVED'})"
            )
        checks.append(Check("stability_test_passed", float(result["passed"]), (">=", 1.0)))
    print(
        f"testbed {tb.name}: model {tb.model_sha[:12]}, evaluator {tb.evaluator_sha[:12]}, "
        f"{args.per_class} samples per concept, DDIM {sampler.steps} steps, guidance {sampler.guidance_scale}, "
        f"eta {sampler.eta}, x0 {'clipped' if sampler.clip_sample else 'not clipped'} per step, "
        f"{sampler.precision} forwards" + ("" if beside is None else "; the last column at s = 3, eta = 1")
    )
    print_checks(checks, beside, "s=3, eta=1")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("all bars met")
    return 0
