import gzip
import json
import re
import sys
import warnings

import pytest
import torch

from embdrop.data import Tokenizer, Vocab, _native
from embdrop.data.tokenize import WORD_PATTERN
from shared import shared

TEXTS = [
    "Don't panic: it's FINE... (really)!",
    "Tabs\tand\nnew lines,\r\nand\u00a0no-break\u2009thin\u3000ideographic\u2028line\u0085next spaces",
    "caf\u00e9 \u00c9T\u00c9 na\u00efve\u2014dash \U0001f600!? zero\u200bwidth",
    "",
    "   ",
    "--- ... !!!",
    "<br /><br />HTML tags, numbers 3.14 and 1,000; e-mail a@b.c",
    "ÄÖÜ straße İstanbul",
]
CONFIGS = [
    Tokenizer(),
    Tokenizer(punctuation="strip"),
    Tokenizer(level="whitespace"),
    Tokenizer(level="whitespace", lower=False),
    Tokenizer(lower=False),
    Tokenizer(level="char"),
    Tokenizer(punctuation="strip", markup="strip"),
    Tokenizer(markup="strip"),
]


def vocab_for(tok, texts, **kw):
    return Vocab.build([tok(t) for t in texts[: len(texts) // 2 + 1]], **kw)  # part of the texts: some tokens unknown


def test_word_level_is_the_documented_regex():
    tok = Tokenizer()
    for text in TEXTS:
        assert tok(text) == re.findall(WORD_PATTERN, text.lower())
    assert tok("Don't panic: it's FINE.") == ["don", "'", "t", "panic", ":", "it", "'", "s", "fine", "."]


def test_strip_is_keras_lower_and_strip_punctuation():
    # Keras: lower, delete [!"#$%&()*+,-./:;<=>?@[\]^_`{|}~'], split on whitespace
    keras = re.compile(r"[!\"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~']")
    tok = Tokenizer(punctuation="strip")
    for text in TEXTS:
        assert tok(text) == keras.sub("", text.lower()).split()
    assert tok("Don't panic: it's FINE.") == ["dont", "panic", "its", "fine"]


def test_whitespace_and_char_levels():
    assert Tokenizer(level="whitespace", lower=False)("The  N cats <unk>\n") == ["The", "N", "cats", "<unk>"]
    assert Tokenizer(level="char")("Ab c") == ["a", "b", " ", "c"]


@pytest.mark.parametrize("tok", CONFIGS, ids=lambda t: f"{t.level}-{t.punctuation}-{t.lower}")
@pytest.mark.parametrize("eos", [False, True])
def test_encode_equals_python_lookup(tok, eos):
    vocab = vocab_for(tok, TEXTS, eos=eos)
    got = tok.encode(TEXTS, vocab, eos=eos)
    assert len(got) == len(TEXTS)
    for text, ids in zip(TEXTS, got, strict=False):
        want = vocab.encode(tok(text)) + ([vocab.eos_id] if eos else [])
        assert ids.dtype == torch.int64
        assert ids.tolist() == want
    assert any(1 in ids.tolist() for ids in got)  # unknown words do occur and map to <unk>


def test_compiled_path_is_used_and_splits_every_unicode_space():
    assert _native.library() is not None, "the C tokenizer should build on this machine"
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert len(spaces) == 29
    texts = [f"a{s}b" for s in spaces] + ["a\u200bb", "a\u00adb"]  # zero-width space and soft hyphen are not spaces
    for tok in (Tokenizer(), Tokenizer(level="whitespace"), Tokenizer(punctuation="strip")):
        vocab = Vocab.build([["a", "b", "a\u200bb"]])
        got = [x.tolist() for x in tok.encode(texts, vocab)]
        assert got[: len(spaces)] == [[2, 3]] * len(spaces)
        assert got[-2:] == [[4], [1]]


def test_python_fallback_when_no_compiler(monkeypatch):
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setattr(_native, "_compiler", lambda: None)
    tok = Tokenizer()
    vocab = vocab_for(tok, TEXTS)
    with pytest.warns(RuntimeWarning, match="could not be built.*Python path"):
        got = tok.encode(TEXTS, vocab)
    assert [x.tolist() for x in got] == [vocab.encode(tok(t)) for t in TEXTS]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning only
        tok.encode(TEXTS, vocab)


def test_imdb_reviews_encode_identically_on_both_paths():
    path = shared("imdb") / "test.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(2000), f, strict=False)]
    for tok in (Tokenizer(), Tokenizer(punctuation="strip")):
        vocab = Vocab.from_counts(tok.count(texts[:1000]), max_size=5000)
        got = tok.encode(texts, vocab)
        assert all(g.tolist() == vocab.encode(tok(t)) for g, t in zip(got, texts, strict=False))


def test_count_keeps_first_appearance_order():
    assert list(Tokenizer().count(["b a", "a c"]).items()) == [("b", 1), ("a", 2), ("c", 1)]


def test_errors():
    with pytest.raises(
        ValueError, match=r"'level': expected one of 'word', 'whitespace', 'char'. Received: level='bpe'"
    ):
        Tokenizer(level="bpe")
    with pytest.raises(ValueError, match="argument 'punctuation'"):
        Tokenizer(punctuation="keep")
    with pytest.raises(ValueError, match="argument 'lower': expected a bool"):
        Tokenizer(lower="yes")
    vocab = Vocab.build([["a"]])
    with pytest.raises(ValueError, match="argument 'texts': expected a sequence of str"):
        Tokenizer().encode("a single text", vocab)
    with pytest.raises(ValueError, match=r"argument 'texts\[1\]': expected a str"):
        Tokenizer().encode(["ok", 3], vocab)
    with pytest.raises(ValueError, match="argument 'eos'"):
        Tokenizer().encode(["a"], vocab, eos=True)
    with pytest.raises(ValueError, match="argument 'text'"):
        Tokenizer()(None)


def test_encode_padded_equals_padding_the_encoded_texts():
    from embdrop.data import Tokenizer, Vocab, pad_sequences

    texts = ["The cat sat.", "", "A much longer text about a dog, a cat and the mat!", "dog"]
    tok = Tokenizer()
    vocab = Vocab.from_counts(tok.count(texts))
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            expected = pad_sequences(tok.encode(texts, vocab), 5, padding=padding, truncating=truncating)
            assert torch.equal(tok.encode_padded(texts, vocab, 5, padding=padding, truncating=truncating), expected)


def test_markup_strip_turns_html_line_breaks_into_spaces():
    text = "A great tea.<br /><br />The BEST<br>ever<BR/>x"
    kept = ["a", "great", "teabr", "br", "the", "bestbreverbrx"]  # "br" glued to the words beside it
    assert Tokenizer(punctuation="strip")(text) == kept
    assert Tokenizer(punctuation="strip", markup="strip")(text) == ["a", "great", "tea", "the", "best", "ever", "x"]
    tok = Tokenizer(punctuation="strip", markup="strip")
    vocab = vocab_for(tok, [text, "the best tea"])
    assert tok.encode([text], vocab)[0].tolist() == vocab.encode(tok(text))  # the compiled path strips them too
    assert tok.encode_padded([text], vocab, 12)[0, -7:].tolist() == vocab.encode(tok(text))
    with pytest.raises(ValueError, match="argument 'markup'"):
        Tokenizer(markup="html")


def test_imdb_reviews_lose_their_br_words_with_markup_strip():
    path = shared("imdb") / "test.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(500), f, strict=False)]
    kept = Tokenizer(punctuation="strip").count(texts)
    stripped = Tokenizer(punctuation="strip", markup="strip").count(texts)
    assert sum(n for w, n in kept.items() if w.endswith("br")) > 100  # "itbr", "moviebr", ...: the bug
    assert sum(n for w, n in stripped.items() if w.endswith("br") and w not in kept.keys() - {"br"}) < 5
    assert "br" not in stripped
