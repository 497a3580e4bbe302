"""Method priors (unlearnbench.priors): cached once per base model and arguments, shipped with the testbed,
and charged at their recorded cost wherever they are read from."""

from __future__ import annotations

import json

import pytest
import torch

from unlearnbench.cost import CostMeter
from unlearnbench.errors import UserError
from unlearnbench.priors import TENSORS, PriorCache, ShippedPriors, charged_cost, prior_folder_name
from unlearnbench.testbeds.digits16.build import ship_priors

KEY = {"n": 2, "guidance": 1.0}


def _compute(meter: CostMeter) -> dict[str, torch.Tensor]:
    meter.step(3)
    return {"fisher.w": torch.arange(6.0).reshape(2, 3), "replay.labels": torch.tensor([0, 1])}


def _cache_one(root, model_sha):
    cache = PriorCache(root, model_sha)
    meter = CostMeter()
    with meter.measure():
        tensors = cache.get("selective_amnesia", KEY, _compute, meter)
    return tensors, meter.cost


def test_a_cached_prior_records_what_it_was_made_from(tmp_path):
    _cache_one(tmp_path, "model-a")
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert folder.name == prior_folder_name("selective_amnesia", "model-a", KEY)
    made_from = json.loads((folder / "key.json").read_text())
    assert made_from == {
        "name": "selective_amnesia",
        "model_sha": "model-a",
        "key": KEY,
        "threads": made_from["threads"],
        "device": "cpu",
    }
    assert made_from["threads"] == torch.get_num_threads()


def test_a_shipped_prior_is_read_first_and_charged_its_recorded_cost(tmp_path, testbed):
    tensors, _ = _cache_one(tmp_path / "cache", testbed.model_sha)
    assets = tmp_path / "assets"
    (name,) = ship_priors(tmp_path / "cache", root=assets)
    record = json.loads((assets / "priors" / name / "prior.json").read_text())
    from unlearnbench.models import sha256_file

    files = {f"priors/{name}/{TENSORS}": sha256_file(assets / "priors" / name / TENSORS)}
    shipped = ShippedPriors(assets / "priors", files)
    assert shipped.available() == [name]

    def never(meter: CostMeter) -> dict[str, torch.Tensor]:
        raise AssertionError("a shipped prior must not be recomputed")

    meter = CostMeter()
    with meter.measure():
        got = PriorCache(None, testbed.model_sha, shipped).get("selective_amnesia", KEY, never, meter)
    assert torch.equal(got["fisher.w"], tensors["fisher.w"]) and torch.equal(
        got["replay.labels"], tensors["replay.labels"]
    )
    assert meter.cost.prior_cached == 1
    assert meter.cost.prior_steps == 3 == record["cost"]["steps"]
    assert meter.cost.prior_wall_s >= record["cost"]["wall_s"]
    # another key or another model is not served by the shipped prior
    other = PriorCache(None, "another-model", shipped)
    assert other.get("selective_amnesia", KEY, _compute, CostMeter())["fisher.w"].shape == (2, 3)


def test_a_changed_shipped_prior_is_refused_by_its_sha256(tmp_path, testbed):
    _cache_one(tmp_path / "cache", testbed.model_sha)
    assets = tmp_path / "assets"
    (name,) = ship_priors(tmp_path / "cache", root=assets)
    from unlearnbench.models import sha256_file

    path = assets / "priors" / name / TENSORS
    files = {f"priors/{name}/{TENSORS}": sha256_file(path)}
    path.write_bytes(path.read_bytes()[:-4] + b"\0" * 4)
    with pytest.raises(UserError, match="sha256"):
        PriorCache(None, testbed.model_sha, ShippedPriors(assets / "priors", files)).get(
            "selective_amnesia", KEY, _compute, CostMeter()
        )


