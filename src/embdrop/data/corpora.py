"""The corpora read from a directory the user names (``root``): Penn Treebank, WikiText-2, IMDB, Tiny Shakespeare,
UCI Adult and Tatoeba English-French. Nothing is downloaded; a missing or broken file is an error naming it.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embdrop import _checks, _extras
from embdrop.data._splits import SEED, Dataset, TextSplit, _carve_valid, _text_split, holdout


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
