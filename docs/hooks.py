"""The site's mkdocs hook (``hooks:`` in mkdocs.yml).

- Each ``<!-- reference: KIND -->`` line of a page becomes the table ``unlearnbench.report.reference`` generates
  from the registry and the result schema, at build time: the reference pages cannot go stale.
- The repository's committed results (``results/``, run stores and caches aside), configs, saved benchmarks,
  ``LICENSE`` and ``CITATION.cff`` join the site under their own paths. A page links them as the repository lays
  them out, ``../results/leaderboard.md`` (which GitHub follows too); the hook drops the ``../`` for the site, where
  they sit beside the pages, so the generated leaderboard is a page of the site.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from mkdocs.structure.files import File, Files

from unlearnbench.report import reference

ROOT = Path(__file__).resolve().parent.parent
SHARED = ("results", "configs", "benchmarks/saved", "LICENSE", "CITATION.cff")
REPOSITORY_LINK = re.compile(r"\]\(\.\./((?:results|configs|benchmarks)/[^)]*|LICENSE|CITATION\.cff)\)")


def _committed() -> list[str]:
    """The shared paths' committed files (``git ls-files``), or, outside a git checkout, the files on disk; never
    a run store (``results/*/store*``: thousands of files no page links to) or a cache."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--", *SHARED], cwd=ROOT, capture_output=True, text=True, check=True
        )
        paths = listed.stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        paths = [p.relative_to(ROOT).as_posix() for top in SHARED for p in (ROOT / top).rglob("*") if p.is_file()]
        paths += [top for top in SHARED if (ROOT / top).is_file()]
    return sorted(p for p in paths if not any(part.startswith(("store", "cache", ".")) for part in Path(p).parts))


def on_config(config, **kwargs):
    reference.load_plugins(os.environ.get("UNLEARNBENCH_DOCS_PLUGINS", ""))
    return config


def on_files(files: Files, config, **kwargs) -> Files:
    for path in _committed():
        files.append(File(path, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if not page.file.src_uri.startswith(SHARED):  # the docs' own pages: their links into the repository
        markdown = REPOSITORY_LINK.sub(r"](\1)", markdown)
    return reference.render(markdown)
