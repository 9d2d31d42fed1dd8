"""Shared pieces of the property-based tests of the readers of users' files (Hypothesis)."""

import os
import tempfile
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from embdrop._checks import UsageError

FEW = int(os.environ.get("EMBDROP_FUZZ_EXAMPLES", "60"))  # each property in the default suite
MANY = 10 * FEW  # each property again under -m slow


def fuzz(strategy, check):
    """Two tests of ``check(example)``: FEW examples in the default suite, MANY under ``-m slow``."""
    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

    @settings(max_examples=FEW, **common)
    @given(strategy)
    def few(example):
        check(example)

    @pytest.mark.slow
    @settings(max_examples=MANY, **common)
    @given(strategy)
    def many(example):
        check(example)

    return few, many


@contextmanager
def folder():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def refused_or_read(read, size: int, *, slack: int = 32 << 20):
    """``read()`` either returns or raises UsageError (any other exception fails the test), and its Python
    allocations peak below ``slack`` plus 40 times ``size`` (the file's bytes): memory bounded by the input."""
    tracemalloc.start()
    try:
        try:
            result = read()
        except UsageError as e:
            assert len(str(e).splitlines()) == 1, str(e)  # one line
            result = e
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < slack + 40 * size, peak
    return result


def damaged(data: bytes, cut: int, where: int, junk: bytes) -> list[bytes]:
    """Damages of ``data``: cut short, junk inserted, a byte flipped."""
    n = len(data)
    out = [data[: cut % (n + 1)], data[: where % (n + 1)] + junk + data[where % (n + 1) :]]
    if n:
        i = where % n
        out.append(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    return out
