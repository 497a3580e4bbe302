"""ESD's two variants on a text model (Gandikota et al.): ESD-x trains only the cross-attention layers, ESD-u every
other parameter; on a class-conditional model the class path is ESD-x's analogue. A variant that does not fit the
model's conditioning is one line."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_cross_attention_unet
from unlearnbench.errors import UserError
from unlearnbench.methods.esd import trained_parameters


def test_esd_x_and_esd_u_split_a_text_models_parameters():
    model = tiny_cross_attention_unet(8, 4)
    every = {id(p) for p in model.parameters()}
    x = {id(p) for p in trained_parameters(model, "cross_attention", "tokens")}
    u = {id(p) for p in trained_parameters(model, "non_cross_attention", "tokens")}
    cross = {id(p) for n, p in model.named_parameters() if ".attn2." in n}
    kept = {id(p) for n, p in model.named_parameters() if n.startswith(("time_embedding.", "conv_out.", "conv_norm"))}
    assert x == cross and x and u and kept and not (x & u) and not (u & kept) and x | u | kept == every
    assert {id(p) for p in trained_parameters(model, "all", "tokens")} == every


@pytest.mark.parametrize(
    ("params", "kind", "expect"),
    [("class_path", "tokens", "needs class conditioning"), ("cross_attention", "label", "needs cross-attention")],
)
def test_a_variant_that_does_not_fit_the_conditioning_is_one_line(params, kind, expect):
    with pytest.raises(UserError, match=expect):
        trained_parameters(tiny_cross_attention_unet(8, 4), params, kind)


def test_the_class_conditional_testbed_gives_methods_one_row_per_concept():
    """digits16's ``told`` is its ``encode``: ESD's and Selective Amnesia's draws there did not change."""
    from unlearnbench.testbeds import load_testbed

    conditioner = load_testbed("digits16").conditioner
    assert torch.equal(conditioner.told(["3", "7"], 64).labels, conditioner.encode(["3", "7"]).labels)


def test_esd_on_text16_is_told_an_attribute_over_its_prompts(monkeypatch):
    """ESD's forget conditioning on text16 is ``Task.told_cond``: for "red", 64 rows of red's prompts over the digits
    (not the one row "a red zero"); the run calls it."""
    from unlearnbench.api import run_unlearning
    from unlearnbench.methods.esd import ESD
    from unlearnbench.runner import build_task, resolve
    from unlearnbench.spec import RunSpec
    from unlearnbench.testbeds import load_testbed

    bed = load_testbed("text16")
    spec = resolve(RunSpec(method="esd", forget=("red",), testbed="text16", method_args=ESD.smoke_args)).spec
    task = build_task(spec, bed, torch.device("cpu"))
    told = task.told_cond()
    red = bed.conditioner.index("red")
    assert len(told) == 64 and told.concepts.tolist() == [red] * 64 and told.device == torch.device("cpu")
    assert len({bytes(v.numpy().tobytes()) for v in told.values}) > 10  # many prompts, not one row repeated
    calls = []
    monkeypatch.setattr(type(task), "told_cond", lambda self, n=64: calls.append(n) or told)
    run_unlearning(ESD(ESD.smoke_args), bed.model, task, generator=torch.Generator().manual_seed(0))
    assert calls == [64]
