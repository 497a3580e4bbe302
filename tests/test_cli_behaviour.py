"""The CLI's contract: exit codes with one meaning each, no silent surprises, a gate that compares like
with like, help and logs fit for a terminal and for CI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnbench.cli import build_parser, main
from unlearnbench.grid import grid_from_config
from unlearnbench.results import load_results

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "results" / "ci" / "store"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_forget_class_accumulates_and_other_flags_refuse_repeats(capsys, tmp_path):
    args = build_parser().parse_args(["run", "--method", "safemax", "--forget-class", "3", "--forget", "5"])
    assert args.forget == [3, "5"]  # both spellings fill one list: class number 3 is the concept "3"
    assert build_parser().parse_args(["run", "--method", "safemax", "--forget-class", "3", "5"]).forget == [3, 5]
    assert main(["run", "--method", "safemax", "--seed", "1", "--seed", "2", "--out", str(tmp_path / "o")]) == 2
    assert "--seed given twice" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_bare_command_prints_usage_and_version_is_known(capsys):
    assert main([]) == 2
    assert "usage: unlearnbench" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "unlearnbench 0." in capsys.readouterr().out


def test_every_flag_has_help_that_states_its_default():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
                if action.default not in (None, False, [], "==SUPPRESS==") and not action.required:
                    assert "default" in action.help, f"{name} {action.option_strings} hides its default"


def test_an_internal_error_is_exit_3_with_a_log_file(monkeypatch, tmp_path, capsys):
    from unlearnbench import cli

    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_list", boom)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["list", "methods"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("internal error: RuntimeError: a bug")
    log = Path(err[0].split("traceback in ")[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(tmp_path) and "Traceback" in log.read_text()


def test_a_reader_that_went_away_is_exit_141_without_a_crash_log(monkeypatch, tmp_path):
    import sys

    from unlearnbench import cli

    def printing(args):
        raise BrokenPipeError(32, "Broken pipe")  # what print() raises once `| head` has read its lines

    monkeypatch.setattr(cli, "cmd_list", printing)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # main points both at devnull; restored after the test
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["list", "methods"]) == 141
    assert not list(tmp_path.rglob("crash-*.log"))


def test_list_verbose_shows_each_methods_tuning_grid_and_why_a_budget_is_smaller(capsys):
    from unlearnbench.methods.selective_amnesia import SelectiveAmnesia

    assert main(["list", "methods", "-v"]) == 0
    out = capsys.readouterr().out
    sa = out[out.index("\nselective_amnesia ") :]  # its block: the last method, alphabetically
    assert "tuning grid: lam in [1e-05, 0.001, 0.01, 0.1, 1.0]" in sa
    assert f"tuning budget: {SelectiveAmnesia.search_note}" in sa
    assert "tuning grid (retain term): " in out  # SAFEMax's variant, tuned as its own row


def test_check_refuses_unlike_settings_and_catches_a_20_percent_fid_regression(tmp_path, capsys):
    base = load_results(BASELINE)
    for field, value in (("evaluator_sha", "0" * 64), ("guidance", 3.0), ("n_forget_samples", 7)):
        other = base.copy()
        other[field] = value
        path = tmp_path / f"{field}.parquet"
        other.to_parquet(path)
        assert main(["check", "--baseline", str(BASELINE), "--results", str(path)]) == 2
        assert field in _one_error_line(capsys)
    worse = base.copy()
    fid = (worse.metric == "fid") & (worse.split == "retain") & (worse.method == "safemax")
    assert fid.any()
    worse.loc[fid, "value"] *= 1.2
    path = tmp_path / "worse.parquet"
    worse.to_parquet(path)
    assert main(["check", "--baseline", str(BASELINE), "--results", str(path)]) == 1
    out = capsys.readouterr().out
    assert "fid" in out and "REGRESSION" in out and "±" in out
    assert main(["check", "--baseline", str(BASELINE), "--results", str(BASELINE)]) == 0
    # a baseline written before the sampler's precision was recorded was measured in float32
    old, fresh = base.assign(sampler_precision=None), base.assign(sampler_precision="float32")
    old.to_parquet(tmp_path / "old.parquet")
    fresh.to_parquet(tmp_path / "fresh.parquet")
    assert (
        main(["check", "--baseline", str(tmp_path / "old.parquet"), "--results", str(tmp_path / "fresh.parquet")]) == 0
    )
    fresh.assign(sampler_precision="bfloat16").to_parquet(tmp_path / "bf16.parquet")
    assert (
        main(["check", "--baseline", str(tmp_path / "old.parquet"), "--results", str(tmp_path / "bf16.parquet")]) == 2
    )
    assert "sampler_precision" in _one_error_line(capsys)


def test_a_method_missing_from_tuned_is_skipped_never_labelled_tuned(tmp_path):
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"salun": {"args": {"alpha": 0.01}}}))
    from unlearnbench.grid import read_tuned

    grid, skipped = grid_from_config({"methods": ["salun", "safemax"]}).with_tuned(read_tuned(str(tuned)))
    assert skipped == ["safemax"] and grid.methods == [("salun", {"alpha": 0.01}, "tuned")]


def test_save_model_pointing_at_a_file_fails_before_any_work(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("")
    out = tmp_path / "out"
    assert main(["run", "--method", "noop", "--save-model", str(target), "--out", str(out)]) == 2
    assert "--save-model" in _one_error_line(capsys)
    assert not list(out.rglob("*.parquet"))


def test_progress_is_plain_lines_without_a_terminal():
    code = (
        "import sys; from unlearnbench import progress\n"
        "progress.set_enabled(True); progress.PLAIN_EVERY_S = 0.0\n"
        "for _ in progress.bar(range(3), desc='work'): pass\n"
    )
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert err.splitlines() == ["work: 1/3", "work: 2/3", "work: 3/3"] and "\r" not in err and "\x1b" not in err


def test_an_attack_budget_beyond_the_data_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--method", "noop", "--attack", "relearn", "--attack-args", '{"k": 100000}', "--out", str(out)])
    assert code == 2
    assert "k = 100000" in _one_error_line(capsys)
    assert not list(out.rglob("*.parquet"))


def test_a_truncated_results_file_is_named_and_left_out_by_check_and_leaderboard(tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(BASELINE, store)
    victim = next((store / "runs").glob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:100])
    named = f"run {victim.stem} left out: its rows (parquet) do not match their recorded sha256"
    assert main(["check", "--baseline", str(BASELINE), "--results", str(store)]) == 1  # its numbers are missing
    captured = capsys.readouterr()
    assert named in captured.err and "MISSING" in captured.out and "Traceback" not in captured.err
    assert main(["leaderboard", "--results", str(store), "--out", str(tmp_path / "lb")]) == 0
    assert named in capsys.readouterr().err
    single = tmp_path / "cut.parquet"  # a single file has no recorded hash: unreadable is one line
    single.write_bytes(victim.read_bytes())
    assert main(["check", "--baseline", str(BASELINE), "--results", str(single)]) == 2
    assert "cannot be read" in _one_error_line(capsys)


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    assert main(["run", "--method", "noop", "--device", "cuda", "--out", str(out)]) == 2
    assert "no CUDA device" in _one_error_line(capsys)
    assert not out.exists() or not list(out.rglob("*.parquet"))


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def broken(:\n", "SyntaxError"),
        (
            "from unlearnbench.api import UnlearningMethod\nfrom unlearnbench.registry import register\n"
            "@register('safemax')\nclass Again(UnlearningMethod):\n    pass\n",
            "already registered",
        ),
    ],
    ids=["syntax-error", "duplicate-name"],
)
def test_a_broken_plugin_is_one_line(tmp_path, monkeypatch, capsys, source, fragment):
    (tmp_path / "bad_plugin_mod.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "methods", "--plugin", "bad_plugin_mod"]) == 2
    assert fragment in _one_error_line(capsys)


def test_a_sweep_plan_estimates_its_time_from_the_runs_measured_before(tmp_path, capsys):
    import pandas as pd

    from unlearnbench.estimate import estimate
    from unlearnbench.runner import resolve
    from unlearnbench.spec import RunSpec

    spec = resolve(RunSpec(method="safemax", forget=(1,))).spec
    attacked = resolve(RunSpec(method="safemax", attack="relearn", forget=(1,))).spec
    (tmp_path / "runs").mkdir()

    def measured(name: str, s: RunSpec, wall: float, split: dict | None, cost_s: float) -> None:
        meta = {"spec": s.to_dict(), "wall_s": wall, "status": "ok", **({"time_split_s": split} if split else {})}
        (tmp_path / "runs" / f"{name}.json").write_text(json.dumps(meta))
        # the recorded unlearning time includes a prior of 500 s that was read from the cache (not spent here)
        rows = {"phase": ["unlearned"] * 3, "metric": ["cost_wall_s", "cost_prior_wall_s", "cost_prior_cached"]}
        pd.DataFrame({**rows, "value": [cost_s + 500.0, 500.0, 1.0]}).to_parquet(tmp_path / "runs" / f"{name}.parquet")

    # runs that say how their time split: 60 s unlearning (computed here), 100 / 300 / 200 s evaluation
    for i, evaluation in enumerate([100.0, 300.0, 200.0]):
        measured(f"r{i}", spec, 60.0 + evaluation, {"unlearning": 60.0, "sampling": evaluation}, 60.0)
    # an older run without the split: its cost rows say 60 s of unlearning; its 250 s wall time exceeds them,
    # so it computed the unlearning and evaluated for 190 s; a cached follower (30 s < 60 s) only evaluated
    measured("old", attacked, 250.0, None, 60.0)
    measured("cached", attacked, 30.0, None, 60.0)
    line = estimate([[spec]] * 18, [str(tmp_path)], workers=2)  # 18 x (60 + 200) s / 2 workers = 0.65 h
    assert "0.7 h on 2 worker(s) for 18 runs (18 from runs with the same settings" in line
    # runs that share one unlearning count it once: 60 + 200 + median(190, 30) = 370 s, not 2 x 60 + ...
    assert "0.1 h on 1 worker(s) for 2 runs" in estimate([[spec, attacked]], [str(tmp_path)], 1)
    parts: dict[str, float] = {}
    assert estimate([[spec, attacked]] * 10, [str(tmp_path)], 1, parts).startswith("estimate: 1.0 h")  # 3700 s
    # where the time goes: the unlearning once per job, each run's evaluation under its method and attack
    assert parts == {"safemax/unlearning": 600.0, "safemax/none": 2000.0, "safemax/relearn": 1100.0}
    # a job whose unlearned model the store already holds (a resumed sweep) is charged its evaluation only
    from unlearnbench.sweep import Job

    held = Job([spec])
    held.cached = True
    assert estimate([held] * 18, [str(tmp_path)], 2).startswith("estimate: 0.5 h")  # 18 x 200 s / 2
    # so is one whose method never measured an unlearning (retrain's runs all load the shipped reference)
    retrain = resolve(RunSpec(method="retrain", forget=(1,))).spec
    measured("ref", retrain, 40.0, {"sampling": 40.0}, 0.0)
    shipped = Job([retrain])
    shipped.cached = True
    assert "for 18 runs (18 from runs with the same settings" in estimate([shipped] * 18, [str(tmp_path)], 2)
    # an attack never measured with this method borrows its evaluation from the same attack and settings with
    # another method (SAFEMax's relearn runs: median(190, 30) = 110 s), and says so
    relearned = Job([resolve(RunSpec(method="retrain", attack="relearn", forget=(1,))).spec])
    relearned.cached = True
    borrowed = {}
    line = estimate([relearned], [str(tmp_path)], 1, borrowed)
    assert "for 1 runs (0 from runs with the same settings, 0 from the same method and attack at other" in line
    assert "1 from the same attack and settings with other methods" in line and borrowed == {"retrain/relearn": 110.0}
    # (a retrain that must train from scratch stays unknown: no retrain unlearning was ever measured)
    assert estimate([[retrain]], [str(tmp_path)], 1).startswith("estimate: none")
    other = resolve(RunSpec(method="salun", forget=(1,))).spec
    assert "no measurement for 1 runs (salun/none)" in estimate([[other], [spec]], [str(tmp_path)], 1)
    assert estimate([[other]], [str(tmp_path)], 1).startswith("estimate: none, no run like these was measured")
    # --plan prints the plan and the estimate and runs nothing
    out = tmp_path / "fresh"
    code = main(["sweep", "--methods", "safemax", "--forget", "1", "--out", str(out), "--estimate-from",
                 str(tmp_path), "--plan"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "estimate: 0.1 h on 1 worker(s) for 1 runs" in err
    assert "safemax/none" in err and "safemax/unlearning" in err  # and where the time goes
    assert not out.exists()  # a plan starts no worker and writes nothing, not even the folder
    # a method's unlearning is estimated from runs with its own arguments (600 s at 10x the steps; also when it is
    # evaluated on other sample counts), else from the method's runs at any (the median of 60, 60, 60, 60, 600 s)
    from dataclasses import replace

    longer = replace(spec, method_args={**spec.method_args, "steps": 10 * spec.method_args["steps"]})
    measured("long", longer, 800.0, {"unlearning": 600.0, "sampling": 200.0}, 600.0)
    fewer = replace(longer, eval=replace(longer.eval, forget_samples=longer.eval.forget_samples + 1))
    for planned, seconds in ((longer, 600.0), (fewer, 600.0), (replace(longer, method_args={"steps": 1}), 60.0)):
        parts = {}
        estimate([[planned]], [str(tmp_path)], 1, parts)
        assert parts["safemax/unlearning"] == seconds
    # a run on another testbed says nothing of this one's cost
    assert estimate([[replace(spec, testbed="text16")]], [str(tmp_path)], 1).startswith("estimate: none")


def test_a_run_measured_beside_other_jobs_is_estimated_at_its_own_cpu_seconds(tmp_path):
    import pandas as pd

    from unlearnbench.estimate import estimate
    from unlearnbench.runner import resolve
    from unlearnbench.spec import RunSpec

    spec = resolve(RunSpec(method="safemax", forget=(1,))).spec
    (tmp_path / "runs").mkdir()

    def measured(name: str, threads: int, cpu: float | None) -> None:
        # 3600 s of wall time: 1200 s unlearning, 2400 s evaluating
        split = {"unlearning": 1200.0, "sampling": 2400.0}
        meta = {"spec": spec.to_dict(), "wall_s": 3600.0, "status": "ok", "threads": threads, "time_split_s": split}
        if cpu is not None:
            meta["cpu_s"] = cpu
        (tmp_path / "runs" / f"{name}.json").write_text(json.dumps(meta))
        pd.DataFrame({"phase": ["unlearned"], "metric": ["cost_wall_s"], "value": [1200.0]}).to_parquet(
            tmp_path / "runs" / f"{name}.parquet"
        )

    # one thread, waiting for a core half the time: 1800 CPU s in 3600 s of wall time -> counted as 1800 s
    measured("contended", 1, 1800.0)
    parts: dict[str, float] = {}
    assert estimate([[spec]] * 4, [str(tmp_path)], 1, parts).startswith("estimate: 2.0 h")  # 4 x 1800 s
    assert parts == {"safemax/unlearning": 2400.0, "safemax/none": 4800.0}  # the split scaled alike
    # several threads (their overlap unknown), or no CPU seconds recorded: the wall time as measured
    for threads, cpu in ((2, 1800.0), (1, None)):
        measured("contended", threads, cpu)
        assert estimate([[spec]] * 4, [str(tmp_path)], 1).startswith("estimate: 4.0 h")
