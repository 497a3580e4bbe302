"""The runner end to end at smoke budgets, on the shipped testbed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from unlearnbench.api import SamplerSettings
from unlearnbench.evaluate import EvalSettings
from unlearnbench.results import COLUMNS, SCHEMA, Store, load_results
from unlearnbench.runner import Runner, resolve
from unlearnbench.spec import RunSpec

TINY_EVAL = EvalSettings(forget_samples=6, retain_samples=2, curve_samples=4, sampler=SamplerSettings(steps=4))


def spec(**kw):
    base = dict(
        method="safemax",
        attack="relearn",
        forget=(3,),
        method_args={"steps": 2},
        attack_args={"steps": 4, "eval_every": 2, "k": 3, "batch_size": 4},
        eval=TINY_EVAL,
    )
    base.update(kw)
    if base["attack"] == "none":
        base["attack_args"] = {}
    return RunSpec(**base)


def test_run_writes_every_phase_with_the_documented_columns(tmp_path):
    store = Store(tmp_path)
    df = Runner(store).run(spec())
    assert list(df.columns) == COLUMNS
    assert set(df.phase) == {"original", "unlearned", "attacked"}
    loaded = pd.read_parquet(store.rows_path(df.run_id.iloc[0]))
    assert list(loaded.columns) == COLUMNS and len(loaded) == len(df)
    assert str(loaded.value.dtype) == "float64" and str(loaded.attack_step.dtype) == SCHEMA["attack_step"][0]
    assert len(load_results(tmp_path)) == len(df)
    # every setting that changes a number sits beside it
    row = df.iloc[0]
    assert row.sample_steps == 4 and row.n_forget_samples == 6 and row.n_retain_samples == 2 and row.guidance == 1.0
    assert json.loads(row.method_args)["steps"] == 2 and json.loads(row.method_args)["lam"] == 1.0
    assert len(row.model_sha) == 64 and len(row.evaluator_sha) == 64 and row.torch_version and row.version
    # the recovery curve: UA/ASR at steps 0, 2 and the final 4
    curve = df[(df.metric == "asr_10way") & df.attack_step.notna()]
    assert sorted(curve.attack_step.tolist()) == [0, 2, 4]
    # every point from the curve's sample count, the final one too (not the 6 of the final evaluation)
    final = df[(df.phase == "attacked") & df.attack_step.isna() & (df.metric == "asr_11way")]
    assert set(df[df.attack_step.notna()].n) == {4} and set(final.n) == {6}
    assert {"recover_threshold", "forgot", "attack_cost_wall_s", "attack_cost_steps"} <= set(df.metric)
    # the recovery rows of a run that forgot, none of one that did not
    forgot = df[df.metric == "forgot"].value.iloc[0] == 1.0
    assert forgot == ({"steps_to_recover", "recovered"} <= set(df.metric))
    assert df[df.metric == "attack_cost_steps"].value.iloc[0] == 4
    assert (store.runs / f"{row.run_id}.samples.npz").is_file()
    # where the time went, beside the run: exclusive parts that add up to the run
    split = json.loads((store.runs / f"{row.run_id}.json").read_text())["time_split_s"]
    assert {"sampling", "judging", "metrics", "fid_kid", "unlearning", "attack", "writing"} <= set(split)
    assert sum(split.values()) == pytest.approx(row.wall_s, rel=0.05, abs=0.5)
    # the recovery-curve points compute the forget-class rates only (no FID at every point)
    assert not ({"fid", "entropy"} & set(df[df.attack_step.notna()].metric))


def test_run_id_is_stable_and_covers_resolved_defaults():
    a, b = resolve(spec()), resolve(spec(method_args={"steps": 2, "lam": 1.0}))
    assert a.run_id == b.run_id  # spelling out a default is the same run
    assert resolve(spec(seed=1)).run_id != a.run_id
    assert resolve(spec(method_args={"steps": 3})).run_id != a.run_id


def test_a_setting_added_later_keeps_the_older_runs_ids():
    """A run stored before the sampler had a precision setting (its spec has no such key) keeps its id at
    the setting's old value, so sweeps over older stores resume; another value is another run."""
    from dataclasses import replace

    from unlearnbench.spec import RunSpec

    default = resolve(spec()).spec
    assert default.eval.sampler.precision == "bfloat16"  # today's default: a spec that leaves it out samples so
    now = replace(default, eval=replace(default.eval, sampler=replace(default.eval.sampler, precision="float32")))
    stored = now.to_dict()
    del stored["eval"]["sampler"]["precision"]
    kept = json.loads(json.dumps(stored))
    older = RunSpec.from_dict(stored)
    assert stored == kept  # reading a spec leaves the stored dict as it was
    assert older.eval.sampler.precision == "float32" and older.run_id == now.run_id
    assert '"precision"' not in now.canonical() and now.to_dict()["eval"]["sampler"]["precision"] == "float32"
    faster = replace(now, eval=replace(now.eval, sampler=replace(now.eval.sampler, precision="bfloat16")))
    assert faster.run_id != now.run_id


