"""The command line's flags, defined once: the parser class (one-line errors, single-value flags given
once), JSON and list values, and the flag groups that run, sweep, tune, pretrain and testbed check share."""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
from pathlib import Path
from typing import Any, NoReturn

from unlearnbench.errors import UserError


class StoreOnce(argparse._StoreAction):
    """A single-value flag given twice is an error, not "the last one wins"."""

    def __call__(
        self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: str | None = None
    ) -> None:
        seen: set[str] = namespace.__dict__.setdefault("_given", set())
        if self.dest in seen:
            raise UserError(f"{option_string} given twice; give it once")
        seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class ListOf(argparse.Action):
    """A list flag, the one spelling every list flag has: values space- or comma-separated (``--methods a b`` is
    ``--methods a,b``), converted by ``type``; given twice, the lists join."""

    def __init__(self, option_strings: list[str], dest: str, type: Any = str, **kwargs: Any) -> None:
        self.item = type
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(
        self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: str | None = None
    ) -> None:
        items = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
        if not items:
            raise UserError(f"{option_string}: give at least one value")
        converted = []
        for item in items:
            try:
                converted.append(self.item(item))
            except ValueError:
                raise UserError(f"{option_string}: {item!r} is not {getattr(self.item, '__name__', 'valid')}") from None
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *converted])


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # '--forget-c' is not silently '--forget-class'
        super().__init__(*args, **kwargs)
        self.register("action", "store", StoreOnce)
        self.register("action", None, StoreOnce)

    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UserError(f"{message} (see '{self.prog} --help')")


def json_arg(text: str, flag: str) -> dict[str, Any]:
    from unlearnbench.schema import loads_json, show

    try:  # NaN/Infinity get through here and are refused by the Args schema, naming the field
        value = loads_json(text, constants=True)
    except json.JSONDecodeError as e:
        raise UserError(f"{flag}: not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
    except ValueError as e:  # nested too deeply
        raise UserError(f"{flag}: not valid JSON ({e}): {show(text)}") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag}: must be a JSON object like '{{\"lr\": 1e-4}}', got {text!r}")
    return value


def out_path(text: str) -> str:
    """An output path flag's value (argparse ``type``): not empty (that would be the current folder), and one the
    file system can name (no name in it longer than it allows)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a path (an empty one would write into the current folder)")
    try:
        os.stat(text)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            longest = max(len(os.fsencode(part)) for part in Path(text).parts)
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r}... is longer than the file system allows (its longest name: {longest} bytes)"
            ) from None
    return text


def minutes(text: str) -> float:
    """``--max-minutes``' value (argparse ``type``): a finite number of minutes above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of minutes above 0, got {text!r}")
    return value


def check_device(text: str) -> None:
    """``--device``: a device torch can name (cpu, cuda, cuda:1, mps), or one line."""
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {text!r} is not a device torch knows (e.g. cpu, cuda, cuda:1, mps)") from None


def env_threads() -> int:
    """``UNLEARNBENCH_THREADS``, validated with the other environment variables (one line if bad)."""
    from unlearnbench.schema import read_environment

    return read_environment().UNLEARNBENCH_THREADS


# ---------------------------------------------------------------------------------------------
# Shared flag groups: defined once, used by run, sweep, tune and testbed check
# ---------------------------------------------------------------------------------------------


def sampler_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampler (recorded in every row)")
    g.add_argument("--sample-steps", type=int, default=None, help="DDIM steps (default 50)")
    g.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance s in eps_null + s (eps_cond - eps_null) (default: the testbed's measured "
        "choice; the papers' w = 2 is s = 3)",
    )
    g.add_argument("--eta", type=float, default=None, help="DDIM eta: 0 deterministic, 1 the papers' (default 0)")
    g.add_argument(
        "--clip-sample",
        action="store_const",
        const=True,
        default=None,
        help="clip the predicted x0 to [-1, 1] at every step (diffusers' clip_sample; off by default, as upstream)",
    )
    g.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default=None,
        help="the sampler's model forwards: bfloat16 autocast (1.7-1.9x faster on processors with AVX-512 BF16 or AMX; "
        "no judged score moved outside its interval) or float32 (default bfloat16)",
    )
    g.add_argument(
        "--protocol",
        choices=["testbed", "papers"],
        default=None,
        help="named sampler setting: 'papers' is s = 3, eta = 1 (upstream w = 2); 'testbed' its measured default "
        "guidance, eta 0 (default testbed); --guidance/--eta given beside it win",
    )


def unlearn_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("unlearning (recorded in every row)")
    g.add_argument(
        "--unlearn-precision",
        choices=["float32", "bfloat16"],
        default=None,
        help="the unlearning method's gradient steps: float32, or bfloat16 autocast, weights and optimizer state "
        "kept in float32 (attacks train in float32) (default: the config's, or float32)",
    )


