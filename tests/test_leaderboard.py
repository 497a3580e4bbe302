"""The report layer (tables, figures, page, README block), its up-to-date check, the regression check, and the
page in a real browser."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import socketserver
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import rewrite_rows
from unlearnbench import grid, registry
from unlearnbench.api import SamplerSettings
from unlearnbench.cli import main
from unlearnbench.defaults import PRIMARY_ASR
from unlearnbench.errors import UserError
from unlearnbench.evaluate import EvalSettings
from unlearnbench.report import html_page, page, tables
from unlearnbench.report.cells import ColumnFormat, Stat, column_format, has_intervals, mark_ties, phase_label
from unlearnbench.report.cost import efficiency_table
from unlearnbench.report.frames import split_by_sampler, unlearned_rows
from unlearnbench.report.judges import judges_disagree
from unlearnbench.report.provenance import repeated_work
from unlearnbench.report.quality import quality_metrics
from unlearnbench.report.settings import settings_table
from unlearnbench.report.tuning import tuning_table
from unlearnbench.results import Store, final_rows, load_results, to_frame
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
                    forget=(2,),
                    method_args=margs,
                    attack_args=aargs,
                    eval=SMOKE,
                    label="paper",
                )
            )
    return root


def test_leaderboard_writes_tables_figures_and_html(small_store, tmp_path):
    out = tmp_path / "lb"
    assert page.write(str(small_store), str(out)) == []
    md = (out / "leaderboard.md").read_text()
    assert "| paper | safemax |" in md and "| reference | original model |" in md
    assert "relearn" in md.split("## Robustness")[1]
    for name in ("tradeoff", "cost", "recovery", "samples"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.pdf").is_file()
    html = (out / "leaderboard.html").read_text()
    assert html.count('<img alt="') == 4 and html.count("data:image/png;base64,") == 4
    for table_id in ("quality_table", "robustness_table", "settings_table"):  # no cost ratios: noop is no method
        assert f'<table id="{table_id}"' in html
    assert 'id="heatmap"' in html and 'href="#glance"' in html  # leads with the heatmap and a contents list
    # nothing to fetch: no external script, style sheet or module import
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|import [^;]*from ['\"]https?:", html)
    # regenerating gives the same text: the check passes, and fails once either file is edited
    assert page.write(str(small_store), str(out), check=True) == []
    (out / "leaderboard.md").write_text(md.replace("safemax", "safemaxx"))
    cmd = f"unlearnbench leaderboard --results {small_store} --out {out}"
    assert page.write(str(small_store), str(out), check=True) == [
        f"{out}/leaderboard.md is out of date; regenerate with `{cmd}`"
    ]
    (out / "leaderboard.md").write_text(md)
    (out / "leaderboard.html").write_text(html.replace(">safemax<", ">safemaxx<", 1))
    assert [p.split(" is out")[0] for p in page.write(str(small_store), str(out), check=True)] == [
        f"{out}/leaderboard.html"
    ]


def test_readme_block_is_rewritten_and_checked(small_store, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{page.README_BEGIN}\nold\n{page.README_END}\n\nafter\n")
    out = str(tmp_path / "lb")
    assert page.write(str(small_store), out, check=True, readme=str(readme))  # stale block found
    assert page.write(str(small_store), out, readme=str(readme)) == []
    text = readme.read_text()
    block = text.split(page.README_BEGIN)[1].split(page.README_END)[0]
    assert "old" not in block and "| paper | safemax |" in block
    assert f"runs in `{small_store}`" in block  # the store it was generated from, not a fixed name
    assert "relearn (" not in block  # attacks at non-default budgets stay in the full leaderboard only
    assert text.startswith("# title\n\nbefore\n") and text.endswith("\n\nafter\n")
    assert page.write(str(small_store), out, check=True, readme=str(readme)) == []
    readme.write_text("# no markers\n")
    with pytest.raises(UserError, match="no leaderboard block"):
        page.write(str(small_store), out, readme=str(readme))


def test_the_work_note_counts_each_unlearned_model_once_and_the_slowest_computation_of_it():
    from unlearnbench.spec import EvalSettings, RunSpec, SamplerSettings

    def meta(method, guidance, wall, unlearning=None, seed=0):
        spec = RunSpec(method=method, seed=seed, eval=EvalSettings(sampler=SamplerSettings(guidance_scale=guidance)))
        split = {"sampling": wall} if unlearning is None else {"unlearning": unlearning, "sampling": wall - unlearning}
        return {"spec": spec.to_dict(), "wall_s": wall, "time_split_s": split}

    metas = [
        meta("safemax", 1.0, 300.0, 100.0),  # SAFEMax never samples while unlearning: one model at both settings
        meta("safemax", 3.0, 330.0, 120.0),
        meta("safemax", 3.0, 200.0),  # read it from the cache
        meta("safemax", 1.0, 310.0, 90.0, seed=1),  # another seed, another model
        meta("salun", 1.0, 400.0, 150.0),  # SalUn's saliency is guided: one model per setting
        meta("salun", 3.0, 420.0, 170.0),
        meta("gone_method", 1.0, 50.0, 10.0),  # no longer installed: keyed on everything, never matched wrongly
        meta("gone_method", 3.0, 50.0, 10.0),
    ]
    total, repeated = repeated_work(metas)
    assert total == 2060.0
    assert repeated == 100.0  # SAFEMax's two computations of one model: the slower (120 s) counts as its one
    # measured beside other jobs: a one-thread run that computed for half its wall time counts half (as the
    # estimate does); a run with several threads, or whose CPU seconds exceed its wall, counts whole
    metas[1].update(cpu_s=165.0, threads=1)
    metas[0].update(cpu_s=600.0, threads=1)
    metas[4].update(cpu_s=100.0, threads=2)
    busy, busy_repeated = repeated_work(metas, computing=True)
    assert busy == 2060.0 - 165.0 and busy_repeated == 60.0  # the slower copy is now SAFEMax's 100 s, not 120 * 0.5


def test_the_page_states_the_wall_time_of_the_sweeps_that_wrote_the_store(small_store, tmp_path):
    import shutil

    from unlearnbench.results import Store, sweep_wall_s

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    log = Store(store)
    # two sessions of one config (the first interrupted), and a second sweep that overlapped the first
    for started, wall, status in ((1000.0, 3600.0, "interrupted"), (9000.0, 1800.0, "finished"),
                                  (2000.0, 600.0, "finished")):  # fmt: skip
        log.log_sweep({"started_unix": started, "wall_s": wall, "status": status, "workers": 2,
                       "threads_per_run": 1, "processor": "Some CPU"})  # fmt: skip
    with open(log.sweep_log, "a") as f:
        f.write('{"started_unix": 5000, "wall_')  # a line cut short by a crash
    assert sweep_wall_s(log.sweeps()) == 5400.0  # 3600 + 1800: the overlapping 600 s count once
    out = tmp_path / "lb"
    readme = tmp_path / "README.md"
    readme.write_text(f"{page.README_BEGIN}\n{page.README_END}\n")
    assert page.write(str(store), str(out), readme=str(readme)) == []
    line = "ran for **1.50 h** of wall time in all (3 sweep(s), 1 of them stopped before the end"
    assert line in (out / "leaderboard.md").read_text() and line in readme.read_text()
    assert "2 worker(s) x 1 thread(s); Some CPU;" in readme.read_text()
    assert "ran for 1.50 h of wall time" in (out / "leaderboard.html").read_text()
    assert "Incomplete" not in readme.read_text()  # the last sweep finished
    total, repeated = repeated_work([log.meta(r) for r in log.run_ids()])
    assert (
        f"own wall times sum to {total / 3600:.2f} worker-hours, {total / 7200:.2f} h on 2 workers"
        in readme.read_text()
    )
    assert f"their work is **{(total - repeated) / 7200:.2f} h** on 2 workers" in readme.read_text()
    # a later session's sweep of the same config, stopped with 2 of the runs it planned still to run; its
    # line, appended after the one a crash cut short, is still read
    held = len(log.run_ids())
    log.log_sweep({"started_unix": 20000.0, "wall_s": 60.0, "status": "interrupted", "already_complete": 3,
                   "planned": held - 1, "done": held - 3, "failed": 0})  # fmt: skip
    assert page.write(str(store), str(out)) == []
    assert (
        f"**Incomplete:** the last sweep stopped before the end (interrupted); the store holds {held} complete "
        f"runs of the {held + 2} it planned" in (out / "leaderboard.md").read_text()
    )
    # a sweep the machine killed: its latest line is the progress it logged after its last saved run
    log.log_sweep({"started_unix": 30000.0, "wall_s": 0.0, "status": "running", "planned": 5, "done": 0})
    log.log_sweep({"started_unix": 30000.0, "wall_s": 900.0, "status": "running", "planned": 5, "done": 1})
    assert len(log.sweeps()) == 5 and sweep_wall_s(log.sweeps()) == 5400.0 + 60.0 + 900.0
    assert page.write(str(store), str(out)) == []
    assert "(its last line says running: killed, or still running)" in (out / "leaderboard.md").read_text()
    assert page.write(str(small_store), str(tmp_path / "plain")) == []  # a store no logged sweep wrote
    assert "The sweeps that wrote" not in (tmp_path / "plain" / "leaderboard.md").read_text()


def test_a_store_several_configs_wrote_states_each_grids_time_and_what_of_it_the_store_holds():
    from unlearnbench.report.provenance import sweep_note

    a, b = [f"a{i}" for i in range(4)], [f"b{i}" for i in range(6)]

    def sweep(config, started, wall, status, runs, **extra):
        return {"config": config, "started_unix": started, "wall_s": wall, "status": status, "run_ids": runs,
                "workers": 2, "threads_per_run": 1, "processor": "Some CPU", **extra}  # fmt: skip

    records = [
        sweep("configs/a.toml", 0.0, 3600.0, "running", a),  # killed
        sweep("configs/a.toml", 7200.0, 1800.0, "finished", a),  # resumed: the same grid
        sweep("configs/b.toml", 10000.0, 5400.0, "interrupted", b),
        sweep("configs/b.toml", 20000.0, 1800.0, "running", b[:3]),  # the same file, another grid (other flags)
    ]
    held = [{"run_id": i, "status": "ok"} for i in a + b[:2]] + [{"run_id": "b2", "status": "failed"}]
    note = sweep_note(records, "store", complete=len(held), metas=None)
    assert "ran for **3.50 h** of wall time in all (4 sweep(s), 3 of them stopped before the end" in note
    assert "By config: `configs/a.toml` **1.50 h** (2 sweep(s))" in note  # no runs given: no count
    note = " ".join(sweep_note(records, "store", complete=len(held), metas=held).split())
    assert "By config: `configs/a.toml` **1.50 h** (2 sweep(s); all 4 of its runs); " in note
    assert (
        "`configs/b.toml` (grid 1) **1.50 h** (1 sweep(s); **incomplete:** its last sweep stopped before the end "
        "(interrupted); 3 of its 6 runs, 1 of them failed (kept with their error, in no table) are in the store"
    ) in note
    assert (
        "`configs/b.toml` (grid 2) **0.50 h** (1 sweep(s); all 3 of its runs, 1 of them failed (kept with their "
        "error, in no table))."
    ) in note
    assert "the store holds 7" not in note  # the store's count mixes the grids: each grid's own is given
    legacy = [{k: v for k, v in r.items() if k not in ("config", "run_ids")} for r in records]
    assert "By config" not in sweep_note(legacy, "store", complete=7)  # a log from before configs were named
    assert "the store holds 7 complete runs" in sweep_note(legacy, "store", complete=7)


def test_a_figure_the_runs_no_longer_support_is_removed_not_left_stale(small_store, tmp_path):
    out = tmp_path / "lb"
    assert page.write(str(small_store), str(out)) == []
    assert (out / "figures" / "recovery.png").is_file()
    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    for meta in (store / "runs").glob("*.json"):
        if json.loads(meta.read_text())["spec"]["attack"] != "none":
            meta.with_suffix(".parquet").unlink()  # the attack runs, as in a store whose attacks have not run
    assert page.write(str(store), str(out)) == []
    assert not list((out / "figures").glob("recovery.*"))  # no attack runs: no curves, and none left behind
    assert (out / "figures" / "tradeoff.png").is_file() and "Robustness" in (out / "leaderboard.md").read_text()


def test_committed_leaderboard_is_up_to_date(monkeypatch):
    monkeypatch.chdir(ROOT)
    stores, tuned = (
        ["results/core/store", "results/text/store"],
        ["results/tune/tuned.json", "results/text-tune/tuned.json"],
    )
    problems = (  # the page .ci/run checks: digits16's store, then text16's as its own section
        page.write(stores, "results", check=True, readme="README.md", tuned=tuned)
        if all((ROOT / s).is_dir() for s in stores)
        else ["missing"]
    )
    assert problems == []


def _copy_with(store: Path, dest: Path, method: str, metric: str, delta: float) -> Path:
    shutil.copytree(store, dest, ignore=shutil.ignore_patterns("cache"))
    for parquet in (dest / "runs").glob("*.parquet"):
        df = pd.read_parquet(parquet)
        hit = (df.method == method) & (df.metric == metric)
        if hit.any():
            df.loc[hit, "value"] = (df.loc[hit, "value"] + delta).clip(0.0, 1.0)  # a rate stays a rate
            rewrite_rows(parquet, df)
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


def _refusing_proxy() -> socketserver.ThreadingTCPServer:
    """A proxy on 127.0.0.1 that answers every request with 403 and records its first line. Connections that
    close before sending anything (Chromium opens spare ones ahead of need) record nothing."""

    class Refuse(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            line = self.request.recv(4096).split(b"\r\n", 1)[0]
            if not line.strip():
                return
            self.server.requests.append(line.decode(errors="replace"))  # type: ignore[attr-defined]
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Refuse)
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def browser_binaries() -> tuple[str, str]:
    """Debian's chromium and chromedriver. Skips when they (or selenium) are missing, unless
    UNLEARNBENCH_REQUIRE_BROWSER=1 (CI), where it fails. Module-scoped, so that it decides before the store
    fixture spends minutes."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None or not Path(driver_path).is_file():
        why = "needs Debian's chromium and chromium-driver and selenium (.ci/run installs them)"
        if os.environ.get("UNLEARNBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"UNLEARNBENCH_REQUIRE_BROWSER=1: the browser test {why}")
        pytest.skip(f"the browser test {why}")
    return chromium, driver_path


@pytest.fixture
def browser(browser_binaries, tmp_path):
    """Headless Chromium under chromedriver, every request sent to a proxy that refuses it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_binaries
    proxy = _refusing_proxy()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2400",
        f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}",
        "--proxy-bypass-list=<-loopback>",  # loopback too goes through the refusing proxy
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver, proxy.requests
    finally:
        driver.quit()
        proxy.shutdown()
        proxy.server_close()


def _column(driver, table_id: str, index: int) -> list[str]:
    """The text of one column's visible cells, top to bottom (the mean; the spread is drawn by CSS)."""
    script = f"return [...document.querySelectorAll('#{table_id} tbody tr')].map(r => r.cells[{index}].textContent)"
    return driver.execute_script(script)


@pytest.mark.browser
def test_page_sorts_and_filters_offline_in_chromium(browser_binaries, small_store, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, requests = browser
    out = tmp_path / "lb"
    page.write(str(small_store), str(out))
    quality = tables.build_tables(load_results(small_store)).quality
    driver.get((out / "leaderboard.html").as_uri())
    ready = "#quality_table.dataTable, #robustness_table.dataTable, #settings_table.dataTable"
    WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ready)) == 3)
    assert _column(driver, "quality_table", 1) == list(quality["method"])  # as generated

    # a click on a header sorts by that column's mean, ascending (empty cells first, as DataTables does):
    # on the first metric column whose ascending order differs from the generated one
    # (a second click sorts descending, for a store where every ascending order is the generated one); on a
    # column without ties, where the order is unambiguous
    def means(column: str) -> pd.Series:
        return quality[column].map(lambda s: -math.inf if s.empty else round(s.mean, s.digits))

    def ordered(column: str, descending: bool) -> list[str]:
        keyed = quality.assign(key=means(column))
        return list(keyed.sort_values("key", ascending=not descending, kind="stable")["method"])

    metrics = [c for c in (column_format(m, s).label for m, s in quality_metrics()) if c in quality]  # its runs' own
    generated = list(quality["method"])
    untied = [c for c in metrics if means(c).nunique() == len(quality)]
    column, clicks = next((c, n) for n in (1, 2) for c in untied if ordered(c, descending=n == 2) != generated)
    header = next(h for h in driver.find_elements(By.CSS_SELECTOR, "#quality_table thead th") if h.text == column)
    for _ in range(clicks):
        header.click()
    expected = ordered(column, descending=clicks == 2)
    WebDriverWait(driver, 10).until(lambda d: _column(d, "quality_table", 1) == expected)

    # typing a method into the table's filter keeps its rows only
    search = driver.find_element(By.CSS_SELECTOR, "#quality_table_wrapper .dt-search input")
    search.send_keys("safemax")
    matching = int(quality["method"].str.contains("safemax").sum())
    assert 0 < matching < len(quality)
    WebDriverWait(driver, 10).until(lambda d: len(_column(d, "quality_table", 1)) == matching)
    assert set(_column(driver, "quality_table", 1)) == {"safemax"}

    # the heatmap leads; the figures are embedded and drawn; nothing logged an error; nothing left the machine
    assert driver.find_element(By.ID, "heatmap").location["y"] < driver.find_element(By.ID, "quality").location["y"]
    drawn = driver.execute_script("return [...document.images].map(i => i.complete && i.naturalWidth > 0)")
    assert drawn == [True] * 4
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    # The page itself fetched nothing but the file and what it embeds (DevTools' network log) ...
    uri = (out / "leaderboard.html").as_uri()
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    sent = [e["params"] for e in events if e["method"] == "Network.requestWillBeSent"]
    fetched = [p["request"]["url"] for p in sent if p.get("documentURL") == uri]
    assert uri in fetched and {u.split(":", 1)[0] for u in fetched} <= {"file", "data", "blob"}
    # ... and the refusing proxy, through which everything would have gone, saw no host the page names. (Chromium's
    # own background calls, e.g. to its update service, do reach it despite the flags; it refuses them.)
    named = set(re.findall(r"https?://([A-Za-z0-9.-]+)", (out / "leaderboard.html").read_text()))
    asked = {re.split(r"[ /:]", r.split(" ", 1)[1].removeprefix("http://"))[0] for r in requests}
    assert named and not asked & named
    shot = tmp_path / "shot.png"
    driver.save_screenshot(str(shot))
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.std() > 20 and (img < 128).mean() > 0.01, "the page rendered blank"


