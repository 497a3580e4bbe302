"""Shipped gold-standard references (unlearnbench.references) and the run's time split (unlearnbench.timing)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from tests.conftest import TINY, make_task
from unlearnbench.cost import Cost
from unlearnbench.errors import UserError
from unlearnbench.references import WEIGHTS, References, reference_name


def _ship(root, model, forget_class, *, model_sha="base-sha", recipe_sha="recipe-sha", dtype=torch.float16):
    """A stand-in shipped reference (what build_reference writes) for ``model``; returns the manifest's files."""
    from unlearnbench.models import sha256_file

    folder = root / reference_name((forget_class,))
    model.to(dtype).save_pretrained(folder, safe_serialization=True)
    record = {
        "forget_classes": [forget_class],
        "base_model_sha": model_sha,
        "recipe_sha256": recipe_sha,
        "dtype": str(dtype),
        "cost": {"wall_s": 3600.0, "cpu_s": 3500.0, "steps": 8000, "peak_mem_mb": 300.0},
    }
    (folder / "reference.json").write_text(json.dumps(record))
    return {f"references/{folder.name}/{WEIGHTS}": sha256_file(folder / WEIGHTS)}


def test_a_matching_reference_loads_in_float32_with_its_recorded_cost(tmp_path, tiny_unet):
    files = _ship(tmp_path / "references", TINY.build(), 4)
    refs = References(tmp_path / "references", files, "base-sha", "recipe-sha")
    model, cost = refs.retrain((4,))
    assert next(model.parameters()).dtype == torch.float32
    assert cost == Cost(wall_s=3600.0, cpu_s=3500.0, steps=8000, peak_mem_mb=300.0)
    assert refs.available() == ["retrain-4"]


@pytest.mark.parametrize("model_sha, recipe_sha, forget", [("other", "recipe-sha", (4,)), ("base-sha", "other", (4,))])
def test_a_reference_of_another_base_model_or_recipe_is_not_used(tmp_path, model_sha, recipe_sha, forget):
    files = _ship(tmp_path / "references", TINY.build(), 4)
    assert References(tmp_path / "references", files, model_sha, recipe_sha).retrain(forget) is None
    assert References(tmp_path / "references", files, "base-sha", "recipe-sha").retrain((5,)) is None


def test_a_changed_reference_file_is_refused_by_its_sha256(tmp_path):
    files = _ship(tmp_path / "references", TINY.build(), 4)
    weights = tmp_path / "references" / "retrain-4" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(UserError, match="sha256"):
        References(tmp_path / "references", files, "base-sha", "recipe-sha").retrain((4,))


def test_retrain_loads_the_reference_and_charges_its_recorded_cost(tmp_path, tiny_unet):
    from unlearnbench import registry
    from unlearnbench.api import run_unlearning

    torch.manual_seed(1)
    shipped = TINY.build()
    files = _ship(tmp_path / "references", shipped, 3, dtype=torch.float32)
    task = make_task(forget=(3,))
    task.references = References(tmp_path / "references", files, "base-sha", "recipe-sha")
    out = run_unlearning(registry.get("method", "retrain")(), tiny_unet, task, generator=torch.Generator())
    assert all(
        torch.equal(a, b) for a, b in zip(out.model.state_dict().values(), shipped.state_dict().values(), strict=True)
    )
    assert out.cost.recorded == 1 and out.cost.steps == 8000 and 3600.0 <= out.cost.wall_s < 3600.0 + 60

    fresh = run_unlearning(
        registry.get("method", "retrain")({"from_scratch": True}), tiny_unet, task, generator=torch.Generator()
    )
    assert fresh.cost.recorded == 0 and fresh.cost.steps == task.recipe.steps


def test_the_reference_builder_trains_on_the_runs_retain_set(testbed):
    """``build_reference`` and the ``retrain`` method must see the same images and labels in the same order."""
    from unlearnbench.runner import build_task
    from unlearnbench.spec import RunSpec
    from unlearnbench.testbeds.digits16.build import retain_training_data

    task = build_task(RunSpec(method="retrain", forget=(4,)), testbed, torch.device("cpu"))
    x, y = retain_training_data(testbed, "4")
    assert torch.equal(x, task.retain_x) and torch.equal(y, task.retain_cond.labels)


def test_the_shipped_references_load_and_match_their_sha256(testbed):
    """Every reference the manifest lists loads (its sha256 checked) for the shipped base model and recipe."""
    refs = testbed.references
    assert refs is not None
    if not refs.available():
        pytest.skip("no reference shipped yet (unlearnbench pretrain --what retrain --forget ... --ship)")
    for name in refs.available():
        forget = tuple(name.split("-")[1:])
        loaded = refs.retrain(forget)
        assert loaded is not None, f"{name} does not match the shipped base model or recipe"
        assert loaded[1].wall_s > 0 and loaded[1].steps == testbed.recipe.steps


# ---------------------------------------------------------------------------------------------
# Time split
# ---------------------------------------------------------------------------------------------


