import gzip

import numpy as np
import pytest
import torch

from embdrop.data import Vectors, Vocab, load_dataset, load_vectors
from shared import shared


@pytest.fixture(scope="module")
def glove():
    return load_vectors("glove-6b-50d")


@pytest.fixture(scope="module")
def small(glove):
    return Vectors(glove.words[:2000], glove.vectors[:2000].clone(), source="first 2000")


def test_packaged_glove(glove):
    assert len(glove) == 400_000 and glove.dim == 50 and glove.vectors.dtype == torch.float32
    assert glove.words[:4] == ["the", ",", ".", "of"]
    assert glove["the"].shape == (50,)


def test_king_minus_man_plus_woman_is_queen(glove):
    (word, score), *_ = glove.most_similar(["king", "woman"], ["man"], k=5)
    assert word == "queen" and 0.8 < score < 0.9
    assert "king" not in [w for w, _ in glove.most_similar(["king", "woman"], ["man"])]


def test_glove_covers_ptb(glove):
    from embdrop import Embedding

    ptb = load_dataset("ptb", shared("ptb"))
    vocab = Vocab.build([ptb["train"]], eos=True)
    emb = Embedding.from_pretrained(glove, vocab)
    assert emb.coverage.token_rate >= 0.99
    assert emb.coverage.type_rate >= 0.98


@pytest.mark.parametrize("binary", [True, False])
def test_files_written_by_gensim_load_to_the_same_vectors(tmp_path, small, binary):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(small.dim)
    kv.add_vectors(small.words, small.vectors.numpy())
    path = tmp_path / ("vectors.bin" if binary else "vectors.txt")
    kv.save_word2vec_format(path, binary=binary)
    got = load_vectors(path)
    assert got.words == small.words
    if binary:
        assert torch.equal(got.vectors, small.vectors)
    else:  # gensim writes text with repr-precision floats
        back = KeyedVectors.load_word2vec_format(path, binary=False)
        assert torch.equal(got.vectors, torch.from_numpy(back.vectors))
        assert torch.allclose(got.vectors, small.vectors, atol=1e-6)


def write_glove(path, words, vecs, header=False, trailing=""):
    lines = [f"{len(words)} {vecs.shape[1]}\n"] if header else []
    lines += [
        w + " " + " ".join(repr(float(x)) for x in row) + trailing + "\n" for w, row in zip(words, vecs, strict=False)
    ]
    data = "".join(lines).encode("utf-8")
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize(
    "name, header, trailing",
    [("glove.txt", False, ""), ("glove.txt.gz", False, ""), ("wiki.vec", True, " "), ("w2v.txt.gz", True, "")],
)
def test_text_formats(tmp_path, small, name, header, trailing):
    vecs = small.vectors[:300].double().numpy()
    write_glove(tmp_path / name, small.words[:300], vecs, header, trailing)
    got = load_vectors(tmp_path / name)
    assert got.words == small.words[:300]
    assert torch.equal(got.vectors, torch.from_numpy(vecs.astype(np.float32)))


def test_gzipped_binary_and_words_with_spaces(tmp_path):
    vecs = np.arange(6, dtype=np.float32).reshape(2, 3)
    body = b"2 3\n" + b"".join(
        w.encode() + b" " + v.tobytes() + b"\n" for w, v in zip(["caf\u00e9", "b"], vecs, strict=False)
    )
    (tmp_path / "v.bin.gz").write_bytes(gzip.compress(body))
    got = load_vectors(tmp_path / "v.bin.gz")
    assert got.words == ["caf\u00e9", "b"] and torch.equal(got.vectors, torch.from_numpy(vecs))
    (tmp_path / "840b.txt").write_text("a 1 2\n. . . 3 4\nb 5 6\n", encoding="utf-8")
    got = load_vectors(tmp_path / "840b.txt")
    assert got.words == ["a", ". . .", "b"] and got.vectors[1].tolist() == [3.0, 4.0]


def test_repeated_word_keeps_its_first_vector(tmp_path):
    (tmp_path / "v.txt").write_text("a 1 2\nb 3 4\na 5 6\n")
    got = load_vectors(tmp_path / "v.txt")
    assert got["a"].tolist() == [1.0, 2.0] and len(got) == 3


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"a 1 2 3\nb 4 5\nc 6 7 8\n",
            r"a word and 3 numbers on every line \(found 2\)\. .*bad.txt' line 2$",
        ),
        (b"a 1 2 3\nb 4 x 5\n", r"numbers after the word \(found 'x'\)\. Received: .*bad.txt' line 2$"),
        (
            b"a 1 2 3\nb 4 5 6\nc\xff 7 8 9\n",
            r"text in utf-8 \(invalid start byte at byte 1\)\. .*bad.txt' line 3$",
        ),
        (b"3 2\na 1 2\nb 3 4\n", r"3 vector lines \(found 2\)\. Received: .*bad.txt' \(header says 3 words\)$"),
        (b"", r"at least one word and its vector\. Received: .*bad.txt' \(no vectors\)$"),
    ],
)
def test_malformed_text_names_file_and_line(tmp_path, content, message):
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(ValueError, match=r"^Invalid value for argument 'source': expected " + message):
        load_vectors(tmp_path / "bad.txt")


def test_malformed_line_deep_in_a_large_file(tmp_path, small):
    vecs = small.vectors.numpy()
    write_glove(tmp_path / "big.txt", small.words, vecs)
    lines = (tmp_path / "big.txt").read_text().splitlines(keepends=True)
    lines[1733] = lines[1733].replace(" ", " 0.5x", 1)
    (tmp_path / "big.txt").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"after the word \(found '0.5x.*'\)\. Received: .*big.txt' line 1734$"):
        load_vectors(tmp_path / "big.txt")


def test_other_errors(tmp_path):
    with pytest.raises(ValueError, match=r"argument 'source': expected a vectors file .*'glove-6b-50d'.*no such file"):
        load_vectors(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="argument 'format'"):
        load_vectors("glove-6b-50d", format="npy")
    (tmp_path / "t.bin").write_bytes(b"2 3\na " + np.zeros(3, np.float32).tobytes() + b"\nb " + b"\0\0")
    with pytest.raises(ValueError, match=r"2 words, each followed by 3 float32 \(file ends\)\. .*t.bin' entry 2$"):
        load_vectors(tmp_path / "t.bin")
    (tmp_path / "g.txt").write_text("a 1 2\n")
    with pytest.raises(ValueError, match=r"a 'V E' header line for format 'word2vec'\. .*g.txt' line 1$"):
        load_vectors(tmp_path / "g.txt", format="word2vec")
    v = Vectors(["a", "b"], torch.eye(2))
    with pytest.raises(ValueError, match="argument 'positive': expected words in the vectors. Received: positive='zz'"):
        v.most_similar("zz")
    with pytest.raises(ValueError, match="argument 'vectors'"):
        Vectors(["a"], torch.eye(2))
