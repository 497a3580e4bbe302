"""Leaderboard generation, its up-to-date check, the regression check, and the page in a real browser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unlearnbench import leaderboard
from unlearnbench.api import SamplerSettings
from unlearnbench.cli import main
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings
from unlearnbench.results import Store
from unlearnbench.runner import Runner
from unlearnbench.spec import RunSpec

ROOT = Path(__file__).resolve().parent.parent
SMOKE = EvalSettings(forget_samples=6, retain_samples=2, curve_samples=4, sampler=SamplerSettings(steps=4))


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    runner = Runner(Store(root))
    for method, margs in (("noop", {}), ("safemax", {"steps": 3, "batch_size": 8})):
        for attack, aargs in (("none", {}), ("relearn", {"steps": 4, "k": 3, "batch_size": 4, "eval_every": 2})):
            runner.run(
                RunSpec(
                    method=method,
                    attack=attack,
                    forget_classes=(2,),
                    method_args=margs,
                    attack_args=aargs,
                    eval=SMOKE,
                    label="paper",
                )
            )
    return root


def test_leaderboard_writes_tables_figures_and_html(small_store, tmp_path):
    out = tmp_path / "lb"
    assert leaderboard.write(str(small_store), str(out)) == []
    md = (out / "leaderboard.md").read_text()
    assert "| paper | safemax |" in md and "| reference | original model |" in md
    assert "relearn" in md.split("## Robustness")[1]
    for name in ("tradeoff", "cost", "recovery", "samples"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.pdf").is_file()
    page = (out / "leaderboard.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page
    # regenerating gives the same text: the check passes, and fails once the file is edited
    assert leaderboard.write(str(small_store), str(out), check=True) == []
    (out / "leaderboard.md").write_text(md.replace("safemax", "safemaxx"))
    assert leaderboard.write(str(small_store), str(out), check=True)


def test_readme_block_is_rewritten_and_checked(small_store, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{leaderboard.README_BEGIN}\nold\n{leaderboard.README_END}\n\nafter\n")
    out = str(tmp_path / "lb")
    assert leaderboard.write(str(small_store), out, check=True, readme=str(readme))  # stale block found
    assert leaderboard.write(str(small_store), out, readme=str(readme)) == []
    text = readme.read_text()
    block = text.split(leaderboard.README_BEGIN)[1].split(leaderboard.README_END)[0]
    assert "old" not in block and "| paper | safemax |" in block
    assert "relearn (" not in block  # attacks at non-default budgets stay in the full leaderboard only
    assert text.startswith("# title\n\nbefore\n") and text.endswith("\n\nafter\n")
    assert leaderboard.write(str(small_store), out, check=True, readme=str(readme)) == []
    readme.write_text("# no markers\n")
    with pytest.raises(UserError, match="no leaderboard block"):
        leaderboard.write(str(small_store), out, readme=str(readme))


def test_committed_leaderboard_is_up_to_date(monkeypatch):
    monkeypatch.chdir(ROOT)
    problems = (
        leaderboard.write("results/store", "results", check=True, readme="README.md")
        if (ROOT / "results/store").is_dir()
        else ["missing"]
    )
    assert problems == []


def _copy_with(store: Path, dest: Path, method: str, metric: str, delta: float) -> Path:
    shutil.copytree(store, dest, ignore=shutil.ignore_patterns("cache"))
    for parquet in (dest / "runs").glob("*.parquet"):
        df = pd.read_parquet(parquet)
        hit = (df.method == method) & (df.metric == metric)
        if hit.any():
            df.loc[hit, "value"] = df.loc[hit, "value"] + delta
            df.to_parquet(parquet, index=False)
    return dest


def test_check_catches_an_injected_regression(small_store, tmp_path, capsys):
    assert main(["check", "--baseline", str(small_store), "--results", str(small_store)]) == 0
    worse = _copy_with(small_store, tmp_path / "worse", "safemax", "retain_accuracy_10way", -0.3)
    assert main(["check", "--baseline", str(small_store), "--results", str(worse)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "retain_accuracy_10way" in out
    better = _copy_with(small_store, tmp_path / "better", "safemax", "retain_accuracy_10way", +0.3)
    assert main(["check", "--baseline", str(small_store), "--results", str(better)]) == 0
    missing = tmp_path / "missing"
    shutil.copytree(small_store, missing, ignore=shutil.ignore_patterns("cache"))
    victim = next((missing / "runs").glob("*.parquet"))
    victim.unlink()
    assert main(["check", "--baseline", str(small_store), "--results", str(missing)]) == 1


def test_html_renders_in_headless_chromium(small_store, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    out = tmp_path / "lb"
    leaderboard.write(str(small_store), str(out))
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            (out / "leaderboard.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2400, 1280)
    assert img.std() > 20, "the page rendered blank"
    # text rows and the embedded figures both darken parts of the page
    assert (img < 128).mean() > 0.01


def test_efficiency_table_divides_by_safemax_on_shared_classes():
    costs = {  # method -> forget class -> (wall, cpu, prior wall, peak MiB)
        "safemax": {"0": (10.0, 8.0, 0.0, 100.0), "3": (30.0, 24.0, 0.0, 100.0)},
        "selective_amnesia": {"0": (300.0, 200.0, 100.0, 400.0), "3": (500.0, 280.0, 100.0, 200.0)},
        "salun": {"0": (40.0, 16.0, 2.0, 150.0), "8": (999.0, 999.0, 0.0, 999.0)},  # class 8: SAFEMax lacks it
    }
    metrics = ("cost_wall_s", "cost_cpu_s", "cost_prior_wall_s", "cost_peak_mem_mb")
    rows = [
        {"run_id": f"{m}{c}", "label": "paper", "method": m, "method_args": "{}", "forget_class": c, "seed": 0,
         "attack": "none", "phase": "unlearned", "attack_step": pd.NA, "class_id": pd.NA, "status": "ok",
         "split": "all", "metric": name, "value": v}
        for m, per in costs.items() for c, vals in per.items() for name, v in zip(metrics, vals, strict=True)
    ]  # fmt: skip
    t = leaderboard.efficiency_table(pd.DataFrame(rows)).set_index("method")
    sa, salun = t.loc["selective_amnesia"], t.loc["salun"]
    assert sa["classes"] == 2 and salun["classes"] == 1
    assert sa["wall ×, with priors"] == "20.0"  # (300 + 500) / (10 + 30)
    assert sa["wall ×, no priors"] == "15.0"  # (200 + 400) / 40
    assert sa["CPU ×, with priors"] == "15.0" and sa["peak memory ×"] == "3.00"
    assert sa["published time ×"] == "30.1" and sa["published memory ×"] == "1.82"
    assert salun["wall ×, with priors"] == "4.0" and salun["wall ×, no priors"] == "3.8"
    assert salun["peak memory ×"] == "1.50" and salun["published memory ×"] == "2.45"


def test_unlearning_cost_comes_from_the_run_without_an_attack():
    """An attack run that recomputed the model later (lost cache, other load) must not stand in for the
    unlearning's own run, even when its run_id sorts first."""

    def row(run_id: str, attack: str, method: str, wall: float) -> dict:
        return {"run_id": run_id, "label": "tuned", "method": method, "method_args": "{}", "forget_class": 0,
                "seed": 0, "attack": attack, "phase": "unlearned", "attack_step": pd.NA, "class_id": pd.NA,
                "status": "ok", "split": "all", "metric": "cost_wall_s", "value": wall}  # fmt: skip

    df = pd.DataFrame(
        [row("s0", "none", "safemax", 10.0), row("a0", "relearn", "salun", 90.0), row("b0", "none", "salun", 30.0)]
    )
    kept = leaderboard.unlearned_rows(df)
    assert set(kept["run_id"]) == {"s0", "b0"}
    # with no attack-free run, an attack run is used rather than nothing
    only_attacked = leaderboard.unlearned_rows(df[df["run_id"] != "b0"])
    assert set(only_attacked["run_id"]) == {"s0", "a0"}


def test_table_command_filters_methods_and_splits_by_class(small_store, tmp_path, capsys):
    out = tmp_path / "t" / "safemax"
    assert main(["table", "--results", str(small_store), "--out", str(out), "--methods", "safemax", "--by-class"]) == 0
    md = out.with_suffix(".md").read_text()
    assert "--methods safemax --by-class" in md and "| forget class |" in md
    body = [line for line in md.splitlines() if line.startswith("| paper |")]
    assert len(body) == 1 and body[0].startswith("| paper | safemax | batch_size=8, steps=3 | 2 |")
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert set(csv["method"]) == {"safemax"} and out.with_suffix(".png").stat().st_size > 1000
    assert main(["table", "--results", str(small_store), "--out", str(out), "--methods", "esd"]) == 2
    assert "no runs of esd" in capsys.readouterr().err
