import pytest
import torch

from embdrop.viz import show as S


def x334():
    return torch.arange(1, 37, dtype=torch.float32).reshape(3, 3, 4)


def test_panels_mark_exactly_what_each_mask_drops():
    x = x334()
    panels, ids = S.make_panels(x, 0.5, seed=0)
    by = {p.title: p for p in panels}
    for p in panels:
        assert torch.equal(p.values[~p.dropped], x[~p.dropped] * 2)
        assert (p.values[p.dropped] == 0).all()
    d = by["SpatialDropout1D"].dropped
    assert (d == d[:, :1]).all()  # columns
    d = by["TokenDropout"].dropped
    assert (d == d[:, :, :1]).all()  # rows
    d = by["embedding dropout (sample)"].dropped[..., 0]
    for b in range(3):
        for w in ids[b].unique():
            assert d[b][ids[b] == w].unique().numel() == 1


def test_one_variant_alone_matches_the_full_table():
    full = {p.title: p for p in S.make_panels(x334(), 0.5, 3)[0]}
    (alone,) = S.make_panels(x334(), 0.5, 3, variants=("token",))[0]
    assert torch.equal(alone.dropped, full["TokenDropout"].dropped)


def test_render_default():
    text = S.show()
    lines = text.splitlines()
    assert "shape (B, T, C) = (3, 3, 4), p = 0.5, seed = 0" in lines[0]
    header = next(line for line in lines if "input" in line)
    for title in ("Dropout", "SpatialDropout1D", "TokenDropout", "embedding dropout (sample)"):
        assert title in header
    assert lines[4].startswith("b=0  [ 1  2  3  4]") and "[33 34 35 36]" in text
    assert sum(line.startswith(("Dropout(", "SpatialDropout1D(", "TokenDropout(", "Embedding(")) for line in lines) == 4


def test_non_integral_values_get_two_decimals():
    text = S.show((1, 2, 2), p=0.3, seed=0, variants=("dropout",))
    assert "1.00" in text and "Dropout(p=0.3)" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 1.0}, r"argument 'p'"),
        ({"shape": (3, 0, 4)}, r"argument 'shape': expected three positive ints"),
        ({"variants": ("rows",)}, r"argument 'variant': expected one of"),
        ({"mode": "word"}, r"argument 'mode': expected one of 'sample', 'batch'"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.show(**kwargs)
