"""Nothing invalid is scored: every input is validated at the edge (issue 16, items 1, 2 and 7).

The named cases are the issue's examples, each through the real command line: exit status 2, one
``error:`` line, no traceback, an empty output folder. The property tests feed generated arguments,
method/attack arguments and config files to the validation layer: each is accepted or rejected with one
line, never another exception; a few generated rejects also go through the CLI in a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import TINY
from unlearnbench import registry
from unlearnbench.args import MAX_LR, MAX_STEPS, parse
from unlearnbench.cli import main
from unlearnbench.errors import Diverged, UserError
from unlearnbench.schema import SEED_LIMIT, TRAIN_STEPS, read_environment
from unlearnbench.testbeds import load_testbed

RUN = ["run", "--quiet", "--method", "noop", "--forget-samples", "2", "--retain-samples", "1", "--sample-steps", "2"]


def assert_refused(code: int, out: str, err: str, fragment: str, folder: Path) -> None:
    """Exit 2, exactly one ``error:`` line holding ``fragment``, no traceback, nothing written."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert not folder.exists() or not any(folder.iterdir()), sorted(folder.rglob("*"))


def cli(capfd, *argv: str) -> tuple[int, str, str]:
    """The real entry point in-process; capfd also catches what libraries print to the stderr descriptor."""
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def save_tiny(directory: Path, *, attention: bool = False, nan: bool = False) -> Path:
    """A tiny class-conditional UNet that fits digits16 (10 classes + null, 1x16x16), in diffusers layout."""
    from diffusers import DDPMScheduler

    from unlearnbench.models import save_diffusion

    torch.manual_seed(0)
    model = dataclasses.replace(TINY, attention=attention).build()
    if nan:
        with torch.no_grad():
            model.conv_in.weight[0, 0, 0, 0] = float("nan")
    save_diffusion(model, DDPMScheduler(), directory)
    return directory


# ---------------------------------------------------------------------------------------------
# Named cases (the examples)
# ---------------------------------------------------------------------------------------------


def test_model_directory_with_a_classifiers_weights(capfd, tmp_path):
    from unlearnbench.models import ClassifierArch, save_classifier

    model = save_tiny(tmp_path / "model")
    save_classifier(
        ClassifierArch(widths=(4, 8), feature_dim=8).build(), model / "unet" / "diffusion_pytorch_model.safetensors"
    )
    code, out, err = cli(capfd, *RUN, "--model", str(model), "--out", str(tmp_path / "out"))
    assert_refused(code, out, err, "the weights do not fit the model's config.json", tmp_path / "out")
    assert "missing" in err and "unexpected" in err


def test_model_directory_with_another_unets_weights(capfd, tmp_path):
    """Same config, weights of a UNet with attention blocks: diffusers would ignore the extra keys."""
    model = save_tiny(tmp_path / "model")
    other = save_tiny(tmp_path / "other", attention=True)
    weights = "unet/diffusion_pytorch_model.safetensors"
    (model / weights).write_bytes((other / weights).read_bytes())
    code, out, err = cli(capfd, *RUN, "--model", str(model), "--out", str(tmp_path / "out"))
    assert_refused(code, out, err, "unexpected (e.g. 'down_blocks.1.attentions.0", tmp_path / "out")


def test_model_whose_class_embeddings_do_not_fit_its_config(capfd, tmp_path):
    from diffusers import DDPMScheduler

    from unlearnbench.models import save_diffusion

    model = save_tiny(tmp_path / "model")
    save_diffusion(dataclasses.replace(TINY, num_classes=5).build(), DDPMScheduler(), tmp_path / "five")
    weights = "unet/diffusion_pytorch_model.safetensors"
    (model / weights).write_bytes((tmp_path / "five" / weights).read_bytes())
    code, out, err = cli(capfd, *RUN, "--model", str(model), "--out", str(tmp_path / "out"))
    assert_refused(code, out, err, "size mismatch for class_embedding.weight", tmp_path / "out")


def test_nan_model(capfd, tmp_path):
    model = save_tiny(tmp_path / "model", nan=True)
    code, out, err = cli(capfd, *RUN, "--model", str(model), "--out", str(tmp_path / "out"))
    assert_refused(code, out, err, "weight 'conv_in.weight' holds 1 non-finite value(s)", tmp_path / "out")


