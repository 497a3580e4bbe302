"""The ``unlearnbench`` command line: parse flags, call the runner, the sweep, the tuner or the report.

Exit codes, each with one meaning: 0 success; 1 a verdict (a regression found, a testbed below its bars,
a run or sweep with failed runs); 2 bad input (one ``error:`` line, nothing written); 3 an internal error
(one line, and the path of a log file holding the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unlearnbench import __version__, flags
from unlearnbench.crash import internal_error
from unlearnbench.errors import UserError
from unlearnbench.io import check_writable_file
from unlearnbench.listing import cmd_list
from unlearnbench.store_commands import cmd_check, cmd_leaderboard, cmd_table, cmd_verify

DEFAULT_OUT = "unlearnbench-results"


def _setup(args: argparse.Namespace) -> None:
    from unlearnbench import progress, registry
    from unlearnbench.environment import set_threads
    from unlearnbench.schema import read_environment

    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    set_threads(args.threads)
    flags.check_device(args.device)
    read_environment()  # a bad UNLEARNBENCH_* value is one line here, before any work
    if args.compile:
        os.environ["UNLEARNBENCH_COMPILE"] = "1"  # read by the sampler, here and in every worker process
    if args.quiet and args.verbose:
        raise UserError("--quiet and --verbose contradict each other; give one")
    if args.quiet:
        progress.set_enabled(False)
    progress.configure_logging(verbose=args.verbose, quiet=args.quiet)
    for module in args.plugin:
        registry.load_module_plugin(module)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from unlearnbench.evaluate import eval_settings
    from unlearnbench.results import Store
    from unlearnbench.runner import Runner
    from unlearnbench.spec import RunSpec
    from unlearnbench.summary import summary_table
    from unlearnbench.timing import describe

    _setup(args)
    method_args = flags.json_arg(args.method_args, "--method-args")
    if args.model_path is not None:
        if args.method != "given":
            raise UserError("--model-path goes with --method given (it names a model unlearned elsewhere)")
        method_args["path"] = args.model_path
    spec = RunSpec(
        method=args.method,
        attack=args.attack,
        forget=tuple(args.forget or ["0"]),
        method_args=method_args,
        attack_args=flags.json_arg(args.attack_args, "--attack-args"),
        **flags.testbed_fields(args),
        seed=args.seed,
        label_dropout=args.label_dropout,
        unlearn_precision=args.unlearn_precision or "float32",
        eval=eval_settings(flags.eval_overrides(args), seed=args.seed),
        label=args.label,
        metrics=tuple(args.metrics or ()),
    )
    store = Store(args.out)
    runner = Runner(
        store, device=args.device, save_model=args.save_model, download=args.download, max_minutes=args.max_minutes
    )
    resolved, tb = runner.prepare(spec)
    print(
        f"run {resolved.run_id}: {spec.method} / {spec.attack}, forget {resolved.spec.forget_label}, testbed {tb.name}",
        file=sys.stderr,
    )
    df = runner.execute(resolved, tb)
    print(summary_table(df))
    print(f"\ntime: {describe(runner.last_split)}", file=sys.stderr)
    print(f"\nrows: {store.rows_path(resolved.run_id)}  (pandas.read_parquet, or unlearnbench.results.load_results)")
    return 0 if (df["status"] == "ok").all() else 1


def _grids(args: argparse.Namespace, *, one_grid: str = "", defaults: dict[str, Any] | None = None) -> list[Any]:
    """The grids the command line names: a config (one grid, or its ``[[parts]]``) narrowed by the flags.
    ``one_grid``: why this command refuses ``[[parts]]`` (empty: it takes them). ``defaults``: values for flags
    left out (for commands that refuse parts)."""
    from unlearnbench.grid import grids_from_config, load_config

    cfg: dict[str, Any] = load_config(args.config) if args.config else {}
    if "parts" in cfg and one_grid:
        raise UserError(f"{one_grid}, not a config of [[parts]] ({args.config})")
    for key, value in (defaults or {}).items():  # a default fills what neither the flags nor the config set
        configured = key in cfg or (key == "forget" and "forget_classes" in cfg)
        if getattr(args, key) is None and not configured:
            setattr(args, key, value)
    narrowing = {
        "methods": args.methods,
        "attacks": args.attacks,
        "forget": args.forget,
        "seeds": args.seeds,
    }
    if "parts" in cfg:
        given = [f"--{k.replace('_', '-')}" for k, v in narrowing.items() if v]
        if given:
            raise UserError(f"{given[0]} cannot narrow a config with [[parts]] ({args.config}); edit its parts")
    for key, value in narrowing.items():
        if value:
            cfg[key] = [str(v) for v in value] if key == "forget" else value
            if key == "forget":
                cfg.pop("forget_classes", None)
    if args.label is not None:
        cfg["label"] = args.label
    given = {k: getattr(args, k) for k in ("testbed", "model", "dataset", "evaluator", "attacker")}
    given = {k: v for k, v in given.items() if v is not None}
    if given and isinstance(cfg.setdefault("testbed", {}), dict):  # anything else: the schema names it
        cfg["testbed"].update(given)
    overrides = flags.eval_overrides(args)
    if overrides:  # checked with the config's [eval] (a malformed one is left for the schema to name) ...
        cfg["eval"] = {**cfg["eval"], **overrides} if isinstance(cfg.get("eval"), dict) else overrides
    if "methods" not in cfg and "parts" not in cfg:
        raise UserError("no methods: pass --methods a,b or --config FILE")
    # ... and win over every part's; a part's 'tuned' file is found beside the config
    return grids_from_config(
        cfg,
        overrides,
        base=Path(args.config).parent if args.config else None,
        unlearn_precision=args.unlearn_precision,
    )


def _sweep_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "workers": args.workers,
        "threads": args.threads,
        "device": args.device,
        "plugins": args.plugin,
        "download": args.download,
        "estimate_from": args.estimate_from,
        "plan_only": args.plan,
        "max_minutes": args.max_minutes,
        "config": args.config,
    }


def cmd_sweep(args: argparse.Namespace) -> int:
    from unlearnbench.grid import read_tuned, specs_of
    from unlearnbench.sweep import run_sweep

    _setup(args)
    grids = _grids(
        args, one_grid="--tuned takes a config with one grid (a part names its own 'tuned' file)" if args.tuned else ""
    )
    if args.tuned:
        grid, skipped = grids[0].with_tuned(read_tuned(args.tuned))
        grids = [grid]
        for method in skipped:
            print(f"note: {method} has no tuned setting in {args.tuned}; skipped", file=sys.stderr)
    report = run_sweep(
        specs_of(grids),
        args.out,
        **_sweep_options(args),
        backend=args.backend,
        address=args.address,
    )
    if args.plan:
        return 0
    print(f"sweep: {report.done} run, {report.skipped} skipped (complete), {report.failed} failed")
    for e in report.errors:
        print(f"  error: {e}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_tune(args: argparse.Namespace) -> int:
    from unlearnbench import tune

    _setup(args)
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials must be >= 1, got {args.trials}")
    one = "tune takes a config with one grid ('methods')"
    from unlearnbench.grid import load_config
    from unlearnbench.testbeds import DEFAULT, plugin

    configured = (load_config(args.config) if args.config else {}).get("testbed")
    testbed = args.testbed or (configured.get("testbed") if isinstance(configured, dict) else None) or DEFAULT
    tuning = list(plugin(str(testbed)).tuning_concepts)
    if not tuning and not args.forget:
        raise UserError(f"the {testbed} testbed declares no tuning concepts; pass --forget CONCEPT ...")
    grids = _grids(args, one_grid=one, defaults={"forget": tuning})
    if args.write:  # before any trial runs
        check_writable_file(Path(args.write), "--write")
    chosen, report = tune.tune(grids[0], args.out, limit=args.trials, **_sweep_options(args))
    if args.plan:
        return 0
    for method, choice in chosen.items():
        print(f"{method}: {json.dumps(choice['args'], sort_keys=True)}  ({choice['rule']})")
    if args.write:
        from unlearnbench.report.tuning import write_tuning_page

        tune.write_tuned(Path(args.write), chosen)
        config = f" --config {args.config}" if args.config else ""
        page = write_tuning_page(args.write, f"unlearnbench tune{config} --out {args.out} --write {args.write}")
        print(f"wrote {args.write} and {page}")
    return 1 if report.errors else 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from unlearnbench.testbeds import plugin

    _setup(args)
    args.deadline = flags.deadline(args.deadline)
    chosen = plugin(args.testbed)
    if args.what not in chosen.pretrain_targets:
        known = ", ".join(chosen.pretrain_targets) or "none"
        raise UserError(f"--what {args.what}: the {args.testbed} testbed builds {known}")
    return chosen.pretrain(args)


def cmd_testbed(args: argparse.Namespace) -> int:
    from unlearnbench.testbed_check import main as check_main

    _setup(args)
    return check_main(args)


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


def _sweep_parser(sub: Any, name: str, helptext: str, forget_default: str) -> argparse.ArgumentParser:
    sw = sub.add_parser(name, help=helptext)
    sw.add_argument("--config", default=None, help="TOML or JSON grid (see configs/*.toml)")
    sw.add_argument("--methods", action=flags.ListOf, default=None, help="methods (overrides the config)")
    sw.add_argument("--attacks", action=flags.ListOf, default=None, help="attacks (default: the config's, or none)")
    flags.forget_flags(sw, each=True, default=forget_default)
    sw.add_argument("--seeds", action=flags.ListOf, type=int, default=None, help="seeds (default 0)")
    sw.add_argument("--label", default=None, help="label stored in every row (default: the config's, or none)")
    sw.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes, threads split among them (default 1)"
    )
    sw.add_argument("--out", type=flags.out_path, default=DEFAULT_OUT, help=f"results folder (default ./{DEFAULT_OUT})")
    sw.add_argument(
        "--estimate-from",
        action="append",
        default=[],
        help="also estimate the time from the runs measured in this store (repeatable; default: --out's only)",
    )
    sw.add_argument("--plan", action="store_true", help="print the plan and its estimated time, run nothing")
    flags.unlearn_flags(sw)
    flags.eval_flags(sw)
    flags.testbed_flags(sw)
    flags.limit_flags(sw)
    return sw


def build_parser() -> argparse.ArgumentParser:
    p = flags.Parser(prog="unlearnbench", description="Benchmark machine unlearning in diffusion models.")
    p.add_argument("--version", action="version", version=f"unlearnbench {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=flags.Parser, metavar="COMMAND")

    r = sub.add_parser("run", help="unlearn one class with one method, attack it, score every phase")
    r.add_argument("--method", required=True, help="unlearning method ('unlearnbench list methods')")
    r.add_argument("--attack", default="none", help="attack ('unlearnbench list attacks'; default none)")
    flags.forget_flags(r, each=False)
    r.add_argument(
        "--model-path",
        default=None,
        help="with --method given: the folder of a model unlearned elsewhere (default none)",
    )
    r.add_argument("--method-args", default="{}", help="JSON object, e.g. '{\"lr\": 1e-4}' (default: the defaults)")
    r.add_argument("--attack-args", default="{}", help="JSON object (default: the attack's defaults)")
    r.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    r.add_argument(
        "--label-dropout",
        type=float,
        default=None,
        help="share of the method's training forwards given the null label, in [0, 1) (default: as the method's "
        "upstream code; 'unlearnbench list methods' shows it)",
    )
    r.add_argument("--label", default="", help="free label stored in every row, e.g. 'paper' (default none)")
    r.add_argument("--metrics", action=flags.ListOf, default=None, help="metrics (default: every registered one)")
    r.add_argument("--out", type=flags.out_path, default=DEFAULT_OUT, help=f"results folder (default ./{DEFAULT_OUT})")
    r.add_argument(
        "--save-model",
        type=flags.out_path,
        default=None,
        help="write the unlearned and attacked models here (default: not)",
    )
    flags.unlearn_flags(r)
    flags.eval_flags(r)
    flags.testbed_flags(r)
    flags.limit_flags(r)
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list registered methods, attacks, metrics or testbeds")
    ls.add_argument("kind", choices=["methods", "attacks", "metrics", "testbeds"], help="what to list")
    ls.add_argument("-v", "--verbose", action="store_true", help="also list each entry's arguments and defaults")
    ls.add_argument("--plugin", action="append", default=[], help="import MODULE to register extra entries")
    ls.set_defaults(func=cmd_list)

    pt = sub.add_parser("pretrain", help="train the testbed's base model, evaluator or attacker with its recipe")
    pt.add_argument("--testbed", default="digits16", help="testbed ('unlearnbench list testbeds'; default digits16)")
    pt.add_argument(
        "--what",
        default="unet",
        help="(default unet); 'retrain': the shipped retrained reference for each of --forget-classes; "
        "'prior': ship the method priors (Selective Amnesia's Fisher) cached in --cache",
    )
    pt.add_argument(
        "--out",
        type=flags.out_path,
        default=None,
        help="write here (diffusers layout for the unet, safetensors otherwise)",
    )
    pt.add_argument("--ship", action="store_true", help="write into the package's assets and update the manifest")
    pt.add_argument("--steps", type=int, default=None, help="override the recipe's steps (not with --ship)")
    pt.add_argument(
        "--guidance", type=float, default=None, help="--ship on text16: the default guidance 'testbed check' chose"
    )
    pt.add_argument(
        "--channels", action=flags.ListOf, type=int, default=None, help="UNet block_out_channels (default: recipe)"
    )
    pt.add_argument("--layers-per-block", type=int, default=None, help="(default: the recipe's)")
    pt.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate")
    pt.add_argument(
        "--classes", action=flags.ListOf, type=int, default=None, help="train on these classes only (default all)"
    )
    pt.add_argument(
        "--forget", action=flags.ListOf, default=None, metavar="CONCEPT", help="--what retrain: one reference each"
    )
    pt.add_argument("--deadline", default=None, help="--what retrain: HH:MM UTC, pause there (rerun resumes)")
    pt.add_argument(
        "--dtype",
        choices=["float16", "float32"],
        default="float16",
        help="--what retrain: stored weights (default float16)",
    )
    pt.add_argument(
        "--cache",
        default=None,
        help="--what retrain: resumable state (default .reference-cache); --what prior: a store's cache/priors",
    )
    flags.data_flags(pt)
    flags.machine_flags(pt)
    pt.set_defaults(func=cmd_pretrain)

    tb = sub.add_parser("testbed", help="testbed tools")
    tsub = tb.add_subparsers(dest="testbed_command", required=True, parser_class=flags.Parser, metavar="COMMAND")
    chk = tsub.add_parser("check", help="measure the base model and the judges against the quality bars")
    chk.add_argument("--per-class", type=int, default=50, help="samples per class (default 50)")
    chk.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    chk.add_argument(
        "--stability", action="store_true", help="also run the stability test (a neutral fine-tune; minutes)"
    )
    flags.sampler_flags(chk)
    flags.testbed_flags(chk)
    chk.set_defaults(func=cmd_testbed)

    lb = sub.add_parser("leaderboard", help="regenerate leaderboard.md/.html and figures from a results store")
    lb.add_argument(
        "--results",
        nargs="+",
        default=[DEFAULT_OUT],
        help=f"results folders, one per testbed: the first makes the page, each further one a section of it "
        f"(default {DEFAULT_OUT})",
    )
    lb.add_argument(
        "--out",
        type=flags.out_path,
        default=DEFAULT_OUT,
        help=f"where to write (default ./{DEFAULT_OUT}, beside the runs)",
    )
    lb.add_argument("--check", action="store_true", help="only verify the committed files are up to date")
    lb.add_argument("--readme", help="also rewrite (or --check) the leaderboard block of this README (default: not)")
    lb.add_argument("--cost-reference", default="safemax", help="method the cost ratios divide by (default safemax)")
    lb.add_argument(
        "--tuned",
        nargs="+",
        default=[],
        help="tune --write files: add how the tuned rows were chosen, each to its testbed's section (default: not)",
    )
    lb.set_defaults(func=cmd_leaderboard)

    tb2 = sub.add_parser("table", help="one row per method setting (trade-off studies, tuning trials): md, csv, png")
    tb2.add_argument("--results", required=True, help="results folder")
    tb2.add_argument(
        "--out", type=flags.out_path, required=True, help="output path without suffix, e.g. results/safemax/tradeoff"
    )
    tb2.add_argument("--methods", action=flags.ListOf, default=None, help="methods to keep (default: all)")
    tb2.add_argument("--by-class", action="store_true", help="one row per forget class instead of the mean")
    tb2.set_defaults(func=cmd_table)

    ck = sub.add_parser("check", help="compare results with a baseline; exit 1 on a regression")
    ck.add_argument("--baseline", required=True, help="baseline results folder or parquet file")
    ck.add_argument("--results", default=DEFAULT_OUT, help=f"fresh results folder (default ./{DEFAULT_OUT})")
    ck.add_argument("--include-cost", action="store_true", help="also compare machine-dependent cost metrics")
    ck.add_argument("--all", action="store_true", help="print every comparison, not only the changes")
    ck.add_argument("--plugin", action="append", default=[], help="import MODULE to register extra metrics")
    ck.set_defaults(func=cmd_check)

    vf = sub.add_parser("verify", help="check every run of a store against its recorded hashes; exit 1 if any fails")
    vf.add_argument("store", help="a results store (a folder with runs/)")
    vf.add_argument(
        "--seal", action="store_true", help="record the hashes of runs (and cache entries) written before hashes were"
    )
    vf.add_argument("--plugin", action="append", default=[], help="import MODULE to register extra metrics")
    vf.set_defaults(func=cmd_verify)

    sw = _sweep_parser(
        sub, "sweep", "run a grid of methods x attacks x forget classes x seeds (resumable)", "the config's, or 0"
    )
    sw.add_argument("--tuned", default=None, help="use the settings chosen by 'unlearnbench tune' (label 'tuned')")
    sw.add_argument("--backend", choices=["local", "ray"], default="local", help="where runs execute (default local)")
    sw.add_argument("--address", default=None, help="Ray cluster: 'auto' or HOST:PORT (default: a local one)")
    sw.set_defaults(func=cmd_sweep)
    tu = _sweep_parser(
        sub,
        "tune",
        "give every method the same trials over its knobs; pick one by a fixed rule",
        "the config's, or the testbed's tuning concepts: 5 and 9 on digits16, five and green on text16",
    )
    tu.add_argument(
        "--trials",
        type=int,
        default=None,
        help="N trials of each grid, the paper default first, chosen to try every value of every knob (default: all)",
    )
    tu.add_argument(
        "--write", type=flags.out_path, default=None, help="write the chosen settings (JSON) here (default: print only)"
    )
    tu.set_defaults(func=cmd_tune)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from unlearnbench.progress import install_interrupt_handler

    install_interrupt_handler()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        flags.check_text(args)
        return int(args.func(args))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept, the run in flight wrote nothing", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`... --plan | head`): not a bug, and nobody is listening
        sys.stdout = sys.stderr = open(os.devnull, "w")  # kept open: Python flushes both at exit
        return 141
    except Exception as e:  # a bug: not a verdict (1) and not the user's input (2)
        return internal_error(e, argv)


if __name__ == "__main__":
    sys.exit(main())
