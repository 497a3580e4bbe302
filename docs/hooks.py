"""The site's mkdocs hook (``hooks:`` in mkdocs.yml).

- Each ``<!-- reference: KIND -->`` line of a page becomes the table ``unlearnbench.report.reference`` generates
  from the registry and the result schema, at build time: the reference pages cannot go stale.
- The repository's results (``results/``, stores and caches aside), configs and saved benchmarks join the site
  under their own paths, so a page links ``results/leaderboard.md`` or ``configs/core.toml`` as the repository
  lays them out, and the generated leaderboard is a page of the site.
"""

from __future__ import annotations

import os
from pathlib import Path

from mkdocs.structure.files import File, Files

from unlearnbench.report import reference

ROOT = Path(__file__).resolve().parent.parent
SHARED = ("results", "configs", "benchmarks/saved")
SKIPPED = {"store", "cache", "float32"}  # run stores and caches: thousands of files no page links to


def on_config(config, **kwargs):
    reference.load_plugins(os.environ.get("UNLEARNBENCH_DOCS_PLUGINS", ""))
    return config


def on_files(files: Files, config, **kwargs) -> Files:
    for top in SHARED:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_file() and not SKIPPED & set(rel.parts) and not any(p.startswith(".") for p in rel.parts):
                files.append(File(rel.as_posix(), str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    return reference.render(markdown)
