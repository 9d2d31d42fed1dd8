import pytest
import torch

from embdrop import recipes
from embdrop.data import Vocab
from embdrop.recipes import text_cnn
from embdrop.recipes.text_classification import TextInputs


def model(*sets):
    config = recipes.resolve("text-cnn", ["model.maps=4", "model.embedding_dim=6", *sets])
    vocab = Vocab.build([["a", "b", "c", "d", "e", "f", "g"]])
    torch.manual_seed(0)
    return text_cnn.build(config, TextInputs(vocab, 3))


def test_multichannel_adds_one_filter_over_a_trained_and_a_frozen_copy():
    m = model("model.multichannel=true").eval()
    assert torch.equal(m.static.weight, m.embedding.weight)  # the same starting vectors
    ids = torch.randint(1, 8, (5, 9))
    got = m(ids)  # (5, 3) logits
    x, s = m.embedding(ids).transpose(1, 2), m.static(ids).transpose(1, 2)  # (B, E, T) each
    pooled = [torch.relu(conv(x) + torch.nn.functional.conv1d(s, conv.weight)).amax(-1) for conv in m.convs]
    assert torch.allclose(got, m.dense(torch.cat(pooled, -1)), atol=1e-6)
    m.train()
    m(ids).sum().backward()
    assert m.static.weight.grad is None and m.embedding.weight.grad.abs().sum() > 0


def test_one_channel_has_no_static_copy():
    assert model().static is None


def test_multichannel_with_a_frozen_embedding_is_refused():
    with pytest.raises(ValueError, match="'embedding.freeze'.*multichannel"):
        model("model.multichannel=true", "embedding.freeze=true")