def test_efficiency_table_divides_by_safemax_on_shared_classes():
    costs = {  # method -> forget class -> (wall, cpu, prior wall, peak MiB)
        "safemax": {"0": (10.0, 8.0, 0.0, 100.0), "3": (30.0, 24.0, 0.0, 100.0)},
        "selective_amnesia": {"0": (300.0, 200.0, 100.0, 400.0), "3": (500.0, 280.0, 100.0, 200.0)},
        "salun": {"0": (40.0, 16.0, 2.0, 150.0), "8": (999.0, 999.0, 0.0, 999.0)},  # class 8: SAFEMax lacks it
    }
    metrics = ("cost_wall_s", "cost_cpu_s", "cost_prior_wall_s", "cost_peak_mem_mb")
    rows = [
        {"run_id": f"{m}{c}", "label": "paper", "method": m, "method_args": "{}", "forget_concept": str(c), "seed": 0,
         "attack": "none", "phase": "unlearned", "attack_step": pd.NA, "class_id": pd.NA, "status": "ok",
         "split": "all", "metric": name, "value": v}
        for m, per in costs.items() for c, vals in per.items() for name, v in zip(metrics, vals, strict=True)
    ]  # fmt: skip
    for r in [r for r in rows if r["metric"] == "cost_wall_s"]:  # every run forgot (the reference must have)
        rows.append({**r, "split": "forget", "metric": "asr_11way", "value": 0.0})
        rows.append({**r, "split": "forget", "metric": "asr_11way", "value": 0.99, "phase": "original"})
    t = efficiency_table(pd.DataFrame(rows)).set_index("method")
    sa, salun = t.loc["selective_amnesia"], t.loc["salun"]
    assert sa["classes"] == 2 and salun["classes"] == 1
    sa, salun = sa.map(str), salun.map(str)
    assert sa["wall ×, with priors"] == "20.0"  # (300 + 500) / (10 + 30)
    assert sa["wall ×, no priors"] == "15.0"  # (200 + 400) / 40
    assert sa["CPU ×, with priors"] == "15.0" and sa["peak memory ×"] == "3.00"
    assert sa["published time ×"] == "30.1" and sa["published memory ×"] == "1.82"
    assert salun["wall ×, with priors"] == "4.0" and salun["wall ×, no priors"] == "3.8"
    assert salun["peak memory ×"] == "1.50" and salun["published memory ×"] == "2.45"
    # another reference: SalUn's classes only (class 0), its own published cost as the denominator
    t = efficiency_table(pd.DataFrame(rows), reference="salun").set_index("method").map(str)
    assert list(t.index) == ["safemax", "selective_amnesia"]
    assert t.loc["selective_amnesia", "wall ×, with priors"] == "7.5"  # 300 / 40
    assert t.loc["selective_amnesia", "published time ×"] == "14.8"  # 174.4 / 11.8
    assert t.loc["safemax", "published memory ×"] == "0.41"  # 9.50 / 23.23
    # a reference without a published cost leaves the published columns empty
    esd = [dict(r, method="esd", run_id=f"esd{r['forget_concept']}") for r in rows if r["method"] == "safemax"]
    t = efficiency_table(pd.DataFrame(rows + esd), reference="esd").set_index("method").map(str)
    assert set(t["published time ×"]) == {"–"} and t.loc["safemax", "wall ×, with priors"] == "1.0"
    # a store with intervals: each measured ratio gets its bootstrap interval over the shared classes
    with_intervals = pd.DataFrame(rows).assign(lo=0.0, hi=0.0)
    sa = efficiency_table(with_intervals).set_index("method").loc["selective_amnesia", "wall ×, with priors"]
    assert sa.mean == 20.0 and sa.lo == pytest.approx(50 / 3) and sa.hi == pytest.approx(30.0)  # 500/30 .. 300/10
    # a cost recorded with a shipped result (retrain's reference) gives a ratio that says so, with no interval
    shipped = [{**r, "metric": "cost_recorded", "value": 1.0} for r in rows
               if r["method"] == "selective_amnesia" and r["metric"] == "cost_wall_s"]  # fmt: skip
    sa = efficiency_table(pd.concat([with_intervals, pd.DataFrame(shipped)], ignore_index=True))
    sa = sa.set_index("method").loc["selective_amnesia", "wall ×, with priors"]
    assert str(sa) == "20.0 (recorded)" and not sa.interval.known


