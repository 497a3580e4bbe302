"""Speed, measured with pytest-benchmark (``tox -e bench``). These assert behaviour, never time."""

from __future__ import annotations

import pytest
import torch

from unlearnbench import registry
from unlearnbench.api import SamplerSettings, run_unlearning
from unlearnbench.diffusion import ddim_sample
from unlearnbench.evaluate import EvalSettings
from unlearnbench.metrics.fid import fidelity
from unlearnbench.priors import PriorCache
from unlearnbench.results import Store
from unlearnbench.runner import Runner, build_task
from unlearnbench.spec import RunSpec
from unlearnbench.testbeds import default_guidance


def test_sampler_throughput_100_samples_50_steps(benchmark, testbed):
    labels = testbed.conditioner.encode(testbed.conditioner.concepts).repeat_interleave(10)

    def sample():
        return ddim_sample(
            testbed.model, testbed.schedule, labels, generator=torch.Generator().manual_seed(0), steps=50
        )

    out = benchmark.pedantic(sample, rounds=3, iterations=1)
    assert out.shape == (100, 1, 16, 16)
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["samples_per_s"] = 100 / benchmark.stats["mean"]


@pytest.mark.parametrize("name", [n for n in registry.names("method") if n not in ("noop", "retrain")])
def test_one_unlearning_step(benchmark, testbed, name, tmp_path):
    """One gradient step of each method at its default batch size. Priors (SA's Fisher and replay) are
    computed in the warm-up round and cached, so the timed rounds charge their recorded cost but do not
    redo them; SalUn's mask is recomputed every round (it is part of every SalUn run)."""
    cls = registry.get("method", name)
    one = {
        "selective_amnesia": {"steps": 1, "samples_per_class": 1, "replay_steps": 5},
        "erasediff": {"rounds": 1, "outer_steps": 1, "inner_passes": 1},
        "esd": {"steps": 1},
    }.get(name, {"steps": 1})
    spec = RunSpec(method=name, forget_classes=(0,))
    task = build_task(spec, testbed, torch.device("cpu"))
    task.priors = PriorCache(tmp_path, testbed.model_sha)
    method = cls(one)
    out = benchmark.pedantic(
        lambda: run_unlearning(method, testbed.model, task, generator=torch.Generator().manual_seed(0)),
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    assert out.cost.steps >= 1


def test_fid_computation(benchmark, testbed):
    real = testbed.data.test_x
    fake = testbed.data.train_x[:300]
    out = benchmark.pedantic(lambda: fidelity(fake, real, testbed.evaluator_path), rounds=3, iterations=1)
    assert out["frechet_inception_distance"] > 0


def test_whole_quick_run(benchmark, testbed, tmp_path):
    """``run --method safemax --attack relearn`` at smoke budgets, caches off (a fresh store per round)."""
    rounds = iter(range(100))

    def run():
        store = Store(tmp_path / f"s{next(rounds)}")
        spec = RunSpec(
            method="safemax",
            attack="relearn",
            method_args={"steps": 5},
            attack_args={"steps": 10, "eval_every": 5},
            eval=EvalSettings(
                forget_samples=20,
                retain_samples=4,
                curve_samples=10,
                sampler=SamplerSettings(steps=20, guidance_scale=default_guidance()),
            ),
        )
        return Runner(store).run(spec)

    df = benchmark.pedantic(run, rounds=2, iterations=1)
    assert set(df.phase) == {"original", "unlearned", "attacked"}
