"""Vector files (GloVe text, word2vec text and binary, gzip'd or not): generated files round-trip, damaged ones are a
UsageError in bounded memory, never another exception."""

import gzip
import struct

import numpy as np
import torch
from hypothesis import strategies as st

from embdrop.data.vectors import load_vectors
from fuzz_support import damaged, folder, fuzz, refused_or_read

WORD = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="\x85\ufeff"),
               min_size=1, max_size=8)  # fmt: skip
VALUE = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@st.composite
def tables(draw):
    E = draw(st.integers(1, 5))
    words = draw(st.lists(WORD, min_size=1, max_size=12, unique=True))
    values = draw(st.lists(st.lists(VALUE, min_size=E, max_size=E), min_size=len(words), max_size=len(words)))
    fmt = draw(st.sampled_from(["glove", "word2vec", "word2vec-binary"]))
    return fmt, words, np.array(values, dtype=np.float32).reshape(len(words), E), draw(st.booleans())


def encode(fmt, words, values) -> bytes:
    V, E = values.shape
    if fmt == "word2vec-binary":
        return f"{V} {E}\n".encode() + b"".join(w.encode() + b" " + struct.pack(f"<{E}f", *row) + b"\n"
                                                for w, row in zip(words, values, strict=True))  # fmt: skip
    lines = [f"{w} " + " ".join(repr(float(x)) for x in row) for w, row in zip(words, values, strict=True)]
    header = [f"{V} {E}"] if fmt == "word2vec" else []
    return "\n".join(header + lines).encode() + b"\n"


def name(fmt, zipped):
    return ("v.bin" if fmt == "word2vec-binary" else "v.txt") + (".gz" if zipped else "")


def round_trips(example):
    fmt, words, values, zipped = example
    data = encode(fmt, words, values)
    with folder() as d:
        path = d / name(fmt, zipped)
        path.write_bytes(gzip.compress(data) if zipped else data)
        v = load_vectors(path, format=fmt)
    assert v.words == words
    assert np.array_equal(v.vectors.numpy(), values)


def damaged_are_refused(example):
    (fmt, words, values, zipped), cut, where, junk = example
    data = encode(fmt, words, values)
    with folder() as d:
        for k, bad in enumerate(damaged(data, cut, where, junk)):
            path = d / f"{k}{name(fmt, zipped)}"
            payload = gzip.compress(bad) if zipped else bad
            path.write_bytes(payload)
            result = refused_or_read(lambda path=path: load_vectors(path, format=fmt), len(bad))
            if not isinstance(result, Exception):
                assert result.vectors.shape[0] == len(result.words) and bool(torch.isfinite(result.vectors).all())
        cut_gzip = gzip.compress(data)[: max(1, cut % 40)]
        (d / "cut.gz").write_bytes(cut_gzip)
        refused_or_read(lambda: load_vectors(d / "cut.gz", format=fmt), len(data))


test_vectors_round_trip, test_vectors_round_trip_many = fuzz(tables(), round_trips)
test_damaged_vectors_are_refused, test_damaged_vectors_are_refused_many = fuzz(
    st.tuples(tables(), st.integers(0, 10**6), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    damaged_are_refused,
)