def test_unlearning_cost_comes_from_the_run_without_an_attack():
    """An attack run that recomputed the model later (lost cache, other load) must not stand in for the
    unlearning's own run, even when its run_id sorts first."""

    def row(run_id: str, attack: str, method: str, wall: float) -> dict:
        return {"run_id": run_id, "label": "tuned", "method": method, "method_args": "{}", "forget_concept": "0",
                "seed": 0, "attack": attack, "phase": "unlearned", "attack_step": pd.NA, "class_id": pd.NA,
                "status": "ok", "split": "all", "metric": "cost_wall_s", "value": wall}  # fmt: skip

    df = pd.DataFrame(
        [row("s0", "none", "safemax", 10.0), row("a0", "relearn", "salun", 90.0), row("b0", "none", "salun", 30.0)]
    )
    kept = unlearned_rows(df)
    assert set(kept["run_id"]) == {"s0", "b0"}
    # with no attack-free run, an attack run is used rather than nothing
    only_attacked = unlearned_rows(df[df["run_id"] != "b0"])
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


def _row(**over: object) -> dict:
    base = {"run_id": "r", "label": "paper", "method": "safemax", "method_args": "{}", "forget_concept": "0",
            "seed": 0, "attack": "none", "phase": "unlearned", "attack_step": pd.NA, "class_id": pd.NA,
            "status": "ok", "split": "forget", "metric": "unlearning_accuracy_10way", "value": 0.5}  # fmt: skip
    return {**base, **over}


