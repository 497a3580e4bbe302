"""Atomic file writes: a crash or a SIGKILL leaves either the old file or the new one, never a partial one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp_path)`` then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def atomic_write_frame(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_parquet(p, index=False))


def check_writable_folder(folder: Path, what: str, *, create: bool = True) -> None:
    """Prove a file can be written in ``folder``, or raise one line: before any work. ``create``: make the folder
    (else nothing is left behind: the probe goes into the nearest folder that exists, which must be writable)."""
    from unlearnbench.errors import UserError

    try:
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{what} {str(folder)!r} is a file; give a folder")
        probe_in = folder
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            while not probe_in.exists() and probe_in != probe_in.parent:
                probe_in = probe_in.parent
            if not probe_in.is_dir():
                raise UserError(f"{what} {str(folder)!r} cannot be made: {str(probe_in)!r} is a file")
        fd, probe = tempfile.mkstemp(dir=probe_in.resolve(), prefix=".probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{what} {str(folder)!r} is not writable ({e.strerror or e})") from None


def check_writable_file(path: Path, what: str) -> None:
    """A file that can be written at ``path`` (a folder there is refused), or one line; nothing is left behind."""
    from unlearnbench.errors import UserError

    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; give a file name")
    check_writable_folder(path.parent, what, create=False)


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing): processes that read, change and write
    one shared file, or compute one shared result, take turns here."""
    import fcntl

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


SEAL = "sha256.json"  # a cache entry's seal: inside a folder entry, or beside a file entry as <name>.sha256.json


def seal_path(entry: Path) -> Path:
    return entry / SEAL if entry.is_dir() else entry.with_name(f"{entry.name}.{SEAL}")


def seal(entry: Path, files: list[Path], key: str | None = None) -> None:
    """Record a cache entry's key (default: its name) and its files' checksums. Written last: an entry whose seal
    is missing, names another key, or lists other checksums is not used (:func:`is_sealed`) but computed again."""
    record = {"key": entry.name if key is None else key, "files": {f.name: sha256_file(f) for f in files}}
    atomic_write_text(seal_path(entry), json.dumps(record, indent=1, sort_keys=True) + "\n")


def is_sealed(entry: Path, files: list[Path], key: str | None = None) -> bool:
    """Whether a cache entry is whole: its seal names the key and each file has its recorded checksum."""
    try:
        record = json.loads(seal_path(entry).read_text())
    except (OSError, ValueError):
        return False
    recorded = record.get("files") if isinstance(record, dict) else None
    return (
        isinstance(recorded, dict)
        and record.get("key") == (entry.name if key is None else key)
        and set(recorded) == {f.name for f in files}
        and all(f.is_file() and sha256_file(f) == recorded[f.name] for f in files)
    )
