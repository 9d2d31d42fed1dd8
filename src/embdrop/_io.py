"""Files written atomically (a temporary file renamed onto the target) and JSON read with one clear error."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from embdrop import _checks

_replace = os.replace  # the commit of every write; the fault-injection tests wrap it to die around it


def available_memory() -> int | None:
    """The free memory in bytes (MemAvailable of /proc/meminfo, Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then rename onto ``path``: readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from the user's other accounts and tools
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # on disk before the rename, so that a crash never leaves an empty file
            os.fsync(f.fileno())
        _replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, data, *, indent: int | None = None) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=indent)

    atomic_write(path, write)


def read_json(path: str | os.PathLike, expected: str, *, argument: str = "path"):
    """Parsed JSON of ``path``; an unreadable file raises the error template naming ``argument``."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _checks.invalid(argument, expected, f"{str(path)!r} ({type(e).__name__}: {e})") from None


def leaves(d: dict, prefix: str = "") -> dict[str, object]:
    """A nested dict's leaves as ``{"a.b": value}`` (a config's fields as ``--set`` names them)."""
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(leaves(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out