def test_same_spec_and_seed_give_identical_numbers(tmp_path):
    one = Runner(Store(tmp_path / "a")).run(spec())
    two = Runner(Store(tmp_path / "b")).run(spec())
    keep = ["phase", "attack_step", "split", "class_id", "metric"]
    noisy = one.metric.str.contains("cost") | one.metric.str.startswith("attack_cost")
    a = one[~noisy].sort_values(keep)[keep + ["value"]].reset_index(drop=True)
    b = two[~noisy.values].sort_values(keep)[keep + ["value"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_caches_do_not_change_numbers(tmp_path):
    store = Store(tmp_path)
    first = Runner(store).run(spec(attack="none"))
    second = Runner(store).run(spec(attack="relearn"))  # reuses the unlearned model from the cache
    key = ["phase", "split", "class_id", "metric"]
    u1 = first[first.phase != "attacked"].set_index(key).value.sort_index()
    u2 = second[second.phase != "attacked"].set_index(key).value.sort_index()
    pd.testing.assert_series_equal(u1, u2)


def test_divergence_is_recorded_as_a_failed_run(tmp_path):
    df = Runner(Store(tmp_path)).run(spec(method="grad_ascent", method_args={"steps": 3, "lr": 10.0}, attack="none"))
    assert (df.status == "failed").all() and "loss became" in df.error.iloc[0]
    assert df.value.isna().all()


def test_no_partial_rows_when_writing_fails(tmp_path, monkeypatch):
    import unlearnbench.results as results

    store = Store(tmp_path)

    write = results.atomic_write

    def boom(path, how):  # the rows' file, which marks a run complete, fails; the files before it are written
        if path.suffix == ".parquet":
            raise KeyboardInterrupt
        write(path, how)

    monkeypatch.setattr(results, "atomic_write", boom)
    with pytest.raises(KeyboardInterrupt):
        Runner(store).run(spec(attack="none"))
    assert store.run_ids() == []
    assert not list(store.runs.glob("*.parquet")) and not list(store.runs.glob("*.tmp"))


@pytest.mark.slow  # two Fisher priors over 1,000 timesteps (~150 s); tests/test_priors.py holds the fast unit test
def test_cached_priors_are_charged_at_their_recorded_cost(tmp_path):
    store = Store(tmp_path)
    sa = {"steps": 2, "batch_size": 4, "samples_per_class": 1, "replay_steps": 3}
    first = Runner(store).run(spec(method="selective_amnesia", method_args=sa, attack="none", forget=(1,)))
    second = Runner(store).run(spec(method="selective_amnesia", method_args=sa, attack="none", forget=(2,)))

    def cost(df, metric):
        return float(df[(df.phase == "unlearned") & (df.metric == metric)].value.iloc[0])

    assert cost(first, "cost_prior_cached") == 0 and cost(second, "cost_prior_cached") == 1
    assert cost(second, "cost_prior_wall_s") == pytest.approx(cost(first, "cost_prior_wall_s"), rel=0.05, abs=0.05)
    assert cost(second, "cost_wall_s") >= cost(second, "cost_prior_wall_s") > 0
    assert len(list((tmp_path / "cache" / "priors").glob("selective_amnesia-*"))) == 1


def test_success_is_judged_by_the_evaluator_not_the_attackers_classifier(tmp_path, testbed, monkeypatch):
    """Swap the judge for one that always says 'forget class': ASR becomes 1. Swap the attacker's
    classifier the same way instead: the evaluator's verdict does not move."""
    import dataclasses

    import torch

    import unlearnbench.prepare as prepare_module

    class AlwaysSays(torch.nn.Module):
        def __init__(self, cls: int, like):
            super().__init__()
            self.cls, self.like = cls, like

        def forward(self, x, concepts=None):
            out = torch.full((x.shape[0], 11), -10.0)
            out[:, self.cls] = 10.0
            return out + 0.0 * x.flatten(1).sum(1, keepdim=True)  # differentiable, gradient zero

        def features(self, x):
            return self.like.features(x)

    prompt = spec(
        method="noop",
        method_args={},
        attack="classifier_guided",
        forget=(3,),
        # the label withheld: from the null embedding, only the fooled classifier could pick the vector
        attack_args={"steps": 2, "batch_size": 2, "sample_steps": 2, "start": "null", "select_samples": 2},
    )
    prompt = dataclasses.replace(prompt, eval=dataclasses.replace(prompt.eval, forget_samples=30))
    # the attacker's classifier says every sample is a 3: the attack believes it has fully succeeded
    fooled_attacker = dataclasses.replace(testbed, attacker=AlwaysSays(3, testbed.attacker))
    monkeypatch.setattr(prepare_module, "load_testbed", lambda *a, **k: fooled_attacker)
    believed = Runner(Store(tmp_path / "a")).run(prompt)
    # the judge says every sample is a 3
    fooled_judge = dataclasses.replace(testbed, evaluator=AlwaysSays(3, testbed.evaluator))
    monkeypatch.setattr(prepare_module, "load_testbed", lambda *a, **k: fooled_judge)
    judged = Runner(Store(tmp_path / "b")).run(prompt)

    def asr(df):
        return float(df[(df.phase == "attacked") & (df.metric == "asr_10way") & df.attack_step.isna()].value.iloc[0])

    assert asr(believed) < 0.5  # the evaluator, not the attacker's classifier, decided
    assert asr(judged) == 1.0


SMOKE_MIX = {"candidates": 4, "samples": 2, "sample_steps": 2}


def test_a_prompt_attack_reports_every_forget_class(tmp_path):
    """embedding_mix on two forget classes: the attacker's pre- and post-attack ASR for each class and overall,
    beside the evaluator's pre-attack (unlearned phase) and post-attack ASR."""
    df = Runner(Store(tmp_path)).run(
        spec(method="noop", method_args={}, attack="embedding_mix", forget=(0, 3), attack_args=SMOKE_MIX)
    )
    attacked = df[(df.phase == "attacked") & df.attack_step.isna()]
    for metric in ("attack_attacker_asr_pre", "attack_attacker_asr", "attack_attacker_p"):
        rows = attacked[attacked.metric == metric]
        assert sorted(rows.class_id.dropna().tolist()) == [0, 3] and rows.class_id.isna().sum() == 1, metric
    pre = attacked[attacked.metric == "attack_attacker_asr_pre"].set_index("class_id").value
    post = attacked[attacked.metric == "attack_attacker_asr"].set_index("class_id").value
    assert (post >= pre).all()
    assert {"unlearned", "attacked"} <= set(df[(df.metric == "asr_11way") & df.attack_step.isna()].phase)


def test_save_model_writes_loadable_diffusers_models(tmp_path):
    from unlearnbench.models import load_diffusion

    Runner(Store(tmp_path / "s"), save_model=str(tmp_path / "models")).run(spec())
    for phase in ("unlearned", "attacked"):
        model, schedule, sha = load_diffusion(tmp_path / "models" / phase)
        assert model.config.num_class_embeds == 11 and len(sha) == 64