def test_a_fitting_tiny_model_still_loads(tmp_path):
    from unlearnbench.models import load_diffusion

    model, schedule, sha = load_diffusion(save_tiny(tmp_path / "model"))
    assert model.config.num_class_embeds == 11 and schedule.config.num_train_timesteps == TRAIN_STEPS
    assert len(sha) == 64


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--guidance", "inf"], "--guidance must be a finite number in [0, 50], got Infinity"),
        (["--guidance", "nan"], "--guidance must be a finite number in [0, 50], got NaN"),
        (["--guidance", "50.5"], "--guidance must be in [0, 50], got 50.5"),
        (["--method-args", '{"lr": Infinity}'], "argument 'lr' must be a finite number in (0, 10], got Infinity"),
        (["--method-args", '{"lr": NaN}'], "argument 'lr' must be a finite number in (0, 10], got NaN"),
        (["--seed", str(2**64 + 1)], f"--seed must be in [0, 2**63), got {2**64 + 1}"),
        (["--seed", str(2**63)], "--seed must be in [0, 2**63)"),
        (["--sample-steps", "2000"], "--sample-steps must be in [1, 1000] (the schedule's training steps), got 2000"),
    ],
    ids=[
        "guidance-inf",
        "guidance-nan",
        "guidance-51",
        "lr-infinity",
        "lr-nan",
        "seed-2**64",
        "seed-2**63",
        "steps-2000",
    ],
)
def test_bad_run_settings(capfd, tmp_path, extra, fragment):
    flags = {extra[i] for i in range(len(extra)) if extra[i].startswith("--")}
    base = [a for i, a in enumerate(RUN) if a not in flags and (i == 0 or RUN[i - 1] not in flags)]
    argv = [*base, "--out", str(tmp_path / "out"), *extra]
    if extra[0] == "--method-args":
        argv[argv.index("noop")] = "safemax"
    code, out, err = cli(capfd, *argv)
    assert_refused(code, out, err, fragment, tmp_path / "out")


def test_the_largest_seed_is_accepted(tmp_path, testbed):
    """2**63 - 1 passes validation, and sampling with it works (torch seeds are 64-bit)."""
    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import draw
    from unlearnbench.runner import validate
    from unlearnbench.spec import RunSpec

    validate(RunSpec(method="noop", forget=(3,), seed=SEED_LIMIT - 1), testbed)
    images = draw(
        TINY.build(),
        testbed.schedule,
        testbed.conditioner.encode_ids(torch.arange(2)),
        SamplerSettings(steps=2),
        SEED_LIMIT - 1,
        2,
    )
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('methods = ["noop"]\neval = 5\n', "config: eval must be a table, got int 5"),
        ('methods = ["noop"]\nforget_classes = 3\n', "config: forget_classes must be a list, got int 3"),
        ('methods = ["noop"]\n[eval]\nguidance = inf\n', "config: eval.guidance must be a finite number in [0, 50]"),
        ('methods = ["noop"]\n[eval]\nsample_steps = 2000\n', "config: eval.sample_steps must be in [1, 1000]"),
        ('methods = ["noop"]\nseeds = [-1]\n', "config: seeds[0] must be in [0, 2**63), got -1"),
        ('methods = ["safemax"]\n[[methods]]\n', "does not parse"),
        (
            'methods = [{ name = "safemax", args = { lr = nan } }]\n',
            "argument 'lr' must be a finite number in (0, 10], got NaN",
        ),
        ('methods = [{ name = "safemax", grid = { lr = [] } }]\n', "methods[0].grid.lr must be a non-empty list"),
        ('methods = ["noop"]\n[testbed]\nmodle = "x"\n', "unknown testbed key 'modle'; did you mean 'model'?"),
    ],
    ids=[
        "eval-5",
        "forget_classes-3",
        "guidance-inf",
        "steps-2000",
        "seed-negative",
        "toml-error",
        "lr-nan",
        "empty-grid",
        "typo",
    ],
)
def test_bad_sweep_config(capfd, tmp_path, text, fragment):
    config = tmp_path / "grid.toml"
    config.write_text(text)
    code, out, err = cli(capfd, "sweep", "--quiet", "--config", str(config), "--out", str(tmp_path / "out"))
    assert_refused(code, out, err, fragment, tmp_path / "out")


