"""Contract tests, parametrised over every registered method and attack: a new one is tested on registration."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.conftest import TINY, make_task
from unlearnbench import registry
from unlearnbench.api import run_attack, run_unlearning, unsupported
from unlearnbench.conditioning import Conditioning
from unlearnbench.priors import PriorCache
from unlearnbench.runner import build_task, resolve
from unlearnbench.spec import RunSpec

# Attacks that return a conditioning to sample with (the rule the contract test below checks).
PROMPT_ATTACKS = [n for n in registry.names("attack") if n not in ("none", "relearn", "relearn_benign", "seed_search")]
LABEL_PROMPT_ATTACKS = [n for n in PROMPT_ATTACKS if "label" in registry.get("attack", n).supports]
TEXT_PROMPT_ATTACKS = [n for n in PROMPT_ATTACKS if "label" not in registry.get("attack", n).supports]


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def tensor(x):
    return x.values if isinstance(x, Conditioning) else x


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def skip_unsupported(cls):
    """Skip, with the reason, a method or attack that does not support the test task's conditioning."""
    reason = unsupported(cls, make_task().conditioner)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def base():
    torch.manual_seed(0)
    return TINY.build().eval()


@pytest.mark.parametrize("name", registry.names("method"))
def test_method_contract(name, base):
    cls = registry.get("method", name)
    skip_unsupported(cls)
    if name == "given":
        pytest.skip("given loads a model unlearned elsewhere: tests/test_given.py")
    before = state(base)
    runs = []
    # the second run changes what the method says it does not read: the sampler setting, the run's seed
    read: list[tuple[str, dict]] = []

    class Recording(PriorCache):  # computes every prior (no cache folder), noting which it was asked for
        def get(self, name, key, compute, meter):
            read.append((name, key))
            return super().get(name, key, compute, meter)

    for guidance, seed in ((1.0, 0), (3.0 if not cls.uses_sampler else 1.0, 1 if not cls.uses_seed else 0)):
        task = make_task()
        task.sampler = replace(task.sampler, guidance_scale=guidance, eta=0.0 if guidance == 1.0 else 1.0)
        task.priors = Recording(None, "base")
        out = run_unlearning(cls(cls.smoke_args), base, task, generator=torch.Generator().manual_seed(seed))
        runs.append(out)
        # the prior a sweep plans for (UnlearningMethod.prior) is the one the unlearning reads
        needs = cls(cls.smoke_args).prior(task.sampler)
        assert read == ([] if needs is None else [needs]), "prior() must name what unlearn reads"
        read.clear()
    first, second = runs
    # the same architecture
    assert type(first.model) is type(base) and dict(first.model.config) == dict(base.config)
    assert {k: v.shape for k, v in first.model.state_dict().items()} == {k: v.shape for k, v in before.items()}
    # the input model is unchanged
    assert same(state(base), before)
    # cost is reported
    assert first.cost.wall_s > 0 and first.cost.cpu_s > 0 and first.cost.peak_mem_mb >= 0
    if name != "noop":
        assert first.cost.steps > 0
        assert not same(state(first.model), before), "a method that changes nothing is noop"
    # deterministic for a fixed seed; and a method that says it never samples while unlearning (so its runs at
    # both sampler settings share one unlearned model) gives the same model at another sampler setting, one
    # that says it never draws from the run's generator the same model for another seed
    assert same(state(first.model), state(second.model))


def test_priors_are_counted_separately():
    torch.manual_seed(0)
    base = TINY.build().eval()
    for name in ("selective_amnesia", "salun"):
        cls = registry.get("method", name)
        out = run_unlearning(cls(cls.smoke_args), base, make_task(), generator=torch.Generator().manual_seed(0))
        assert 0 < out.cost.prior_wall_s < out.cost.wall_s, name
        assert out.cost.prior_steps > 0, name


