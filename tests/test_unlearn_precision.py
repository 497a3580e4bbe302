"""A run's ``unlearn_precision``: the arithmetic of the unlearning method's gradient steps (float32, or bfloat16
autocast), set once around the method by ``run_unlearning``, recorded in every row and part of the run id
and of the unlearned model's cache key."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import make_task
from unlearnbench.api import UnlearningMethod, run_unlearning
from unlearnbench.cli import main
from unlearnbench.diffusion import add_noise, predict_noise
from unlearnbench.errors import UserError
from unlearnbench.grid import grids_from_config, specs_of
from unlearnbench.results import Store
from unlearnbench.runner import Runner, resolve, validate
from unlearnbench.spec import RunSpec
from unlearnbench.training import optimize


def _denoising_steps(model, task, seen: list[tuple[torch.dtype, torch.dtype]], steps: int = 2) -> None:
    """Two steps of the denoising loss on forget images, recording the UNet output's and the loss's dtype."""
    x0 = task.forget_x[:4]
    cond = task.forget_cond[torch.arange(4)]
    g = torch.Generator().manual_seed(0)

    def loss_fn(step: int) -> torch.Tensor:
        x_t, t, noise = add_noise(task.schedule, x0, generator=g)
        out = predict_noise(model, x_t, t, cond)
        loss = torch.nn.functional.mse_loss(out.float(), noise)
        seen.append((out.dtype, loss.dtype))
        return loss

    optimize(model.parameters(), loss_fn, steps=steps, lr=1e-3, desc="probe", meter=task.meter)


def test_run_unlearning_trains_under_the_tasks_precision_and_only_there(tiny_unet):
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    grads: list[torch.dtype] = []

    class Probe(UnlearningMethod):
        def unlearn(self, model, task, *, generator):
            _denoising_steps(model, task, seen)
            grads.extend({p.grad.dtype for p in model.parameters() if p.grad is not None})
            return model

    task = make_task(forget=(3,))
    plain = run_unlearning(Probe(), tiny_unet, task, generator=torch.Generator().manual_seed(0))
    assert seen == [(torch.float32, torch.float32)] * 2
    seen.clear()
    task.unlearn_precision = "bfloat16"
    fast = run_unlearning(Probe(), tiny_unet, task, generator=torch.Generator().manual_seed(0))
    # the UNet's forwards run in bfloat16; weights, gradients and the loss stay float32
    assert seen == [(torch.bfloat16, torch.float32)] * 2 and set(grads) == {torch.float32}
    assert {p.dtype for p in fast.model.parameters()} == {torch.float32}
    assert fast.cost.steps == plain.cost.steps == 2
    # the two models differ (other arithmetic), but not by much after two small steps
    diffs = [(a - b).abs().max().item() for a, b in zip(plain.model.parameters(), fast.model.parameters(), strict=True)]
    assert 0 < max(diffs) < 1e-2
    # outside the unlearning (an attack's training, the base model's recipe) optimize runs in float32
    seen.clear()
    _denoising_steps(fast.model.train().requires_grad_(True), task, seen, steps=1)
    assert seen == [(torch.float32, torch.float32)]


def test_an_unknown_training_precision_fails_before_any_step(tiny_unet):
    task = make_task(forget=(3,))
    task.unlearn_precision = "float16"
    called = []

    class Probe(UnlearningMethod):
        def unlearn(self, model, task, *, generator):
            called.append(True)
            return model

    with pytest.raises(ValueError, match="unknown precision 'float16' for model forwards"):
        run_unlearning(Probe(), tiny_unet, task, generator=torch.Generator())
    assert not called
    with pytest.raises(UserError, match="--unlearn-precision must be one of float32, bfloat16, got 'float16'"):
        validate(RunSpec(method="safemax", unlearn_precision="float16"), 10)


def test_the_precision_is_part_of_the_run_and_of_the_unlearned_models_key_and_older_runs_keep_their_ids():
    plain = resolve(RunSpec(method="safemax")).spec
    fast = dataclasses.replace(plain, unlearn_precision="bfloat16")
    assert fast.run_id != plain.run_id
    assert fast.unlearn_key("sha", {}) != plain.unlearn_key("sha", {})
    # a spec stored before the setting existed hashes as one at float32, so older stores resume
    stored = plain.to_dict()
    assert stored["unlearn_precision"] == "float32" and '"unlearn_precision"' not in plain.canonical()
    del stored["unlearn_precision"]
    assert RunSpec.from_dict(stored).run_id == plain.run_id


def test_a_sweep_config_sets_it_at_the_top_or_per_part_and_the_command_line_wins_over_both():
    cfg = {
        "unlearn_precision": "bfloat16",
        "parts": [
            {"name": "a", "methods": ["safemax"]},
            {"name": "b", "methods": ["esd"], "unlearn_precision": "float32"},
        ],
    }
    assert {(s.method, s.unlearn_precision) for s in specs_of(grids_from_config(cfg))} == {
        ("safemax", "bfloat16"),
        ("esd", "float32"),
    }
    forced = specs_of(grids_from_config(cfg, unlearn_precision="float32"))
    assert {s.unlearn_precision for s in forced} == {"float32"}
    assert {s.unlearn_precision for s in specs_of(grids_from_config({"methods": ["safemax"]}))} == {"float32"}
    with pytest.raises(UserError) as e:
        grids_from_config({"methods": ["safemax"], "unlearn_precision": "half"})
    assert "unlearn_precision" in str(e.value) and "\n" not in str(e.value)


def test_the_command_line_refuses_an_unknown_precision_in_one_line(capsys):
    assert main(["run", "--method", "safemax", "--unlearn-precision", "float16"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--unlearn-precision" in err and "invalid choice" in err and "\n" not in err


def test_every_row_records_the_precision_the_method_trained_in(tmp_path):
    from tests.test_runner import spec

    df = Runner(Store(tmp_path)).run(spec(attack="none", unlearn_precision="bfloat16"))
    assert set(df.unlearn_precision) == {"bfloat16"} and set(df.status) == {"ok"}