def test_json_config_with_infinity(capfd, tmp_path):
    config = tmp_path / "grid.json"
    config.write_text('{"methods": ["noop"], "eval": {"guidance": Infinity}}')
    code, out, err = cli(capfd, "sweep", "--quiet", "--config", str(config), "--out", str(tmp_path / "out"))
    assert_refused(code, out, err, "Infinity is not a JSON number", tmp_path / "out")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"safemax": {"args": {"lr": 1e-4}', "not valid JSON (Expecting ',' delimiter at line 1 column 34)"),
        ('{"safemax": {"run_id": "abc"}}', "safemax.args is required"),
        ('{"safemax": {"args": [1]}}', "safemax.args must be an object, got list [1]"),
        ('{"safemax": {"args": {}, "trials": 0}}', "safemax.trials must be >= 1, got 0"),
        ('{"safemax": {"args": {"lr": Infinity}}}', "Infinity is not a JSON number"),
        ('["safemax"]', "the whole input must be an object"),
    ],
    ids=["bad-json", "no-args", "args-list", "trials-0", "infinity", "not-an-object"],
)
def test_bad_tuned_file(capfd, tmp_path, text, fragment):
    tuned = tmp_path / "tuned.json"
    tuned.write_text(text)
    argv = ["sweep", "--quiet", "--methods", "safemax", "--tuned", str(tuned), "--out", str(tmp_path / "out")]
    code, out, err = cli(capfd, *argv)
    assert_refused(code, out, err, fragment, tmp_path / "out")


def test_the_committed_tuned_file_validates():
    from unlearnbench.grid import load_tuned

    tuned = load_tuned(Path(__file__).resolve().parent.parent / "results" / "tune" / "tuned.json")
    assert "salun" in tuned and tuned["salun"].args["lr"] > 0


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("UNLEARNBENCH_THREADS", "two", "environment variable UNLEARNBENCH_THREADS must be int in [1, 4096]"),
        ("UNLEARNBENCH_THREADS", "0", 'environment variable UNLEARNBENCH_THREADS must be in [1, 4096], got "0"'),
        ("UNLEARNBENCH_PROGRESS", "yes", "environment variable UNLEARNBENCH_PROGRESS must be one of ['0', '1']"),
    ],
)
def test_bad_environment_variable(capfd, tmp_path, monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    code, out, err = cli(capfd, *RUN, "--out", str(tmp_path / "out"))
    assert_refused(code, out, err, fragment, tmp_path / "out")


def test_environment_defaults_and_values():
    assert read_environment({}).UNLEARNBENCH_THREADS == 2
    env = read_environment({"UNLEARNBENCH_THREADS": "4", "UNLEARNBENCH_PROGRESS": "0", "HOME": "/x"})
    assert env.UNLEARNBENCH_THREADS == 4 and env.UNLEARNBENCH_PROGRESS == "0"


# ---------------------------------------------------------------------------------------------
# Non-finite samples and losses: a failed run, never an ok one
# ---------------------------------------------------------------------------------------------


def test_infinite_noise_predictions_are_not_clamped_into_images(testbed):
    """The sampler clamps to [-1, 1]; an infinite prediction must raise before it becomes a saturated image."""
    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import draw

    model = TINY.build()
    with torch.no_grad():
        model.conv_out.bias.fill_(float("inf"))
    with pytest.raises(Diverged, match="noise predictions hold NaN or infinity"):
        cond = testbed.conditioner.encode_ids(torch.arange(4))
        draw(model, testbed.schedule, cond, SamplerSettings(steps=2), 0, 1, desc="unlearned forget")


def test_non_finite_evaluator_output_is_not_scored():
    from unlearnbench.evaluate import judge
    from unlearnbench.models import ClassifierArch

    evaluator = ClassifierArch(widths=(4, 8), feature_dim=8).build().eval()
    with torch.no_grad():
        evaluator.head.bias.fill_(float("nan"))
    with pytest.raises(Diverged, match="evaluator outputs hold NaN"):
        judge(evaluator, torch.zeros(3, 1, 16, 16), torch.zeros(3, dtype=torch.long))


def test_a_method_that_returns_nan_weights_gives_a_failed_run(tmp_path, monkeypatch):
    from unlearnbench.api import SamplerSettings, UnlearningMethod
    from unlearnbench.evaluate import EvalSettings
    from unlearnbench.results import Store
    from unlearnbench.runner import Runner
    from unlearnbench.spec import RunSpec

    class NanWeights(UnlearningMethod):
        """Breaks every weight (stands in for a method whose update overflowed without a NaN loss)."""

        def unlearn(self, model, task, *, generator):
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float("nan"))
            return model

    NanWeights.name = "nan_weights"
    monkeypatch.setitem(registry._REGISTRY["method"], "nan_weights", NanWeights)
    tiny_eval = EvalSettings(forget_samples=4, retain_samples=1, curve_samples=2, sampler=SamplerSettings(steps=2))
    spec = RunSpec(method="nan_weights", forget=(3,), eval=tiny_eval)
    df = Runner(Store(tmp_path)).run(spec)
    assert (df.status == "failed").all() and df.value.isna().all()
    assert "hold NaN or infinity" in df.error.iloc[0]
    stored = json.loads((tmp_path / "runs" / f"{df.run_id.iloc[0]}.json").read_text())
    assert stored["status"] == "failed"


