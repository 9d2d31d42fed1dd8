import json

import pytest

from embdrop.data import Vocab


def test_specials_then_by_count_ties_by_first_appearance():
    v = Vocab.build([["b", "a", "c", "a"], ["d", "c", "b", "a"]])
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert (v.pad_id, v.unk_id, v.eos_id) == (0, 1, None)
    assert v.counts == {"b": 2, "a": 3, "c": 2, "d": 1}
    e = Vocab.build([["x", "y", "y"]], eos=True)
    assert e.itos == ["<pad>", "<unk>", "<eos>", "y", "x"] and e.eos_id == 2


def test_min_freq_and_max_size_counts_the_specials():
    seqs = [list("aaaabbbccd")]
    assert Vocab.build(seqs, min_freq=2).itos == ["<pad>", "<unk>", "a", "b", "c"]
    v = Vocab.build(seqs, max_size=4)  # like Keras TextVectorization(max_tokens=4): pad, OOV and two words
    assert len(v) == 4 and v.itos[2:] == ["a", "b"]
    assert len(Vocab.build(seqs, max_size=4, eos=True)) == 4


def test_lookup_unknown_and_specials_in_the_corpus():
    v = Vocab.build([["the", "<unk>", "cat", "<eos>"]], eos=True)  # PTB writes <unk> and we add <eos>
    assert v["<unk>"] == 1 and v["<eos>"] == 2 and v["dog"] == 1
    assert "cat" in v and "dog" not in v
    assert v.encode(["the", "dog", "<eos>"]) == [3, 1, 2]
    assert v.decode([3, 4, 0]) == ["the", "cat", "<pad>"]


def test_save_load_round_trip(tmp_path):
    v = Vocab.build([["été", "a", "a", "\u2028"]], eos=True)
    v.save(tmp_path / "vocab.json")
    w = Vocab.load(tmp_path / "vocab.json")
    assert w == v and w.itos == v.itos and w.counts == v.counts and w.eos_id == 2
    assert list(tmp_path.iterdir()) == [tmp_path / "vocab.json"]  # no temporary file left behind


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="argument 'itos': expected a list of tokens starting with '<pad>', '<unk>'"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="'itos': expected distinct tokens. Received: itos=a list with 'a' twice"):
        Vocab(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="argument 'sequences': expected an iterable of token lists"):
        Vocab.build(["flat", "strings"])
    with pytest.raises(ValueError, match="argument 'min_freq'"):
        Vocab.build([["a"]], min_freq=0)
    with pytest.raises(ValueError, match="argument 'max_size'"):
        Vocab.build([["a"]], max_size=2, eos=True)
    with pytest.raises(ValueError, match=r"argument 'ids': expected ids in \[0, 3\). Received: ids=3"):
        Vocab.build([["a"]]).decode([3])
    with pytest.raises(ValueError, match="argument 'path'.*missing.json"):
        Vocab.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"itos": ["a"]}))
    with pytest.raises(ValueError, match="argument 'path'.*not in that format"):
        Vocab.load(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text('{"format": ')
    with pytest.raises(ValueError, match="argument 'path'.*JSONDecodeError"):
        Vocab.load(tmp_path / "broken.json")
