import math

import pytest
import torch
from torch import nn

from contract import check_layer_contract
from embdrop import Embedding


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


IDS = torch.tensor([[1, 2, 1, 3, 0], [4, 4, 2, 0, 0], [5, 1, 5, 5, 6]])


@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_layer_contract(mode):
    check_layer_contract(
        lambda: Embedding(7, 4, padding_idx=0, dropout=0.4, dropout_mode=mode),
        lambda dt: (IDS,),
        eval_reference=lambda layer, inputs: layer.weight[inputs[0]],
    )


def test_eval_is_the_plain_lookup_and_output_shape():
    emb = Embedding(7, 4, padding_idx=0, dropout=0.5).eval()
    y = emb(IDS)
    assert y.shape == (3, 5, 4)
    assert torch.equal(y, emb.weight[IDS])
    ref = nn.Embedding(7, 4, padding_idx=0)
    ref.load_state_dict(emb.state_dict())
    assert torch.equal(ref(IDS), y)


@pytest.mark.parametrize("seed", range(20))
def test_dropped_word_is_zero_at_all_positions_in_its_sequence_any_seed(seed):
    ids = torch.randint(1, 8, (6, 25), generator=gen(50 + seed))
    emb = Embedding(8, 3, dropout=0.5)
    nn.init.uniform_(emb.weight, 0.5, 1.5)  # no zero entries, so zero means dropped
    y = emb(ids, generator=gen(seed))
    dropped = (y == 0).all(-1)
    for b in range(ids.shape[0]):
        for w in ids[b].unique():
            d = dropped[b][ids[b] == w]
            assert (d == d[0]).all()
    kept = ~dropped
    assert torch.allclose(y[kept], emb.weight[ids][kept] * 2)


@pytest.mark.parametrize("seed", range(20))
def test_batch_mode_drops_a_word_in_the_whole_batch_any_seed(seed):
    ids = torch.randint(1, 8, (6, 25), generator=gen(50 + seed))
    emb = Embedding(8, 3, dropout=0.5, dropout_mode="batch")
    nn.init.uniform_(emb.weight, 0.5, 1.5)
    dropped = (emb(ids, generator=gen(seed)) == 0).all(-1)
    for w in ids.unique():
        d = dropped[ids == w]
        assert (d == d[0]).all()


def test_type_keep_rate_within_four_sigma():
    ids = torch.arange(1, 50_001).reshape(50, 1000)
    p = 0.3
    emb = Embedding(50_001, 2, dropout=p)
    nn.init.uniform_(emb.weight, 0.5, 1.5)
    keep = (emb(ids, generator=gen(0)) != 0).all(-1).double().mean().item()
    assert abs(keep - (1 - p)) < 4 * math.sqrt(p * (1 - p) / ids.numel())


def test_padding_row_is_never_dropped_scaled_or_updated():
    emb = Embedding(7, 4, padding_idx=0, dropout=0.9)
    with torch.no_grad():
        emb.weight[0] = 3.0  # even a non-zero padding row comes out as it is
    for seed in range(10):
        y = emb(IDS, generator=gen(seed))
        assert torch.equal(y[IDS == 0], emb.weight[0].expand(int((IDS == 0).sum()), 4))
    emb.zero_grad()
    emb(IDS, generator=gen(0)).sum().backward()
    assert (emb.weight.grad[0] == 0).all()


def test_padding_idx_must_be_a_real_row():
    with pytest.raises(
        ValueError, match=r"argument 'padding_idx': expected an int in \[0, 7\)\. Received: padding_idx=-1"
    ):
        Embedding(7, 4, padding_idx=-1)
    with pytest.raises(ValueError, match=r"Received: padding_idx=7"):
        Embedding(7, 4, padding_idx=7)


def test_without_padding_every_row_learns():
    # AWD-LSTM turned padding_idx=None into -1 and froze the last row; here the last row gets its gradient.
    emb = Embedding(7, 4, dropout=0.0)
    emb(torch.tensor([[6, 6, 1]])).sum().backward()
    assert (emb.weight.grad[6] == 2).all()


