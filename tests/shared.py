"""Where the shared real corpora live for tests (../shared/data beside the checkout, or $EMBDROP_SHARED_DATA)."""

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("EMBDROP_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def shared(name: str) -> Path:
    """The corpus folder ``name``, or skip the test with the reason when it is absent."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"shared corpus {name!r} not found at {path} (set EMBDROP_SHARED_DATA to its parent)")
    return path
