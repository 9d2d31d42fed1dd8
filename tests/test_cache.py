import os

import pytest

from embdrop import _cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBDROP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def build_counting(calls, content=b"\x7fELF built"):
    def build(folder):
        calls.append(folder)
        (folder / "lib.so").write_bytes(content)

    return build


def test_a_build_is_published_once_and_then_found(cache):
    calls = []
    path = _cache.publish("k1", "lib.so", build_counting(calls))
    assert path == cache / "k1" / "lib.so" and path.read_bytes() == b"\x7fELF built" and len(calls) == 1
    assert _cache.lookup("k1", "lib.so") == path
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_a_planted_or_truncated_library_is_not_trusted(cache):
    path = _cache.publish("k1", "lib.so", build_counting([]))
    path.write_bytes(b"\x7fELF planted")  # same size class, other content: the manifest's sha256 no longer matches
    assert _cache.lookup("k1", "lib.so") is None
    calls = []
    again = _cache.publish("k1", "lib.so", build_counting(calls))  # rebuilt, replacing the folder
    assert len(calls) == 1 and again.read_bytes() == b"\x7fELF built" and _cache.lookup("k1", "lib.so") == again


def test_a_library_others_can_write_is_not_trusted(cache):
    path = _cache.publish("k1", "lib.so", build_counting([]))
    os.chmod(path, 0o666)
    assert _cache.lookup("k1", "lib.so") is None
    os.chmod(path, 0o755)
    os.chmod(path.parent, 0o777)
    assert _cache.lookup("k1", "lib.so") is None


def test_a_manifest_of_another_build_is_not_trusted(cache):
    _cache.publish("k1", "lib.so", build_counting([]))
    os.rename(cache / "k1", cache / "k2")  # a folder moved under another key
    assert _cache.lookup("k2", "lib.so") is None


def test_keys_differ_when_any_part_differs_and_not_otherwise():
    assert _cache.key(b"src", "-O3") == _cache.key(b"src", "-O3")
    assert len({_cache.key(b"src", "-O3"), _cache.key(b"src2", "-O3"), _cache.key(b"src", "-O2"),
                _cache.key(b"sr", "c-O3")}) == 4  # fmt: skip


def test_a_failed_build_leaves_nothing(cache):
    def broken(folder):
        (folder / "lib.so").write_bytes(b"half")
        raise RuntimeError("compiler failed")

    with pytest.raises(RuntimeError, match="compiler failed"):
        _cache.publish("k1", "lib.so", broken)
    assert list(cache.iterdir()) == [] and _cache.lookup("k1", "lib.so") is None


def test_the_kernel_key_does_not_depend_on_the_checkout_path(tmp_path):
    """Two checkouts of the same version compute the same key: they share one build instead of rebuilding."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import embdrop

    src = Path(embdrop.__file__).parent
    copy = tmp_path / "checkout" / "embdrop"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    code = "from embdrop.kernels import build; print(build._build_name())"
    names = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                       text=True, check=True).stdout.strip()
        for root in (src.parent, copy.parent)
    }  # fmt: skip
    assert len(names) == 1