def test_recovered_counts_only_the_runs_that_forgot():
    """Three relearning runs: two forgot (one recovers at step 25, one never does), one never forgot
    (pre-attack ASR above the threshold). Steps to recover averages the one recovery, not a 0 for the run
    that never forgot, and the cell says ``recovered 1/2``."""
    per_run = {  # the unlearned model's ASR on the forget samples, then the relearning curve
        "f_rec": (0.0, {0: 0.0, 5: 0.1, 25: 0.9, 300: 0.9}),
        "f_never": (0.0, {0: 0.0, 5: 0.1, 25: 0.1, 300: 0.1}),
        "no_forget": (0.95, {0: 0.95, 5: 0.95, 25: 0.95, 300: 0.95}),
    }
    attacked = {"attack": "relearn", "attack_args": "{}"}
    rows = []
    for i, (run_id, (pre, curve)) in enumerate(per_run.items()):
        run = dict(run_id=run_id, forget_concept=str(i), **attacked)
        rows += [_row(**run, phase="original", metric="asr_11way", value=1.0),
                 _row(**run, phase="unlearned", metric="asr_11way", value=pre),
                 _row(**run, phase="attacked", metric="recover_threshold", value=0.8)]  # fmt: skip
        rows += [_row(**run, phase="attacked", metric="asr_11way", value=v, attack_step=k) for k, v in curve.items()]
    t = tables.build_tables(to_frame(rows))
    cell = t.robustness.iloc[0][phase_label("steps_to_recover", "forget", "attacked")]
    assert cell.mean == 25.0 and cell.note == " (recovered 1/2)"
    assert str(cell) == "25 (recovered 1/2)"


def test_final_rows_drop_curve_steps_per_class_rows_and_failed_runs():
    df = pd.DataFrame(
        [
            _row(value=1.0),
            _row(attack_step=25, value=2.0),
            _row(class_id=4, value=3.0),
            _row(status="failed", value=4.0),
        ]
    ).astype({"attack_step": "Int64", "class_id": "Int64"})
    assert final_rows(df)["value"].tolist() == [1.0]


def test_every_label_and_digit_comes_from_column_format(small_store, monkeypatch):
    df = load_results(small_store)
    declared = dict(registry.rows())
    declared[("fid", "retain")] = dataclasses.replace(declared[("fid", "retain")], label="Fréchet", digits=1)
    declared[("asr_11way", "forget")] = dataclasses.replace(declared[("asr_11way", "forget")], label="success")
    monkeypatch.setattr(registry, "rows", lambda: declared)
    t = tables.build_tables(df)
    assert "FID ↓" not in t.quality.columns and "Fréchet ↓" in t.quality.columns
    fid = t.quality["Fréchet ↓"].iloc[0]
    assert str(fid) == f"{fid.mean:.1f} [{fid.lo:.1f}, {fid.hi:.1f}]"  # one run: its own interval, 1 digit
    assert {"pre-success ↓", "success ↓"} <= set(t.robustness.columns)
    board = page.Board("digits16", "some/store", t, 4, {})
    assert "| Fréchet ↓ |" in page.readme_summary([board], "cmd")
    # the grid sets each method's utility (retained accuracy, FID: their declared labels) before its ASR columns
    assert html_page.heatmap(t)["columns"][:3] == ["retain acc ↑", "Fréchet ↓", "pre-success ↓"]
    assert column_format("not_a_metric", "all") == ("not_a_metric", 3, None)


def test_best_value_of_each_column_is_highlighted_reference_rows_aside():
    fmt_max, fmt_min = ColumnFormat("UA ↑", 2, "max"), ColumnFormat("FID ↓", 1, "min")
    t = pd.DataFrame(
        {
            "method": ["noop", "a", "b", "c"],
            "UA ↑": [Stat.of(pd.Series(v), fmt_max) for v in ([1.0], [0.5, 0.6], [0.6], [0.601])],
            "FID ↓": [Stat.of(pd.Series(v, dtype=float), fmt_min) for v in ([1.0], [9.0], [3.0], [])],
        }
    )
    cells = html_page._cells_html(t)
    # noop's 1.0 is not a candidate; b and c tie at 0.60 as printed; an empty cell is never best
    assert ["best" in c for c in cells["UA ↑"]] == [False, False, True, True]
    assert ["best" in c for c in cells["FID ↓"]] == [False, False, True, False]
    assert cells["UA ↑"][1] == '<span class="v" data-after=" ± 0.07">0.55</span>'
    assert cells["FID ↓"][3] == '<span class="na" data-after=""></span>'


def test_cost_reference_is_a_setting(small_store, tmp_path, capsys):
    assert page.command("r", "o") == "unlearnbench leaderboard --results r --out o"
    assert page.command("r", "o", "salun").endswith("--cost-reference salun")
    out = str(tmp_path / "lb")
    assert main(["leaderboard", "--results", str(small_store), "--out", out, "--cost-reference", "safemx"]) == 2
    assert "did you mean 'safemax'" in capsys.readouterr().err
    from unlearnbench import registry

    assert registry.get("method", "safemax").published_cost == (5.8, 9.50)