def test_non_finite_loss_raises_diverged():
    from unlearnbench.training import optimize

    weight = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(Diverged, match="loss became inf at step 1"):
        optimize([weight], lambda step: weight.sum() * (1.0 if step == 0 else math.inf), steps=3, lr=0.1, desc="t")
    assert torch.isfinite(weight).all()


# ---------------------------------------------------------------------------------------------
# Property-based tests: accepted, or one UserError line; never another exception
# ---------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=1200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2, max_value=60),
)
scalars = st.one_of(numbers, st.booleans(), st.text(max_size=8), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _entries(kind: str) -> list[tuple[str, type]]:
    return [(name, registry.get(kind, name)) for name in registry.names(kind)]


ENTRIES = _entries("method") + _entries("attack")


def _expected_ok(cls: type, raw: dict[str, Any]) -> bool:
    """An independent reading of the ``arg()`` declarations: would every value be allowed?"""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for key, value in raw.items():
        if key not in fields:
            return False
        meta, typ = fields[key].metadata, hints[key]
        if typ is bool:
            ok = isinstance(value, bool)
        elif typ is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif typ is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
        elif get_origin(typ) is tuple:  # a list (or tuple) of the item type
            item = get_args(typ)[0]
            ok = isinstance(value, list | tuple) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        else:
            ok = isinstance(value, typ)
        if not ok:
            return False
        if meta.get("choices") is not None and value not in meta["choices"]:
            return False
        low, high = meta.get("low"), meta.get("high")
        if low is not None and (value <= low if meta.get("low_open") else value < low):
            return False
        if high is not None and value > high:
            return False
        if (key == "lr" or key.endswith("_lr")) and value > MAX_LR:  # every learning rate's bound, by name
            return False
        if typ is int and (key == "steps" or key.endswith("_steps")) and value > MAX_STEPS:
            return False
    return True


@st.composite
def method_arguments(draw: Any) -> tuple[str, type, dict[str, Any]]:
    name, cls = draw(st.sampled_from(ENTRIES))
    fields = dataclasses.fields(cls.Args)
    keys = [f.name for f in fields] + ["lr", "steps", "lamda", "x"]
    raw = {}
    for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        field = next((f for f in fields if f.name == key), None)
        choices = field.metadata.get("choices") if field else None
        default = [field.default] if field else []
        raw[key] = draw(st.one_of(st.sampled_from(list(choices or default) or [0]), values))
    return name, cls, raw


@FUZZ
@given(method_arguments(), st.booleans())
def test_generated_method_and_attack_arguments(case, as_json):
    name, cls, raw = case
    text_or_dict: Any = json.dumps(raw) if as_json else raw  # json.dumps writes NaN/Infinity
    try:
        parsed = parse(cls.Args, text_or_dict, name)
    except UserError as e:
        event("rejected")
        message = str(e)
        assert "\n" not in message and message.startswith(f"{name}: ")
        has_constant = as_json and any(c in text_or_dict for c in ("NaN", "Infinity"))
        if not _expected_ok(cls.Args, raw) or has_constant:
            return
        # allowed by every declared range, refused by the Args' own cross-field check
        assert getattr(cls.Args, "validate", None) is not None, message
        return
    event("accepted")
    assert _expected_ok(cls.Args, raw), (raw, parsed)
    # a list argument is kept as a tuple (frozen, hashable): equal item by item
    assert all(getattr(parsed, key) == (tuple(v) if isinstance(v, list) else v) for key, v in raw.items())


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Valid values four times in five, so that both acceptance and refusal are exercised."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda i: bad if i == 0 else good)


anything = st.one_of(numbers, st.booleans(), st.text(max_size=3), st.none())
count = st.integers(min_value=1, max_value=500)
unit = st.floats(min_value=0, max_value=1)


@FUZZ
@given(
    st.fixed_dictionaries(
        {
            "forget_samples": mostly(count, anything),
            "retain_samples": mostly(count | st.just(0), anything),
            "curve_samples": mostly(count, anything),
            "steps": mostly(st.integers(min_value=1, max_value=TRAIN_STEPS), anything),
            "guidance_scale": mostly(st.floats(min_value=0, max_value=50) | st.integers(0, 50), anything),
            "eta": mostly(unit, anything),
            "seed": mostly(st.integers(min_value=0, max_value=SEED_LIMIT - 1), anything),
        }
    ),
    mostly(
        st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=3, unique=True),
        st.lists(st.integers(min_value=-2, max_value=11), max_size=10),
    ),
    st.sampled_from(["safemax", "noop", "salun", "relearn"]),
)
def test_generated_run_settings(values_, forget_classes, method):
    """What the run command builds from its flags: resolve + validate accept it or refuse it in one line."""
    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import EvalSettings
    from unlearnbench.runner import resolve, validate
    from unlearnbench.spec import RunSpec

    sampler = SamplerSettings(steps=values_["steps"], guidance_scale=values_["guidance_scale"], eta=values_["eta"])
    settings_ = EvalSettings(
        forget_samples=values_["forget_samples"],
        retain_samples=values_["retain_samples"],
        curve_samples=values_["curve_samples"],
        sampler=sampler,
        seed=values_["seed"],
    )
    method, attack = (method, "none") if method != "relearn" else ("safemax", "relearn")
    spec = RunSpec(method=method, attack=attack, forget=tuple(forget_classes), seed=values_["seed"], eval=settings_)
    try:
        validate(resolve(spec).spec, load_testbed())
    except UserError as e:
        event("rejected")
        assert "\n" not in str(e)
        return
    event("accepted")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return (is_int(v) or isinstance(v, float)) and math.isfinite(v)

    assert (
        forget_classes and len(set(forget_classes)) == len(forget_classes) and all(0 <= c < 10 for c in forget_classes)
    )
    assert is_int(values_["forget_samples"]) and values_["forget_samples"] > 0
    assert is_int(values_["retain_samples"]) and values_["retain_samples"] >= 0
    assert is_int(values_["curve_samples"]) and values_["curve_samples"] > 0
    assert is_int(values_["steps"]) and 1 <= values_["steps"] <= TRAIN_STEPS
    assert values_["guidance_scale"] is None or (
        is_num(values_["guidance_scale"]) and 0 <= values_["guidance_scale"] <= 50
    )
    assert is_num(values_["eta"]) and 0 <= values_["eta"] <= 1
    assert is_int(values_["seed"]) and 0 <= values_["seed"] < SEED_LIMIT


