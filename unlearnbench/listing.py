"""``unlearnbench list methods|attacks|metrics|testbeds [-v]``: what is registered, with each entry's arguments,
defaults, tuning grid and (testbeds) concepts."""

from __future__ import annotations

import argparse


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
                from unlearnbench.testbeds import facts

                for label, text in facts(name):
                    print(f"{'':<{width}}    {label}: {text}")
    return 0
