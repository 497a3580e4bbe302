"""The import-linter layer contracts: they hold, they see the plugin folders, they can fail, and every
module belongs to exactly one layer."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lint_layers", ROOT / "scripts" / "lint_layers.py")
assert spec is not None and spec.loader is not None
lint_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lint_layers)


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def _package_modules() -> set[str]:
    """Direct children of the installed package: unlearnbench/*.py, its subpackages, methods/ and attacks/."""
    pkg = ROOT / "unlearnbench"
    names = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    return {f"unlearnbench.{n}" for n in names | {"methods", "attacks"}}


def test_every_module_belongs_to_exactly_one_layer():
    placed = [m for layer in _layers() for m in layer]
    assert len(placed) == len(set(placed)), f"a module is in two layers: {sorted(placed)}"
    missing = _package_modules() - set(placed)
    assert not missing, f"modules in no layer (add them to [tool.importlinter] in pyproject.toml): {sorted(missing)}"
    stale = set(placed) - _package_modules()
    assert not stale, f"layers name modules that do not exist: {sorted(stale)}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("install") / "site"
    lint_layers.install(target)
    return target


def test_contracts_hold_on_a_regular_install_that_holds_the_plugin_folders(site: Path):
    result = lint_layers.lint(site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout
    # the contracts can never silently check nothing: the graph they read holds the plugin folders
    assert {"unlearnbench.methods.safemax", "unlearnbench.attacks.relearn"} <= lint_layers.graph_modules(site)


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
    path = scratch / "unlearnbench" / module
    path.write_text(path.read_text() + f"\nimport {forbidden}  # noqa\n")
    result = lint_layers.lint(scratch)
    assert result.returncode != 0
    assert "1 broken" in result.stdout and contract in result.stdout
