"""``unlearnbench list methods|attacks|metrics|testbeds [-v]``: what is registered, with each entry's arguments,
defaults, tuning grid and (testbeds) concepts."""

from __future__ import annotations

import argparse

from unlearnbench.conditioning import TESTBED_KINDS
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
            if kind in ("method", "attack"):
                if getattr(cls, "paper", ""):
                    print(f"{'':<{width}}    paper: {cls.paper}")
                if set(cls.supports) != set(TESTBED_KINDS):
                    print(f"{'':<{width}}    conditioning: {', '.join(cls.supports)} only")
                bound = f"{cls.budget_unit} <= {cls.max_budget:,}"
                print(f"{'':<{width}}    budget: {bound} (its defaults: {cls().budget():,})")
            if kind == "method":
                source = cls.label_dropout_source or "upstream trains without it, or has no public code"
                print(f"{'':<{width}}    label dropout while unlearning: {cls.upstream_label_dropout:g} ({source})")
                for label, grid in [("", cls.search_space), *cls.search_variants.items()]:
                    knobs = "; ".join(f"{k} in {v}" for k, v in grid.items()) or "none"
                    print(f"{'':<{width}}    tuning grid{f' ({label})' if label else ''}: {knobs}")
                if cls.search_note:
                    print(f"{'':<{width}}    tuning budget: {cls.search_note}")
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