def test_shipping_refuses_priors_of_another_model_or_an_edited_cache(tmp_path, testbed):
    _cache_one(tmp_path / "other", "another-model")
    with pytest.raises(UserError, match="no prior"):
        ship_priors(tmp_path / "other", root=tmp_path / "assets")
    _cache_one(tmp_path / "cache", testbed.model_sha)
    (folder,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    folder.rename(folder.with_name("selective_amnesia-0000000000000000"))
    with pytest.raises(UserError, match="does not match"):
        ship_priors(tmp_path / "cache", root=tmp_path / "assets")
    with pytest.raises(UserError, match="no priors cache"):
        ship_priors(tmp_path / "missing", root=tmp_path / "assets")


def test_a_one_thread_cpu_prior_is_charged_its_cpu_seconds():
    cost = {"wall_s": 900.0, "cpu_s": 500.0, "steps": 3}
    one = charged_cost(cost, {"threads": 1, "device": "cpu"})
    assert one["wall_s"] == 500.0 and one["measured_wall_s"] == 900.0 and "one thread" in one["wall_basis"]
    two = charged_cost({**cost, "cpu_s": 1700.0}, {"threads": 2, "device": "cpu"})
    assert two["wall_s"] == 900.0 and "2 cpu threads" in two["wall_basis"]
    gpu = charged_cost(cost, {"threads": 1, "device": "cuda"})
    assert gpu["wall_s"] == 900.0  # CPU seconds say nothing about GPU work


def test_a_cached_and_a_shipped_prior_are_charged_alike(tmp_path, testbed):
    _cache_one(tmp_path / "cache", testbed.model_sha)
    (name,) = ship_priors(tmp_path / "cache", root=tmp_path / "assets")
    from unlearnbench.models import sha256_file

    files = {f"priors/{name}/{TENSORS}": sha256_file(tmp_path / "assets" / "priors" / name / TENSORS)}
    charged = []
    for cache in (
        PriorCache(tmp_path / "cache", testbed.model_sha),
        PriorCache(None, testbed.model_sha, ShippedPriors(tmp_path / "assets" / "priors", files)),
    ):
        meter = CostMeter()
        cache.get("selective_amnesia", KEY, _compute, meter)
        charged.append(meter.cost.wall_s)
    assert charged[0] == pytest.approx(charged[1], abs=0.05)


def test_one_prior_folder_ships_alone_and_a_refused_cache_ships_nothing(tmp_path, testbed):
    _cache_one(tmp_path / "cache", testbed.model_sha)
    cache = PriorCache(tmp_path / "cache", testbed.model_sha)
    cache.get("selective_amnesia", {"n": 99}, _compute, CostMeter())
    (one,) = [
        p
        for p in (tmp_path / "cache").iterdir()
        if p.is_dir() and p.name == prior_folder_name("selective_amnesia", testbed.model_sha, KEY)
    ]
    assert ship_priors(one, root=tmp_path / "a") == [one.name]
    other = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p != one)
    other.rename(other.with_name("selective_amnesia-0000000000000000"))
    with pytest.raises(UserError, match="does not match"):
        ship_priors(tmp_path / "cache", root=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_listed_shipped_prior_whose_files_are_missing_is_one_line(tmp_path):
    shipped = ShippedPriors(tmp_path, {f"priors/selective_amnesia-x/{TENSORS}": "0" * 64})
    with pytest.raises(UserError, match="missing"):
        shipped.load("selective_amnesia-x")


@pytest.fixture(params=["digits16", "text16"])
def shipping_testbed(request):
    from unlearnbench.testbeds import load_testbed

    return load_testbed(request.param)


def test_the_shipped_priors_load_and_match_their_sha256(shipping_testbed):
    """Every prior the manifest lists loads (its sha256 checked), was made from the shipped base model, and
    records the cost runs are charged (with its basis); Selective Amnesia at its defaults and the testbed's
    sampler reads it (a sweep plans no prior for it)."""
    from unlearnbench import registry
    from unlearnbench.api import SamplerSettings
    from unlearnbench.testbeds import default_guidance

    testbed = shipping_testbed
    assert testbed.priors is not None
    sampler = SamplerSettings(guidance_scale=default_guidance(testbed.name))
    needs = registry.get("method", "selective_amnesia")().prior(sampler)
    assert PriorCache(None, testbed.model_sha, testbed.priors).ready(*needs)
    assert not PriorCache(None, testbed.model_sha, testbed.priors).ready(needs[0], {**needs[1], "n": 1})
    names = testbed.priors.available()
    assert names, "the testbed ships Selective Amnesia's prior (unlearnbench pretrain --what prior --ship)"
    for name in names:
        record = json.loads((testbed.priors.root / name / "prior.json").read_text())
        assert record["model_sha"] == testbed.model_sha
        assert prior_folder_name(record["name"], record["model_sha"], record["key"]) == name
        tensors, cost = testbed.priors.load(name)
        assert cost.wall_s > 0 and record["cost"]["wall_basis"]
        assert any(k.startswith("fisher.") for k in tensors) and "replay.images" in tensors
