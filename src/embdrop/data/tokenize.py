"""``Tokenizer``: text to tokens, and to vocabulary ids fast (a compiled loop over the whole batch of texts)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from embdrop import _checks
from embdrop.data import _native
from embdrop.data.vocab import Vocab

LEVELS = ("word", "whitespace", "char")
PUNCTUATION = ("split", "strip")
MARKUP = ("keep", "strip")
# HTML line breaks, as IMDB and the packaged reviews carry them ("great.<br /><br />The"): Keras' own text
# classification example replaces "<br />" with a space before its standardisation; without it they become "br"
# glued to the words beside them ("greatbrbrthe").
_BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_P = re.escape(string.punctuation)
WORD_PATTERN = rf"[^\s{_P}]+|[{_P}]"
_WORD_RE = re.compile(WORD_PATTERN)
_DELETE = str.maketrans("", "", string.punctuation)
_MODES = {("word", "split"): 0, ("word", "strip"): 1, ("whitespace", "split"): 2, ("whitespace", "strip"): 2}


@dataclass(frozen=True)
class Tokenizer:
    r"""Split text into tokens; :meth:`encode` also maps them to ids of a :class:`Vocab`.

    Levels (all lower-case first when ``lower=True``):

    - ``"word"`` with ``punctuation="split"`` (default): ``re.findall(WORD_PATTERN, text)``, where
      ``WORD_PATTERN = r"[^\s<P>]+|[<P>]"`` and ``<P>`` is ``string.punctuation``: runs of other characters are
      words and every ASCII punctuation character is a token of its own (``"don't!"`` -> ``don ' t !``).
    - ``"word"`` with ``punctuation="strip"``: punctuation deleted, then a whitespace split
      (``"don't!"`` -> ``dont``), which is Keras' ``TextVectorization`` default ``"lower_and_strip_punctuation"``.
    - ``"whitespace"``: ``text.split()``, for corpora that come tokenized (PTB, WikiText-2).
    - ``"char"``: every character, for character-level language models.

    :meth:`encode` does the split and the lookup for a whole list of texts in one compiled loop (see
    ``_tokenize.c``), giving exactly the ids of ``vocab.encode(tokenizer(text))``; where no C compiler is found it
    runs that Python expression instead (one warning).

    Args:
        level: "word", "whitespace" or "char".
        lower: lower-case the text first.
        punctuation: "split" or "strip" (word level only).
        markup: "keep" the text as it is, or "strip" its HTML line breaks (``<br />``, ``<br>``): each becomes a
            space before anything else.

    Example:
        >>> tok = Tokenizer()
        >>> tok("Don't panic: it's FINE.")
        ['don', "'", 't', 'panic', ':', 'it', "'", 's', 'fine', '.']
        >>> Tokenizer(punctuation="strip")("Don't panic: it's FINE.")
        ['dont', 'panic', 'its', 'fine']
        >>> vocab = Vocab.build([tok("the cat sat on the mat")])
        >>> tok.encode(["The cat!", "a mat"], vocab)
        [tensor([2, 3, 1]), tensor([1, 6])]
    """

    level: str = "word"
    lower: bool = True
    punctuation: str = "split"
    markup: str = "keep"

    def __post_init__(self) -> None:
        _checks.choice("level", self.level, LEVELS)
        _checks.choice("punctuation", self.punctuation, PUNCTUATION)
        _checks.choice("markup", self.markup, MARKUP)
        if not isinstance(self.lower, bool):
            raise _checks.invalid("lower", "a bool", repr(self.lower))

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise _checks.invalid("text", "a str", type(text).__name__)
        if self.markup == "strip":
            text = _BREAK_RE.sub(" ", text)
        if self.lower:
            text = text.lower()
        if self.level == "char":
            return list(text)
        if self.level == "whitespace":
            return text.split()
        if self.punctuation == "strip":
            return text.translate(_DELETE).split()
        return _WORD_RE.findall(text)

    def _standard(self, texts: Sequence[str]) -> Iterable[str]:
        """The texts as the compiled loop takes them: line breaks out (``markup="strip"``), lower case."""
        if self.markup == "strip":
            texts = [_BREAK_RE.sub(" ", t) for t in texts]
        return (t.lower() for t in texts) if self.lower else texts

    def count(self, texts: Iterable[str]) -> Counter:
        """Token counts over ``texts``, in first-appearance order (what :meth:`Vocab.from_counts` takes)."""
        counts: Counter = Counter()
        for text in texts:
            counts.update(self(text))
        return counts

    def encode(self, texts: Sequence[str], vocab: Vocab, *, eos: bool = False) -> list[Tensor]:
        """One int64 tensor of ids per text; ``eos=True`` appends ``vocab.eos_id`` to each.

        Shape: a list of (T_i,) tensors, T_i the number of tokens of text i (plus one with ``eos``).
        """
        if isinstance(texts, str):
            raise _checks.invalid("texts", "a sequence of str (one per document)", "a single str")
        if eos and vocab.eos_id is None:
            raise _checks.invalid("eos", "False for a vocabulary without '<eos>' (build it with eos=True)", True)
        eos_id = vocab.eos_id if eos else -1
        mode = _MODES.get((self.level, self.punctuation))
        if mode is None or _native.library() is None:
            ids = [vocab.encode(self(t)) + ([eos_id] if eos else []) for t in texts]
            return [torch.tensor(x, dtype=torch.int64) for x in ids]
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise _checks.invalid(f"texts[{i}]", "a str", type(t).__name__)
        lowered = self._standard(texts)
        docs = [t.encode("utf-8", "surrogatepass") for t in lowered]
        flat, offsets = _native.encode(docs, vocab.packed, mode, vocab.unk_id, eos_id)
        return list(torch.from_numpy(flat.copy()).split(np.diff(offsets).tolist()))

    def encode_padded(
        self, texts: Sequence[str], vocab: Vocab, maxlen: int, *, padding: str = "pre", truncating: str = "pre"
    ) -> Tensor:
        """``pad_sequences(self.encode(texts, vocab), maxlen, ...)`` in one step: the (N, maxlen) int64 ids.

        With the compiled tokenizer the ids go from its flat output straight into the matrix (see
        :func:`embdrop.data.batching.pad_flat`), which is several times faster for many short texts.
        """
        from embdrop.data.batching import pad_flat, pad_sequences

        if isinstance(texts, str):
            raise _checks.invalid("texts", "a sequence of str (one per document)", "a single str")
        mode = _MODES.get((self.level, self.punctuation))
        if mode is None or _native.library() is None:
            return pad_sequences(self.encode(texts, vocab), maxlen, padding=padding, truncating=truncating)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise _checks.invalid(f"texts[{i}]", "a str", type(t).__name__)
        lowered = self._standard(texts)
        docs = [t.encode("utf-8", "surrogatepass") for t in lowered]
        flat, offsets = _native.encode(docs, vocab.packed, mode, vocab.unk_id, -1)
        return pad_flat(torch.from_numpy(flat.copy()), torch.from_numpy(np.asarray(offsets, dtype=np.int64)), maxlen,
                        padding=padding, truncating=truncating)  # fmt: skip
