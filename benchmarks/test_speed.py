"""Speed, measured with pytest-benchmark (``tox -e bench``). These assert behaviour, never time."""

from __future__ import annotations

import math

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


@pytest.mark.parametrize("name", [n for n in registry.names("method") if n not in ("noop", "retrain", "given")])
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
    spec = RunSpec(method=name, forget=(0,))
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


# ---------------------------------------------------------------------------------------------
# Against the hardware (issue 15, item 3). Each figure lands in the benchmark's extra_info; the README's
# Performance section quotes them. Nothing here fails on time.
# ---------------------------------------------------------------------------------------------

N_SAMPLES = 200


def _labels(testbed, n=N_SAMPLES):
    return testbed.conditioner.encode(testbed.conditioner.concepts).repeat_interleave(n // 10)


def _unet_flops(testbed, batch: int, guidance: float) -> float:
    """FLOPs of one sampler step's UNet forward(s) for ``batch`` samples (counted by torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    from unlearnbench.diffusion import guided_noise

    x = torch.randn(batch, 1, 16, 16)
    t = torch.full((batch,), 500)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        guided_noise(testbed.model, x, t, _labels(testbed, batch), guidance)
    return float(counter.get_total_flops())


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_sampler_against_its_unet_forwards(benchmark, testbed, guidance, precision, compiled):
    """The sampler (200 samples x 50 DDIM steps) against the sum of its UNet forwards at the same batch,
    precision, guidance and compilation (``--compile``): the overhead ratio (goal <= 1.1), samples/s, and the
    UNet's GFLOP/s. Compiled, the first call (compilation included) is recorded as ``first_call_s``."""
    import time

    from unlearnbench.diffusion import compiled_network, forward_precision, guided_noise

    labels = _labels(testbed)

    def sample():
        return ddim_sample(
            testbed.model,
            testbed.schedule,
            labels,
            generator=torch.Generator().manual_seed(0),
            steps=50,
            guidance_scale=guidance,
            eta=1.0 if guidance == 3.0 else 0.0,
            precision=precision,
            compile=compiled,
        )

    t0 = time.perf_counter()
    sample()
    first_call_s = time.perf_counter() - t0
    out = benchmark.pedantic(sample, rounds=3, iterations=1)
    assert out.shape == (N_SAMPLES, 1, 16, 16) and torch.isfinite(out).all()
    if not benchmark.stats:  # --benchmark-disable: behaviour only
        return
    x = torch.randn(N_SAMPLES, 1, 16, 16)
    net = compiled_network(testbed.model) if compiled else testbed.model
    forwards = []
    for _ in range(3):
        t0 = time.perf_counter()
        with torch.no_grad(), forward_precision(precision, torch.device("cpu")):
            for step in range(50):
                guided_noise(net, x, torch.full((N_SAMPLES,), 999 - 20 * step), labels, guidance)
        forwards.append(time.perf_counter() - t0)
    sampler_s = benchmark.stats["min"]
    flops = 50 * _unet_flops(testbed, N_SAMPLES, guidance)
    benchmark.extra_info.update(
        first_call_s=first_call_s,
        samples_per_s=N_SAMPLES / sampler_s,
        forwards_s=min(forwards),
        sampler_over_forwards=sampler_s / min(forwards),
        unet_gflop_per_s=flops / min(forwards) / 1e9,
        mflop_per_sample_step=flops / 50 / N_SAMPLES / 1e6,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_machine_matmul_rate(benchmark, dtype):
    """The machine's reference rate: a 2048 x 2048 matrix product (what the UNet's GFLOP/s is compared with)."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    out = benchmark.pedantic(lambda: a @ b, rounds=5, iterations=1, warmup_rounds=1)
    assert out.shape == (2048, 2048)
    if benchmark.stats:
        benchmark.extra_info["gflop_per_s"] = 2 * 2048**3 / benchmark.stats["min"] / 1e9


@pytest.mark.parametrize("n", [50, 100, 200, 400, 1000, 2000])
def test_sampling_cost_and_memory_against_sample_count(benchmark, testbed, n):
    """Time should grow linearly with the sample count (per-sample time flat) and peak memory stay flat
    beyond one batch (the sampler batches at 512)."""
    from unlearnbench.cost import CostMeter

    labels = _labels(testbed, n)
    meter = CostMeter("cpu")

    def sample():
        with meter.measure():
            return ddim_sample(testbed.model, testbed.schedule, labels, generator=torch.Generator(), steps=20)

    out = benchmark.pedantic(sample, rounds=2, iterations=1)
    assert out.shape[0] == n
    if benchmark.stats:
        benchmark.extra_info.update(s_per_sample=benchmark.stats["min"] / n, peak_mem_mb=meter.cost.peak_mem_mb)


@pytest.mark.parametrize("steps", [5, 10, 20, 40])
def test_unlearning_cost_against_steps(benchmark, testbed, steps):
    """SAFEMax's time should grow linearly with its steps (time per step flat)."""
    spec = RunSpec(method="safemax", forget=(0,))
    task = build_task(spec, testbed, torch.device("cpu"))
    method = registry.get("method", "safemax")({"steps": steps})
    out = benchmark.pedantic(
        lambda: run_unlearning(method, testbed.model, task, generator=torch.Generator().manual_seed(0)),
        rounds=2,
        iterations=1,
    )
    assert out.cost.steps == steps
    if benchmark.stats:
        benchmark.extra_info["s_per_step"] = benchmark.stats["min"] / steps


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_training_step_in_float32_and_under_bfloat16_autocast(benchmark, testbed, precision):
    """One Selective-Amnesia-sized training step (batch 256: forward, backward, Adam) of the project's one
    training loop on the shipped UNet, in float32 and with the forward under bfloat16 autocast: what bfloat16
    training would save, since unlearning is most of a sweep's time. Training does not use autocast (yet);
    this measures the option."""
    import copy

    from unlearnbench.diffusion import forward_precision, per_sample_mse, predict_noise
    from unlearnbench.training import optimize

    model = copy.deepcopy(testbed.model).train().requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(256, 1, 16, 16, generator=g), torch.randn(256, 1, 16, 16, generator=g)
    t = torch.randint(0, 1000, (256,), generator=g)
    cond = testbed.conditioner.encode(testbed.conditioner.concepts)[torch.randint(0, 10, (256,), generator=g)]

    def loss_fn(_step: int) -> torch.Tensor:
        with forward_precision(precision, torch.device("cpu")):
            out = predict_noise(model, x, t, cond)
        return per_sample_mse(out.float(), eps).mean()

    losses = benchmark.pedantic(
        lambda: optimize(model.parameters(), loss_fn, steps=1, lr=1e-4, desc="bench"),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    assert len(losses) == 1 and torch.isfinite(torch.tensor(losses[0]))
    # the weights stay float32 and every one of them got a float32 gradient
    assert all(
        p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters()
    )
    if benchmark.stats:
        benchmark.extra_info["steps_per_s"] = 1 / benchmark.stats["min"]


def test_the_main_command(benchmark, tmp_path):
    """``unlearnbench run --method safemax --attack relearn`` at its defaults (sample counts, steps, the default
    sampler precision), in a fresh store each round: the README's main command, end to end but for the
    interpreter's start."""
    from unlearnbench.cli import main

    rounds = iter(range(100))

    def run() -> int:
        return main(
            ["run", "--method", "safemax", "--attack", "relearn", "--quiet", "--out", str(tmp_path / str(next(rounds)))]
        )

    assert benchmark.pedantic(run, rounds=1, iterations=1) == 0


def test_text16_unet_forward_and_training_step(benchmark):
    """The text16 UNet at its recipe's size (random weights, random token states of the encoder's shape): one
    forward and one AdamW step on a batch of 64, the unit of its two-hour training."""
    from unlearnbench.conditioning import Conditioning
    from unlearnbench.diffusion import denoising_loss
    from unlearnbench.pretrain import DiffusionRecipe
    from unlearnbench.testbeds.text16.build import UNET

    torch.manual_seed(0)
    model = UNET.build(64).train()
    schedule = DiffusionRecipe().schedule()
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    cond = Conditioning.from_tokens(torch.randn(64, 16, 64), torch.zeros(16, 64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def step() -> float:
        opt.zero_grad()
        loss = denoising_loss(model, schedule, x, cond, generator=generator)
        loss.backward()
        opt.step()
        return float(loss)

    assert math.isfinite(benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1))
    if benchmark.stats:
        benchmark.extra_info["params"] = sum(p.numel() for p in model.parameters())