@pytest.mark.parametrize("name", registry.names("attack"))
def test_attack_contract(name, base):
    cls = registry.get("attack", name)
    skip_unsupported(cls)
    before = state(base)
    outs = []
    for _ in range(2):
        task = make_task()
        outs.append(run_attack(cls(cls.smoke_args), base, task, generator=torch.Generator().manual_seed(0)))
    (first, cost), (second, _) = outs
    assert same(state(base), before), "attacks work on a copy"
    assert cost.wall_s > 0
    if cls.changes_weights:
        assert not same(state(first.model), before)
        assert same(state(first.model), state(second.model))
    else:
        assert same(state(first.model), before), "a prompting attack must not change the weights"
    for field in ("cond", "x_T"):
        a, b = getattr(first, field), getattr(second, field)
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(tensor(a), tensor(b)), f"{name}.{field} is not deterministic"
    if name not in ("none", "relearn", "relearn_benign", "seed_search"):
        assert first.cond is not None and first.cond.kind == "vector", "a prompt attack returns vectors"
    if name == "seed_search":
        assert first.x_T is not None and first.x_T.shape[0] == make_task().eval_forget_samples


@pytest.mark.parametrize("name", LABEL_PROMPT_ATTACKS)
def test_prompt_attacks_never_end_below_the_model_as_it_is(name, testbed):
    """On the shipped model and attacker classifier, forget classes 0 and 3, seed 0, smoke budgets: the
    attack's post-attack ASR by the attacker is at least the pre-attack one (the forget label's own
    embedding), for every forget class, and both are reported, overall and per class."""
    cls = registry.get("attack", name)
    spec = resolve(RunSpec(method="noop", attack=name, forget=(0, 3))).spec
    task = build_task(spec, testbed, torch.device("cpu"))
    out, _ = run_attack(cls(cls.smoke_args), testbed.model, task, generator=torch.Generator().manual_seed(0))
    got = {(s.metric, s.class_id): s.value for s in out.extra}
    for class_id in (None, 0, 3):
        pre, post = got[("attacker_asr_pre", class_id)], got[("attacker_asr", class_id)]
        assert 0.0 <= pre <= post <= 1.0, (class_id, pre, post)
        assert 0.0 <= got[("attacker_p", class_id)] <= 1.0
    assert got[("attacker_asr_pre", None)] > 0.5  # the label still draws the class: the bar is not trivial
    declared = {(r.metric, r.split) for r in cls.extra_rows}
    assert {(f"attack_{s.metric}", s.split) for s in out.extra} <= declared


def test_attacks_never_see_the_evaluator():
    """A Task carries the attacker's classifier only; the judge is the runner's."""
    task = make_task()
    assert not any("evaluator" in f for f in vars(task))


@pytest.mark.parametrize("name", ["relearn", "embedding_inversion", "classifier_guided"])
def test_attacks_respect_their_step_budget(name, base):
    cls = registry.get("attack", name)
    args = dict(cls.smoke_args, steps=3)
    _, cost = run_attack(cls(args), base, make_task(), generator=torch.Generator().manual_seed(0))
    assert cost.steps == 3


def test_seed_search_respects_its_query_budget(base, monkeypatch):
    from unlearnbench.attacks import _prompt, seed_search

    seen = []
    original = _prompt.attacker_log_prob

    def counting(model, task, cond, x_T, steps, *, grad):
        seen.append(len(cond))
        return original(model, task, cond, x_T, steps, grad=grad)

    monkeypatch.setattr(seed_search, "attacker_log_prob", counting)
    cls = registry.get("attack", "seed_search")
    run_attack(cls({"candidates_per_sample": 3, "sample_steps": 2}), base, make_task(), generator=torch.Generator())
    assert sum(seen) == 3 * make_task().eval_forget_samples


@pytest.fixture(scope="module")
def text16():
    from unlearnbench.testbeds import load_testbed

    return load_testbed("text16")


