"""Exit 2 for every bad input (issue 39, deliverable 3).

Each input below once reached the internals (exit 3) or misbehaved. Each is now refused at the edge, through
the real command line: exit status 2, one ``error:`` line, no traceback, nothing written. None of them loads a
model, samples or trains (the one that needs the testbed's data stops at the dataset).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.test_hardening import assert_refused, cli
from unlearnbench.args import MAX_LR, MAX_STEPS
from unlearnbench.schema import MAX_JSON_DEPTH

RUN = ["run", "--quiet", "--method", "noop", "--forget-samples", "2", "--retain-samples", "1", "--sample-steps", "2"]
DEEP = "[" * 20_000 + "]" * 20_000


def files(folder: Path) -> list[tuple[str, bytes | None]]:
    """Everything under ``folder``: to show that a refused command wrote nothing, not even beside its --out."""
    return sorted((str(p), p.read_bytes() if p.is_file() else None) for p in folder.rglob("*"))


def refused_without_writing(capsys, tmp_path: Path, fragment: str, *argv: str) -> str:
    """Run ``argv``; assert it is refused with ``fragment`` and that nothing under ``tmp_path`` changed."""
    before = files(tmp_path)
    code, out, err = cli(capsys, *argv)
    assert_refused(code, out, err, fragment, tmp_path / "out")
    assert files(tmp_path) == before
    return err


def read_only_folder(tmp_path: Path) -> Path:
    """A folder nothing can be written in (root writes anywhere a permission bit forbids, but not in /proc)."""
    if os.geteuid() == 0:
        return Path("/proc/unlearnbench-cannot-write-here")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return locked


def test_learning_rate_that_makes_training_non_finite(capsys, tmp_path):
    fragment = f"safemax: argument 'lr' must be in (0, {MAX_LR:g}], got 1e+300"
    argv = [*RUN, "--method-args", '{"lr": 1e300}', "--out", str(tmp_path / "out")]
    argv[argv.index("noop")] = "safemax"
    refused_without_writing(capsys, tmp_path, fragment, *argv)


def test_step_count_beyond_the_bound(capsys, tmp_path):
    fragment = f"safemax: argument 'steps' must be in (0, {MAX_STEPS}], got 1000000000"
    argv = [*RUN, "--method-args", '{"steps": 1000000000}', "--out", str(tmp_path / "out")]
    argv[argv.index("noop")] = "safemax"
    refused_without_writing(capsys, tmp_path, fragment, *argv)


def test_device_torch_cannot_parse(capsys, tmp_path):
    fragment = "--device 'gpu' is not a device torch knows"
    refused_without_writing(capsys, tmp_path, fragment, *RUN, "--device", "gpu", "--out", str(tmp_path / "out"))


def test_pretrain_channels_that_are_not_numbers(capsys, tmp_path):
    fragment = "--channels: 'abc' is not int"
    refused_without_writing(
        capsys, tmp_path, fragment, "pretrain", "--channels", "32,abc", "--out", str(tmp_path / "out")
    )


def test_method_args_nested_too_deeply(capsys, tmp_path):
    fragment = f"--method-args: not valid JSON (nested more than {MAX_JSON_DEPTH} deep)"
    argv = [*RUN, "--method-args", '{"lr": ' + DEEP + "}", "--out", str(tmp_path / "out")]
    argv[argv.index("noop")] = "safemax"
    err = refused_without_writing(capsys, tmp_path, fragment, *argv)
    assert len(err) < 500  # the 40,000 brackets are not echoed back


@pytest.mark.parametrize("command", ["sweep", "leaderboard"])
def test_tuned_file_nested_too_deeply(capsys, tmp_path, command):
    tuned = tmp_path / "tuned.json"
    tuned.write_text('{"safemax": {"args": {"lr": ' + DEEP + "}}}")
    out = str(tmp_path / "out")
    if command == "sweep":
        argv = ["sweep", "--quiet", "--methods", "safemax", "--tuned", str(tuned), "--out", out]
    else:
        argv = ["leaderboard", "--results", str(tmp_path / "no-store"), "--tuned", str(tuned), "--out", out]
    refused_without_writing(capsys, tmp_path, f"not valid JSON (nested more than {MAX_JSON_DEPTH} deep)", *argv)


def test_leaderboard_out_is_an_existing_file(capsys, tmp_path):
    board = tmp_path / "board.md"
    board.write_text("keep me\n")
    argv = ["leaderboard", "--results", str(tmp_path / "no-store"), "--out", str(board)]
    refused_without_writing(capsys, tmp_path, f"--out {str(board)!r} is a file; give a folder", *argv)
    assert board.read_text() == "keep me\n"


def test_leaderboard_out_is_a_read_only_folder(capsys, tmp_path):
    target = read_only_folder(tmp_path) / "board"
    argv = ["leaderboard", "--results", str(tmp_path / "no-store"), "--out", str(target)]
    refused_without_writing(capsys, tmp_path, f"--out {str(target)!r} is not writable", *argv)
    assert not target.exists()


def test_out_name_longer_than_the_file_system_allows(capsys, tmp_path):
    out = tmp_path / ("x" * 300)
    fragment = "longer than the file system allows (its longest name: 300 bytes)"
    refused_without_writing(capsys, tmp_path, fragment, *RUN, "--out", str(out))


def test_empty_out(capsys, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)  # an empty --out would have been the current folder
    fragment = "argument --out: give a path (an empty one would write into the current folder)"
    refused_without_writing(capsys, tmp_path, fragment, *RUN, "--out", "")
    assert not any(here.iterdir())


def test_check_csv_baseline_with_a_non_numeric_value(capsys, tmp_path):
    baseline = tmp_path / "baseline.csv"
    baseline.write_text("run_id,method,metric,value\nr1,safemax,fid,abc\n")
    fragment = f"results file {str(baseline)!r}: column 'value' must hold float64 values"
    refused_without_writing(
        capsys, tmp_path, fragment, "check", "--baseline", str(baseline), "--results", str(baseline)
    )


@pytest.mark.parametrize(
    "flag, value, fragment",
    [
        ("--guidance", "nan", "--guidance must be a finite number in [0, 50], got NaN"),
        ("--eta", "5", "--eta must be in [0, 1], got 5"),
        ("--seed", "-1", "--seed must be in [0, 2**63), got -1"),
    ],
)
def test_testbed_check_refuses_what_run_refuses(capsys, tmp_path, monkeypatch, flag, value, fragment):
    import unlearnbench.testbed_check

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the settings are checked before the testbed loads")

    monkeypatch.setattr(unlearnbench.testbed_check, "load_testbed", must_not_load)
    refused_without_writing(capsys, tmp_path, fragment, "testbed", "check", "--quiet", "--threads", "1", flag, value)


def test_tune_write_to_an_existing_folder(capsys, tmp_path, monkeypatch):
    import unlearnbench.tune

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("--write is checked before any trial runs")

    monkeypatch.setattr(unlearnbench.tune, "tune", must_not_run)
    folder = tmp_path / "tuned"
    folder.mkdir()
    argv = ["tune", "--quiet", "--methods", "safemax", "--write", str(folder), "--out", str(tmp_path / "out")]
    refused_without_writing(capsys, tmp_path, f"--write {str(folder)!r} is a folder; give a file name", *argv)


def test_dataset_download_offline(capsys, tmp_path, monkeypatch):
    from urllib.error import URLError

    import torchvision.datasets.mnist

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("offline")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default data folder; torchvision makes it
    argv = [*RUN, "--dataset", "mnist", "--download", "--out", str(tmp_path / "out")]
    code, out, err = cli(capsys, *argv)
    assert_refused(code, out, err, "could not download dataset 'mnist'", tmp_path / "out")
    assert "(<urlopen error offline>)" in err
    assert "rerun with --download" not in err and "--data-root" not in err


@pytest.mark.parametrize(
    "flag, name, args, fragment",
    [
        (
            "--method-args",
            "erasediff",
            '{"rounds": 1000000, "outer_steps": 1000}',
            "erasediff: budget rounds x (outer_steps + inner_passes) = 1,002,000,000 exceeds its bound of 1,000,000",
        ),
        (
            "--attack-args",
            "embedding_mix",
            '{"candidates": 100000, "samples": 100}',
            "embedding_mix: budget candidates x samples x sample_steps = 100,000,000 exceeds its bound of 1,000,000",
        ),
    ],
    ids=["method", "attack"],
)
def test_arguments_each_in_range_whose_budget_is_beyond_the_bound(capsys, tmp_path, flag, name, args, fragment):
    argv = [*RUN, flag, args, "--out", str(tmp_path / "out")]
    argv += ["--method", name] if flag == "--method-args" else ["--attack", name]
    if flag == "--method-args":
        del argv[argv.index("--method") : argv.index("--method") + 2]  # RUN's noop
    refused_without_writing(capsys, tmp_path, fragment, *argv)


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "ten"])
def test_max_minutes_that_is_not_a_finite_positive_number(capsys, tmp_path, command, value):
    fragment = "argument --max-minutes: "
    argv = [*RUN, "--max-minutes", value, "--out", str(tmp_path / "out")]
    if command == "sweep":
        argv = ["sweep", "--quiet", "--methods", "noop", "--max-minutes", value, "--out", str(tmp_path / "out")]
    err = refused_without_writing(capsys, tmp_path, fragment, *argv)
    assert f"got {value!r}" in err


def plugin(monkeypatch, tmp_path: Path, name: str, source: str) -> str:
    """A plugin module ``name`` on the import path (no bytecode written: the folder stays as it was)."""
    import sys

    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_plugin_registering_a_name_that_exists(capsys, tmp_path, monkeypatch):
    source = (
        "from unlearnbench.api import UnlearningMethod\nfrom unlearnbench.registry import register\n\n"
        '@register("noop")\nclass Again(UnlearningMethod):\n    """Takes a built-in\'s name."""\n'
    )
    name = plugin(monkeypatch, tmp_path, "ub_plugin_duplicate", source)
    fragment = f"--plugin '{name}' could not be loaded: ValueError: method 'noop' is already registered"
    refused_without_writing(capsys, tmp_path, fragment, *RUN, "--plugin", name, "--out", str(tmp_path / "out"))