def test_every_cell_carries_its_bootstrap_interval_and_the_two_judge_table_is_written(small_store, tmp_path):
    df = load_results(small_store)
    assert has_intervals(df)
    t = tables.build_tables(df)
    assert t.intervals and len(t.agreement)
    ua = t.quality.set_index("method").loc["safemax", "UA11 ↑"]
    assert ua.lo <= ua.mean <= ua.hi and f"[{ua.lo:.3f}, {ua.hi:.3f}]" in str(ua)
    fid = t.quality.set_index("method").loc["safemax", "FID ↓"]
    assert fid.interval.known and fid.lo <= fid.mean <= fid.hi
    out = tmp_path / "lb"
    assert page.write(str(small_store), str(out)) == []
    md = (out / "leaderboard.md").read_text()
    assert "## Two judges" in md and "UA11: judge 2" in md and "95% bootstrap interval" in md
    assert "± " not in md.split("## Cost")[0]  # intervals, not standard deviations, beside the means
    assert 'id="agreement_table"' in (out / "leaderboard.html").read_text()


def test_a_store_without_interval_columns_is_shown_as_before():
    from unlearnbench.results import conform

    # rows written before the interval columns existed: read back, they hold the columns, empty
    df = conform(load_results(ROOT / "results" / "ci" / "store").drop(columns=["lo", "hi"]))
    assert df["lo"].isna().all() and not has_intervals(df)
    t = tables.build_tables(df)
    assert not t.intervals and t.agreement.empty
    cells = [c for c in t.quality.iloc[:, 3:].to_numpy().ravel() if isinstance(c, Stat)]
    assert all(c.mark == "" and not c.interval.known and "[" not in str(c) for c in cells)


def test_overlapping_intervals_are_tied_with_the_best_and_a_judge_disagreement_is_flagged():
    fmt = ColumnFormat("UA ↑", 2, "max")

    def cell(mean, lo, hi):
        return Stat(mean, math.nan, fmt.digits, fmt.goal, lo=lo, hi=hi)

    t = pd.DataFrame(
        {
            "method": ["noop", "a", "b", "c"],
            "UA ↑": [cell(1.0, 0.9, 1.0), cell(0.8, 0.7, 0.9), cell(0.75, 0.62, 0.86), cell(0.4, 0.3, 0.5)],
        }
    )
    marked = mark_ties(t)["UA ↑"].tolist()
    assert [c.mark for c in marked] == ["", "best", "tied", ""]  # noop is a reference row, never best
    assert str(marked[1]) == "**0.80** [0.70, 0.90]" and str(marked[2]).endswith(" =")
    assert 'class="v tied"' in html_page._cells_html(mark_ties(t))["UA ↑"][2]
    assert judges_disagree(cell(0.97, 0.95, 0.99), cell(0.90, 0.86, 0.94))
    assert not judges_disagree(cell(0.97, 0.95, 0.99), cell(0.96, 0.93, 0.99))


def test_rows_that_share_concepts_and_seeds_are_tied_by_their_paired_difference_not_by_overlap():
    fmt = ColumnFormat("UA ↑", 3, "max")
    effects = np.linspace(0.2, 1.0, 8)

    def rows(shift: float) -> pd.DataFrame:  # eight concepts x two seeds, concept difficulty shared by every row
        v = np.repeat(effects, 2) + shift
        return pd.DataFrame({"forget_concept": np.repeat([f"c{i}" for i in range(8)], 2), "seed": [0, 1] * 8,
                             "value": v, "lo": v - 0.01, "hi": v + 0.01})  # fmt: skip

    a, b, c = (Stat.of_rows(rows(x), fmt, intervals=True) for x in (0.0, -0.03, -0.03))
    assert a.interval.lo <= b.interval.hi  # side by side the intervals overlap ...
    c = dataclasses.replace(c, runs=tuple((("other", 0), v) for _, v in c.runs[:1]))  # ... and c shares no run with a
    marked = mark_ties(pd.DataFrame({"method": ["a", "b", "c"], "UA ↑": [a, b, c]}))["UA ↑"].tolist()
    # ... but b is below a on every concept and seed, so it is not tied; c falls back to its interval's overlap
    assert [m.mark for m in marked] == ["best", "", "tied"]


def test_a_cost_column_marks_its_best_among_the_rows_that_forgot():
    time = column_format("cost_wall_s", "all")
    ua = column_format("unlearning_accuracy_11way", "forget")

    def cell(fmt, mean):
        return Stat(mean, math.nan, fmt.digits, fmt.goal, lo=mean - 0.1, hi=mean + 0.1)

    t = pd.DataFrame({"label": ["x", "y", "z"], "method": ["kept", "slow", "fast"],
                      ua.label: [cell(ua, 0.0), cell(ua, 1.0), cell(ua, 0.99)],
                      time.label: [cell(time, 2.0), cell(time, 80.0), cell(time, 60.0)]})  # fmt: skip
    marked = mark_ties(t, forgot=pd.Series([False, True, True]))
    # the 2-second row kept the concept: the cheapest that forgot is the best cost; UA still ranks every row
    assert [c.mark for c in marked[time.label]] == ["", "", "best"]
    assert [c.mark for c in marked[ua.label]] == ["", "best", "tied"]
    # an attack's own time is the attacker's budget, not the defence: that column orders nothing
    assert column_format("attack_cost_wall_s", "all").goal is None and time.goal == "min"


def test_a_recorded_cost_is_said_to_be_recorded_and_competes_with_nothing():
    """Retrain loads a shipped reference whose cost was recorded when it was built (other threads, other load):
    its cost cells say "(recorded)", carry no interval and no goal, and the HTML page highlights the marked
    best, not the lowest mean."""
    from unlearnbench.report.html_page import _cells_html
    from unlearnbench.report.quality import quality_cells

    def run(run_id, method, recorded, wall):
        common = {"run_id": run_id, "label": "paper", "method": method, "forget_concept": "0", "seed": 0,
                  "attack": "none", "phase": "unlearned", "status": "ok", "lo": math.nan, "hi": math.nan}  # fmt: skip
        return [{**common, "split": "all", "metric": "cost_wall_s", "value": wall},
                {**common, "split": "all", "metric": "cost_recorded", "value": recorded}]  # fmt: skip

    time = column_format("cost_wall_s", "all").label
    shipped = quality_cells(to_frame(run("g", "retrain", 1.0, 2036.9)))[time]
    assert str(shipped) == "2036.9 (recorded)" and shipped.goal is None and not shipped.interval.known
    measured = quality_cells(to_frame(run("s", "safemax", 0.0, 45.6)))[time]
    assert measured.goal == "min" and "recorded" not in str(measured)
    mixed = quality_cells(to_frame(run("g", "retrain", 1.0, 2036.9) + run("h", "retrain", 0.0, 900.0)))[time]
    assert str(mixed).endswith("(partly recorded)") and mixed.goal is None
    # the HTML page shows the marks mark_ties set (its cost rule), not the lowest mean among every row; a table
    # it did not mark (a store without intervals) highlights the best mean
    t = pd.DataFrame({"method": ["fast", "slow"], time: [Stat(1.0, math.nan, 1, "min"),
                                                          Stat(9.0, math.nan, 1, "min", mark="best")]})  # fmt: skip
    cells = _cells_html(t, marked=True)[time].tolist()
    assert "v best" not in cells[0] and "v best" in cells[1]
    assert "v best" in _cells_html(t)[time].tolist()[0]
    unmarked = t.assign(**{time: [Stat(1.0, math.nan, 1, "min"), Stat(9.0, math.nan, 1, "min")]})
    assert not any("v best" in c for c in _cells_html(unmarked, marked=True)[time])  # no row qualified: none


