"""The formats :mod:`embdrop.data.files` reads, one reader each (CSV/TSV, JSON lines, ``label<TAB>text`` lines, a
folder of class folders), with the bounds every user file gets: its size against the memory there is, its lines'
length, its encoding, its keys; each mistake names the file and the line."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import math
import os
import zlib
from pathlib import Path

from embdrop import _checks
from embdrop._io import available_memory

MAX_LINE = 1 << 24  # 16 MiB: a longer single line is refused as "not a text file", not read into memory whole


def reading_encoding(encoding: str) -> str:
    """The codec that reads ``encoding``: UTF-8 as ``utf-8-sig``, since a byte-order mark (spreadsheet programs
    write one) is not part of the text. An unknown name raises LookupError."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _decode(raw: bytes, path: Path, encoding: str, argument: str) -> str:
    try:
        return raw.decode(reading_encoding(encoding))
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise _checks.invalid(argument, f"a text file in {encoding} (data.encoding names another)",
                              f"{str(path)!r}: a byte that is not {encoding} at line {line}, byte offset "
                              f"{e.start}") from None  # fmt: skip
    except LookupError:
        raise _checks.invalid("data.encoding", "an encoding Python knows, such as utf-8 or latin-1",
                              repr(encoding)) from None  # fmt: skip


def read_limit() -> int:
    """The most bytes of text read from one file: an eighth of the free memory (the text is copied as it is
    decoded, split and tokenized, and the model needs the rest), at most 4 GiB (also where it cannot be read)."""
    free = available_memory()
    return 4 << 30 if free is None else min(4 << 30, free // 8)


def _read_bytes(path: Path, argument: str) -> bytes:
    """The file's bytes (decompressed for a ``.gz``), refused beyond :func:`read_limit`: a gzip bomb or a file
    larger than memory is one line, not a machine that swaps."""
    limit = read_limit()
    if not path.is_file():  # /dev/zero, a pipe: no end to read to
        raise _checks.invalid(argument, "a regular file (or a folder)", repr(str(path)))
    try:
        if path.name.endswith(".gz"):  # a mebibyte at a time: read(n) allocates n bytes before it reads
            parts, total = [], 0
            with gzip.open(path, "rb") as f:
                while total <= limit and (part := f.read(1 << 20)):
                    parts.append(part)
                    total += len(part)
            data = b"".join(parts)
        else:
            data = path.read_bytes() if path.stat().st_size <= limit else None
    except (OSError, EOFError, zlib.error) as e:
        raise _checks.invalid(argument, "a readable file", f"{str(path)!r} ({e})") from None
    if data is None or len(data) > limit:
        raise _checks.invalid(argument, f"a file of at most {limit:,} bytes of text (an eighth of the free memory)",
                              f"{str(path)!r} (larger)")  # fmt: skip
    return data


def _format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if path.is_dir():
        return "folder"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".jsonl") or name.endswith(".json"):
        return "jsonl"
    return "lines"


def _check_row(path: Path, line: int, text: object, label: object, argument: str) -> tuple[str, str]:
    where = f"{str(path)!r} line {line}"
    if label is None or (isinstance(label, str) and not label.strip()):
        raise _checks.invalid(argument, "a label on every row", f"{where}: an empty label")
    if isinstance(label, bool) or not isinstance(label, (str, int, float)):
        raise _checks.invalid(argument, "labels that are strings or ints", f"{where}: label {label!r}")
    if not isinstance(text, str) or not text.strip():
        raise _checks.invalid(argument, "a non-empty text on every row", f"{where}: text {text!r}")
    normal = normal_label(label)
    if normal is None:
        raise _checks.invalid(argument, "a label on every row (a missing value such as NaN is not a class)",
                              f"{where}: label {label!r}")  # fmt: skip
    return text, normal


def normal_label(label: str | int | float) -> str | None:
    """A label as one class name: numbers by value (``1``, ``1.0``, ``01`` and ``1e0`` are the class ``1``; ``0.5``
    stays ``0.5``), other text stripped. None for a missing value: NaN, or an infinity (as number or as text)."""
    if isinstance(label, str):
        label = label.strip()
        value = _parse_float(label)
        if value is None:
            return label or None
    else:
        value = float(label)
    if not math.isfinite(value):
        return None
    if value.is_integer():
        return str(int(value)) if not isinstance(label, int) else str(label)
    return repr(value)


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def _table(text: str, path: Path, delimiter: str, text_column: str, label_column: str | None, argument: str):
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise _checks.invalid(argument, "a file with a header row and at least one example",
                              f"{str(path)!r} (empty)") from None  # fmt: skip
    except csv.Error as e:
        raise _checks.invalid(argument, "a CSV/TSV file", f"{str(path)!r} ({e})") from None
    header = [h.strip() for h in header]
    repeated = sorted({h for h in header if header.count(h) > 1 and h in (text_column, label_column)})
    if repeated:
        times = header.count(repeated[0])
        raise _checks.invalid(argument, "a header row naming each column once",
                              f"{str(path)!r}: column {repeated[0]!r} appears {times} times")  # fmt: skip
    for field, column in (("data.text", text_column), ("data.label", label_column)):
        if column is not None and column not in header:
            raise _checks.invalid(field, f"a column of {str(path)!r}: one of {header}", repr(column))
    if label_column is None:
        return _table_texts(reader, path, len(header), header.index(text_column), argument), None
    ti, li = header.index(text_column), header.index(label_column)
    texts, labels = [], []
    width = len(header)
    try:
        for row in reader:
            if len(row) == width and row[ti].strip() and row[li].strip():  # the common case, checked inline
                label = normal_label(row[li])
                if label is not None:
                    texts.append(row[ti])
                    labels.append(label)
                    continue
                _check_row(path, reader.line_num, row[ti], row[li], argument)  # raises: a missing value
            if not row or all(not c.strip() for c in row):
                continue
            line = reader.line_num
            if len(row) != width:
                raise _checks.invalid(argument, f"rows of {width} fields, as the header",
                                      f"{str(path)!r} line {line}: {len(row)} fields")  # fmt: skip
            _check_row(path, line, row[ti], row[li], argument)  # raises: an empty text or label
    except csv.Error as e:
        raise _checks.invalid(argument, "a CSV/TSV file", f"{str(path)!r} line {reader.line_num} ({e})") from None
    return texts, labels


