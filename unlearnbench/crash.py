"""Exit 3: a defect, not the user's input. One line on stderr, and the traceback in a log file."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from unlearnbench import __version__


def internal_error(error: BaseException, argv: Sequence[str] | None) -> int:
    """Exit 3: one line, and the traceback in a log file (under --out when given, else the user cache)."""
    import tempfile
    import time
    import traceback

    args = list(sys.argv[1:] if argv is None else argv)
    out = args[args.index("--out") + 1] if "--out" in args[:-1] else None
    folders = [Path(out) / "logs"] if out else []
    folders += [Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unlearnbench" / "logs"]
    folders += [Path(tempfile.gettempdir()) / "unlearnbench-logs"]
    text = f"unlearnbench {__version__}: {' '.join(args)}\n" + "".join(traceback.format_exception(error))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            log = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            log.write_text(text, errors="backslashreplace")  # an argument that is not valid UTF-8 stays readable
            break
        except OSError:
            continue
    else:
        log = Path("(no writable log folder)")
    line = f"internal error: {type(error).__name__}: {error} (traceback in {log})"
    print(line.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)
    return 3
