"""Your own tables (CSV/TSV with a header row, or JSON lines), read with pandas and checked: each mistake names the
flag that gave the file, the line and the value. The table recipes build their features from what these return."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embdrop import _checks, _extras


def read_table(path: str, argument: str, *, encoding: str, label: str, need_label: bool = True):
    """The CSV/TSV (a header row) or JSON lines table at ``path`` as a pandas DataFrame, checked: it exists and
    parses in ``encoding``, has rows, names each column once (in text), holds one value per cell, and has the
    target column ``label`` filled on every row (``need_label=False``: a table to predict, which may lack it).
    Mistakes name ``argument`` (the flag that gave the path) and the line."""
    _extras.need("pandas")
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise _checks.invalid(argument, "an existing CSV/TSV or JSON lines file", repr(path))
    name = p.name.lower().removesuffix(".gz")
    try:
        if name.endswith((".jsonl", ".json")):
            df = pd.read_json(p, lines=True, encoding=encoding)
        else:
            df = pd.read_csv(p, sep="\t" if name.endswith(".tsv") else ",", encoding=encoding,
                             skipinitialspace=True)  # fmt: skip
    except UnicodeDecodeError as e:
        raise _checks.invalid(argument, f"a file in {encoding} (data.encoding names another)",
                              f"{path!r} (byte offset {e.start} is not {encoding})") from None  # fmt: skip
    except (ValueError, OSError) as e:  # pandas' parser errors, an empty file
        raise _checks.invalid(argument, "a table with a header row", f"{path!r} ({type(e).__name__}: {e})") from None
    if len(df) == 0:
        raise _checks.invalid(argument, "a table with at least one row", f"{path!r} (no rows)")
    if not name.endswith((".jsonl", ".json")):  # pandas renames a repeated column (x, x.1): read the header itself
        _check_header(p, "\t" if name.endswith(".tsv") else ",", encoding, argument, path)
    for c in df.columns:  # JSON lines may nest: a cell must be one value
        if not isinstance(c, str):
            raise _checks.invalid(argument, "column names that are text", f"{path!r} column {c!r}")
        if df[c].dtype == object:
            nested = np.flatnonzero(df[c].map(lambda v: isinstance(v, (dict, list, tuple, set))).to_numpy())
            if len(nested):
                shown = str(df[c].iloc[nested[0]])[:40]
                raise _checks.invalid(argument, f"one value per cell (column {c!r})",
                                      f"{path!r} line {int(nested[0]) + 1}: {shown}")  # fmt: skip
    if not need_label and label not in df.columns:
        return df  # a table to predict: no target
    if label not in df.columns:
        raise _checks.invalid("data.label", f"a column of {path!r}: one of {list(df.columns)}", repr(label))
    if df[label].isna().any():
        row = int(np.flatnonzero(df[label].isna().to_numpy())[0]) + 2  # the header is line 1
        raise _checks.invalid(argument, f"a target ({label}) on every row", f"{path!r} line {row}: empty")
    return df


def _check_header(p: Path, sep: str, encoding: str, argument: str, path: str) -> None:
    import csv
    import gzip

    from embdrop.data.text_formats import reading_encoding

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rt", encoding=reading_encoding(encoding), newline="") as f:
            header = next(csv.reader(f, delimiter=sep, skipinitialspace=True), [])
    except (OSError, UnicodeDecodeError, LookupError, csv.Error, EOFError):
        return  # pandas read it: its own header is what the table has
    header = [h.strip() for h in header]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        times = header.count(repeated[0])
        raise _checks.invalid(argument, "a header row naming each column once",
                              f"{path!r}: column {repeated[0]!r} appears {times} times")  # fmt: skip


def check_numbers(frame, columns: list[str], argument: str, path: str) -> None:
    """Every value of the numeric ``columns`` is a number (a missing one is allowed) and none is infinite."""
    import pandas as pd

    for c in columns:
        col = frame[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            parsed = pd.to_numeric(col, errors="coerce")
            bad = np.flatnonzero((parsed.isna() & col.notna()).to_numpy())
            if len(bad) or pd.api.types.is_bool_dtype(col):
                row = int(bad[0]) if len(bad) else 0
                raise _checks.invalid(argument, f"numbers in the numeric column {c!r} (as in the training file)",
                                      f"{path!r} line {row + 2}: {col.iloc[row]!r}")  # fmt: skip
            col = parsed
            frame[c] = parsed
        values = col.to_numpy(dtype=float)
        inf = np.flatnonzero(np.isinf(values))
        if len(inf):
            raise _checks.invalid(argument, f"finite numbers in the numeric column {c!r} (no inf)",
                                  f"{path!r} line {int(inf[0]) + 2}: {values[int(inf[0])]}")  # fmt: skip


def is_numeric(col) -> bool:
    """A pandas column of numbers (not booleans)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def as_number(v: str) -> float | None:
    """``v`` as a float, or None where it is not a number."""
    try:
        return float(v)
    except ValueError:
        return None
