"""The README stays a front door: the two commands, at most 250 lines, links that resolve, no placeholder. What it
used to list (every column, method, attack and metric) is on the site's generated reference pages
(``tests/test_docs.py``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_has_the_two_commands_and_no_placeholders():
    assert "unlearnbench run --method safemax --attack relearn" in README
    assert ".venv/bin/python -m pytest" in README
    for placeholder in ("SCHEMA_TABLE", "LEADERBOARD_SUMMARY", "GUARANTEES", "MAIN_SUMMARY", "TODO"):
        assert placeholder not in README, placeholder


def test_readme_is_at_most_250_lines():
    assert len(README.splitlines()) <= 250


def test_every_relative_link_in_the_readme_and_the_docs_resolves_inside_the_repository():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            resolved = (page.parent / target).resolve()  # as GitHub follows it
            assert resolved.exists(), (page.name, target)
            assert resolved.is_relative_to(ROOT), (page.name, target)  # nothing outside the repository
