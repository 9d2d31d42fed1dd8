"""The cache of compiled libraries (the fused recurrent kernel, the tokenizer): keyed and verified by content.

Each build lives in ``$EMBDROP_CACHE`` (default ``~/.cache/embdrop``) in a folder named by a key: a hash of
everything that decides the binary (the source, the compiler flags, the compiler, torch's and Python's versions,
the CPU's features). Two checkouts of the same version therefore share one build, and a changed source or CPU
never loads a stale one. A build is made in a private temporary folder and renamed into place whole, with a
``manifest.json`` that records the library's sha256; a library is loaded only when

- its folder's key matches (the manifest names it),
- the file's sha256 equals the manifest's, so a truncated, swapped or half-copied file is rebuilt, not run,
- the folder and the file belong to this user (or root) and no one else can write them.

This is the trust a user already gives the files of their own home directory: whoever can write there can
change what runs, and no check inside the same folder can stop that person.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from embdrop._io import sha256


def cache_dir() -> Path:
    return Path(os.environ.get("EMBDROP_CACHE") or Path.home() / ".cache" / "embdrop")


def key(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def cpu_features() -> str:
    """The CPU's feature flags (the builds use -march=native), or the machine's name where /proc is absent."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        import platform

        return platform.machine()


def _trusted(path: Path) -> bool:
    st = os.stat(path)
    return st.st_uid in (os.getuid(), 0) and not st.st_mode & 0o022


def lookup(name: str, filename: str) -> Path | None:
    """The verified library ``filename`` of the build ``name``, or None when there is none to trust."""
    folder = cache_dir() / name
    lib, manifest = folder / filename, folder / "manifest.json"
    try:
        if not all(_trusted(p) for p in (folder, lib, manifest)):
            return None
        with open(manifest, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("name") != name or meta.get("file") != filename or meta.get("sha256") != sha256(lib):
            return None
    except (OSError, ValueError):
        return None
    return lib


def publish(name: str, filename: str, build: Callable[[Path], None]) -> Path:
    """Build ``filename`` with ``build(folder)`` in a private folder, then move the folder into place whole.

    Returns the library's final path. If another process published the same build meanwhile, its (verified) copy
    is kept and ours is discarded; an unverifiable folder in the way is replaced.
    """
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        os.chmod(tmp, 0o755)
        build(tmp)
        lib = tmp / filename
        meta = {"name": name, "file": filename, "sha256": sha256(lib)}
        with open(tmp / "manifest.json", "w", encoding="utf-8") as f:
            json.dump(meta, f)
        final = root / name
        if lookup(name, filename) is None:
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            with contextlib.suppress(OSError):  # another process renamed its build there first
                os.rename(tmp, final)
        found = lookup(name, filename)
        if found is None:
            raise RuntimeError(f"the build of {name} in {root} could not be verified after it was written")
        return found
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
