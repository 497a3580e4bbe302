"""Budgets that end (issue 39): every method and attack declares an upper bound on its steps or queries, and a
run-level ``--max-minutes`` stops a run at its next step, recorded as failed with the reason."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from tests.conftest import check_store
from unlearnbench import registry
from unlearnbench.api import SamplerSettings
from unlearnbench.backends import execute_run
from unlearnbench.cli import main
from unlearnbench.diffusion import ddim_sample
from unlearnbench.errors import OutOfTime, UserError
from unlearnbench.evaluate import EvalSettings
from unlearnbench.progress import check_interrupt, time_limit
from unlearnbench.results import Store
from unlearnbench.runner import Runner
from unlearnbench.spec import RunSpec
from unlearnbench.training import optimize

TINY_EVAL = EvalSettings(forget_samples=3, retain_samples=1, curve_samples=2, sampler=SamplerSettings(steps=3))
ENDLESS = RunSpec(method="safemax", attack="none", forget=("3",), method_args={"steps": 1_000_000}, eval=TINY_EVAL)


def combinations(space: dict[str, list]) -> list[dict]:
    return [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]


@pytest.mark.parametrize("kind", ["method", "attack"])
def test_every_method_and_attack_declares_a_bound_that_its_defaults_smoke_args_and_grids_keep(kind):
    for name in registry.names(kind):
        cls = registry.get(kind, name)
        assert cls.budget_unit and cls.max_budget > 0, name
        grids = [getattr(cls, "search_space", {}), *getattr(cls, "search_variants", {}).values()]
        settings = [{}, cls.smoke_args, *(c for g in grids for c in combinations(g))]
        for args in settings:
            assert 0 <= cls(args).budget() <= cls.max_budget, (name, args)


def test_list_verbose_names_each_bound(capsys):
    assert main(["list", "methods", "-v"]) == 0
    out = capsys.readouterr().out
    assert "budget: steps x sample_steps <= 1,000,000 (its defaults: 50,000)" in out  # esd
    assert "budget: rounds x (outer_steps + inner_passes) <= 1,000,000" in out  # erasediff
    assert main(["list", "attacks", "-v"]) == 0
    out = capsys.readouterr().out
    assert "budget: candidates x samples x sample_steps <= 1,000,000 (its defaults: 3,840)" in out  # embedding_mix


def test_the_time_limit_stops_training_and_sampling_loops_at_their_next_step(tiny_unet, schedule):
    params = [torch.zeros(1, requires_grad=True)]
    with time_limit(0.0, "exceeded --max-minutes 1"), pytest.raises(OutOfTime, match="^exceeded --max-minutes 1$"):
        optimize(params, lambda step: (params[0] ** 2).sum(), steps=1_000_000, lr=0.1, desc="t")
    cond = torch.tensor([1])
    with time_limit(0.0, "late"), pytest.raises(OutOfTime, match="late"):
        ddim_sample(tiny_unet, schedule, cond, steps=1000, generator=torch.Generator().manual_seed(0))
    with time_limit(3600.0, "outer"):
        with time_limit(0.0, "inner"), pytest.raises(OutOfTime, match="inner"):
            check_interrupt()
        check_interrupt()  # the outer limit is back, and not past
    check_interrupt()  # and none once the block is left


def test_a_run_past_max_minutes_stops_and_is_recorded_as_failed_with_the_reason(tmp_path):
    store = Store(tmp_path)
    df = Runner(store, max_minutes=0.001).run(ENDLESS)  # a million steps: hours without the limit
    assert (df.status == "failed").all() and (df.error == "exceeded --max-minutes 0.001").all()
    assert df.value.isna().all() and df.wall_s.iloc[0] < 600
    meta = json.loads((store.runs / f"{df.run_id.iloc[0]}.json").read_text())
    assert (meta["status"], meta["error"]) == ("failed", "exceeded --max-minutes 0.001")
    assert check_store(tmp_path).run_id.nunique() == 1
    assert not (store.cache / "unlearned").exists()  # no unlearned model was cached
    assert Runner(Store(tmp_path / "b")).prepare(ENDLESS)[0].run_id == df.run_id.iloc[0]  # not in the run id


def test_a_sweep_worker_gets_the_limit(tmp_path):
    """What each backend runs (:func:`execute_run`) applies the sweep's --max-minutes."""
    run_id, status, error = execute_run(str(tmp_path), "cpu", ENDLESS.to_dict(), 1, max_minutes=0.001)
    assert (status, error) == ("failed", "exceeded --max-minutes 0.001")
    assert check_store(tmp_path).run_id.tolist()[0] == run_id


def test_sweep_and_tune_hand_max_minutes_to_the_backend(tmp_path, monkeypatch):
    from unlearnbench import sweep

    seen = []

    def make_backend(*args: object, max_minutes: float | None = None, **kwargs: object) -> None:
        seen.append(max_minutes)
        raise UserError("stopped here")

    monkeypatch.setattr(sweep, "make_backend", make_backend)
    config = tmp_path / "grid.toml"
    config.write_text('methods = [{ name = "noop" }]\n')
    for command in ("sweep", "tune"):
        argv = [command, "--config", str(config), "--out", str(tmp_path / command), "--max-minutes", "2.5"]
        assert main([*argv, "--threads", "1", "--quiet"]) == 2
    assert seen == [2.5, 2.5]