def test_padding_mask_like_keras_mask_zero():
    emb = Embedding(7, 4, padding_idx=0)
    assert torch.equal(emb.padding_mask(IDS), IDS != 0)
    assert Embedding(7, 4).padding_mask(IDS).all()


def test_sparse_gradients_with_dropout_match_dense():
    dense = Embedding(50, 6, padding_idx=0, dropout=0.5)
    sparse = Embedding(50, 6, padding_idx=0, dropout=0.5, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    ids = torch.randint(0, 50, (4, 9), generator=gen(2))
    mask = dense.sample_mask(ids, generator=gen(3))
    w = torch.randn(4, 9, 6, generator=gen(4))
    (dense(ids, mask=mask) * w).sum().backward()
    (sparse(ids, mask=mask) * w).sum().backward()
    assert sparse.weight.grad.is_sparse
    assert torch.allclose(sparse.weight.grad.to_dense(), dense.weight.grad)
    opt = torch.optim.SparseAdam([sparse.weight], lr=0.1)
    opt.step()  # the sparse optimizer accepts it


def test_cost_grows_with_the_batch_not_the_vocabulary():
    # A 2-million-word table: the training forward draws one key (the mask hashes (sequence, id) under it) and
    # builds a (B, T, E) output, never a (V, E) masked copy (sparse gradients above would be impossible with one).
    emb = Embedding(2_000_000, 8, dropout=0.5)
    ids = torch.tensor([[1_999_999, 5, 5], [7, 7, 7]])
    g = gen(1)
    y = emb(ids, generator=g)
    ref = gen(1)
    torch.randint(-(2**63), 2**63 - 1, (), generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())
    assert y.shape == (2, 3, 8)


def test_max_norm_renormalizes_looked_up_rows():
    emb = Embedding(5, 3, max_norm=1.0)
    with torch.no_grad():
        emb.weight.mul_(10)
    y = emb.eval()(torch.tensor([[1, 2]]))
    assert torch.allclose(y.norm(dim=-1), torch.ones(1, 2), atol=1e-4)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (torch.tensor([[1.0, 2.0]]), r"argument 'ids': expected an integer tensor of ids"),
        (
            torch.tensor([[1, -2]]),
            r"argument 'ids': expected ids in \[0, 7\)\. Received: ids=tensor of shape "
            r"\(1, 2\) and dtype torch.int64 containing -2",
        ),
        (torch.tensor([[1, 7]]), r"expected ids in \[0, 7\).*containing 7"),
        (torch.tensor([1, 2]), r"argument 'ids': expected a tensor of rank 2 with shape \(B, T\)"),
        (torch.ones(1, 2, 3, dtype=torch.long), r"expected a tensor of rank 2"),
    ],
)
def test_bad_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        Embedding(7, 4)(ids)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"argument 'dropout': expected a float in \[0, 1\)\. Received: dropout=1.0"):
        Embedding(7, 4, dropout=1.0)
    with pytest.raises(ValueError, match=r"argument 'dropout_mode': expected one of 'sample', 'batch'"):
        Embedding(7, 4, dropout_mode="word")
    with pytest.raises(
        ValueError, match=r"argument 'num_embeddings': expected an int >= 1\. Received: num_embeddings=0"
    ):
        Embedding(0, 4)
    with pytest.raises(ValueError, match=r"argument 'max_norm': expected None or a float > 0"):
        Embedding(7, 4, max_norm="big")
    with pytest.raises(ValueError, match=r"argument 'mask': expected a mask of shape \(3, 5\)"):
        Embedding(7, 4)(IDS, mask=torch.ones(3, 5, 1))


def test_gradcheck_float64_with_reseeded_generator():
    emb = Embedding(7, 3, dropout=0.5).double()

    def f(w):
        emb.weight.data = w.detach()  # keep the module, feed the weight through the functional core
        from embdrop.functional import embedding

        return embedding(IDS, w, p=0.5, mask=emb.sample_mask(IDS, generator=gen(4)))

    w = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (w,))


def test_extra_repr():
    assert repr(Embedding(10, 3)) == "Embedding(10, 3)"
    assert repr(Embedding(10, 3, padding_idx=0, dropout=0.1, dropout_mode="batch")) == (
        "Embedding(10, 3, padding_idx=0, dropout=0.1, dropout_mode='batch')"
    )


