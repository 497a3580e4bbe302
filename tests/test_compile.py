"""``--compile``: the sampler's model forwards through torch.compile, a machine setting recorded in every row."""

from __future__ import annotations

import pytest
import torch

from unlearnbench.conditioning import Conditioning
from unlearnbench.diffusion import ddim_sample

LABELS = Conditioning.from_labels(torch.tensor([0, 1, 2, 3, 4]), null=10)


def _sample(model, schedule, **kw):
    return ddim_sample(model, schedule, LABELS, generator=torch.Generator().manual_seed(0), steps=3, **kw)


@pytest.fixture
def spy(monkeypatch):
    """torch.compile replaced by a spy that returns the model itself (the real one takes a minute)."""
    calls = []

    def fake_compile(model, **kw):
        calls.append(kw)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    return calls


def test_the_sampler_compiles_only_when_asked_and_never_a_differentiable_chain(tiny_unet, schedule, spy):
    eager = _sample(tiny_unet, schedule)
    assert spy == []
    assert torch.equal(_sample(tiny_unet, schedule, compile=True), eager)  # the spy returns the model itself
    assert spy == [{"dynamic": True}]
    _sample(tiny_unet, schedule, grad=True, compile=True)
    assert len(spy) == 1


def test_only_the_evaluations_draws_compile(tiny_unet, schedule, spy, monkeypatch):
    """Under --compile the evaluation's draws compile; sampling inside a method (Selective Amnesia's replay)
    stays eager, so no compilation time is charged to its cost."""
    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import draw

    monkeypatch.setenv("UNLEARNBENCH_COMPILE", "1")
    draw(tiny_unet, schedule, LABELS, SamplerSettings(steps=2), seed=0, stream=0)
    assert spy == [{"dynamic": True}]
    _sample(tiny_unet, schedule)  # a method's own ddim_sample call
    assert len(spy) == 1
    monkeypatch.setenv("UNLEARNBENCH_COMPILE", "0")
    draw(tiny_unet, schedule, LABELS, SamplerSettings(steps=2), seed=0, stream=0)
    assert len(spy) == 1


def test_workers_get_the_drivers_compile_setting(monkeypatch):
    from unlearnbench.backends import LocalBackend, setup_worker

    monkeypatch.setenv("UNLEARNBENCH_COMPILE", "1")
    assert LocalBackend(threads=1).compile is True
    monkeypatch.setenv("UNLEARNBENCH_COMPILE", "0")
    assert LocalBackend(threads=1).compile is False
    setup_worker(torch.get_num_threads(), (), compile=True)  # a worker whose own environment says nothing
    import os

    assert os.environ["UNLEARNBENCH_COMPILE"] == "1"


def test_the_flag_reaches_the_environment_and_every_row(tmp_path, spy, monkeypatch):
    from unlearnbench.cli import main
    from unlearnbench.environment import environment
    from unlearnbench.evaluate import eval_settings
    from unlearnbench.results import load_results
    from unlearnbench.runner import resolve
    from unlearnbench.spec import RunSpec

    monkeypatch.setenv("UNLEARNBENCH_COMPILE", "0")  # restored (unset) after the test, whatever the CLI sets
    assert environment(torch.device("cpu"))["compiled"] is False
    small = {"forget_samples": 4, "retain_samples": 1, "sample_steps": 2}
    eager_id = resolve(RunSpec(method="noop", forget=(3,), eval=eval_settings(small))).run_id
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in small.items()]
    args = ["run", "--method", "noop", "--attack", "none", "--forget-class", "3", *flags, "--quiet", "--compile"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    rows = load_results(tmp_path)
    assert spy and rows.compiled.all()
    assert set(rows.run_id) == {eager_id}  # a machine setting: not part of the run id


def test_a_bad_compile_variable_is_one_line(monkeypatch, capsys):
    from unlearnbench.cli import main

    monkeypatch.setenv("UNLEARNBENCH_COMPILE", "yes")
    assert main(["run", "--method", "noop", "--attack", "none", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "UNLEARNBENCH_COMPILE" in err


@pytest.mark.slow
def test_compiled_float32_sampling_matches_eager(tiny_unet, schedule):
    """The real torch.compile (a minute or two cold): float32 samples agree with eager ones to rounding."""
    eager = _sample(tiny_unet, schedule, guidance_scale=3.0)
    compiled = _sample(tiny_unet, schedule, guidance_scale=3.0, compile=True)
    assert torch.allclose(compiled, eager, atol=1e-4), (compiled - eager).abs().max()