def test_a_collapsed_models_cost_is_never_the_best_cost():
    """Two unlabelled methods forget; the fast one keeps a tenth of the original's retained accuracy. Its cost is
    no achievement: the slow one's is marked best (through build_tables, the label shown as "-")."""

    def run(run_id, method, concept, retained, wall):
        common = {"run_id": run_id, "label": "", "method": method, "forget_concept": concept, "seed": 0,
                  "attack": "none", "status": "ok", "guidance": 1.0, "eta": 0.0, "sample_steps": 50}  # fmt: skip
        return [{**common, "phase": "original", "split": "forget", "metric": "asr_11way", "value": 1.0},
                {**common, "phase": "original", "split": "retain", "metric": "retain_accuracy_10way", "value": 1.0,
                 "lo": 0.98, "hi": 1.0},
                {**common, "phase": "unlearned", "split": "forget", "metric": "asr_11way", "value": 0.0},
                {**common, "phase": "unlearned", "split": "retain", "metric": "retain_accuracy_10way",
                 "value": retained, "lo": retained - 0.02, "hi": retained + 0.02},
                {**common, "phase": "unlearned", "split": "all", "metric": "cost_wall_s", "value": wall,
                 "lo": wall - 1.0, "hi": wall + 1.0},
                {**common, "phase": "unlearned", "split": "all", "metric": "cost_prior_wall_s",
                 "value": 0.0}]  # fmt: skip

    rows = [r for c in "012" for r in run(f"f{c}", "fast", c, 0.1, 5.0) + run(f"s{c}", "slow", c, 0.95, 50.0)]
    quality = tables.build_tables(to_frame(rows)).quality.set_index("method")
    time = column_format("cost_wall_s", "all").label
    assert quality.loc["slow", "label"] == "-"
    assert quality.loc["slow", time].mark == "best" and quality.loc["fast", time].mark == ""


def test_quality_cells_flag_the_numbers_the_second_judge_reads_otherwise(small_store):
    df = load_results(small_store)
    second = df.metric == "retain_accuracy_10way_judge2"
    assert second.any()
    df.loc[second, ["value", "lo", "hi"]] = [0.1, 0.05, 0.15]  # a second judge that sees no retained class
    t = tables.build_tables(df)
    assert str(t.quality.set_index("method").loc["safemax", "retain acc ↑"]).endswith("†")
    assert set(t.agreement["retain acc: agree"]) == {"no †"}
    # a second seed: the original model is evaluated once per forget class and seed, in both tables alike
    seeded = pd.concat([df, df.assign(run_id=df["run_id"] + "-seed1", seed=1)], ignore_index=True)
    t2 = tables.build_tables(seeded)
    for table in (t2.quality, t2.agreement):
        assert table.set_index("method").loc["original model", "runs"] == 2


def test_the_leaderboard_states_the_sampler_behind_its_numbers():
    from unlearnbench.report.provenance import sampler_note
    from unlearnbench.results import to_frame

    base = {"phase": "unlearned", "metric": "fid", "split": "retain", "value": 1.0, "status": "ok", "sample_steps": 50}
    old = to_frame([{**base, "run_id": "a", "guidance": 1.0, "eta": 0.0}])  # written before clip_sample existed
    papers = to_frame([{**base, "run_id": "b", "guidance": 3.0, "eta": 1.0, "clip_sample": False}] * 2)
    assert sampler_note(old) == (
        "Sampler: s = 1, η = 0, DDIM 50 steps, x0 clipped per step (the sampler before 2026-11-29), float32: 1 rows."
    )
    both = sampler_note(pd.concat([old, papers]))
    assert "s = 3, η = 1 (the papers' setting), DDIM 50 steps, x0 not clipped (upstream's), float32: 2 rows" in both
    fast = to_frame(
        [{**base, "run_id": "c", "guidance": 1.0, "eta": 0.0, "clip_sample": False, "sampler_precision": "bfloat16"}]
    )
    assert sampler_note(fast).endswith("x0 not clipped (upstream's), bfloat16: 1 rows.")
    # once a method trained under bfloat16 autocast, the note names which trained how
    trained = to_frame(
        [
            {**base, "run_id": r, "method": m, "guidance": 1.0, "eta": 0.0, "unlearn_precision": p}
            for r, m, p in [("d", "salun", "bfloat16"), ("e", "esd", "float32"), ("f", "safemax", "bfloat16")]
        ]
        + [{**base, "run_id": "g", "method": "noop", "guidance": 1.0, "eta": 0.0}]  # before it was recorded
    )
    assert sampler_note(trained).endswith(" Unlearning: bfloat16 (safemax, salun); float32 (esd, noop).")
    assert "Unlearning" not in sampler_note(fast)


def test_a_store_with_two_sampler_settings_keeps_them_apart(small_store):
    """The core config runs its focus methods at the testbed's sampler and at the papers' under one label:
    the tables give each setting its own rows (its own original model too), never one cell averaging both,
    and mark the best cell of a column within each setting."""
    df = load_results(small_store)
    papers = df.assign(
        run_id=df["run_id"] + "-s3", guidance=3.0, eta=1.0, value=df["value"].where(df["metric"] != "fid", 999.0)
    )
    t = tables.build_tables(pd.concat([df, papers], ignore_index=True))
    q = t.quality.set_index(["label", "method"])
    s1, s3 = "paper · s = 1, η = 0", "paper · s = 3, η = 1"
    assert {(s1, "safemax"), (s3, "safemax"), ("reference · s = 1, η = 0", "original model")} <= set(q.index)
    assert ("reference · s = 3, η = 1", "original model") in q.index and "paper" not in q.index.get_level_values(0)
    fid = column_format("fid", "retain").label
    assert q.loc[(s3, "safemax"), fid].mean == 999.0 and q.loc[(s1, "safemax"), fid].mean < 999.0
    assert q.loc[(s1, "safemax"), "runs"] == q.loc[(s3, "safemax"), "runs"] == 1  # one unlearning per setting
    best = [c for c in t.quality[fid] if isinstance(c, Stat) and c.mark == "best"]
    assert len(best) == (2 if t.intervals else 0)  # one per setting
    one = tables.build_tables(df).quality
    assert set(one["label"]) == {"reference", "paper"}  # one setting: labels as they were
    per_setting = settings_table(split_by_sampler(pd.concat([df, papers], ignore_index=True)))
    assert sorted(per_setting[per_setting.method == "safemax"]["label"]) == [s1, s3]  # `unlearnbench table`


def test_the_cost_table_says_when_a_method_did_not_forget():
    """A cost ratio of a method whose runs kept the class (ASR11 at the original's) is the cost of doing
    nothing useful: the table counts the runs that forgot, by the recovery metric's rule (ASR11 below 0.8 of
    the original model's), and says so when none did."""
    asr = {"safemax": (0.0, 0.1), "selective_amnesia": (0.9, 0.85), "salun": (0.5, 0.95)}  # class 0, class 1
    rows = []
    for method, per_class in asr.items():
        for c, pre in enumerate(per_class):
            run = dict(run_id=f"{method}-{c}", method=method, forget_concept=str(c))
            costs = {"cost_wall_s": 10.0 if method == "safemax" else 100.0, "cost_cpu_s": 10.0}
            costs |= {"cost_prior_wall_s": 0.0, "cost_peak_mem_mb": 300.0}
            rows += [_row(**run, split="all", metric=m, value=v) for m, v in costs.items()]
            rows += [_row(**run, metric="asr_11way", value=pre)]
            rows += [_row(**run, metric="asr_11way", value=0.99, phase="original")]
    t = efficiency_table(to_frame(rows)).set_index("method")
    assert t.loc["selective_amnesia", "forgot"] == "0/2 (did not forget)"  # 0.9 and 0.85 >= 0.8 * 0.99
    assert t.loc["salun", "forgot"] == "1/2"
    assert t.loc["selective_amnesia", "wall ×, no priors"].mean == 10.0
    assert set(t["reference"]) == {"safemax (paper), forgot 2/2"}  # SAFEMax forgot on both classes
    # a SAFEMax setting that kept the class is never the yardstick: the one that forgot divides every row
    kept = to_frame(rows).assign(label="tuned")
    kept["run_id"] = "tuned-" + kept["run_id"]
    kept.loc[(kept.method == "safemax") & (kept.phase == "unlearned") & (kept.metric == "asr_11way"), "value"] = 0.99
    both = efficiency_table(pd.concat([to_frame(rows), kept], ignore_index=True)).set_index(["label", "method"])
    assert set(both["reference"]) == {"safemax (paper), forgot 2/2"}
    assert both.loc[("tuned", "safemax"), "forgot"] == "0/2 (did not forget)"
    # and with no SAFEMax setting that forgot in half its runs, there is no cost table at all
    assert efficiency_table(kept).empty