def test_plugin_that_exits_at_import(capsys, tmp_path, monkeypatch):
    name = plugin(monkeypatch, tmp_path, "ub_plugin_exits", "import sys\nsys.exit(3)\n")
    fragment = f"--plugin '{name}' could not be loaded: it exited at import (code 3)"
    refused_without_writing(capsys, tmp_path, fragment, *RUN, "--plugin", name, "--out", str(tmp_path / "out"))


def test_plugin_raising_keyboard_interrupt_at_import_is_an_interrupt(capsys, tmp_path, monkeypatch):
    name = plugin(monkeypatch, tmp_path, "ub_plugin_interrupts", "raise KeyboardInterrupt\n")
    before = files(tmp_path)
    code, out, err = cli(capsys, *RUN, "--plugin", name, "--out", str(tmp_path / "out"))
    assert code == 130 and out == ""
    assert err.strip().splitlines() == ["interrupted: finished runs are kept, the run in flight wrote nothing"]
    assert files(tmp_path) == before


def test_label_that_is_not_valid_utf8(capsys, tmp_path):
    label = b"bad \xff label".decode("utf-8", "surrogateescape")  # how Python hands such a command-line byte over
    fragment = r"--label 'bad \udcff label' is not valid UTF-8"
    refused_without_writing(capsys, tmp_path, fragment, *RUN, "--label", label, "--out", str(tmp_path / "out"))
