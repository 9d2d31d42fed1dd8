"""``Vocab``: tokens to ids and back, with the specials every model here relies on, saved as JSON."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

from embdrop import _checks
from embdrop._io import read_json, write_json

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
_FORMAT = "embdrop.vocab/1"


class Vocab:
    """A fixed token <-> id mapping: ``<pad>`` = 0, ``<unk>`` = 1, then ``<eos>`` = 2 when asked for, then words.

    Words are ordered by count, most frequent first, ties by first appearance, so the same corpus always gives the
    same ids. Unknown tokens map to ``<unk>``. ``max_size`` counts the specials, as Keras' ``max_tokens`` does, so
    ``Vocab.build(..., max_size=10_000)`` has exactly the 10,000 rows of a Keras ``TextVectorization(max_tokens=
    10_000)``. Counts are kept (for coverage by tokens, see ``Embedding.from_pretrained``) and saved with the words.

    Args:
        itos: every token, specials first, in id order.
        counts: the count of each token in the corpus it was built from (missing ones count 0).

    Example:
        >>> v = Vocab.build([["the", "cat", "sat"], ["the", "mat"]], eos=True)
        >>> v.itos
        ['<pad>', '<unk>', '<eos>', 'the', 'cat', 'sat', 'mat']
        >>> v.encode(["the", "dog"])
        [3, 1]
        >>> v.decode([3, 4, 2])
        ['the', 'cat', '<eos>']
    """

    def __init__(self, itos: Sequence[str], counts: Mapping[str, int] | None = None) -> None:
        itos = list(itos)
        if len(itos) < 2 or itos[0] != PAD or itos[1] != UNK:
            raise _checks.invalid("itos", f"a list of tokens starting with {PAD!r}, {UNK!r}", repr(itos[:3]) + "...")
        if len(set(itos)) != len(itos):
            dup = next(t for t, n in Counter(itos).items() if n > 1)
            raise _checks.invalid("itos", "distinct tokens", f"a list with {dup!r} twice")
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(itos)}
        self.counts: dict[str, int] = dict(counts or {})
        self.pad_id, self.unk_id = 0, 1
        self.eos_id: int | None = self.stoi.get(EOS)

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], *, min_freq: int = 1, max_size: int | None = None, eos: bool = False
    ) -> Vocab:
        """A vocabulary from token counts (ties keep the mapping's order): see :meth:`build`."""
        min_freq = _checks.integer("min_freq", min_freq, low=1)
        specials = [PAD, UNK] + ([EOS] if eos else [])
        if max_size is not None:
            max_size = _checks.integer("max_size", max_size, low=len(specials))
        words = sorted(
            (t for t, n in counts.items() if n >= min_freq and t not in specials), key=lambda t: -counts[t]
        )  # sorted() is stable: equal counts keep first-appearance order
        if max_size is not None:
            words = words[: max_size - len(specials)]
        return cls(specials + words, counts)

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        eos: bool = False,
    ) -> Vocab:
        """Count the tokens of ``sequences`` (an iterable of token lists) and keep the frequent ones.

        Args:
            sequences: token lists, e.g. ``[tokenizer(t) for t in texts]``, or ``[tokens]`` for one long corpus.
            min_freq: keep tokens seen at least this often.
            max_size: at most this many entries, specials included (None: no limit).
            eos: add ``<eos>`` as id 2 (language models).
        """
        counts: Counter = Counter()
        for seq in sequences:
            if isinstance(seq, str):
                raise _checks.invalid("sequences", "an iterable of token lists", f"an iterable of str ({seq[:20]!r})")
            counts.update(seq)
        return cls.from_counts(counts, min_freq=min_freq, max_size=max_size, eos=eos)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, self.unk_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos and self.counts == other.counts

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {', '.join(map(repr, self.itos[:6]))}{', ...' if len(self) > 6 else ''})"

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown ones are ``unk_id``."""
        get, unk = self.stoi.get, self.unk_id
        return [get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (ints or a 1-D tensor)."""
        itos, n = self.itos, len(self.itos)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise _checks.invalid("ids", f"ids in [0, {n})", i)
            out.append(itos[i])
        return out

    @cached_property
    def packed(self):
        """The tokens as UTF-8 bytes back to back with offsets, for the compiled tokenizer."""
        from embdrop.data import _native

        return _native.pack([t.encode("utf-8", "surrogatepass") for t in self.itos])

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON (``{"format", "itos", "counts"}``) atomically: a reader never sees a half-written file."""
        write_json(path, {"format": _FORMAT, "itos": self.itos, "counts": [self.counts.get(t, 0) for t in self.itos]})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a vocabulary written by :meth:`save`."""
        expected = f"a JSON vocabulary written by Vocab.save (format {_FORMAT!r})"
        data = read_json(path, expected)
        ok = isinstance(data, dict) and data.get("format") == _FORMAT
        itos, counts = (data.get("itos"), data.get("counts")) if ok else (None, None)
        if not (isinstance(itos, list) and isinstance(counts, list) and len(itos) == len(counts)):
            raise _checks.invalid("path", expected, f"{str(path)!r} (not in that format)")
        if not all(isinstance(t, str) for t in itos) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts
        ):
            raise _checks.invalid("path", expected, f"{str(path)!r} (tokens that are not all strings, or counts that "
                                  "are not all ints >= 0)")  # fmt: skip
        try:
            return cls(itos, {t: n for t, n in zip(itos, counts, strict=True) if n})
        except _checks.UsageError as e:  # repeated tokens, or no <pad>, <unk> first
            raise _checks.invalid("path", expected, f"{str(path)!r} ({e.expected}: {e.received})") from None
