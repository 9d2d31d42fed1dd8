"""Shared pieces of the property-based tests of the readers of users' files (Hypothesis)."""

import os
import tempfile
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from embdrop._checks import UsageError

FEW = int(os.environ.get("EMBDROP_FUZZ_EXAMPLES", "25"))  # each property in the default suite (its 4 minutes)
MANY = 24 * FEW  # each property again under -m slow


def fuzz(strategy, check, share: float = 1.0):
    """Two tests of ``check(example)``: FEW examples in the default suite, MANY under ``-m slow`` (times ``share``,
    for a check that takes a second)."""
    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

    @settings(max_examples=max(1, int(FEW * share)), **common)
    @given(strategy)
    def few(example):
        check(example)

    @pytest.mark.slow
    @settings(max_examples=max(1, int(MANY * share)), **common)
    @given(strategy)
    def many(example):
        check(example)

    return few, many


@contextmanager
def folder():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _peak_rss() -> int | None:
    """The process's peak resident memory in bytes since the last :func:`_reset_peak_rss` (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def refused_or_read(read, size: int, *, slack: int = 32 << 20, native_slack: int = 1 << 30):
    """``read()`` either returns or raises UsageError (any other exception fails the test) in one line, with memory
    bounded by the input: Python's allocations peak below ``slack`` plus 40 times ``size`` (the file's bytes), and
    the process's resident memory (torch and numpy included) grows by less than ``native_slack`` plus that."""
    tracked = _reset_peak_rss()
    start = _peak_rss() if tracked else None
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
    if start is not None:
        grown = _peak_rss() - start
        assert grown < native_slack + 40 * size, f"resident memory grew by {grown:,} bytes"
    return result


def damaged(data: bytes, cut: int, where: int, junk: bytes) -> list[bytes]:
    """Damages of ``data``: cut short, junk inserted, a byte flipped."""
    n = len(data)
    out = [data[: cut % (n + 1)], data[: where % (n + 1)] + junk + data[where % (n + 1) :]]
    if n:
        i = where % n
        out.append(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    return out
