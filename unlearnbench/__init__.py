"""unlearnbench: a benchmark for machine unlearning in diffusion models."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def _refuse_leftover_plugin_folders(package: Path) -> None:
    """In a checkout, ``methods/`` and ``attacks/`` live at the repository's root and install as
    ``unlearnbench.methods``/``unlearnbench.attacks``. A folder of that name left inside the package (git leaves
    ``__pycache__`` behind after the move) becomes an empty namespace package that registers no methods: refuse it
    here, in one line, rather than run a benchmark with no methods. In an installed package the folders are real
    packages (with ``__init__.py``) and pass."""
    for name in ("methods", "attacks"):
        leftover = package / name
        if leftover.is_dir() and not (leftover / "__init__.py").is_file():
            raise ImportError(
                f"{leftover} is left over from before {name}/ moved to the repository's root and hides it; "
                f"delete it: rm -r {leftover}"
            )


_refuse_leftover_plugin_folders(Path(__file__).resolve().parent)