def _table_texts(reader, path: Path, width: int, ti: int, argument: str) -> list[str]:
    """The text column of the remaining rows (a file to predict: no labels)."""
    texts = []
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            where = f"{str(path)!r} line {reader.line_num}"
            if len(row) != width:
                raise _checks.invalid(argument, f"rows of {width} fields, as the header", f"{where}: {len(row)} fields")
            if not row[ti].strip():
                raise _checks.invalid(argument, "a non-empty text on every row", f"{where}: text {row[ti]!r}")
            texts.append(row[ti])
    except csv.Error as e:
        raise _checks.invalid(argument, "a CSV/TSV file", f"{str(path)!r} line {reader.line_num} ({e})") from None
    return texts


def _split_lines(text: str) -> list[str]:
    """Lines split at a newline only (``str.splitlines`` would also split at U+2028 and U+0085 inside a text)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _jsonl(text: str, path: Path, text_column: str, label_column: str | None, argument: str):
    texts, labels = [], []
    for line, row in enumerate(_split_lines(text), 1):
        if not row.strip():
            continue
        try:
            obj = json.loads(row, object_pairs_hook=_unique_keys)
        except _RepeatedKey as e:
            raise _checks.invalid(argument, "JSON objects naming each key once",
                                  f"{str(path)!r} line {line}: key {e.args[0]!r} appears twice") from None  # fmt: skip
        except (json.JSONDecodeError, RecursionError):
            raise _checks.invalid(argument, "one JSON object per line", f"{str(path)!r} line {line}") from None
        if not isinstance(obj, dict):
            raise _checks.invalid(argument, "one JSON object per line", f"{str(path)!r} line {line}: {row[:40]!r}")
        for field, key in (("data.text", text_column), ("data.label", label_column)):
            if key is not None and key not in obj:
                raise _checks.invalid(field, f"a key of every object in {str(path)!r}; line {line} has "
                                      f"{sorted(obj)}", repr(key))  # fmt: skip
        label = "-" if label_column is None else obj[label_column]  # a file to predict: no labels
        t, lab = _check_row(path, line, obj[text_column], label, argument)
        texts.append(t)
        labels.append(lab)
    return texts, labels


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = {}
    for k, v in pairs:
        if k in out:
            raise _RepeatedKey(k)
        out[k] = v
    return out


def _lines(text: str, path: Path, argument: str):
    texts, labels = [], []
    for line, row in enumerate(_split_lines(text), 1):
        if not row.strip():
            continue
        label, sep, body = row.partition("\t")
        if not sep:
            label, _, body = row.strip().partition(" ")
        t, lab = _check_row(path, line, body, label, argument)
        texts.append(t)
        labels.append(lab)
    return texts, labels


def _folder(path: Path, encoding: str, argument: str, classes: tuple[str, ...] | None):
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is not None:
        missing = [c for c in classes if c not in {p.name for p in subs}]
        if missing:
            raise _checks.invalid("data.classes", f"sub-folders of {str(path)!r}: {[p.name for p in subs]}",
                                  repr(",".join(missing)))  # fmt: skip
        subs = [p for p in subs if p.name in classes]
    if not subs:
        raise _checks.invalid(argument, "a folder with one sub-folder of text files per class",
                              f"{str(path)!r} (no sub-folders)")  # fmt: skip
    texts, labels = [], []
    for sub in subs:
        for f in _files_below(sub):
            t = _decode(_read_bytes(f, argument), f, encoding, argument)
            if not t.strip():
                raise _checks.invalid(argument, "a non-empty text in every file", f"{str(f)!r} (empty)")
            texts.append(t)
            labels.append(sub.name)
    if not texts:
        raise _checks.invalid(argument, "text files in the class sub-folders", f"{str(path)!r} (none)")
    return texts, labels


def _files_below(folder: Path) -> list[Path]:
    """Every file in ``folder`` and its sub-folders, at any depth (as Keras' ``text_dataset_from_directory``),
    in a stable order; names starting with a dot (hidden files and folders) are left out."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    return [f for f in found if f.is_file()]


def _read_text(p: Path, encoding: str, argument: str, expected: str) -> str:
    """A user's text file, read within the memory bound, refused when empty or with a line over ``MAX_LINE``."""
    raw = _read_bytes(p, argument)
    if not raw.strip():
        raise _checks.invalid(argument, expected, f"{str(p)!r} (empty)")
    longest = max((len(x) for x in raw.split(b"\n")), default=0)
    if longest > MAX_LINE:
        raise _checks.invalid(argument, f"lines shorter than {MAX_LINE:,} bytes",
                              f"{str(p)!r} (a line of {longest:,} bytes)")  # fmt: skip
    return _decode(raw, p, encoding, argument)
