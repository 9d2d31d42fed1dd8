"""Fingerprints of the files a run reads, so that a resume on changed data is refused instead of mixing two datasets.

A run records, in ``inputs.json``, for each field that names a file or folder (``data.train``, ``data.valid``,
``data.test``, ``data.root``, ``embedding.pretrained``): its size, its modification time and a SHA-256 of its
content (the whole file up to :data:`WHOLE` bytes; beyond, its first and last :data:`SAMPLE` bytes with its size
and time). A folder's fingerprint is that of its files' names, sizes and times. ``--resume`` compares the files as
they are now: a file whose content changed is refused with one line, unless ``--allow-changed-data`` says to go on,
which the run's record of resumes (``summary.json``) then keeps. A file touched but unchanged is accepted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from embdrop import _checks
from embdrop._io import read_json, write_json

FIELDS = ("data.train", "data.valid", "data.test", "data.root", "embedding.pretrained")
WHOLE = 256 << 20  # files up to this size are hashed whole
SAMPLE = 16 << 20  # larger ones: their first and last 16 MiB
FOLDER_FILES = 200_000  # a folder with more files than this is fingerprinted by its first ones
NAME = "inputs.json"


def _file(path: Path) -> dict:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if st.st_size <= WHOLE:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            return {"size": st.st_size, "sha256": h.hexdigest()}
        h.update(f.read(SAMPLE))
        f.seek(st.st_size - SAMPLE)
        h.update(f.read(SAMPLE))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256_sampled": h.hexdigest()}


def _folder(path: Path) -> dict:
    h = hashlib.sha256()
    count = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="surrogateescape"))
            count += 1
            if count >= FOLDER_FILES:
                return {"files": count, "listing_sha256": h.hexdigest()}
    return {"files": count, "listing_sha256": h.hexdigest()}


def fingerprints(values: dict[str, object]) -> dict[str, dict]:
    """``{field: fingerprint}`` for the fields of :data:`FIELDS` in ``values`` (a config's leaves) that name an
    existing file or folder; unreadable ones are left out (the reader names them when it fails)."""
    out = {}
    for field in FIELDS:
        value = values.get(field)
        if not isinstance(value, str) or not value:
            continue
        p = Path(value)
        try:
            if p.is_file():
                out[field] = {"path": value, **_file(p)}
            elif p.is_dir():
                out[field] = {"path": value, **_folder(p)}
        except OSError:
            continue
    return out


def save(run: Path, prints: dict[str, dict]) -> None:
    write_json(run / NAME, {"format": "embdrop-inputs-1", "inputs": prints}, indent=1)


def changed(run: Path, now: dict[str, dict]) -> dict[str, list]:
    """``{field: [then, now]}`` for every input recorded in ``run`` that is not what :func:`fingerprints` finds
    ``now``; {} for a run without a record (written before this check existed)."""
    path = run / NAME
    if not path.is_file():
        return {}
    saved = read_json(path, "a run directory written by embdrop train (a readable inputs.json)", argument="--resume")
    if not isinstance(saved, dict) or not isinstance(saved.get("inputs"), dict):
        raise _checks.invalid("--resume", "a run directory written by embdrop train (a readable inputs.json)",
                              repr(str(path)))  # fmt: skip
    out = {}
    for field, then in saved["inputs"].items():
        current = now.get(field)
        if current is None:
            out[field] = [then, "missing"]
        elif current != then:
            out[field] = [then, current]
    return out


def describe(changes: dict[str, list]) -> str:
    parts = []
    for field, (then, now) in changes.items():
        if now == "missing":
            parts.append(f"{field}={then.get('path')!r} is gone")
            continue
        what = (
            "size {:,} -> {:,}".format(then.get("size"), now.get("size"))
            if then.get("size") != now.get("size")
            else "content differs"
        )
        if "files" in then:
            what = (
                f"files {then['files']:,} -> {now.get('files', 0):,}"
                if then["files"] != now.get("files")
                else "its files' sizes or times differ"
            )
        parts.append(f"{field}={then.get('path')!r} changed ({what})")
    return "; ".join(parts)