def toml_value(value: Any) -> str:
    """A tiny TOML writer for generated documents (inline tables and arrays; TOML has no null: ``{}``)."""
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


small_ints = st.integers(min_value=-2, max_value=12) | st.integers(min_value=-(2**64), max_value=2**64)
method_entry = st.sampled_from(["noop", "safemax", "finetune"]) | st.fixed_dictionaries(
    {"name": st.sampled_from(["safemax", "grad_ascent"])},
    optional={
        "args": st.fixed_dictionaries({}, optional={"lr": mostly(st.floats(1e-6, 1e-2), numbers), "steps": count}),
        "grid": st.fixed_dictionaries({}, optional={"steps": st.lists(mostly(count, numbers), min_size=1, max_size=2)}),
        "label": st.text(max_size=3),
    },
)
config_values = st.fixed_dictionaries(
    {},
    optional={
        "label": mostly(st.text(max_size=5), numbers),
        "methods": mostly(
            st.lists(method_entry, min_size=1, max_size=3),
            st.lists(st.sampled_from(["nope", ""]) | values, max_size=3) | values,
        ),
        "attacks": mostly(
            st.lists(
                st.sampled_from(["none", "relearn"])
                | st.fixed_dictionaries(
                    {"name": st.just("relearn"), "args": st.fixed_dictionaries({}, optional={"k": count})}
                ),
                min_size=1,
                max_size=2,
            ),
            st.lists(values, max_size=2) | values,
        ),
        "forget_classes": mostly(
            st.lists(
                st.integers(0, 9) | st.lists(st.integers(0, 9), min_size=1, max_size=2, unique=True),
                min_size=1,
                max_size=3,
            ),
            st.lists(small_ints | st.lists(small_ints, max_size=2) | values, max_size=3) | values,
        ),
        "seeds": mostly(
            st.lists(st.integers(0, SEED_LIMIT - 1), min_size=1, max_size=2), st.lists(small_ints, max_size=2) | values
        ),
        "eval": mostly(
            st.fixed_dictionaries(
                {},
                optional={
                    "forget_samples": count,
                    "sample_steps": st.integers(1, TRAIN_STEPS),
                    "guidance": st.floats(0, 50),
                    "eta": unit,
                },
            ),
            st.dictionaries(
                st.sampled_from(
                    ["forget_samples", "retain_samples", "curve_samples", "sample_steps", "guidance", "eta", "samples"]
                ),
                numbers,
                max_size=4,
            )
            | values,
        ),
        "testbed": mostly(
            st.fixed_dictionaries({}, optional={"testbed": st.just("digits16")}),
            st.dictionaries(
                st.sampled_from(["testbed", "model", "modle"]), st.sampled_from(["digits16", "x"]) | values, max_size=1
            ),
        ),
        "extra": values,
    },
)


