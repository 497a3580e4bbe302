"""Check the import-linter layer contracts (pyproject.toml) on a regular, non-editable install.

The editable install maps ``methods/`` and ``attacks/`` into the package from outside it, where
import-linter cannot see them; so this installs the checkout (no dependencies) into a temporary folder and
lints that, from outside the checkout.

    python scripts/lint_layers.py            # install, lint, exit with lint-imports' status
    python scripts/lint_layers.py --site DIR # lint an existing install folder (tests use scratch copies)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def install(target: Path) -> None:
    """``pip install --no-deps --target`` of the checkout: the layout a user's regular install has."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def lint(site: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with ``site`` first on the path, from a folder outside the checkout."""
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [str(exe), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=site.parent,
        env=env,
        capture_output=True,
        text=True,
    )


def graph_modules(site: Path) -> set[str]:
    """The modules of the import graph that import-linter reads from ``site`` (in a fresh interpreter: one that
    has already imported the editable package would find that one instead)."""
    code = "import grimp; print('\\n'.join(sorted(grimp.build_graph('unlearnbench', cache_dir=None).modules)))"
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=site.parent, env=env, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, help="an existing install folder to lint (default: install one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unlearnbench-lint-") as tmp:
        site = args.site or Path(tmp) / "site"
        if args.site is None:
            install(site)
        result = lint(site)
    print(result.stdout + result.stderr, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
