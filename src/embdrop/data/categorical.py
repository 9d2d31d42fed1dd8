"""Categorical columns to ids for entity embeddings, with an unknown bucket, or to stable values for hashing."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from embdrop import _checks, _extras
from embdrop._io import read_json, write_json
from embdrop.functional.hashing import string_to_int64

UNKNOWN = 0
_FORMAT = "embdrop.categories/1"


class CategoryEncoder:
    """Maps each categorical column of a table to ids: 0 is the unknown bucket, 1.. the categories seen in ``fit``.

    Categories are ordered by count (most frequent first, ties by first appearance). Those seen fewer than
    ``min_freq`` times, those beyond ``max_size`` (the unknown bucket counted), and any value not seen in ``fit``
    all map to 0, so an embedding of ``cardinalities[column]`` rows takes every id. For columns with too many
    levels for a table, :meth:`hash_values` gives stable int64 values for :class:`embdrop.HashEmbedding` instead.

    Args:
        columns: the columns to encode, in the order of the output's columns.
        min_freq: categories seen fewer times go to the unknown bucket.
        max_size: at most this many ids per column, the unknown bucket included (None: no limit).

    Example:
        >>> import pandas as pd
        >>> enc = CategoryEncoder(["city"]).fit(pd.DataFrame({"city": ["Oslo", "Rome", "Oslo"]}))
        >>> enc.transform(pd.DataFrame({"city": ["Rome", "Oslo", "Lima"]})).tolist()
        [[2], [1], [0]]
        >>> enc.cardinalities
        {'city': 3}
    """

    def __init__(self, columns: Sequence[str], *, min_freq: int = 1, max_size: int | None = None) -> None:
        if isinstance(columns, str) or not columns:
            raise _checks.invalid("columns", "a non-empty list of column names", repr(columns))
        self.columns = list(columns)
        self.min_freq = _checks.integer("min_freq", min_freq, low=1)
        self.max_size = None if max_size is None else _checks.integer("max_size", max_size, low=2)
        self.categories: dict[str, list] = {}

    def _column(self, df, name: str):
        if name not in df.columns:
            raise _checks.invalid("df", f"a table with the column {name!r}", f"columns {list(df.columns)}")
        return df[name]

    def fit(self, df) -> CategoryEncoder:
        """Learn each column's categories from a pandas DataFrame; returns self."""
        for name in self.columns:
            counts = self._column(df, name).value_counts(sort=False, dropna=False)  # first-appearance order
            counts = counts[counts >= self.min_freq]
            order = np.argsort(-counts.to_numpy(), kind="stable")
            values = [v.item() if hasattr(v, "item") else v for v in counts.index[order]]
            if self.max_size is not None:
                values = values[: self.max_size - 1]
            self.categories[name] = values
        return self

    @property
    def cardinalities(self) -> dict[str, int]:
        """Rows each column's embedding needs: its categories plus the unknown bucket."""
        self._fitted()
        return {name: len(v) + 1 for name, v in self.categories.items()}

    def _fitted(self) -> None:
        if not self.categories:
            raise _checks.invalid("self", "a fitted CategoryEncoder (call fit first)", "an unfitted one")

    def transform(self, df) -> Tensor:
        """Ids (N, len(columns)) int64; unknown values are 0."""
        _extras.need("pandas")
        import pandas as pd

        self._fitted()
        out = np.empty((len(df), len(self.columns)), dtype=np.int64)
        for j, name in enumerate(self.columns):
            index = pd.Index(self.categories[name])
            out[:, j] = index.get_indexer(self._column(df, name)) + 1  # -1 (unseen) + 1 = the unknown bucket
        return torch.from_numpy(out)

    def hash_values(self, df, column: str) -> Tensor:
        """Stable int64 values (N,) of one column for :class:`embdrop.HashEmbedding`: ints as they are, anything
        else through BLAKE2b of its ``str`` (the same value on every machine and in every process)."""
        _extras.need("pandas")
        import pandas as pd

        col = self._column(df, column)
        if pd.api.types.is_integer_dtype(col):
            return torch.tensor(col.to_numpy(dtype=np.int64))
        # a missing cell (NaN, or <NA> in a pyarrow string column, which astype(str) keeps) is a value of its own:
        # factorize's sentinel -1 would index past an empty table of uniques
        codes, uniques = pd.factorize(col.astype(str), use_na_sentinel=False)
        table = np.array([string_to_int64(str(u)) for u in uniques], dtype=np.int64)
        return torch.from_numpy(table[codes])

    def save(self, path: str | os.PathLike) -> None:
        """Write the categories as JSON, atomically."""
        self._fitted()
        write_json(path, {"format": _FORMAT, "columns": self.columns, "categories": self.categories})

    @classmethod
    def load(cls, path: str | os.PathLike) -> CategoryEncoder:
        """Read an encoder written by :meth:`save`."""
        expected = f"a JSON file written by CategoryEncoder.save (format {_FORMAT!r})"
        data = read_json(path, expected)
        if not (isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(data.get("categories"), dict)):
            raise _checks.invalid("path", expected, f"{str(path)!r} (not in that format)")
        enc = cls(data["columns"])
        enc.categories = {k: list(v) for k, v in data["categories"].items()}
        return enc
