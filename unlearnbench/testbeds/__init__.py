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


def facts(name: str) -> list[tuple[str, str]]:
    """What a testbed declares, as (label, text) pairs: what its columns mean, its tuning concepts, its pretrain
    targets and, loaded, its concepts, conditioning and default guidance (or why it cannot load here). ``unlearnbench
    list testbeds -v`` prints them and the documentation's reference page renders them: one source for both."""
    declared = plugin(name)
    out = [("columns mean", declared.glossary)]
    if declared.tuning_concepts:
        out.append(("tuning concepts (no evaluation table reads them)", ", ".join(declared.tuning_concepts)))
    if declared.pretrain_targets:
        out.append(("pretrain --what", ", ".join(declared.pretrain_targets)))
    try:
        tb = load_testbed(name)
    except Exception as e:  # its models are missing here, or a plugin is broken: say why, in one line
        return [*out, ("not loadable here", f"{type(e).__name__}: {e}" if not isinstance(e, UserError) else str(e))]
    out.append(("concepts", ", ".join(tb.concepts)))
    out.append(("conditioning", f"{tb.conditioner.kind}; default guidance {default_guidance(name):g}"))
    return out


__all__ = [
    "DEFAULT",
    "Overrides",
    "Testbed",
    "TestbedPlugin",
    "default_guidance",
    "facts",
    "load_testbed",
    "plugin",
]
