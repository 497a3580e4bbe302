"""The commands that read a results store: ``leaderboard``, ``table``, ``check`` and ``verify`` (their parsers stay
in :mod:`unlearnbench.cli`, beside every other command's)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unlearnbench.errors import UserError
from unlearnbench.io import check_writable_folder


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from unlearnbench.report import page as leaderboard

    if not args.check:  # before any work: an existing file, or a folder that cannot be written, is one line
        check_writable_folder(Path(args.out), "--out", create=False)
    problems = leaderboard.write(
        args.results,
        args.out,
        check=args.check,
        readme=args.readme,
        cost_reference=args.cost_reference,
        tuned=args.tuned,
    )
    if args.check:
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            return 1
        print(f"{args.out}/leaderboard.md and leaderboard.html are up to date")
        return 0
    print(f"wrote {args.out}/leaderboard.md, {args.out}/leaderboard.html and {args.out}/figures/")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from unlearnbench.report.settings import write_settings_table

    write_settings_table(args.results, args.out, methods=args.methods or None, by_class=args.by_class)
    print(f"wrote {args.out}.md, {args.out}.csv and {args.out}.png")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from unlearnbench.regression import compare, format_table
    from unlearnbench.results import load_results

    for module in args.plugin:
        from unlearnbench import registry

        registry.load_module_plugin(module)
    baseline = load_results(args.baseline)
    fresh = load_results(args.results)
    if baseline.empty:
        raise UserError(f"baseline {args.baseline!r} has no runs")
    result = compare(baseline, fresh, include_cost=args.include_cost)
    print(format_table(result, show_all=args.all))
    n = len(result.regressions)
    if n:
        print(f"{n} regression(s) against {args.baseline}", file=sys.stderr)
        return 1
    print(f"no regression against {args.baseline}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every run of a store (:mod:`unlearnbench.integrity`); ``--seal`` records the hashes of the
    unverified ones that pass the other checks. Exit 1 when a run fails or stays unverified."""
    from unlearnbench import registry
    from unlearnbench.results import Store

    for module in args.plugin:
        registry.load_module_plugin(module)
    store = Store(args.store)
    if not store.runs.is_dir():
        raise UserError(f"{args.store!r} is not a results store (no runs/ folder)")
    checked = [v for v, _ in store.verdicts()]
    damaged = [v for v in checked if not v.ok]
    unsealed = [v for v in checked if v.ok and not v.sealed]
    for v in damaged:
        print(f"{v.run_id}: {v.problem}")
    if args.seal and unsealed:
        for v in unsealed:
            store.seal(v.run_id)
        print(f"sealed {len(unsealed)} unverified run(s): their files' hashes are recorded as they are now")
    sealed_caches = store.seal_caches() if args.seal else 0
    if sealed_caches:
        print(f"sealed {sealed_caches} cache entr{'y' if sealed_caches == 1 else 'ies'}")
    left = 0 if args.seal else len(unsealed)
    print(
        f"{args.store}: {len(checked)} run(s), {len(checked) - len(damaged) - left} verified, "
        f"{len(damaged)} failed" + (f", {left} unverified ('--seal' records their hashes)" if left else ""),
        file=sys.stderr if damaged or left else sys.stdout,
    )
    return 1 if damaged or left else 0