def test_the_tuning_table_shows_how_each_tuned_row_was_chosen(small_store, tmp_path):
    tuned = tmp_path / "tuned.json"
    tuned.write_text(
        json.dumps(
            {
                "salun": {
                    "args": {"alpha": 0.01, "lr": 1e-3, "steps": 100, "batch_size": 128},
                    "run_ids": ["a", "b"],
                    "rule": "highest UA (11-way) ...",
                    "passed": True,
                    "trials": 12,
                    "grid": {"alpha": [0.01, 0.1], "lr": [1e-4, 1e-3]},
                    "cpu_s": 1834.4,
                    "forget_classes": [[5], [9]],
                    "scores": {
                        "ua_11way": 1.0,
                        "retain_accuracy_10way": 0.978,
                        "retain_fid": 6.1,
                        "original_retain_accuracy_10way": 0.997,
                        "original_retain_fid": 3.25,
                    },
                },
                "safemax:retain term": {"args": {"lam": 1.0}, "run_id": "old"},  # a file from before scores
            }
        )
    )
    t = tuning_table(grid.load_tuned(tuned)).set_index("method")
    row = t.loc["salun"]
    assert row["trials × concepts"] == "6 × 2" and row["CPU s"] == "1834" and row["tuning concepts"] == "5, 9"
    assert row["grid"] == "alpha ∈ {0.01, 0.1}; lr ∈ {0.0001, 0.001}"
    assert row["chosen"] == "alpha 0.01, lr 0.001"  # SalUn's default alpha is 0.001: not marked (default)
    assert row["retain acc (original)"] == "0.978 (0.997)" and row["passed the rule"] == "yes"
    assert t.loc["safemax, retain term", "UA11"] == "–"  # what an old file lacks is shown as missing
    out = tmp_path / "lb"
    assert page.write(str(small_store), str(out), tuned=str(tuned)) == []
    md = (out / "leaderboard.md").read_text()
    assert "## How the tuned rows were chosen" in md and "| salun | 6 × 2 |" in md and f"--tuned {tuned}" in md
    assert 'id="tuning_table"' in (out / "leaderboard.html").read_text()
    assert page.write(str(small_store), str(out), tuned=str(tuned), check=True) == []
    assert page.write(str(small_store), str(out), check=True)  # without it, the committed page is stale


def test_a_hostile_label_is_escaped_in_the_html_and_keeps_the_markdown_columns(small_store, tmp_path):
    """A run label is the user's text and the page is published: ``<script>`` must not run and ``|`` must not
    add a Markdown column."""
    import shutil

    hostile = "<script>alert(1)</script> | two"
    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    for path in (store / "runs").glob("*.parquet"):
        rewrite_rows(path, pd.read_parquet(path).assign(label=hostile))
    out = tmp_path / "board"
    assert main(["leaderboard", "--results", str(store), "--out", str(out)]) == 0
    html_text = (out / "leaderboard.html").read_text()
    assert "<script>alert(1)" not in html_text and "&lt;script&gt;alert(1)" in html_text
    md = (out / "leaderboard.md").read_text()
    assert "<script>" not in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "alert(1)" in line]
    assert rows
    header = next(line for line in md.splitlines() if line.startswith("| label | method |"))
    unescaped = re.compile(r"(?<!\\)\|")
    assert all(len(unescaped.findall(r)) == len(unescaped.findall(header)) for r in rows[:1])


HOSTILE = {  # by method: what a user may type as a run label, a model path or an argument
    "noop": "<script>window.__pwned=1</script> | one",
    "safemax": '<img src=x onerror="window.__pwned=1"> | two',
}


