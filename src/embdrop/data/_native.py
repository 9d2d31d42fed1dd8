"""The compiled tokenizer (``_tokenize.c``): built with the system C compiler on first use, cached, loaded by ctypes.

The build takes well under a second (plain C, no Python or torch headers). The library is cached in
``$EMBDROP_CACHE`` (default ``~/.cache/embdrop``), keyed on the source and the compiler and verified by content
before it is loaded (see :mod:`embdrop._cache`). Where there is no compiler, :func:`library`
returns None after one warning and the tokenizer uses its pure-Python path, which gives the same ids more slowly.
``EMBDROP_TOKENIZER=python`` chooses the Python path on purpose.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np

from embdrop import _cache

_SOURCE = Path(__file__).with_name("_tokenize.c")
_FLAGS = ["-O3", "-shared", "-fPIC"]
_state: dict = {}


def cache_dir() -> Path:
    return _cache.cache_dir()


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _build() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (looked for $CC, cc, gcc, clang)")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    name = "embdrop_tokenize_" + _cache.key(_SOURCE.read_bytes(), " ".join([cc, *_FLAGS]), *version)
    filename = name + ".so"
    target = _cache.lookup(name, filename)
    if target is None:

        def build(folder: Path) -> None:
            try:
                subprocess.run([cc, *_FLAGS, str(_SOURCE), "-o", str(folder / filename)], check=True,
                               capture_output=True, text=True)  # fmt: skip
            except subprocess.CalledProcessError as e:
                last = e.stderr.strip().splitlines()[-1] if e.stderr.strip() else e
                raise RuntimeError(f"{cc} failed: {last}") from e

        target = _cache.publish(name, filename, build)
    lib = ctypes.CDLL(str(target))
    i64p = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")
    u8p = np.ctypeslib.ndpointer(dtype=np.uint8, flags="C_CONTIGUOUS")
    lib.embdrop_encode.argtypes = [
        u8p, i64p, ctypes.c_int64, u8p, i64p, ctypes.c_int64, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, i64p, i64p
    ]  # fmt: skip
    lib.embdrop_encode.restype = ctypes.c_int64
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded library, building it on the first call; None when it cannot be built (one warning says why)."""
    if "lib" not in _state:
        _state["lib"] = None
        if os.environ.get("EMBDROP_TOKENIZER", "").lower() == "python":
            return None
        try:
            _state["lib"] = _build()
        except Exception as e:  # no compiler, a failed build, an unloadable file: all mean "use the Python path"
            warnings.warn(
                f"embdrop: the compiled tokenizer could not be built ({type(e).__name__}: {e}); "
                "Tokenizer.encode uses its Python path instead (same ids, slower).",
                RuntimeWarning,
                stacklevel=3,
            )
    return _state["lib"]


def pack(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings back to back as uint8, with int64 offsets (len + 1)."""
    off = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strings], out=off[1:])
    buf = np.frombuffer(b"".join(strings) or b"\0", dtype=np.uint8)
    return buf, off


def encode(docs: list[bytes], vocab: tuple[np.ndarray, np.ndarray], mode: int, unk_id: int, eos_id: int):
    """Token ids of each document: (flat int64 ids, int64 offsets of length len(docs) + 1)."""
    lib = library()
    buf, off = pack(docs)
    out = np.empty(int(off[-1]) + len(docs) + 1, dtype=np.int64)
    out_off = np.empty(len(docs) + 1, dtype=np.int64)
    words, word_off = vocab
    n = lib.embdrop_encode(buf, off, len(docs), words, word_off, len(word_off) - 1, mode, unk_id, eos_id, out, out_off)
    if n < 0:
        raise MemoryError("embdrop: the compiled tokenizer ran out of memory")
    return out[:n], out_off
