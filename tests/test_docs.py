"""The documentation site stays true: its reference pages name every registered method, attack, metric, testbed
and result column (they are generated from the code), and the contributing page's four tutorials run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from unlearnbench import registry
from unlearnbench.report import reference
from unlearnbench.results import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = {"method": "methods.md", "attack": "attacks.md", "metric": "metrics.md", "testbed": "testbeds.md"}


def rendered(page: str) -> str:
    """A page as the site shows it: its reference markers replaced (what docs/hooks.py does at build time)."""
    return reference.render((DOCS / page).read_text())


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_every_registered_entry_has_its_section_on_the_generated_reference_page(kind):
    page = rendered(PAGES[kind])
    for name in registry.names(kind):
        assert f"| [`{name}`](#{name}) |" in page, (kind, name)
        assert f"### `{name}` {{ #{name} }}" in page, (kind, name)


def test_the_results_page_lists_every_column_and_every_metric_row():
    page = rendered("metrics.md")
    for column, (dtype, meaning) in SCHEMA.items():
        assert f"| `{column}` | {reference.cell(meaning)} ({dtype}) |" in page, column
    for name in registry.names("metric"):
        for row in registry.get("metric", name).rows:
            assert f"| `{row.metric}` | {row.split} |" in page, (name, row.metric)


def test_a_method_missing_from_the_registry_is_missing_from_its_page_and_an_unknown_table_is_refused(monkeypatch):
    names = registry.names("method")
    monkeypatch.setattr(registry, "names", lambda kind: [n for n in names if n != "safemax"])
    assert "### `safemax`" not in reference.table("methods") and "### `salun`" in reference.table("methods")
    with pytest.raises(ValueError, match="unknown reference table"):
        reference.render("<!-- reference: recipes -->")


def test_every_page_is_in_the_site_and_the_site_has_no_page_of_its_own_outside_docs():
    config = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in config, page.name
    assert "hooks:\n  - docs/hooks.py" in config and "strict: true" in config


def test_the_citation_file_and_the_docs_cite_the_version_pyproject_declares():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: \"?{re.escape(version)}\"?$", cff, re.MULTILINE)
    assert "cff-version: 1.2.0" in cff and "license: MIT" in cff
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    for page in (DOCS / "index.md", ROOT / "README.md"):
        assert f"version = {{{version}}}" in page.read_text(), page


# ---------------------------------------------------------------------------------------------
# The tutorials, executed
# ---------------------------------------------------------------------------------------------

SMOKE = {
    "--forget-samples": "4",
    "--retain-samples": "2",
    "--curve-samples": "2",
    "--sample-steps": "2",
    "--threads": "1",
}
SHORT = {  # a tutorial that runs a shipped method or attack gets short arguments, unless its command gives its own
    "safemax": ("--method-args", '{"steps": 2, "batch_size": 8}'),
    "relearn": ("--attack-args", '{"steps": 2, "k": 2, "batch_size": 2, "eval_every": 1}'),
}


def tutorials() -> list[tuple[str, str, list[str]]]:
    """(file name, its code, the command that runs it) for each tutorial of the contributing page: a code block
    titled with its file name, then the first bash block after it."""
    text = (DOCS / "contributing.md").read_text()
    blocks = re.findall(r'```python title="([\w.]+)"\n(.*?)```.*?```bash\n(.*?)```', text, re.DOTALL)
    return [(name, code, shlex.split(command.strip())) for name, code, command in blocks]


def test_the_contributing_page_has_four_tutorials():
    assert [name for name, _, _ in tutorials()] == [
        "null_anchor.py",
        "other_concept.py",
        "forget_brightness.py",
        "words16.py",
    ]


UNLEARNBENCH = Path(sys.executable).parent / "unlearnbench"  # the console script a reader types


@pytest.mark.parametrize("tutorial", tutorials(), ids=lambda t: t[0])
def test_each_tutorial_runs_as_written_at_smoke_settings(tutorial, tmp_path):
    """The command as the page gives it, through the installed console script, in the folder that holds the file
    (no PYTHONPATH: ``--plugin`` finds a module in the working folder)."""
    name, code, command = tutorial
    (tmp_path / name).write_text(code)
    assert command[:2] == ["unlearnbench", "run"] and f"--plugin {name[:-3]}" in " ".join(command)
    smoke = [part for flag, value in SMOKE.items() if flag not in command for part in (flag, value)]
    for entry, (flag, value) in SHORT.items():
        if entry in command and flag not in command:
            smoke += [flag, value]
    argv = [str(UNLEARNBENCH), *command[1:], *smoke, "--out", "store", "--quiet"]
    env = {"UNLEARNBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.concat(pd.read_parquet(p) for p in (tmp_path / "store" / "runs").glob("*.parquet"))
    assert (rows.status == "ok").all()
    if name == "null_anchor.py":
        assert set(rows.method) == {"null_anchor"}
        unlearned = rows[(rows.phase == "unlearned") & (rows.metric == "cost_steps")]
        assert unlearned.value.iloc[0] == 20  # its own optimiser ran the steps the command gave it
        # the same tuning budget as every built-in method: 12 trials on each of the 2 tuning concepts
        plan = [str(UNLEARNBENCH), "tune", "--plugin", "null_anchor", "--methods", "null_anchor", "--plan"]
        planned = subprocess.run([*plan, "--out", "t"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert planned.returncode == 0 and "sweep: 24 runs," in planned.stderr, planned.stderr[-2000:]
    elif name == "other_concept.py":
        assert set(rows.attack) == {"other_concept"} and "attacked" in set(rows.phase)
    elif name == "forget_brightness.py":
        brightness = rows[rows.metric == "forget_brightness"]
        assert len(brightness) and brightness.value.between(-1, 1).all() and brightness.lo.notna().all()
        assert {"unlearning_accuracy_11way", "fid"} & set(rows.metric)  # beside every other metric
    else:
        assert set(rows.testbed) == {"words16"} and set(rows.forget_concept) == {"seven"}
        assert {"original", "unlearned", "attacked"} <= set(rows.phase)
