"""The ``unlearnbench`` command line.

Bad input prints one line, ``error: ...``, and exits with status 2, before any result is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from unlearnbench.errors import UserError

DEFAULT_OUT = "unlearnbench-results"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UserError(f"{message} (see '{self.prog} --help')")


def _json_arg(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{flag}: not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag}: must be a JSON object like '{{\"lr\": 1e-4}}', got {text!r}")
    return value


def _set_threads(n: int) -> None:
    import torch

    if n < 1:
        raise UserError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def _common_eval(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation (recorded in every row)")
    g.add_argument("--forget-samples", type=int, default=100, help="samples per forget class (default 100)")
    g.add_argument("--retain-samples", type=int, default=20, help="samples per retained class (default 20)")
    g.add_argument(
        "--curve-samples", type=int, default=50, help="samples per forget class at each recovery-curve point"
    )
    g.add_argument("--sample-steps", type=int, default=50, help="DDIM steps (default 50)")
    g.add_argument(
        "--guidance", type=float, default=None, help="guidance scale (default: the testbed's measured choice)"
    )
    g.add_argument("--eta", type=float, default=0.0, help="DDIM eta (default 0: deterministic)")


def _common_testbed(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("testbed")
    g.add_argument("--testbed", default="digits16")
    g.add_argument(
        "--model", default=None, help="a diffusers UNet2DModel directory or hub id instead of the shipped one"
    )
    g.add_argument("--dataset", default=None, help="digits16 | mnist | cifar10 (torchvision, needs --download)")
    g.add_argument("--evaluator", default=None, help="evaluator classifier (safetensors) for a custom dataset")
    g.add_argument("--attacker", default=None, help="attacker classifier (safetensors) for a custom dataset")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--threads", type=int, default=int(os.environ.get("UNLEARNBENCH_THREADS", "2")))
    g.add_argument(
        "--plugin", action="append", default=[], help="import MODULE to register extra methods/attacks/metrics"
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _guidance(args: argparse.Namespace) -> float:
    if args.guidance is not None:
        return float(args.guidance)
    from unlearnbench.testbeds import read_manifest

    if args.model is None:
        return float(read_manifest(args.testbed)["sampler"]["guidance_scale"])
    return 1.0


def _eval_settings(args: argparse.Namespace, seed: int) -> Any:
    from unlearnbench.api import SamplerSettings
    from unlearnbench.evaluate import EvalSettings

    return EvalSettings(
        forget_samples=args.forget_samples,
        retain_samples=args.retain_samples,
        curve_samples=args.curve_samples,
        sampler=SamplerSettings(steps=args.sample_steps, guidance_scale=_guidance(args), eta=args.eta),
        seed=seed,
    )


def _setup(args: argparse.Namespace) -> None:
    from unlearnbench import progress, registry

    _set_threads(args.threads)
    if getattr(args, "quiet", False):
        progress.set_enabled(False)
    for module in getattr(args, "plugin", []):
        registry.load_module_plugin(module)


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from unlearnbench.results import Store
    from unlearnbench.runner import Runner
    from unlearnbench.spec import RunSpec
    from unlearnbench.summary import summary_table

    _setup(args)
    spec = RunSpec(
        method=args.method,
        attack=args.attack,
        forget_classes=tuple(args.forget_class),
        method_args=_json_arg(args.method_args, "--method-args"),
        attack_args=_json_arg(args.attack_args, "--attack-args"),
        testbed=args.testbed,
        model=args.model,
        dataset=args.dataset,
        evaluator=args.evaluator,
        attacker=args.attacker,
        seed=args.seed,
        eval=_eval_settings(args, args.seed),
        label=args.label,
        metrics=tuple(_csv(args.metrics)),
    )
    store = Store(args.out)
    runner = Runner(store, device=args.device, save_model=args.save_model)
    resolved, tb = runner.prepare(spec)
    print(
        f"run {resolved.run_id}: {spec.method} / {spec.attack}, forget {spec.forget_label}, testbed {tb.name}",
        file=sys.stderr,
    )
    df = runner.execute(resolved, tb)
    print(summary_table(df))
    print(f"\nrows: {store.rows_path(resolved.run_id)}  (pandas.read_parquet, or unlearnbench.results.load_results)")
    return 0 if (df["status"] == "ok").all() else 1


# ---------------------------------------------------------------------------------------------
# sweep and tune
# ---------------------------------------------------------------------------------------------


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def _grid(args: argparse.Namespace) -> Any:
    from unlearnbench.sweep import grid_from_config, load_config

    cfg: dict[str, Any] = load_config(args.config) if args.config else {}
    if args.methods:
        cfg["methods"] = _csv(args.methods)
    if args.attacks:
        cfg["attacks"] = _csv(args.attacks)
    if args.forget_classes:
        cfg["forget_classes"] = args.forget_classes
    if args.seeds:
        cfg["seeds"] = args.seeds
    if args.label is not None:
        cfg["label"] = args.label
    if args.model is not None:
        cfg.setdefault("testbed", {})["model"] = args.model
    ev = cfg.setdefault("eval", {})
    for flag, key in (
        ("forget_samples", "forget_samples"),
        ("retain_samples", "retain_samples"),
        ("curve_samples", "curve_samples"),
        ("sample_steps", "sample_steps"),
        ("guidance", "guidance"),
        ("eta", "eta"),
    ):
        if getattr(args, flag) is not None:
            ev[key] = getattr(args, flag)
    if "methods" not in cfg:
        raise UserError("no methods: pass --methods a,b or --config FILE")
    grid = grid_from_config(cfg)
    if args.tuned:
        tuned = json.loads(Path(args.tuned).read_text()) if Path(args.tuned).is_file() else None
        if tuned is None:
            raise UserError(f"--tuned {args.tuned!r}: no such file (write it with 'unlearnbench tune')")
        grid.methods = [(m, tuned[m]["args"] if m in tuned else a, "tuned") for m, a, _ in grid.methods]
    return grid


def cmd_sweep(args: argparse.Namespace) -> int:
    from unlearnbench.sweep import run_sweep

    _setup(args)
    grid = _grid(args)
    report = run_sweep(
        grid.specs(),
        args.out,
        workers=args.workers,
        threads=args.threads,
        device=args.device,
        plugins=args.plugin,
        backend=args.backend,
        address=args.address,
    )
    print(f"sweep: {report.done} run, {report.skipped} skipped (complete), {report.failed} failed")
    for e in report.errors:
        print(f"  error: {e}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_tune(args: argparse.Namespace) -> int:
    from unlearnbench import tune
    from unlearnbench.results import Store
    from unlearnbench.sweep import run_sweep

    _setup(args)
    if args.trials < 1:
        raise UserError(f"--trials must be >= 1, got {args.trials}")
    grid = _grid(args)
    grid.attacks = [("none", {})]
    methods = [m for m, _, _ in grid.methods if m not in ("noop", "retrain")]
    grid.methods = [(m, t, "tune") for m in methods for t in tune.trials(m, args.trials, args.seed)]
    specs = grid.specs()
    report = run_sweep(
        specs, args.out, workers=args.workers, threads=args.threads, device=args.device, plugins=args.plugin
    )
    from unlearnbench.runner import resolve

    ids = {resolve(s).run_id for s in specs}
    df = Store(args.out).load()
    df = df[df.run_id.isin(ids)]
    chosen: dict[str, Any] = {}
    for m in methods:
        run_id, margs, reason = tune.select(df[df.method == m])
        chosen[m] = {
            "args": margs,
            "run_id": run_id,
            "rule": reason,
            "trials": args.trials,
            "forget_classes": [list(fc) for fc in grid.forget_classes],
        }
        print(f"{m}: {json.dumps(margs, sort_keys=True)}  ({reason})")
    if args.write:
        from unlearnbench.results import atomic_write_text

        atomic_write_text(Path(args.write), json.dumps(chosen, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.write}")
    return 1 if report.errors else 0


# ---------------------------------------------------------------------------------------------
# leaderboard and regression check
# ---------------------------------------------------------------------------------------------


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from unlearnbench import leaderboard

    problems = leaderboard.write(args.results, args.out, check=args.check, readme=args.readme)
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
    from unlearnbench.leaderboard import write_settings_table

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    write_settings_table(args.results, args.out, methods=methods, by_class=args.by_class)
    print(f"wrote {args.out}.md, {args.out}.csv and {args.out}.png")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from unlearnbench.regression import compare, format_table
    from unlearnbench.results import load_results

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


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from unlearnbench import registry
    from unlearnbench.args import describe

    for module in args.plugin:
        registry.load_module_plugin(module)
    kind = args.kind.rstrip("s")
    rows = registry.describe(kind)
    width = max(len(n) for n, _ in rows)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
        if args.verbose:
            cls = registry.get(kind, name)
            for arg_name, default, help_text in describe(cls.Args):
                print(f"{'':<{width}}    {arg_name}={default!r}: {help_text}")
    return 0


# ---------------------------------------------------------------------------------------------
# pretrain and testbed check
# ---------------------------------------------------------------------------------------------


def cmd_pretrain(args: argparse.Namespace) -> int:
    from unlearnbench.testbeds.build import build

    _setup(args)
    build(
        args.what,
        out=Path(args.out) if args.out else None,
        ship=args.ship,
        steps=args.steps,
        dataset=args.dataset,
        channels=tuple(int(c) for c in _csv(args.channels)) or None,
        layers_per_block=args.layers_per_block,
        classes=tuple(args.classes) if args.classes else None,
        lr=args.lr,
        device=args.device,
    )
    return 0


def cmd_testbed(args: argparse.Namespace) -> int:
    from unlearnbench.api import SamplerSettings
    from unlearnbench.testbeds import load_testbed
    from unlearnbench.testbeds.check import run_checks

    _setup(args)
    if args.per_class < 1:
        raise UserError(f"--per-class must be >= 1, got {args.per_class}")
    tb = load_testbed(
        args.testbed, model=args.model, dataset=args.dataset, evaluator=args.evaluator, attacker=args.attacker
    ).to(args.device)
    sampler = SamplerSettings(steps=args.sample_steps, guidance_scale=_guidance(args), eta=args.eta)
    checks = run_checks(tb, per_class=args.per_class, sampler=sampler, seed=args.seed)
    print(
        f"testbed {tb.name}: model {tb.model_sha[:12]}, evaluator {tb.evaluator_sha[:12]}, "
        f"{args.per_class} samples per class, DDIM {sampler.steps} steps, guidance {sampler.guidance_scale}"
    )
    for c in checks:
        bar = f"{c.bar[0]} {c.bar[1]}" if c.bar else ""
        verdict = ("ok" if c.ok else "BELOW BAR") if c.bar else ""
        print(f"  {c.name:<30} {c.value:>9.4f}  {bar:<8} {verdict}")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("all bars met")
    return 0


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="unlearnbench", description="Benchmark machine unlearning in diffusion models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="unlearn one class with one method, attack it, score every phase")
    r.add_argument("--method", required=True)
    r.add_argument("--attack", default="none")
    r.add_argument("--forget-class", type=int, nargs="+", default=[0], help="class(es) to forget (default 0)")
    r.add_argument("--method-args", default="{}", help='JSON object, e.g. \'{"lr": 1e-4, "steps": 100}\'')
    r.add_argument("--attack-args", default="{}", help="JSON object")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--label", default="", help="free label stored in every row (e.g. 'paper')")
    r.add_argument("--metrics", default=None, help="comma-separated metrics to compute (default: all registered)")
    r.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default ./{DEFAULT_OUT})")
    r.add_argument("--save-model", default=None, help="write the unlearned and attacked models (diffusers format) here")
    _common_eval(r)
    _common_testbed(r)
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list registered methods, attacks or metrics")
    ls.add_argument("kind", choices=["methods", "attacks", "metrics"])
    ls.add_argument("-v", "--verbose", action="store_true", help="also list each entry's arguments and defaults")
    ls.add_argument("--plugin", action="append", default=[])
    ls.set_defaults(func=cmd_list)

    pt = sub.add_parser(
        "pretrain", help="train the testbed's base model, evaluator or attacker with the recorded recipe"
    )
    pt.add_argument("--what", choices=["unet", "evaluator", "attacker", "all"], default="unet")
    pt.add_argument(
        "--out", default=None, help="write here (diffusers layout for the unet, safetensors for classifiers)"
    )
    pt.add_argument(
        "--ship", action="store_true", help="write into the package's digits16 assets and update the manifest"
    )
    pt.add_argument("--steps", type=int, default=None, help="override the recipe's steps (not for --ship)")
    pt.add_argument("--dataset", default="digits16")
    pt.add_argument("--channels", default=None, help="UNet block_out_channels, e.g. 128,256,256,256 (capacity studies)")
    pt.add_argument("--layers-per-block", type=int, default=None)
    pt.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate")
    pt.add_argument("--classes", type=int, nargs="+", default=None, help="train on these classes only")
    pt.add_argument("--device", default="cpu")
    pt.add_argument("--threads", type=int, default=int(os.environ.get("UNLEARNBENCH_THREADS", "2")))
    pt.add_argument("--quiet", action="store_true")
    pt.set_defaults(func=cmd_pretrain)

    tb = sub.add_parser("testbed", help="testbed tools")
    tsub = tb.add_subparsers(dest="testbed_command", required=True, parser_class=_Parser)
    chk = tsub.add_parser("check", help="measure the base model and the judges against the quality bars")
    chk.add_argument("--per-class", type=int, default=50)
    chk.add_argument("--seed", type=int, default=0)
    chk.add_argument("--sample-steps", type=int, default=50)
    chk.add_argument("--guidance", type=float, default=None)
    chk.add_argument("--eta", type=float, default=0.0)
    _common_testbed(chk)
    chk.set_defaults(func=cmd_testbed)

    lb = sub.add_parser("leaderboard", help="regenerate leaderboard.md/.html and figures from a results store")
    lb.add_argument("--results", default="results/store", help="results folder (default results/store)")
    lb.add_argument("--out", default="results", help="where to write (default results)")
    lb.add_argument("--check", action="store_true", help="only verify the committed files are up to date")
    lb.add_argument("--readme", help="also rewrite (or --check) the leaderboard block of this README")
    lb.set_defaults(func=cmd_leaderboard)

    tb2 = sub.add_parser("table", help="one row per method setting (trade-off studies, tuning trials): md, csv, png")
    tb2.add_argument("--results", required=True, help="results folder")
    tb2.add_argument("--out", required=True, help="output path without suffix, e.g. results/safemax/tradeoff")
    tb2.add_argument("--methods", help="comma-separated methods to keep (default: all)")
    tb2.add_argument("--by-class", action="store_true", help="one row per forget class instead of the mean")
    tb2.set_defaults(func=cmd_table)

    ck = sub.add_parser("check", help="compare results with a baseline; exit 1 on a regression")
    ck.add_argument("--baseline", required=True, help="baseline results folder or parquet file")
    ck.add_argument("--results", default=DEFAULT_OUT, help="fresh results folder")
    ck.add_argument("--include-cost", action="store_true", help="also compare machine-dependent cost metrics")
    ck.add_argument("--all", action="store_true", help="print every comparison, not only the changes")
    ck.set_defaults(func=cmd_check)

    for name, helptext, func in (
        ("sweep", "run a grid of methods x attacks x forget classes x seeds (resumable, parallel)", cmd_sweep),
        (
            "tune",
            "give every method the same trial budget over its knobs and pick one setting by a fixed rule",
            cmd_tune,
        ),
    ):
        sw = sub.add_parser(name, help=helptext)
        sw.add_argument("--config", default=None, help="TOML or JSON grid (see results/*.toml)")
        sw.add_argument("--methods", default=None, help="comma-separated methods (overrides the config)")
        sw.add_argument("--attacks", default=None, help="comma-separated attacks (default: none)")
        sw.add_argument("--forget-classes", type=int, nargs="+", default=None)
        sw.add_argument("--seeds", type=int, nargs="+", default=None)
        sw.add_argument("--label", default=None)
        sw.add_argument("--tuned", default=None, help="use the arguments chosen by 'unlearnbench tune' (label 'tuned')")
        sw.add_argument(
            "--workers", type=int, default=1, help="parallel worker processes (threads are split among them)"
        )
        sw.add_argument("--out", default=DEFAULT_OUT)
        for flag in ("forget-samples", "retain-samples", "curve-samples", "sample-steps"):
            sw.add_argument(f"--{flag}", type=int, default=None)
        sw.add_argument("--guidance", type=float, default=None)
        sw.add_argument("--eta", type=float, default=None)
        sw.add_argument("--model", default=None, help="a diffusers model directory instead of the shipped one")
        sw.add_argument("--device", default="cpu")
        sw.add_argument("--threads", type=int, default=int(os.environ.get("UNLEARNBENCH_THREADS", "2")))
        sw.add_argument("--plugin", action="append", default=[])
        sw.add_argument("--quiet", action="store_true")
        if name == "sweep":  # backends (issue 17)
            sw.add_argument("--backend", choices=["local", "ray"], default="local", help="where runs execute")
            sw.add_argument("--address", default=None, help="Ray cluster: 'auto' or HOST:PORT (default: a local one)")
        if name == "tune":
            sw.add_argument("--trials", type=int, default=6, help="trials per method, the paper default included")
            sw.add_argument("--seed", type=int, default=0, help="seed of the trial draw")
            sw.add_argument("--write", default=None, help="write the chosen settings (JSON) here")
        sw.set_defaults(func=func)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from unlearnbench.progress import install_interrupt_handler

    install_interrupt_handler()
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept, the run in flight wrote nothing", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