@pytest.mark.parametrize("name", TEXT_PROMPT_ATTACKS)
def test_text_prompt_attacks_never_end_below_the_model_as_it_is_and_say_what_they_found(name, text16):
    """On text16's shipped model, forgetting "seven" and "red", smoke budgets: per concept the attacker rates the
    result at least as it rates the concept's own prompt, both are reported, and a discrete attack returns the prompt
    it found as text, one per concept, never a name of another concept's slot (its conditioning is that text's)."""
    cls = registry.get("attack", name)
    spec = resolve(RunSpec(method="noop", attack=name, forget=("seven", "red"), testbed="text16")).spec
    task = build_task(spec, text16, torch.device("cpu"))
    out, _ = run_attack(cls(cls.smoke_args), text16.model, task, generator=torch.Generator().manual_seed(0))
    got = {(s.metric, s.class_id): s.value for s in out.extra}
    for class_id in (None, *task.forget_classes):
        pre, post = got[("attacker_asr_pre", class_id)], got[("attacker_asr", class_id)]
        assert 0.0 <= pre <= post <= 1.0, (class_id, pre, post)
    assert out.cond is not None and out.cond.kind == "tokens" and len(out.cond) == 2
    if name == "concept_inversion":
        assert out.prompts == ()  # a learned token is no word
    else:
        assert len(out.prompts) == 2 and all(isinstance(p, str) and p for p in out.prompts)
        assert torch.equal(out.cond.values, task.conditioner.prompts(list(out.prompts)).values)


def test_concept_inversion_without_the_canonical_prompt_returns_a_learned_token(text16):
    """The sanity setting (keep_canonical = false): against a model that forgot nothing the canonical prompt would
    win, so the result would judge the name, not the inversion; without it every concept's result is a token
    learned from "a", and the pre-attack score is still the canonical prompt's."""
    cls = registry.get("attack", "concept_inversion")
    spec = resolve(RunSpec(method="noop", attack="concept_inversion", forget=("seven", "red"), testbed="text16")).spec
    task = build_task(spec, text16, torch.device("cpu"))
    kept, _ = run_attack(cls(cls.smoke_args), text16.model, task, generator=torch.Generator().manual_seed(0))
    args = dict(cls.smoke_args, keep_canonical=False)
    out, _ = run_attack(cls(args), text16.model, task, generator=torch.Generator().manual_seed(0))
    canonical = task.concept_cond().values
    assert all(not torch.equal(out.cond.values[i], canonical[i]) for i in range(2))
    got = {(s.metric, s.class_id): s.value for s in out.extra}
    pre = {(s.metric, s.class_id): s.value for s in kept.extra}
    assert got[("attacker_asr_pre", None)] == pre[("attacker_asr_pre", None)]


# Selective Amnesia's priors (replay and Fisher over every one of text16's 21 concepts) take minutes even at its
# smoke settings (272 s beside other jobs): in the slow suite.
TEXT16_METHODS = [
    pytest.param(n, marks=pytest.mark.slow) if n == "selective_amnesia" else n
    for n in registry.names("method")
    if n != "given"  # it loads a model unlearned elsewhere: tests/test_given.py
]


@pytest.mark.parametrize("name", TEXT16_METHODS)
def test_every_method_unlearns_on_text16_at_smoke_settings(name, text16):
    """Every method on the text testbed's shipped model, forgetting "seven", at its smoke settings (retrain: its
    defaults, which load the shipped reference): a model of the same architecture with finite weights, changed unless
    the method is noop; the shipped model untouched."""
    from unlearnbench.api import run_unlearning

    cls = registry.get("method", name)
    args = {} if name == "retrain" else cls.smoke_args
    spec = resolve(RunSpec(method=name, forget=("seven",), testbed="text16", method_args=args)).spec
    task = build_task(spec, text16, torch.device("cpu"))
    before = state(text16.model)
    out = run_unlearning(cls(args), text16.model, task, generator=torch.Generator().manual_seed(0))
    public = [{k: v for k, v in m.config.items() if not k.startswith("_")} for m in (out.model, text16.model)]
    assert type(out.model) is type(text16.model) and public[0] == public[1]  # a loaded one has its own _name_or_path
    assert all(torch.isfinite(p).all() for p in out.model.parameters())
    assert same(state(text16.model), before)
    assert (name == "noop") == same(state(out.model), before)