def test_the_time_split_is_exclusive_and_sums_to_the_wall_time():
    from unlearnbench.timing import part, recording

    t0 = time.perf_counter()
    with recording() as split:
        time.sleep(0.02)  # other
        with part("attack"):
            time.sleep(0.03)
            with part("sampling"):
                time.sleep(0.05)
            time.sleep(0.01)
        with part("sampling"):
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    assert set(split) == {"other", "attack", "sampling"}
    assert split["sampling"] == pytest.approx(0.07, abs=0.015)
    assert split["attack"] == pytest.approx(0.04, abs=0.015)
    assert sum(split.values()) == pytest.approx(wall, abs=0.005)


def test_parts_outside_a_recording_cost_nothing_and_record_nothing():
    from unlearnbench.timing import part, recording

    with part("sampling"):
        pass
    with recording() as split:
        pass
    assert set(split) <= {"other"}


def test_a_reference_is_charged_the_base_recipes_measured_time_not_its_loaded_segments():
    from unlearnbench.testbeds.digits16.build import reference_cost

    progress = {"seconds": 9000.0, "cpu_seconds": 4100.0}  # resumed beside other jobs: the wall time is inflated
    cost = reference_cost(progress, {"seconds": 2036.9, "steps": 8000, "threads": 2}, 8000)
    assert cost["wall_s"] == 2036.9 and cost["measured_wall_s"] == 9000.0 and cost["cpu_s"] == 4100.0
    assert "2036.9 s for 8000 steps on 2 threads)" in cost["wall_basis"]
    assert reference_cost(progress, {"seconds": 2000.0, "steps": 8000}, 4000)["wall_s"] == 1000.0
    unknown = reference_cost(progress, None, 8000)
    assert unknown["wall_s"] == 9000.0 and "not controlled" in unknown["wall_basis"]


@pytest.mark.slow
def test_a_shipped_reference_scores_within_the_interval_of_a_fresh_retrain(tmp_path, testbed):
    """Class 4's shipped (float16) reference against a retrain from scratch in float32, judged alike: UA11,
    retained accuracy and retained FID of the shipped one lie within the fresh one's 95% interval. About an
    hour of one core (the retrain)."""
    from unlearnbench.results import Store, final_rows
    from unlearnbench.runner import Runner
    from unlearnbench.spec import RunSpec

    assert testbed.references is not None and "retrain-4" in testbed.references.available()
    store = Store(tmp_path)
    shipped = Runner(store).run(RunSpec(method="retrain", forget=(4,)))
    fresh = Runner(store).run(RunSpec(method="retrain", forget=(4,), method_args={"from_scratch": True}))

    def score(df, metric, split):
        rows = final_rows(df)
        return rows[
            (rows.phase == "unlearned") & (rows.metric == metric) & (rows.split == split) & rows.class_id.isna()
        ].iloc[0]

    assert score(shipped, "cost_recorded", "all").value == 1 and score(fresh, "cost_recorded", "all").value == 0
    for metric, split in [
        ("unlearning_accuracy_11way", "forget"),
        ("retain_accuracy_10way", "retain"),
        ("fid", "retain"),
    ]:
        s, f = score(shipped, metric, split), score(fresh, metric, split)
        assert f.lo <= s.value <= f.hi, (
            f"{metric}: shipped {s.value:.4g} outside the fresh retrain's [{f.lo:.4g}, {f.hi:.4g}]"
        )


def test_retrain_declares_a_shipped_result_only_at_its_faithful_setting(tmp_path):
    from unlearnbench import registry

    files = _ship(tmp_path / "references", TINY.build(), 4)
    refs = References(tmp_path / "references", files, "base-sha", "recipe-sha")
    retrain = registry.get("method", "retrain")
    assert retrain({}).shipped(refs, (4,)) and refs.has((4,))
    assert not retrain({}).shipped(refs, (3,))
    assert not retrain({"from_scratch": True}).shipped(refs, (4,))
    assert not retrain({"steps": 5}).shipped(refs, (4,))
    assert not retrain({}).shipped(None, (4,))
    assert not registry.get("method", "safemax")({}).shipped(refs, (4,))


def test_a_sweep_plan_counts_no_unlearning_for_a_shipped_reference(tmp_path, testbed):
    from unlearnbench.spec import RunSpec
    from unlearnbench.sweep import plan

    shipped = int(testbed.references.available()[0].split("-")[1])
    jobs, _ = plan(
        [
            RunSpec(method="retrain", forget=(shipped,)),
            RunSpec(method="retrain", forget=(shipped,), method_args={"from_scratch": True}),
        ],
        str(tmp_path),
    )
    assert [job.cached for job in jobs] == [True, False]


def test_two_builds_shipping_at_once_keep_both_manifest_entries(tmp_path, monkeypatch):
    """Two retrain references built side by side ship within seconds of each other: each read-modify-write
    of the manifest takes its turn, so no entry is lost."""
    import threading

    from unlearnbench.testbeds.digits16 import build

    path = tmp_path / "manifest.json"
    monkeypatch.setattr(build, "manifest_path", lambda: path)

    def ship(worker: int) -> None:
        for i in range(40):
            build.update_manifest({"files": {f"references/retrain-{worker}-{i}/w": "sha"}})

    threads = [threading.Thread(target=ship, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(json.loads(path.read_text())["files"]) == 160
