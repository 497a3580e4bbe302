"""``unlearnbench list methods|attacks|metrics|testbeds [-v]``: what is registered, with each entry's arguments,
defaults, tuning grid and (testbeds) concepts."""

from __future__ import annotations

import argparse

from unlearnbench.errors import UserError


def cmd_list(args: argparse.Namespace) -> int:
    from unlearnbench import registry
    from unlearnbench.args import describe

    for module in args.plugin:
        registry.load_module_plugin(module)
    kind = args.kind.rstrip("s")
    rows = registry.describe(kind)
    if not rows:
        print(f"no {args.kind} registered")
        return 0
    width = max(len(n) for n, _ in rows)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
        if args.verbose:
            cls = registry.get(kind, name)
            for arg_name, default, help_text in describe(cls.Args):
                print(f"{'':<{width}}    {arg_name}={default!r}: {help_text}")
            for label, text in registry.facts(kind, cls):
                print(f"{'':<{width}}    {label}: {text}")
            if kind == "testbed":
                _describe_testbed(name, width)
    return 0


def _describe_testbed(name: str, width: int) -> None:
    """``list testbeds -v``: the concepts and default sampler setting (the testbed is loaded)."""
    from unlearnbench.testbeds import default_guidance, load_testbed

    try:
        tb = load_testbed(name)
    except UserError as e:  # a testbed that cannot load here (its models are missing) says why
        print(f"{'':<{width}}    not loadable here: {e}")
        return
    print(f"{'':<{width}}    concepts: {', '.join(tb.concepts)}")
    print(f"{'':<{width}}    conditioning: {tb.conditioner.kind}; default guidance {default_guidance(name):g}")