@pytest.mark.browser
def test_hostile_labels_and_arguments_run_nothing_in_chromium_and_keep_every_tables_columns(
    browser_binaries, small_store, browser, tmp_path
):
    """Labels, arguments and the command line are the user's text on a published page: in a real browser
    (network off) no script of theirs runs, no alert opens, no element of theirs is built, and every row of
    every table keeps its header's column count; the text is shown as typed."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = browser
    store = tmp_path / "<img src=x onerror=window.__pwned=2>"  # a folder name: it shows in the command line
    shutil.copytree(small_store, store)
    for path in (store / "runs").glob("*.parquet"):
        df = pd.read_parquet(path)
        hostile = HOSTILE[df.method.iloc[0]]
        # given's path is free text; no table shows method arguments today: here for the first one that does
        method_args = {**json.loads(df.method_args.iloc[0]), "path": hostile}
        attack_args = {**json.loads(df.attack_args.iloc[0] or "{}"), "note": hostile}  # shown in attack settings
        df = df.assign(label=hostile, method_args=json.dumps(method_args, sort_keys=True))
        if df.attack.iloc[0] != "none":
            df = df.assign(attack_args=json.dumps(attack_args, sort_keys=True))
        rewrite_rows(path, df)
    out = tmp_path / "board"
    assert main(["leaderboard", "--results", str(store), "--out", str(out)]) == 0
    driver.get((out / "leaderboard.html").as_uri())
    ready = "#quality_table.dataTable, #robustness_table.dataTable, #settings_table.dataTable"
    WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ready)) == 3)

    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - raises when no alert is open
    assert driver.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    texts = driver.execute_script("return document.body.innerText")
    assert all(h in texts for h in HOSTILE.values()) and str(store) in texts  # shown as typed, not dropped
    assert all(f"note={h}" in texts for h in HOSTILE.values())  # the attack settings too
    shapes = driver.execute_script(
        """return [...document.querySelectorAll('table')].filter(t => t.tHead && t.tBodies.length).map(t => [
            t.id, t.tHead.rows[t.tHead.rows.length - 1].cells.length,
            [...t.tBodies].flatMap(b => [...b.rows]).map(r => r.cells.length)])"""
    )
    ids = {table_id for table_id, _, _ in shapes}
    assert {"quality_table", "robustness_table", "settings_table"} <= ids
    for table_id, columns, rows in shapes:
        assert rows and set(rows) == {columns}, (table_id, columns, rows)
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def _as_text16(df: pd.DataFrame) -> pd.DataFrame:
    """The small store's rows as if its runs were on text16 (forgetting "seven"), with a CLIP score, and each run
    again forgetting three concepts at once (UA halved, retained accuracy 0.9 times as high)."""
    text = df.assign(testbed="text16", forget_concept="seven", forget_class=pd.NA)
    final = text[text.attack_step.isna() & text.class_id.isna()]
    clip = final[final.metric == "retain_accuracy_10way"].assign(metric="clip_score", value=75.0, lo=74.0, hi=76.0)
    one = pd.concat([text, clip], ignore_index=True)
    shift = one["metric"].map({"unlearning_accuracy_11way": 0.5, "retain_accuracy_10way": 0.9}).fillna(1.0)
    three = one.assign(
        run_id=one["run_id"] + "-3",
        n_forget=3,
        forget_concept="seven,three,one",
        value=one["value"] * shift,
        lo=one["lo"] * shift,
        hi=one["hi"] * shift,
    )
    return pd.concat([one, three], ignore_index=True)


def test_the_concept_count_table_reads_only_the_concepts_the_several_concept_runs_erase(small_store):
    """One-concept runs of a concept no several-concept run erases (a colour beside three objects) stay out of the
    count table: the counts compare the same concepts."""
    from unlearnbench.report.quality import concept_count_table

    text = _as_text16(load_results(small_store))
    one = text[text["n_forget"].isna()] if "n_forget" in text else text
    one = one[one["forget_concept"] == "seven"]
    red = one.assign(run_id=one["run_id"] + "-red", forget_concept="red", value=one["value"] * 0.0)
    ua = column_format("unlearning_accuracy_11way", "forget").label
    before = concept_count_table(text, intervals=False).set_index(["method", "concepts"])
    after = concept_count_table(pd.concat([text, red], ignore_index=True), intervals=False)
    after = after.set_index(["method", "concepts"])
    assert after.loc[("safemax", 1), "runs"] == before.loc[("safemax", 1), "runs"]  # red is not among the three
    assert after.loc[("safemax", 1), ua].mean == pytest.approx(before.loc[("safemax", 1), ua].mean)
    assert after.loc[("safemax", 3), "runs"] == before.loc[("safemax", 3), "runs"]


def test_a_second_store_is_its_testbeds_section_with_its_columns_and_its_tuned_table(small_store, tmp_path):
    """``--results`` takes one store per testbed: the first makes the page as before, each further one a section of
    its own ("The text16 testbed") with the columns its runs have (a CLIP score; digits16's has none), a table of
    forgetting and retention by how many concepts a run erases, its figures under its prefix, and the tuned table
    of the file tuned on it. Runs that erase several concepts never enter the one-concept tables."""
    rows = tmp_path / "text16.parquet"
    _as_text16(load_results(small_store)).to_parquet(rows)
    tuned = tmp_path / "tuned-text16.json"
    tuned.write_text(json.dumps({"safemax": {"args": {"steps": 3}, "testbed": "text16", "trials": 1}}))
    out = tmp_path / "lb"
    assert page.write([str(small_store), str(rows)], str(out), tuned=[str(tuned)]) == []
    md = (out / "leaderboard.md").read_text()
    digits, text = md.split("## The text16 testbed")
    clip = column_format("clip_score", "retain").label
    assert clip not in digits and f"| {clip} |" in text.split("### Two judges")[0]
    assert "### Several concepts at once" in text and "## How the tuned rows were chosen" not in digits
    assert "### How the tuned rows were chosen" in text
    assert "named in prompts" in text and "named in prompts" not in digits  # the testbed's own glossary
    b = page.boards([str(small_store), str(rows)], "safemax", [])
    ua, ra = (
        column_format("unlearning_accuracy_11way", "forget").label,
        column_format("retain_accuracy_10way", "retain").label,
    )
    counts = b[1].tables.concept_count.set_index(["method", "concepts"])
    one, three = counts.loc[("safemax", 1)], counts.loc[("safemax", 3)]
    assert three[ua].mean == pytest.approx(one[ua].mean * 0.5) and three[ra].mean == pytest.approx(one[ra].mean * 0.9)
    assert one[ra].mean > 0.5  # the drop is there to see
    quality = b[1].tables.quality.set_index("method")
    assert quality.loc["safemax", "runs"] == 1 and quality.loc["safemax", ua].mean == pytest.approx(one[ua].mean)
    assert b[0].tables.concept_count.empty  # one concept at a time on digits16: no count table
    for name in ("tradeoff", "samples"):
        assert (out / "figures" / f"{name}.png").is_file()
    assert (out / "figures" / "text16-tradeoff.png").is_file() and "](figures/text16-tradeoff.png)" in text
    html = (out / "leaderboard.html").read_text()
    assert '<table id="text16-quality_table"' in html and '<table id="quality_table"' in html
    assert 'href="#text16-board"' in html and html.count('id="text16-concept_count_table"') == 1
    assert page.write([str(small_store), str(rows)], str(out), check=True, tuned=[str(tuned)]) == []


def test_stores_and_tuned_files_must_match_their_testbeds(small_store, tmp_path):
    with pytest.raises(UserError, match="digits16 runs are in two of the --results stores"):
        page.write([str(small_store), str(small_store)], str(tmp_path))
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"safemax": {"args": {"steps": 3}, "testbed": "text16"}}))
    with pytest.raises(UserError, match="tuned on text16: no --results store has it"):
        page.write(str(small_store), str(tmp_path), tuned=str(tuned))
    # and a config cannot run a setting tuned on one testbed on another
    g = grid.Grid(methods=[("safemax", {}, "")], attacks=[("none", {})], forget=[("2",)], seeds=[0])
    with pytest.raises(UserError, match="'safemax' was tuned on text16, and these runs are on digits16"):
        g.with_tuned(grid.read_tuned(str(tuned)))


def test_the_robustness_table_shows_the_prompts_a_discrete_attack_found_as_text(small_store):
    """A prompt attack's ``attack_prompt`` rows become the table's "found prompts" cell (concept by concept, as
    text); a store where no attack reports one (digits16's) has no such column."""
    from unlearnbench.report.robustness import FOUND, robustness_table

    df = split_by_sampler(load_results(small_store))
    assert FOUND not in robustness_table(df, intervals=False).columns
    attacked = (df.attack == "relearn") & (df.phase == "attacked") & (df.method == "safemax")
    found = df.assign(attack_prompt=pd.Series(pd.NA, index=df.index, dtype="string").mask(attacked, "7 sept seven"))
    table = robustness_table(found, intervals=False).set_index("method")
    assert table.loc["safemax", FOUND] == '2: "7 sept seven"' and table.loc["noop", FOUND] == ""


def test_p4d_is_unlearndiffatks_other_attack_at_its_default_budget_not_a_budget_change():
    """``loss = "p4d"`` chooses another attack (``Attack.variant_args``): it is named in brackets and reads as a
    default budget, so the ASR grid and the prompt answers keep it; a budget change stays in parentheses."""
    from unlearnbench.report.frames import with_attack_setting
    from unlearnbench.report.robustness import asr_by_attack

    args = ["{}", '{"loss": "p4d"}', '{"loss": "p4d", "steps": 10}', '{"loss": "denoising", "steps": 10}']
    df = pd.DataFrame({"attack": "unlearndiffatk", "attack_args": args})
    assert with_attack_setting(df)["attack_setting"].tolist() == [
        "unlearndiffatk",
        "unlearndiffatk[loss=p4d]",
        "unlearndiffatk[loss=p4d] (steps=10)",
        "unlearndiffatk (steps=10)",
    ]
    pre, after = (phase_label(PRIMARY_ASR, "forget", phase) for phase in ("unlearned", "attacked"))
    table = pd.DataFrame(
        {"label": "paper", "method": "noop", "attack": with_attack_setting(df)["attack_setting"], pre: 0.1, after: 0.9}
    )
    grid = asr_by_attack(table)
    assert {"unlearndiffatk", "unlearndiffatk[loss=p4d]"} <= set(grid.columns)
    assert not any("steps=10" in c for c in grid.columns)
