"""Testbed plugins, one module or folder each (``digits16/``), and the cached loader every command uses.

A testbed registers itself with ``@register("name")`` on a :class:`~unlearnbench.testbed.TestbedPlugin`
subclass; outside packages add theirs through the ``unlearnbench.testbeds`` entry-point group or
``--plugin MODULE``. ``unlearnbench list testbeds`` lists them.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from unlearnbench import registry
from unlearnbench.defaults import DEFAULT_TESTBED
from unlearnbench.errors import UserError
from unlearnbench.testbed import Overrides, Testbed, TestbedPlugin

DEFAULT = DEFAULT_TESTBED


def plugin(name: str) -> TestbedPlugin:
    """The registered testbed ``name`` (one line with the closest names when there is none)."""
    return registry.get("testbed", name)()


def default_guidance(name: str = DEFAULT, model: str | None = None) -> float:
    """The guidance scale a run uses when it does not say: the testbed's measured choice for its shipped model."""
    return plugin(name).default_guidance(model)


@lru_cache(maxsize=4)
def load_testbed(
    name: str = DEFAULT,
    *,
    model: str | None = None,
    dataset: str | None = None,
    evaluator: str | None = None,
    attacker: str | None = None,
    device: str = "cpu",
    download: bool = False,
) -> Testbed:
    """Load a testbed onto ``device``. ``model``/``dataset``/``evaluator``/``attacker`` override the shipped
    parts. Cached: every caller with the same arguments shares one read-only :class:`Testbed`."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here (use --device cpu)")
    parts = Overrides(model=model, dataset=dataset, evaluator=evaluator, attacker=attacker)
    tb = plugin(name).load(parts, device=device, download=download)
    if tb.name != name:
        raise UserError(f"testbed plugin {name!r} loaded a testbed named {tb.name!r}; they must agree")
    return tb


__all__ = ["DEFAULT", "Overrides", "Testbed", "TestbedPlugin", "default_guidance", "load_testbed", "plugin"]
