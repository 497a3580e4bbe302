"""The import-linter layer contracts: they hold, they see the plugin folders, they can fail, and every
module belongs to exactly one layer. They are checked on a regular build (``pip install --target``): in the
checkout, ``methods/`` and ``attacks/`` sit at the repository's root and only a build puts them in the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint(site: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package found first on ``PYTHONPATH=site``, run from outside the checkout."""
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
    """The modules of the import graph that import-linter reads from ``site`` (in a fresh interpreter)."""
    code = "import grimp; print('\\n'.join(sorted(grimp.build_graph('unlearnbench', cache_dir=None).modules)))"
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=site.parent, env=env, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def _package_modules() -> set[str]:
    """Direct children of the package: unlearnbench/*.py, its subpackages, and the root's plugin folders."""
    pkg = ROOT / "unlearnbench"
    names = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    return {f"unlearnbench.{n}" for n in names} | {"unlearnbench.methods", "unlearnbench.attacks"}


def test_every_module_belongs_to_exactly_one_layer():
    placed = [m for layer in _layers() for m in layer]
    assert len(placed) == len(set(placed)), f"a module is in two layers: {sorted(placed)}"
    missing = _package_modules() - set(placed)
    assert not missing, f"modules in no layer (add them to [tool.importlinter] in pyproject.toml): {sorted(missing)}"
    stale = set(placed) - _package_modules()
    assert not stale, f"layers name modules that do not exist: {sorted(stale)}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regular build of the package (what ``.ci/run`` lints), for scratch edits."""
    target = tmp_path_factory.mktemp("build") / "site"
    build = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target)]
    subprocess.run([*build, str(ROOT)], check=True, capture_output=True, cwd=target.parent)
    return target


def test_contracts_hold_on_the_package_and_see_the_plugin_folders(site: Path):
    result = lint(site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout
    # the contracts can never silently check nothing: the graph they read holds the plugin folders
    assert {"unlearnbench.methods.safemax", "unlearnbench.attacks.relearn"} <= graph_modules(site)


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("methods/safemax.py", "unlearnbench.attacks.relearn", "never import each other"),
        ("metrics/entropy.py", "unlearnbench.runner", "face -> runner -> plugins -> core"),
        ("diffusion.py", "unlearnbench.registry", "face -> runner -> plugins -> core"),
    ],
)
def test_a_forbidden_import_breaks_the_contracts(
    site: Path, tmp_path: Path, module: str, forbidden: str, contract: str
):
    scratch = tmp_path / "site"
    shutil.copytree(site, scratch)
    path = scratch / "unlearnbench" / module  # in the build, methods/ and attacks/ sit inside the package
    path.write_text(path.read_text() + f"\nimport {forbidden}  # noqa\n")
    result = lint(scratch)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout


def test_a_leftover_plugin_folder_in_the_package_is_one_line_naming_what_to_delete(tmp_path: Path):
    """After the move to the root, git leaves ``unlearnbench/methods/__pycache__`` behind: an empty namespace
    package that would register no methods. Importing the package refuses it."""
    scratch = tmp_path / "unlearnbench"
    shutil.copytree(ROOT / "unlearnbench", scratch, ignore=shutil.ignore_patterns("__pycache__"))
    (scratch / "methods" / "__pycache__").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", "import unlearnbench"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and f"delete it: rm -r {scratch / 'methods'}" in last
