import pytest
import torch
from torch import nn

from embdrop import Conv1D, GlobalAveragePool1D, GlobalMaxPool1D, MaxPool1D


def test_conv1d_is_nn_conv1d_batch_first():
    torch.manual_seed(0)
    conv = Conv1D(16, 8, 5, activation="relu")
    x = torch.randn(3, 40, 16)
    ref = torch.relu(conv.conv(x.transpose(1, 2))).transpose(1, 2)
    assert torch.equal(conv(x), ref) and conv(x).shape == (3, 36, 8)
    same = Conv1D(16, 8, 3, padding="same")
    assert same(x).shape == (3, 40, 8)
    assert isinstance(conv.conv, nn.Conv1d)


def test_pooling_shapes_and_values():
    x = torch.arange(2 * 9 * 2, dtype=torch.float32).view(2, 9, 2)
    y = MaxPool1D(4)(x)
    assert y.shape == (2, 2, 2) and torch.equal(y[0, 0], x[0, 3]) and torch.equal(y[1, 1], x[1, 7])
    assert MaxPool1D(2, strides=1)(x).shape == (2, 8, 2)


def test_masks_follow_the_receptive_fields():
    mask = torch.tensor([[False] * 6 + [True] * 4, [True] * 10])  # pre-padded: real tokens last
    conv = Conv1D(1, 1, 3)
    m = conv.output_mask(mask)  # output step j reads inputs j..j+2
    assert m.tolist() == [[False, False, False, False, True, True, True, True], [True] * 8]
    p = MaxPool1D(4).output_mask(m)
    assert p.tolist() == [[False, True], [True, True]]


def test_global_pools_leave_padding_out():
    x = torch.tensor([[[5.0], [1.0], [3.0]], [[9.0], [2.0], [4.0]]])
    mask = torch.tensor([[False, True, True], [True, True, True]])
    assert GlobalMaxPool1D()(x, mask).flatten().tolist() == [3.0, 9.0]
    assert GlobalAveragePool1D()(x, mask).flatten().tolist() == [2.0, 5.0]
    assert GlobalMaxPool1D()(x).flatten().tolist() == [5.0, 9.0]


def test_errors():
    with pytest.raises(ValueError, match="argument 'activation': expected one of 'linear', 'relu'"):
        Conv1D(4, 4, 3, activation="gelu")
    with pytest.raises(ValueError, match="argument 'padding': expected one of 'valid', 'same', 'causal'"):
        Conv1D(4, 4, 4, padding="full")
    with pytest.raises(ValueError, match="argument 'dilation_rate'"):
        Conv1D(4, 4, 4, dilation_rate=0)
    with pytest.raises(ValueError, match="argument 'x'"):
        MaxPool1D(2)(torch.randn(3, 4))


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize(("k", "stride", "dilation"), [(1, 1, 1), (2, 1, 1), (4, 1, 2), (3, 2, 1), (4, 3, 2)])
def test_padding_strides_and_dilation_are_a_padded_nn_conv1d(padding, k, stride, dilation):
    torch.manual_seed(0)
    conv = Conv1D(3, 2, k, padding=padding, strides=stride, dilation_rate=dilation)
    x = torch.randn(2, 11, 3)
    span = (k - 1) * dilation + 1
    if padding == "valid":
        left = right = 0
    elif padding == "causal":
        left, right = span - 1, 0
    else:  # Keras' split: T_out = ceil(T / stride), the odd step of padding on the right
        total = max((-(-11 // stride) - 1) * stride + span - 11, 0)
        left, right = total // 2, total - total // 2
    ref = nn.functional.conv1d(nn.functional.pad(x.transpose(1, 2), (left, right)), conv.conv.weight,
                               conv.conv.bias, stride=stride, dilation=dilation).transpose(1, 2)  # fmt: skip
    assert torch.equal(conv(x), ref)
    want = {"valid": (11 - span) // stride + 1, "same": -(-11 // stride), "causal": (11 - 1) // stride + 1}
    assert conv(x).shape == (2, want[padding], 2)
    mask = torch.tensor([[False] * 4 + [True] * 7, [True] * 11])
    m = conv.output_mask(mask)
    assert m.shape == (2, want[padding]) and m[1].all()
    # an output step is real iff a tap of its window reads a real step: recompute from the taps
    padded = [False] * left + mask[0].tolist() + [False] * right
    taps = [[padded[j * stride + i * dilation] for i in range(k)] for j in range(want[padding])]
    assert m[0].tolist() == [any(t) for t in taps]


def test_causal_step_reads_only_the_past():
    conv = Conv1D(1, 1, 3, padding="causal", dilation_rate=2)
    x = torch.randn(1, 9, 1, requires_grad=True)
    conv(x)[0, 4, 0].backward()
    assert x.grad[0, 5:].abs().sum() == 0 and x.grad[0, :5].abs().sum() > 0
