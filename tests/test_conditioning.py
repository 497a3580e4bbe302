"""The conditioning abstraction: batching, nulls, how each kind is fed, the class conditioner, support."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import make_task, tiny_cross_attention_unet
from unlearnbench import registry
from unlearnbench.api import UnlearningMethod, run_unlearning, unsupported
from unlearnbench.conditioning import ClassConditioner, Conditioner, Conditioning
from unlearnbench.diffusion import guided_noise, predict_noise
from unlearnbench.errors import UserError

COND = ClassConditioner(10)
ROOT = Path(__file__).resolve().parent.parent


def test_batching_keeps_kind_null_and_concepts():
    c = COND.encode([3, 1, 4])
    assert c.kind == "label" and c.null == 10 and torch.equal(c.labels, torch.tensor([3, 1, 4]))
    assert torch.equal(c[1:].labels, torch.tensor([1, 4])) and torch.equal(c[1:].concepts, torch.tensor([1, 4]))
    assert torch.equal(c[torch.tensor([2, 2, 0])].labels, torch.tensor([4, 4, 3]))
    assert torch.equal(c[[1]].labels, torch.tensor([1]))
    both = Conditioning.cat([c, COND.encode([9])])
    assert len(both) == 4 and torch.equal(both.concepts, torch.tensor([3, 1, 4, 9]))
    assert torch.equal(c.repeat_interleave(2).labels, torch.tensor([3, 3, 1, 1, 4, 4]))
    assert torch.equal(c[:1].expand(3).labels, torch.tensor([3, 3, 3]))
    assert c.to("cpu").null == 10 and c.detach().kind == "label"
    with pytest.raises(TypeError):
        c[0]
    with pytest.raises(ValueError, match="one row"):
        c.expand(5)


def test_label_dropout_replaces_rows_with_the_null():
    c = COND.encode([3, 1, 4, 5])
    dropped = c.replaced(torch.tensor([True, False, True, False]), COND.null_like(c))
    assert torch.equal(dropped.labels, torch.tensor([10, 1, 10, 5]))
    assert dropped.concepts is None  # a null row stands for no concept


def test_kinds_and_shapes_are_checked():
    with pytest.raises(ValueError, match="kind"):
        Conditioning("caption", torch.zeros(2), 0)
    with pytest.raises(ValueError, match="1-d"):
        Conditioning.from_labels(torch.zeros(2, 3, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="float"):
        Conditioning.from_labels(torch.zeros(2), 10)
    with pytest.raises(ValueError, match="kinds"):
        Conditioning.cat([COND.encode([1]), COND.vectors(torch.zeros(1, 4))])
    with pytest.raises(TypeError, match="no labels"):
        _ = COND.vectors(torch.zeros(1, 4)).labels


def test_null_of_vectors_is_the_fed_models_null_embedding(tiny_unet):
    v = COND.vectors(torch.randn(3, tiny_unet.class_embedding.weight.shape[1]))
    with pytest.raises(ValueError, match="pass the model"):
        v.null_like()
    null = COND.null_like(v, tiny_unet)
    assert null.kind == "vector" and len(null) == 3
    assert torch.equal(null.values, tiny_unet.class_embedding.weight[10].detach().expand(3, -1))


def test_another_concept_skips_the_excluded_ones():
    c = COND.encode([3, 4, 9])
    nxt = COND.other(c, exclude=(3, 4), how="next", generator=torch.Generator())
    assert torch.equal(nxt.labels, torch.tensor([5, 5, 0]))  # (c + 1) mod 10, past the forgotten 4
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    rows = COND.encode([3] * 200)
    rand = COND.other(rows, exclude=(3, 4), how="random", generator=g1)
    assert not torch.isin(rand.labels, torch.tensor([3, 4])).any()
    assert set(rand.labels.tolist()) == {0, 1, 2, 5, 6, 7, 8, 9}
    assert torch.equal(rand.labels, COND.other(rows, (3, 4), "random", g2).labels)
    with pytest.raises(ValueError, match="stand for concepts"):
        COND.other(COND.vectors(torch.zeros(1, 4)), (3,), "next", torch.Generator())


def test_embedding_table_is_the_concepts_then_the_null(tiny_unet):
    table = COND.embedding_table(tiny_unet)
    assert table.shape[0] == len(COND.concepts) + 1 and not table.requires_grad
    assert torch.equal(table[-1], tiny_unet.class_embedding.weight[10])
    with pytest.raises(ValueError, match="class embeddings"):
        ClassConditioner(5).embedding_table(tiny_unet)


def test_token_states_are_fed_through_cross_attention_with_their_null():
    torch.manual_seed(0)
    model = tiny_cross_attention_unet(8, 6)
    g = torch.Generator().manual_seed(0)
    states, null_states = torch.randn(2, 3, 6, generator=g), torch.randn(3, 6, generator=g)
    cond = Conditioning.from_tokens(states, null_states)
    x, t = torch.randn(2, 1, 8, 8, generator=g), torch.tensor([10, 500])
    with torch.no_grad():
        eps = predict_noise(model, x, t, cond)
        torch.testing.assert_close(eps, model(x, t, encoder_hidden_states=states).sample)
        null = model(x, t, encoder_hidden_states=null_states.expand(2, 3, 6)).sample
        torch.testing.assert_close(
            guided_noise(model, x, t, cond, 3.0), null + 3.0 * (eps - null), rtol=1e-4, atol=1e-5
        )


def test_task_names_concepts_and_keeps_class_indices_for_the_judges():
    task = make_task(forget=(3, 5))
    assert task.forget_concepts == ("3", "5") and task.forget_classes == (3, 5)
    assert task.retain_classes == (0, 1, 2, 4, 6, 7, 8, 9)
    assert torch.equal(task.concept_cond().labels, torch.tensor([3, 5]))
    assert len(task.forget_cond) == len(task.forget_x)
    assert set(task.forget_cond.labels.tolist()) == {3, 5} and not task.retain_cond.concept_mask((3, 5)).any()


class TokensConditioner(Conditioner):
    kind = "tokens"


class TextOnly(UnlearningMethod):
    """A method for cross-attention conditioning only."""

    supports = ("tokens",)

    def unlearn(self, model, task, *, generator):
        return model


def test_unsupported_conditioning_is_named_and_refused(tiny_unet):
    task = make_task()
    assert unsupported(registry.get("method", "safemax"), task.conditioner) is None
    reason = unsupported(TextOnly, task.conditioner)
    assert reason is not None and "tokens" in reason and "label" in reason
    with pytest.raises(UserError, match="supports tokens"):
        run_unlearning(TextOnly(), tiny_unet, task, generator=torch.Generator())
    # retrain runs on a text testbed through its shipped references (tests/test_toy_testbed.py: one line without)
    assert unsupported(registry.get("method", "retrain"), TokensConditioner(["a cat"])) is None


def test_methods_and_attacks_do_no_label_arithmetic():
    """Labels, the null and the label count belong to the conditioner, never to a method or an attack."""
    paths = [*(ROOT / "methods").glob("*.py"), *(ROOT / "attacks").glob("*.py")]
    assert {"safemax.py", "relearn.py"} <= {p.name for p in paths}
    for path in paths:
        text = path.read_text()
        for word in ("num_classes", "null_class", "forget_class_tensor", "class_embedding(", "torch.full_like(c"):
            assert word not in text, f"{path.name} uses {word}"


def test_training_label_dropout_feeds_the_null_only_to_a_training_model(tiny_unet):
    """Upstream (SalUn's DDPM code) drops labels in every ``mode='train'`` forward and never in sampling."""
    from unlearnbench.conditioning import training_label_dropout

    c, x, t = COND.encode([3, 1, 4, 5]), torch.randn(4, 1, 16, 16), torch.tensor([10, 200, 500, 900])
    with torch.no_grad():
        labelled, null = c.predict(tiny_unet, x, t), COND.null_like(c).predict(tiny_unet, x, t)
        with training_label_dropout(1.0, torch.Generator().manual_seed(0)):
            assert torch.equal(c.predict(tiny_unet, x, t), labelled)  # eval mode: untouched
            tiny_unet.train()
            try:
                assert torch.allclose(c.predict(tiny_unet, x, t), null)  # every row dropped
            finally:
                tiny_unet.eval()
        g = torch.Generator().manual_seed(1)
        draws = torch.rand(4000, generator=torch.Generator().manual_seed(1))
        dropped = COND.encode([3] * 4000).dropped(0.1, g)
        assert torch.equal(dropped.labels == 10, draws < 0.1)  # one draw per row from the generator
        assert 300 < int((dropped.labels == 10).sum()) < 500


def test_run_unlearning_applies_the_tasks_label_dropout(tiny_unet):
    from unlearnbench.conditioning import _TRAINING_DROPOUT

    seen: list[float | None] = []

    class Probe(UnlearningMethod):
        def unlearn(self, model, task, *, generator):
            state = _TRAINING_DROPOUT.get()
            seen.append(None if state is None else state[0])
            return model

    task = make_task(forget=(3,))
    run_unlearning(Probe(), tiny_unet, task, generator=torch.Generator().manual_seed(0))
    task.label_dropout = 0.25
    run_unlearning(Probe(), tiny_unet, task, generator=torch.Generator().manual_seed(0))
    assert seen == [None, 0.25] and _TRAINING_DROPOUT.get() is None


def test_label_dropout_defaults_to_the_methods_upstream_and_is_recorded():
    from unlearnbench.runner import resolve, validate
    from unlearnbench.spec import RunSpec

    salun, safemax = resolve(RunSpec(method="salun")), resolve(RunSpec(method="safemax"))
    assert salun.spec.label_dropout == 0.1 and "Unlearn-Saliency" in type(salun.method).label_dropout_source
    assert safemax.spec.label_dropout == 0.0
    off = resolve(RunSpec(method="salun", label_dropout=0.0))
    assert off.spec.label_dropout == 0.0 and off.run_id != salun.run_id
    assert resolve(RunSpec(method="safemax", label_dropout=0.1)).spec.label_dropout == 0.1
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(UserError, match="--label-dropout must be in"):
            validate(RunSpec(method="salun", label_dropout=bad), 10)


def test_sweep_entries_set_label_dropout_per_method_setting():
    from unlearnbench.grid import grid_from_config

    grid = grid_from_config(
        {"methods": [{"name": "salun", "label": "no-dropout", "label_dropout": 0.0}, "safemax"], "forget_classes": [3]}
    )
    specs = {s.label: s for s in grid.specs()}
    assert specs["no-dropout"].label_dropout == 0.0 and specs[""].label_dropout is None
    with pytest.raises(UserError, match="label_dropout"):
        grid_from_config({"methods": [{"name": "salun", "label_dropout": 1.0}]})
