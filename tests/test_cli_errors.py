"""Every bad input: one line naming the problem, exit status 2, no traceback, no result rows written."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from unlearnbench.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, fragment, store):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in err
    runs = store / "runs"
    assert not runs.exists() or not list(runs.glob("*.parquet")), "no rows may be written"


RUN = ["run", "--quiet", "--forget-samples", "2", "--retain-samples", "1", "--sample-steps", "2"]


def with_defaults(base: list[str], extra: list[str]) -> list[str]:
    """``base`` with the flags ``extra`` gives replaced by its values (a flag may be given once)."""
    out, i = [], 0
    while i < len(base):
        if base[i] in extra and i + 1 < len(base) and not base[i + 1].startswith("--"):
            i += 2
            continue
        out.append(base[i])
        i += 1
    return out + extra


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--method", "safemx"], "unknown method 'safemx'; did you mean 'safemax'?"),
        (["--method", "safemax", "--attack", "relarn"], "did you mean 'relearn'?"),
        (["--method", "safemax", "--forget-class", "10"], "unknown concept '10' on the digits16 testbed"),
        (["--method", "safemax", "--forget-class", "-1"], "unknown concept '-1'"),
        (["--method", "safemax", "--forget-class", *map(str, range(10))], "cannot forget every concept"),
        (["--method", "safemax", "--forget-class", "3", "3"], "forget concepts repeat"),
        (["--method", "safemax", "--method-args", "{lr: 1}"], "not valid JSON"),
        (["--method", "safemax", "--method-args", "[1]"], "must be a JSON object"),
        (["--method", "safemax", "--method-args", '{"lamda": 2}'], "unknown argument 'lamda'; did you mean 'lam'?"),
        (["--method", "safemax", "--method-args", '{"steps": "ten"}'], "'steps' must be int"),
        (["--method", "safemax", "--method-args", '{"steps": 0}'], "'steps' must be in (0, 1000000]"),
        (["--method", "safemax", "--method-args", '{"lr": -0.1}'], "'lr' must be in (0, 10]"),
        (["--method", "salun", "--method-args", '{"alpha": 0}'], "'alpha' must be > 0"),
        (
            ["--method", "safemax", "--attack", "relearn", "--attack-args", '{"steps": -5}'],
            "'steps' must be in (0, 1000000]",
        ),
        (["--method", "safemax", "--attack", "relearn", "--attack-args", '{"k": 1.5}'], "'k' must be int"),
        (["--method", "safemax", "--forget-samples", "0"], "--forget-samples must be > 0"),
        (["--method", "safemax", "--retain-samples", "-1"], "--retain-samples must be >= 0"),
        (["--method", "safemax", "--sample-steps", "0"], "--sample-steps must be in [1, 1000]"),
        (["--method", "safemax", "--guidance", "-1"], "--guidance must be in [0, 50]"),
        (["--method", "safemax", "--eta", "2"], "--eta must be in [0, 1]"),
        (["--method", "safemax", "--forget-class", "x"], "--forget-class: 'x' is not int"),
        (["--method", "safemax", "--model", "/nonexistent/model"], "no such directory"),
        (["--method", "safemax", "--dataset", "cifar100"], "unknown dataset 'cifar100'"),
        (["--method", "safemax", "--threads", "0"], "--threads must be >= 1"),
        (["--method", "safemax", "--metrics", "entropy,fdi"], "unknown metric 'fdi'; did you mean 'fid'?"),
        (["--method", "safemax", "--plugin", "no_such_module_xyz"], "could not be loaded"),
    ],
)
def test_bad_run_input(capsys, tmp_path, extra, fragment):
    store = tmp_path / "store"
    code, _, err = run_cli(capsys, *with_defaults(RUN, extra), "--out", str(store))
    assert_clean_error(code, err, fragment, store)


def test_unwritable_results_folder(capsys, tmp_path):
    if os.geteuid() == 0:
        target = "/proc/unlearnbench-cannot-write-here"  # root can write anywhere else
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target = str(locked / "store")
    code, _, err = run_cli(capsys, *RUN, "--method", "noop", "--out", target)
    assert code == 2 and "is not writable" in err and err.count("\n") == 1


def _model_copy(tmp_path):
    from unlearnbench.testbeds.digits16 import ROOT

    dst = tmp_path / "model"
    shutil.copytree(ROOT / "unet", dst / "unet")
    shutil.copytree(ROOT / "scheduler", dst / "scheduler")
    return dst


def test_truncated_safetensors(capsys, tmp_path):
    model = _model_copy(tmp_path)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, _, err = run_cli(capsys, *RUN, "--method", "noop", "--model", str(model), "--out", str(tmp_path / "s"))
    assert_clean_error(code, err, "not a readable safetensors file", tmp_path / "s")


def test_corrupt_safetensors_header(capsys, tmp_path):
    model = _model_copy(tmp_path)
    (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\xff" * 64)
    code, _, err = run_cli(capsys, *RUN, "--method", "noop", "--model", str(model), "--out", str(tmp_path / "s"))
    assert_clean_error(code, err, "not a readable safetensors file", tmp_path / "s")


def test_pickle_checkpoint_is_refused(capsys, tmp_path):
    model = _model_copy(tmp_path)
    (model / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (model / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not even looked at")
    code, _, err = run_cli(capsys, *RUN, "--method", "noop", "--model", str(model), "--out", str(tmp_path / "s"))
    assert_clean_error(code, err, "pickle checkpoints are refused", tmp_path / "s")


def test_model_that_does_not_fit_the_testbed(capsys, tmp_path):
    from diffusers import DDPMScheduler

    from unlearnbench.models import UNetArch, save_diffusion

    wrong = UNetArch(num_classes=5, block_out_channels=(8, 16), attention=False, norm_num_groups=4).build()
    save_diffusion(wrong, DDPMScheduler(), tmp_path / "m")
    code, _, err = run_cli(
        capsys, *RUN, "--method", "noop", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "s")
    )
    assert_clean_error(code, err, "has 6 class embeddings", tmp_path / "s")
    wrong = UNetArch(channels=3, block_out_channels=(8, 16), attention=False, norm_num_groups=4).build()
    save_diffusion(wrong, DDPMScheduler(), tmp_path / "m3")
    code, _, err = run_cli(
        capsys, *RUN, "--method", "noop", "--model", str(tmp_path / "m3"), "--out", str(tmp_path / "s")
    )
    assert_clean_error(code, err, "takes 3x16x16 images", tmp_path / "s")


def test_shipped_file_hash_mismatch(capsys, tmp_path, monkeypatch):
    from unlearnbench import testbeds
    from unlearnbench.testbeds import digits16

    fake = tmp_path / "digits16"
    shutil.copytree(digits16.ROOT, fake)
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest["files"]["evaluator.safetensors"] = "0" * 64
    (fake / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(digits16, "ROOT", fake)
    testbeds.load_testbed.cache_clear()
    try:
        code, _, err = run_cli(capsys, *RUN, "--method", "noop", "--out", str(tmp_path / "s"))
    finally:
        testbeds.load_testbed.cache_clear()
    assert_clean_error(code, err, "does not match the recorded", tmp_path / "s")


def test_hub_model_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(
        capsys, *RUN, "--method", "noop", "--model", "someone/some-ddpm", "--out", str(tmp_path / "s")
    )
    assert_clean_error(code, err, "could not download model 'someone/some-ddpm'", tmp_path / "s")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("methods = [\n", "does not parse"),
        ('methods = ["safemax"]\nforget_clases = [1]\n', "unknown key 'forget_clases'; did you mean 'forget_classes'?"),
        ('methods = ["safemax"]\nforget_classes = ["a"]\n', "forget_classes[0] must be an int or a non-empty list"),
        ('methods = ["safemax"]\n[eval]\nsamples = 3\n', "unknown eval key 'samples'"),
        ('methods = ["nope"]\n', "unknown method 'nope'"),
    ],
)
def test_bad_config_file(capsys, tmp_path, text, fragment):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(text)
    code, _, err = run_cli(capsys, "sweep", "--config", str(cfg), "--out", str(tmp_path / "s"), "--quiet")
    assert_clean_error(code, err, fragment, tmp_path / "s")


def test_missing_config_and_bad_workers(capsys, tmp_path):
    code, _, err = run_cli(capsys, "sweep", "--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "s"))
    assert_clean_error(code, err, "no such file", tmp_path / "s")
    code, _, err = run_cli(capsys, "sweep", "--methods", "noop", "--workers", "0", "--out", str(tmp_path / "s"))
    assert_clean_error(code, err, "--workers must be >= 1", tmp_path / "s")


def test_unknown_metric_and_list_kind(capsys):
    from unlearnbench import registry
    from unlearnbench.errors import UserError

    with pytest.raises(UserError, match="unknown metric 'fdi'; did you mean 'fid'"):
        registry.get("metric", "fdi")
    code, _, err = run_cli(capsys, "list", "method")
    assert code == 2 and err.startswith("error: argument kind: invalid choice") and err.count("\n") == 1