# ---- from_pretrained ----------------------------------------------------------------------------------------------


def pretrained():
    from embdrop.data import Vectors, Vocab

    words = ["the", "cat", "sat", "paris"]
    vecs = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0], [0.5, -1.0, 2.0]])
    vocab = Vocab.build([["the", "the", "the", "Paris", "Paris", "cat", "dog"]], eos=True)
    return Vectors(words, vecs), vocab


def test_from_pretrained_aligns_exact_then_lower_case():
    vectors, vocab = pretrained()
    assert vocab.itos == ["<pad>", "<unk>", "<eos>", "the", "Paris", "cat", "dog"]
    emb = Embedding.from_pretrained(vectors, vocab, oov="zeros")
    w = emb.weight
    assert (
        torch.equal(w[3], vectors["the"]) and torch.equal(w[4], vectors["paris"]) and torch.equal(w[5], vectors["cat"])
    )
    assert not w[[0, 1, 2, 6]].any()
    assert emb.padding_idx == 0 and not emb.weight.requires_grad
    cov = emb.coverage
    assert (cov.types, cov.exact, cov.lower, cov.tokens, cov.tokens_found) == (4, 2, 1, 7, 6)
    assert cov.missing == ("dog",)
    assert str(cov) == (
        "pretrained vectors cover 3 of 4 word types (75.0%; 1 by lower case) and 85.7% of 7 tokens; "
        "most frequent missing: dog"
    )


def test_from_pretrained_random_rows_follow_the_vectors_statistics():
    from embdrop.data import Vectors, Vocab

    g = gen(3)
    src = torch.randn(50, 4, generator=g) * torch.tensor([0.1, 1.0, 3.0, 0.5]) + torch.tensor([5.0, 0.0, -2.0, 1.0])
    vectors = Vectors([f"w{i}" for i in range(50)], src)
    vocab = Vocab.build([[f"new{i}" for i in range(4000)] + ["w1"]])
    emb = Embedding.from_pretrained(vectors, vocab, freeze=False, generator=gen(4), dropout=0.1)
    new = emb.weight[2:-1].detach()  # the 4000 unmatched words
    mean, std = src.mean(0), src.std(0)
    assert torch.allclose(new.mean(0), mean, atol=4 * (std / 4000**0.5).max().item())
    assert torch.allclose(new.std(0), std, rtol=4 * (1 / (2 * 4000) ** 0.5))
    assert torch.equal(emb.weight[-1], src[1]) and not emb.weight[0].any()
    assert emb.weight.requires_grad and emb.dropout == 0.1
    again = Embedding.from_pretrained(vectors, vocab, generator=gen(4))
    assert torch.equal(again.weight, emb.weight)


def test_from_pretrained_tensor_like_nn_embedding():
    w = torch.randn(5, 3)
    emb = Embedding.from_pretrained(w)
    ref = nn.Embedding.from_pretrained(w)
    ids = torch.tensor([[0, 4, 2]])
    assert torch.equal(emb(ids), ref(ids)) and emb.coverage is None and not emb.weight.requires_grad
    assert emb.padding_idx is None
    emb.weight.data.zero_()
    assert w.abs().sum() > 0  # a copy, not a view of the caller's tensor


def test_from_pretrained_errors():
    vectors, vocab = pretrained()
    with pytest.raises(ValueError, match="argument 'vocab': expected the Vocab to align the vectors to"):
        Embedding.from_pretrained(vectors)
    with pytest.raises(ValueError, match="argument 'vocab': expected None with a tensor"):
        Embedding.from_pretrained(torch.ones(2, 2), vocab)
    with pytest.raises(ValueError, match="argument 'vectors': expected a \\(V, E\\) float tensor"):
        Embedding.from_pretrained(torch.ones(2, dtype=torch.long))
    with pytest.raises(ValueError, match="argument 'vectors'.*Received: vectors=dict"):
        Embedding.from_pretrained({"a": 1}, vocab)
    with pytest.raises(ValueError, match="argument 'oov': expected one of 'random', 'zeros'"):
        Embedding.from_pretrained(vectors, vocab, oov="mean")
