"""Your own table for ``tabular-entity``: generated tables are read with every row in one split, damaged ones (bytes
cut, inserted or flipped; any cell set to any text) are a UsageError in bounded memory, never another exception."""

import csv
import io
import json
import os
import sys

from hypothesis import strategies as st

from embdrop.recipes.registry import resolve
from embdrop.recipes.tabular_entity import OwnTable
from fuzz_support import damaged, folder, fuzz, refused_or_read

CELL = st.one_of(st.text(max_size=6), st.floats(allow_nan=True).map(repr), st.integers(-(10**30), 10**30).map(str))


@st.composite
def tables(draw):
    n = draw(st.integers(20, 60))
    city = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=n, max_size=n))
    x = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n))
    label = draw(st.lists(st.sampled_from(["yes", "no"]), min_size=n, max_size=n).filter(lambda v: len(set(v)) == 2))
    return [["city", "x", "label"]] + [[c, repr(v), lab] for c, v, lab in zip(city, x, label, strict=True)]


def encode(rows) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def task(path):
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet  # the task prints its split sizes
        try:
            return OwnTable(resolve("tabular-entity", [f"data.train={path}"]))
        finally:
            sys.stdout = stdout


def read_whole(rows):
    with folder() as d:
        (d / "t.csv").write_bytes(encode(rows))
        t = refused_or_read(lambda: task(d / "t.csv"), 10_000)
    if isinstance(t, Exception):  # a split too small to carve: said so
        assert "Invalid value for argument" in str(t)
        return
    assert sum(len(t.splits[s][3]) for s in ("train", "valid", "test")) == len(rows) - 1


def damaged_tables(example):
    rows, row, col, cell, cut, where, junk = example
    rows = [list(r) for r in rows]
    rows[row % len(rows)][col % 3] = cell
    with folder() as d:
        for k, bad in enumerate([encode(rows), *damaged(encode(rows), cut, where, junk)]):
            (d / f"{k}.csv").write_bytes(bad)
            refused_or_read(lambda k=k: task(d / f"{k}.csv"), len(bad))


test_tables_are_read_whole, test_tables_are_read_whole_many = fuzz(tables(), read_whole)
test_damaged_tables_are_refused, test_damaged_tables_are_refused_many = fuzz(
    st.tuples(
        tables(),
        st.integers(0, 100),
        st.integers(0, 2),
        CELL,
        st.integers(0, 10**5),
        st.integers(0, 10**5),
        st.binary(min_size=1, max_size=6),
    ),  # fmt: skip
    damaged_tables,
)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=5,
)


def json_lines_damage(example):
    rows, row, col, value, drop = example
    header, body = rows[0], rows[1:]
    objects = [dict(zip(header, r, strict=True)) for r in body]
    obj = objects[row % len(objects)]
    key = header[col % 3]
    if drop:
        del obj[key]
    else:
        obj[key] = value
    data = "\n".join(json.dumps(o) for o in objects).encode()
    with folder() as d:
        (d / "t.jsonl").write_bytes(data)
        refused_or_read(lambda: task(d / "t.jsonl"), len(data))


test_damaged_json_lines_are_refused, test_damaged_json_lines_are_refused_many = fuzz(
    st.tuples(tables(), st.integers(0, 100), st.integers(0, 2), JSON, st.booleans()), json_lines_damage
)


def rows_to_predict(example):
    """A table to predict (``embdrop predict RUN --data``): the training columns without the target are read whole,
    one input row per row; any damage is a UsageError in bounded memory."""
    rows, row, col, cell, cut, where, junk = example
    with folder() as d:
        (d / "t.csv").write_bytes(encode(rows))
        t = refused_or_read(lambda: task(d / "t.csv"), 10_000)
        if isinstance(t, Exception):  # a split too small to carve: said so (read_whole checks the message)
            return
        config = resolve("tabular-entity", [f"data.train={d / 't.csv'}"])
        unlabelled = [r[:2] for r in rows]
        (d / "p.csv").write_bytes(encode(unlabelled))
        codes, hashed, numeric = t.features(t.read(str(d / "p.csv"), config.data))
        assert len(codes) == len(hashed) == len(numeric) == len(rows) - 1
        unlabelled[row % len(unlabelled)][col % 2] = cell
        for k, bad in enumerate([encode(unlabelled), *damaged(encode(unlabelled), cut, where, junk)]):
            (d / f"{k}.csv").write_bytes(bad)
            refused_or_read(lambda k=k: t.features(t.read(str(d / f"{k}.csv"), config.data)), len(bad))


test_rows_to_predict_are_read_or_refused, test_rows_to_predict_are_read_or_refused_many = fuzz(
    st.tuples(
        tables(),
        st.integers(0, 100),
        st.integers(0, 1),
        CELL,
        st.integers(0, 10**5),
        st.integers(0, 10**5),
        st.binary(min_size=1, max_size=6),
    ),  # fmt: skip
    rows_to_predict,
)
