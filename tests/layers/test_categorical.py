import pytest
import torch

from contract import check_layer_contract
from embdrop import HashEmbedding, embedding_size


def test_embedding_size_rules():
    assert [embedding_size(n) for n in (2, 10, 1000, 73000)] == [2, 6, 77, 600]
    assert embedding_size(73000, "fourth-root") == 16
    sizes = [embedding_size(n) for n in range(1, 5000)]
    assert sizes == sorted(sizes) and max(sizes) <= 600


def test_embedding_size_errors():
    with pytest.raises(ValueError, match=r"argument 'n_categories': expected an int >= 1\. Received: n_categories=0"):
        embedding_size(0)
    with pytest.raises(ValueError, match=r"argument 'rule': expected one of 'fastai', 'fourth-root'"):
        embedding_size(10, "sqrt")


def test_layer_contract():
    vals = torch.tensor([[3, -7, 2**40], [3, 3, 0]])
    check_layer_contract(
        lambda: HashEmbedding(50, 4),
        lambda dt: (vals,),
        eval_reference=lambda layer, inputs: _sum_rows(layer, inputs[0]),
        random=False,
    )


def _sum_rows(layer, values):
    return layer.weight[layer.buckets(values)].sum(-2)


def test_strings_and_ints_map_to_stable_vectors():
    emb = HashEmbedding(1000, 8, num_hashes=2)
    out = emb([["baobab", "oak", "baobab"], ["oak", "unseen species", "oak"]])
    assert out.shape == (2, 3, 8)
    assert torch.equal(out[0, 0], out[0, 2]) and torch.equal(out[0, 1], out[1, 0])
    twin = HashEmbedding(1000, 8)
    twin.load_state_dict(emb.state_dict())
    assert torch.equal(twin([["baobab"]]), out[:1, :1])


def test_output_is_the_sum_of_the_hashed_rows_and_only_they_learn():
    emb = HashEmbedding(64, 3, num_hashes=3)
    vals = torch.tensor([[11, 12]])
    b = emb.buckets(vals)
    assert b.shape == (1, 2, 3) and b.min() >= 0 and b.max() < 64
    assert torch.allclose(emb(vals), emb.weight[b].sum(-2))
    emb(vals).sum().backward()
    touched = emb.weight.grad.abs().sum(-1) != 0
    assert set(touched.nonzero().flatten().tolist()) == set(b.flatten().tolist())


def test_unit_variance_initialisation():
    emb = HashEmbedding(20_000, 16, num_hashes=4)
    out = emb(torch.arange(10_000).reshape(100, 100))
    assert abs(out.var().item() - 1.0) < 0.05


def test_errors():
    with pytest.raises(ValueError, match=r"argument 'num_buckets': expected an int >= 1\. Received: num_buckets=0"):
        HashEmbedding(0, 4)
    with pytest.raises(ValueError, match=r"argument 'num_hashes': expected an int >= 1"):
        HashEmbedding(10, 4, num_hashes=0)
    emb = HashEmbedding(10, 4)
    with pytest.raises(ValueError, match=r"argument 'values': expected an integer tensor"):
        emb(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"argument 'values': expected an int tensor \(B, T\) or nested lists of str"):
        emb([["a", "b"], ["c"]])
    with pytest.raises(ValueError, match=r"argument 'values': expected a tensor of rank 2"):
        emb(["a", "b"])
