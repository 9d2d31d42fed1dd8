import pandas as pd
import pytest
import torch

from embdrop import HashEmbedding
from embdrop.data import load_dataset
from embdrop.data.categorical import CategoryEncoder

DF = pd.DataFrame({"city": ["Rome", "Oslo", "Oslo", "Lima", "Rome", "Oslo", "Kiev"], "n": [3, 1, 1, 2, 3, 1, 9]})


def test_ids_by_frequency_with_unknown_bucket_zero():
    enc = CategoryEncoder(["city", "n"]).fit(DF)
    assert enc.categories == {"city": ["Oslo", "Rome", "Lima", "Kiev"], "n": [1, 3, 2, 9]}
    assert enc.cardinalities == {"city": 5, "n": 5}
    new = pd.DataFrame({"city": ["Lima", "Paris"], "n": [9, 4]})
    assert enc.transform(new).tolist() == [[3, 4], [0, 0]]


def test_min_freq_and_max_size():
    assert CategoryEncoder(["city"], min_freq=2).fit(DF).categories["city"] == ["Oslo", "Rome"]
    enc = CategoryEncoder(["city"], max_size=3).fit(DF)
    assert enc.cardinalities == {"city": 3}
    assert enc.transform(DF).max().item() == 2


def test_hash_values_are_stable_and_feed_hash_embedding():
    enc = CategoryEncoder(["city"])
    h = enc.hash_values(DF, "city")
    assert h.dtype == torch.int64 and h[1] == h[2] and h[0] == h[4] and h[0] != h[1]
    assert enc.hash_values(DF, "n").tolist() == DF["n"].tolist()
    emb = HashEmbedding(64, 4)
    assert emb(h.view(-1, 1)).shape == (7, 1, 4)
    assert torch.equal(emb.buckets(h.view(-1, 1))[0], emb.buckets([["Rome"]])[0])  # the same stable hash as strings


def test_flights_columns():
    ds = load_dataset("flights")
    enc = CategoryEncoder(list(ds.features)).fit(ds["train"])
    x = enc.transform(ds["test"])
    assert x.shape == (len(ds["test"]), 8)
    card = enc.cardinalities
    assert card["carrier"] == 17 and card["origin"] == 4 and card["weekday"] == 8
    assert (x < torch.tensor(list(card.values()))).all()


def test_save_load_and_errors(tmp_path):
    enc = CategoryEncoder(["city", "n"]).fit(DF)
    enc.save(tmp_path / "cat.json")
    back = CategoryEncoder.load(tmp_path / "cat.json")
    assert torch.equal(back.transform(DF), enc.transform(DF))
    with pytest.raises(ValueError, match="argument 'columns'"):
        CategoryEncoder("city")
    with pytest.raises(ValueError, match=r"argument 'df': expected a table with the column 'zip'"):
        CategoryEncoder(["zip"]).fit(DF)
    with pytest.raises(ValueError, match="expected a fitted CategoryEncoder"):
        CategoryEncoder(["city"]).transform(DF)
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValueError, match="argument 'path'.*not in that format"):
        CategoryEncoder.load(tmp_path / "x.json")


def test_missing_cells_hash_even_when_a_column_has_nothing_else():
    """A split whose column is all missing (<NA> in a pyarrow string column, as pandas reads a CSV's empty cells)
    hashed by indexing an empty table of values; now a missing cell is a value of its own."""
    import pandas as pd

    enc = CategoryEncoder(["city"]).fit(pd.DataFrame({"city": ["a", "b"]}))
    missing = pd.DataFrame({"city": pd.array([None, None], dtype="string[pyarrow]")})
    h = enc.hash_values(missing, "city")
    assert h.shape == (2,) and h[0] == h[1]
    mixed = enc.hash_values(pd.DataFrame({"city": pd.array(["a", None, "a"], dtype="string[pyarrow]")}), "city")
    assert mixed[0] == mixed[2] == enc.hash_values(pd.DataFrame({"city": ["a"]}), "city")[0] and mixed[1] == h[0]