def limit_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("limits (not part of the run id)")
    g.add_argument(
        "--max-minutes",
        type=minutes,
        default=None,
        metavar="M",
        help="stop a run still working after M minutes, at its next step, and record it as failed with the reason "
        "'exceeded --max-minutes M' (each run of a sweep gets M minutes) (default: no limit)",
    )


def eval_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation (recorded in every row)")
    g.add_argument("--forget-samples", type=int, default=None, help="samples per forget class (default 100)")
    g.add_argument("--retain-samples", type=int, default=None, help="samples per retained class (default 20)")
    g.add_argument(
        "--curve-samples", type=int, default=None, help="samples per forget class at each curve point (default 50)"
    )
    sampler_flags(p)


def forget_flags(p: argparse.ArgumentParser, *, each: bool, default: str = "0") -> None:
    """``--forget CONCEPT ...`` and its alias ``--forget-class N ...`` (class-conditional testbeds); ``default``
    says in the help what a command forgets without it."""
    what = "one run per concept" if each else "forgotten together"
    p.add_argument(
        "--forget",
        action=ListOf,
        default=None,
        metavar="CONCEPT",
        help=f"concept(s) to forget, as the testbed names them ({what}; 'unlearnbench list testbeds -v') "
        f"(default: {default})",
    )
    p.add_argument(
        "--forget-class",
        dest="forget",
        action=ListOf,
        type=int,
        metavar="N",
        help="the same by class number, on class-conditional testbeds (--forget-class 3 is --forget 3)",
    )


def testbed_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("testbed")
    g.add_argument("--testbed", default=None, help="testbed ('unlearnbench list testbeds'; default digits16)")
    g.add_argument("--model", default=None, help="a diffusers UNet2DModel directory or hub id (default: shipped)")
    g.add_argument("--evaluator", default=None, help="evaluator classifier (safetensors) (default: shipped)")
    g.add_argument("--attacker", default=None, help="attacker classifier (safetensors) (default: shipped)")
    data_flags(g)
    machine_flags(p)


def data_flags(g: Any) -> None:
    g.add_argument("--dataset", default=None, help="digits16 | mnist | cifar10 (default: the testbed's)")
    g.add_argument("--download", action="store_true", help="let torchvision download --dataset (needs the network)")


def machine_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("machine")
    g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    g.add_argument(
        "--threads",
        type=int,
        default=env_threads(),
        help="torch threads (default $UNLEARNBENCH_THREADS or 2)",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="compile the sampler's model forwards with torch.compile: each process pays 10-140 s once, then "
        "sampling is 1.15-1.19x faster on a CPU (bfloat16 at s = 3: 0.93x, slower) (default: $UNLEARNBENCH_COMPILE=1)",
    )
    g.add_argument(
        "--plugin",
        action="append",
        default=[],
        help="import MODULE (installed, or in the working folder) or a FILE.py to register its entries",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars; warnings and errors only")
    g.add_argument("--verbose", action="store_true", help="also log progress details and third-party messages")


def eval_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation flags that were given, under the config file's key names."""
    from unlearnbench.evaluate import EVAL_KEYS

    return {k: getattr(args, k) for k in EVAL_KEYS if getattr(args, k, None) is not None}


def testbed_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The testbed flags under the names a run spec and ``load_testbed`` take (digits16 unless ``--testbed``)."""
    fields = {k: getattr(args, k) for k in ("testbed", "model", "dataset", "evaluator", "attacker")}
    return {**fields, "testbed": fields["testbed"] or "digits16"}


def deadline(text: str | None) -> float | None:
    """``HH:MM`` (UTC, the next such time from now) as a ``time.time()`` value; None when not given."""
    if not text:
        return None
    import datetime as dt

    try:
        hour, minute = (int(x) for x in text.split(":"))
        now = dt.datetime.now(dt.UTC)
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        raise UserError(f"--deadline: expected HH:MM (UTC), got {text!r}") from None
    if at <= now:
        at += dt.timedelta(days=1)
    return at.timestamp()


def check_text(args: argparse.Namespace) -> None:
    """Refuse an argument that is not valid UTF-8 (Python keeps its bytes as lone surrogates, which no file,
    table or page can hold) before any work, naming the flag."""
    for name, value in vars(args).items():
        for text in value if isinstance(value, list | tuple) else [value]:
            if isinstance(text, str) and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    flag = "--" + name.replace("_", "-")
                    shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
                    raise UserError(f"{flag} '{shown}' is not valid UTF-8") from None
