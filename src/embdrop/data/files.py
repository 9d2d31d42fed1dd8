"""Your own labelled texts: CSV/TSV, JSON lines, ``label<TAB>text`` lines, or a folder with one sub-folder per class.

:func:`read_texts` reads one file or folder into texts and string labels; :func:`load_text_files` reads the
training file and the optional validation and test files into a :class:`Dataset` whose classes are the training
labels in a stable order (numeric labels by value, others alphabetically), carving a stratified validation and
test split from the training file with a fixed seed where none is given.

Formats, by the path:

- a folder: each sub-folder is a class, each file in it one text (Keras' ``text_dataset_from_directory``; IMDB's
  ``aclImdb/train``: ``neg/``, ``pos/`` and the ignored ``unsup/`` when ``classes`` names the ones to read);
- ``.csv`` / ``.tsv`` (with a header row): the ``text`` and ``label`` columns, named by ``text_column`` and
  ``label_column``;
- ``.jsonl`` / ``.jsonl.gz`` / ``.json`` (one JSON object per line): the same two keys;
- anything else (``.txt``): one example per line, ``<label><TAB><text>``, or ``<label> <text>`` when the line has
  no tab (the fastText and many corpora's layout).

Every mistake names the file, and the line where there is one: a missing column lists the columns there are; an
empty text or label, or a byte that does not decode in ``encoding``, gives its line (and byte offset).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from embdrop import _checks
from embdrop.data._splits import SEED, Dataset, TextSplit
from embdrop.data.text_formats import (
    _decode,
    _files_below,
    _folder,
    _format,
    _jsonl,
    _lines,
    _read_bytes,
    _read_text,
    _split_lines,
    _table,
)


def read_texts(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    encoding: str = "utf-8",
    argument: str = "--data",
    classes: tuple[str, ...] | None = None,
) -> tuple[list[str], list[str]]:
    """Texts and their labels (as strings) from one file or folder (see the module docstring for the formats)."""
    p = Path(path)
    if not p.exists():
        raise _checks.invalid(argument, "an existing file or folder", repr(str(path)))
    fmt = _format(p)
    if fmt == "folder":
        return _folder(p, encoding, argument, classes)
    if classes is not None:  # it picks sub-folders: given with a file it would change nothing, silently
        raise _checks.invalid("data.classes", f"a folder of class sub-folders in {argument} (data.classes picks "
                              "among them)", f"{','.join(classes)!r} with the file {str(p)!r}")  # fmt: skip
    if fmt in ("csv", "tsv", "jsonl") and text_column == label_column:  # named by the field that left its default
        field, other = ("data.label", "data.text") if text_column == "text" else ("data.text", "data.label")
        raise _checks.invalid(field, f"a column other than {other}'s (the texts and their labels are two columns)",
                              repr(text_column))  # fmt: skip
    text = _read_text(p, encoding, argument, "a file with at least one example")
    if fmt in ("csv", "tsv"):
        texts, labels = _table(text, p, "," if fmt == "csv" else "\t", text_column, label_column, argument)
    elif fmt == "jsonl":
        texts, labels = _jsonl(text, p, text_column, label_column, argument)
    else:
        texts, labels = _lines(text, p, argument)
    if not texts:
        raise _checks.invalid(argument, "a file with at least one example", f"{str(p)!r} (no rows)")
    return texts, labels


def read_texts_to_predict(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    encoding: str = "utf-8",
    argument: str = "--data",
) -> tuple[list[str], list[str] | None]:
    """Texts to classify and, where the file has them, their labels (else None), in the file's order.

    The training formats, with the label optional: a CSV/TSV's ``label_column`` or a JSON line's key is read when
    the header (the first object) has it; a folder of class sub-folders gives labels, a folder of files one text
    per file; any other file is one text per line, or ``<label><TAB><text>`` when every line has a tab.
    """
    p = Path(path)
    if not p.exists():
        raise _checks.invalid(argument, "an existing file or folder", repr(str(path)))
    fmt = _format(p)
    if fmt == "folder":
        if any(d.is_dir() and not d.name.startswith(".") for d in p.iterdir()):
            return _folder(p, encoding, argument, None)
        texts = []
        for f in _files_below(p):
            t = _decode(_read_bytes(f, argument), f, encoding, argument)
            if not t.strip():
                raise _checks.invalid(argument, "a non-empty text in every file", f"{str(f)!r} (empty)")
            texts.append(t)
        if not texts:
            raise _checks.invalid(argument, "a folder of text files", f"{str(p)!r} (none)")
        return texts, None
    text = _read_text(p, encoding, argument, "a file with at least one text")
    rows = [line for line in _split_lines(text) if line.strip()]
    if fmt in ("csv", "tsv"):
        try:  # only to see whether there is a label column; the table's own reader says what is wrong with it
            header = next(csv.reader(io.StringIO(rows[0], newline=""), delimiter="," if fmt == "csv" else "\t"), [])
        except csv.Error:
            header = []
        labelled = label_column in [h.strip() for h in header] and label_column != text_column
        texts, labels = _table(text, p, "," if fmt == "csv" else "\t", text_column,
                               label_column if labelled else None, argument)  # fmt: skip
    elif fmt == "jsonl":
        try:
            first = json.loads(rows[0])
        except (json.JSONDecodeError, RecursionError):
            first = None
        labelled = isinstance(first, dict) and label_column in first and label_column != text_column
        texts, labels = _jsonl(text, p, text_column, label_column if labelled else None, argument)
        labels = labels if labelled else None
    elif all("\t" in line for line in rows):
        texts, labels = _lines(text, p, argument)
    else:
        texts, labels = [line.removesuffix("\r") for line in rows], None
    if not texts:
        raise _checks.invalid(argument, "a file with at least one text", f"{str(p)!r} (no rows)")
    return texts, labels


def class_order(labels: list[str], path: str, argument: str = "--data") -> tuple[str, ...]:
    """The classes of the training labels (as :func:`~embdrop.data.text_formats.normal_label` writes them) in a
    stable order: ints by value, otherwise alphabetical.

    Labels that all parse as numbers but not all as integers are a regression target, not classes: refused.
    """
    names = set(labels)
    if len(names) < 2:
        raise _checks.invalid(argument, "labels of at least 2 classes", f"{path!r} (only {sorted(names)})")
    if len(names) > 20 and len(names) > len(labels) // 2:  # nearly one class per example: not a label column
        raise _checks.invalid(argument, "labels shared by several examples each (is data.label the right column?)",
                              f"{path!r} ({len(names):,} classes in {len(labels):,} examples)")  # fmt: skip
    numeric = [_as_float(x) for x in names]
    if all(v is not None for v in numeric):
        if not all(float(v).is_integer() for v in numeric):
            examples = sorted(n for n, v in zip(names, numeric, strict=True) if not float(v).is_integer())[:3]
            raise _checks.invalid(argument, "class labels (strings or ints), not a continuous target",
                                  f"{path!r} (labels such as {examples})")  # fmt: skip
        return tuple(sorted(names, key=lambda x: (float(x), x)))
    return tuple(sorted(names))


def _as_float(x: str) -> float | None:
    try:
        v = float(x)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _stratified(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) indices: ``fraction`` of each class held out (at least one where the class has two or more)."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        if k == 0 and len(idx) >= 2 and fraction > 0:
            k = 1
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def load_text_files(
    train: str | os.PathLike,
    valid: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    encoding: str = "utf-8",
    split: float = 0.1,
    classes: tuple[str, ...] | None = None,
    log=print,
) -> Dataset:
    """A text-classification :class:`Dataset` from the user's files.

    Args:
        train: the training file or folder.
        valid: the validation file; None carves ``split`` of ``train`` out, stratified, with seed 0.
        test: the test file; None carves another ``split`` of ``train`` out the same way.
        text_column: the text column or key (CSV/TSV/JSONL).
        label_column: the label column or key.
        encoding: the files' encoding.
        split: the fraction of ``train`` held out for each missing split.
        classes: for folders, the sub-folders to read (None: all).
        log: where the carved sizes are reported.
    """
    kw = {"text_column": text_column, "label_column": label_column, "encoding": encoding, "classes": classes}
    texts, labels = read_texts(train, argument="--data", **kw)
    names = class_order(labels, str(train))
    index = {c: i for i, c in enumerate(names)}
    y = np.array([index[x] for x in labels], dtype=np.int64)
    parts: dict[str, tuple[list[str], np.ndarray]] = {"train": (texts, y)}
    carved = []
    total = len(texts)
    for name, path in (("test", test), ("valid", valid)):
        if path is not None:
            t, lab = read_texts(path, argument=f"--{name}", **kw)
            unknown = sorted(set(lab) - set(names))
            if unknown:
                raise _checks.invalid(f"--{name}", f"labels that occur in the training file ({list(names)})",
                                      f"{str(path)!r} has {unknown[:5]}")  # fmt: skip
            parts[name] = (t, np.array([index[x] for x in lab], dtype=np.int64))
            absent = [c for c in names if c not in set(lab)]
            if absent:  # aclImdb's train/unsup, say: a folder that is not a class (data.classes leaves it out)
                log(f"note: classes of the training data with no example in {path}: {', '.join(absent[:10])} "
                    "(data.classes=A,B reads only the sub-folders you name)")  # fmt: skip
        else:
            t, lab = parts["train"]
            keep, held = _stratified(lab, split * total / len(lab), SEED + (name == "valid"))  # of the whole file
            if len(keep) == 0 or len(held) == 0:
                raise _checks.invalid(f"--{name}", f"a {name} file, or a training file large enough to hold "
                                      f"{split:.0%} out", f"{len(t)} training examples")  # fmt: skip
            parts[name] = ([t[i] for i in held], lab[held])
            parts["train"] = ([t[i] for i in keep], lab[keep])
            carved.append(name)
    splits = {k: TextSplit(parts[k][0], torch.from_numpy(parts[k][1])) for k in ("train", "valid", "test")}
    counts = Counter(splits["train"].labels.tolist())
    sizes = ", ".join(f"{k} {len(splits[k]):,}" for k in ("train", "valid", "test"))
    if carved:
        carved_words = " and ".join(sorted(carved, reverse=True))  # "valid and test"
        each = " each" if len(carved) > 1 else ""
        real = {k: len(splits[k]) / total for k in carved}
        if all(abs(v - split) <= 0.01 for v in real.values()):
            log(f"data: {carved_words} carved from {train} ({split:.0%}{each}, stratified, seed 0): {sizes}")
        else:  # small classes: the share is rounded per class, and a class of two or more gives at least one
            really = " and ".join(f"{k} {real[k]:.1%}" for k in sorted(carved, reverse=True))
            log(
                f"data: {carved_words} carved from {train} (stratified, seed 0; {split:.0%}{each} asked, rounded per "
                f"class with at least one example of every class of two or more: {really} of the file held out): "
                f"{sizes}"
            )
    else:
        log(f"data: {sizes}")
    shown = ", ".join(f"{names[k]} {v:,}" for k, v in sorted(counts.items())[:20])
    log(f"classes ({len(names)}, training examples): {shown}" + (", ..." if len(names) > 20 else ""))
    description = f"your files: {train}" + "".join(f", {k} {p}" for k, p in (("valid", valid), ("test", test)) if p)
    ds = Dataset(Path(train).name, "text-classification", splits, description, classes=names)
    ds.extra["class_counts"] = {names[k]: v for k, v in sorted(counts.items())}
    return ds
