import torch
from torch import nn

from embdrop.kernels import reference


def test_lstm_reference_with_unit_masks_is_lstm_cell():
    torch.manual_seed(0)
    cell = nn.LSTMCell(4, 6)
    x = torch.randn(3, 5, 4)
    H = 6
    w_ih, w_hh, b = cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh  # the kernels take torch's gate order
    xw = torch.einsum("btc,ghc->gtbh", x, w_ih.view(4, H, 4)) + b.view(4, 1, 1, H)  # (G, T, B, H)
    out, h, c = reference.lstm_recurrence(xw, w_hh, torch.ones(4, 3, H), torch.zeros(3, H), torch.zeros(3, H))
    hc = (torch.zeros(3, H), torch.zeros(3, H))
    for t in range(5):
        hc = cell(x[:, t], hc)
        assert torch.allclose(out[t], hc[0], atol=1e-6)
    assert torch.allclose(c, hc[1], atol=1e-6)


def test_gru_reference_is_gru_cell_and_padding_keeps_state():
    torch.manual_seed(1)
    cell = nn.GRUCell(4, 6)
    x = torch.randn(2, 5, 4)
    xw = torch.einsum("btc,ghc->gtbh", x, cell.weight_ih.view(3, 6, 4)) + cell.bias_ih.view(3, 1, 1, 6)
    step = torch.tensor([[True, True]] * 3 + [[True, False]] * 2)  # (T, B): sequence 1 ends after 3 steps
    out, h = reference.gru_recurrence(xw, cell.weight_hh, cell.bias_hh, None, torch.zeros(2, 6), step)
    ref = torch.zeros(2, 6)
    for t in range(5):
        ref = cell(x[:, t], ref) if t < 3 else torch.stack([cell(x[:1, t], ref[:1])[0], ref[1]])
    assert torch.allclose(h, ref, atol=1e-6)
    assert (out[3:, 1] == 0).all()