@FUZZ
@given(config_values, st.sampled_from(["toml", "json"]))
def test_generated_config_files(document, fmt):
    """Generated TOML/JSON files through load_config, grid_from_config, and resolve + validate of every run."""
    from unlearnbench.grid import grid_from_config, load_config
    from unlearnbench.runner import resolve, validate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"grid.{fmt}"
        if fmt == "json":
            path.write_text(json.dumps(document))
        else:
            path.write_text("".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in document.items()))
        try:
            grid = grid_from_config(load_config(path))
            for spec in grid.specs()[:20]:
                validate(resolve(spec).spec, load_testbed())
        except UserError as e:
            event("rejected")
            assert "\n" not in str(e), str(e)
            return
    event("accepted")
    assert document.get("methods"), "a config without methods must be refused"
    assert all(0 <= s < SEED_LIMIT for s in grid.seeds)
    sampler = grid.eval.sampler
    guidance = resolve(grid.specs()[0]).spec.eval.sampler.guidance_scale  # None in the grid: the testbed's default
    assert 1 <= sampler.steps <= TRAIN_STEPS and 0 <= guidance <= 50 and 0 <= sampler.eta <= 1


bad_flag = st.one_of(
    st.tuples(
        st.just("--guidance"),
        st.floats(min_value=50, exclude_min=True) | st.floats(max_value=-1e-9) | st.sampled_from([math.inf, math.nan]),
    ),
    st.tuples(st.just("--sample-steps"), st.integers(min_value=TRAIN_STEPS + 1) | st.integers(max_value=0)),
    st.tuples(st.just("--seed"), st.integers(min_value=SEED_LIMIT) | st.integers(max_value=-1)),
    st.tuples(st.just("--eta"), st.floats(min_value=1, exclude_min=True) | st.floats(max_value=-1e-9)),
    st.tuples(
        st.just("--method-args"),
        st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -1.0]).map(lambda lr: json.dumps({"lr": lr})),
    ),
)


@settings(max_examples=5, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_flag)
def test_generated_rejects_through_the_real_command_line(flag_value):
    flag, value = flag_value
    text = value if isinstance(value, str) else (repr(value) if isinstance(value, float) else str(value))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        env = {**os.environ, "UNLEARNBENCH_PROGRESS": "0", "UNLEARNBENCH_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        argv = [sys.executable, "-m", "unlearnbench.cli", *RUN, "--out", str(out), f"{flag}={text}"]
        if flag == "--method-args":
            argv[argv.index("noop")] = "safemax"
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
        assert_refused(proc.returncode, proc.stdout, proc.stderr, flag if flag != "--method-args" else "'lr'", out)
