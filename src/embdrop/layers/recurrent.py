"""``LSTM`` and ``GRU`` with Keras' ``dropout``/``recurrent_dropout``, weight drop, zoneout and naive dropout.

Parameters are named and shaped as in ``nn.LSTM``/``nn.GRU`` (``weight_ih_l0`` (G*H, C), ``weight_hh_l0`` (G*H, H),
``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``; gate order i, f, g, o and r, z, n), so ``load_state_dict`` from
torch's layers works and, with every dropout at zero, outputs and gradients equal theirs. Which implementation
runs (PyTorch's fused layers, the fused C++ kernel or the reference loop; the same result at different speeds) is
decided per layer and direction by :func:`embdrop.functional.recurrent.run`.
"""

from __future__ import annotations

import dataclasses

from embdrop import _checks
from embdrop.functional import recurrent as dispatch
from embdrop.layers.recurrent_stack import RecurrentStack


class LSTM(RecurrentStack):
    """LSTM with Keras' ``dropout`` and ``recurrent_dropout``, weight drop, zoneout and naive dropout; batch first.

    A stack of ``num_layers`` layers, each like one Keras ``LSTM(return_sequences=True)`` layer: the input of every
    layer (the previous layer's output for layers above the first) gets the ``dropout`` masks, so between layers
    this is variational (locked) dropout with a mask fixed across T. With every rate at 0 the layer computes
    exactly what ``nn.LSTM(..., batch_first=True)`` computes with the same weights.

    Args:
        input_size: C, features of the input.
        hidden_size: H.
        num_layers: L, stacked layers.
        dropout: probability to drop an input unit, one mask per sample fixed across T (Keras ``dropout``); with
            ``recurrent_dropout > 0`` each of the 4 gates gets its own mask (Keras' implementation 1).
        recurrent_dropout: probability to drop a unit of h(t-1), one mask per sample and gate, fixed across T
            (Keras ``recurrent_dropout``, Gal & Ghahramani 2016). The cell state c is never masked.
        weight_dropout: DropConnect on ``weight_hh``: one mask per call, shared by the batch (AWD-LSTM).
        zoneout: probability that a unit of h and c keeps its previous value at a step (training); at eval the
            expectation ``p * previous + (1 - p) * new`` (Krueger et al. 2017). On CPU it runs in the fused
            kernel.
        variational: False gives naive dropout (Zaremba et al. 2014): a new input mask at every step, nothing on
            the recurrent connections (``recurrent_dropout`` must then be 0).
        bidirectional: a second, reverse direction with its own weights and masks.
        merge_mode: how the two directions' outputs combine (Keras' Bidirectional): "concat" (2H features),
            "sum", "ave" or "mul" (H features).
        bias: learn the biases ``bias_ih`` and ``bias_hh``.

    Shape:
        Input: x (B, T, C); state (h, c), each (L * directions, B, H); lengths (B,) ints, or a (B, T) bool padding
        mask (True at real steps; pre- or post-padding). Output: (B, T, H), or (B, T, 2H) bidirectional with
        ``merge_mode="concat"``, and the final (h, c) of every direction.
        Padded steps leave the state untouched and output zeros, as Keras masking and packed sequences do. T = 0
        gives an empty output and the initial state.

    Mask: input (4 or 1, B, C) per layer and direction, fixed across T, redrawn every call ((B, T, C), redrawn
    every step, when ``variational=False``); recurrent (4, B, H), fixed across T, redrawn every call; weight
    (4H, H), shared by the batch, redrawn every call (hashed from one random key, ``bernoulli_keep_hashed``);
    zoneout (B, T, H) for h and for c, redrawn every step (hashed, one key per mask).
    ``sample_masks(x)`` returns them and ``forward(..., masks=...)`` applies given ones.

    Reference: Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural Networks",
    2016; Zaremba et al., "Recurrent Neural Network Regularization", 2014; Merity et al., "Regularizing and
    Optimizing LSTM Language Models", 2017; Krueger et al., "Zoneout", 2017.

    Example:
        >>> import torch
        >>> rnn = LSTM(16, 32, dropout=0.5, recurrent_dropout=0.5)
        >>> out, (h, c) = rnn(torch.randn(4, 10, 16), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape, bool((out[3, 1:] == 0).all())
        (torch.Size([4, 10, 32]), torch.Size([1, 4, 32]), True)
    """

    cell = "lstm"
    gate_order = ("i", "f", "g", "o")
    gates = 4
    has_cell_state = True


class GRU(RecurrentStack):
    """GRU with Keras' ``dropout`` and ``recurrent_dropout``, weight drop, zoneout and naive dropout; batch first.

    PyTorch's GRU (Keras' ``reset_after=True``): ``n = tanh(W_n x + b_in + r * (U_n h(t-1) + b_hn))``,
    ``h = (1 - z) * n + z * h(t-1)``. A stack of ``num_layers`` layers, each like one Keras
    ``GRU(return_sequences=True, reset_after=True)`` layer, the ``dropout`` masks on every layer's input (variational
    between layers). With every rate at 0 the layer computes exactly what ``nn.GRU(..., batch_first=True)``
    computes with the same weights.

    Args:
        input_size: C, features of the input.
        hidden_size: H.
        num_layers: L, stacked layers.
        dropout: probability to drop an input unit, one mask per sample fixed across T (Keras ``dropout``); with
            ``recurrent_dropout > 0`` each of the 3 gates gets its own mask (Keras' implementation 1).
        recurrent_dropout: probability to drop a unit of h(t-1) in each gate's recurrent product, one mask per
            sample and gate, fixed across T (Keras ``recurrent_dropout``, Gal & Ghahramani 2016). The update
            ``h = z * h(t-1) + (1 - z) * n`` uses the undropped h(t-1).
        weight_dropout: DropConnect on ``weight_hh``: one mask per call, shared by the batch (AWD-LSTM).
        zoneout: probability that a unit of h keeps its previous value at a step (training); at eval the
            expectation ``p * previous + (1 - p) * new`` (Krueger et al. 2017). On CPU it runs in the fused
            kernel.
        variational: False gives naive dropout (Zaremba et al. 2014): a new input mask at every step, nothing on
            the recurrent connections (``recurrent_dropout`` must then be 0).
        bidirectional: a second, reverse direction with its own weights and masks.
        merge_mode: how the two directions' outputs combine (Keras' Bidirectional): "concat" (2H features),
            "sum", "ave" or "mul" (H features).
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        reset_after: True (PyTorch's and Keras' default) applies the reset gate after the recurrent product;
            False is Cho et al.'s original form, Keras' ``reset_after=False``:
            ``n = tanh(W_n x + b_in + U_n (r * h(t-1)) + b_hn)`` (``recurrent_dropout``'s mask on h(t-1) inside).
            It has no fused PyTorch kernel: it runs the reference loop.

    Shape:
        Input: x (B, T, C); state h (L * directions, B, H); lengths (B,) ints, or a (B, T) bool padding mask (True
        at real steps; pre- or post-padding). Output: (B, T, H), or (B, T, 2H) bidirectional with
        ``merge_mode="concat"``, and the final h of every direction. Padded steps leave
        the state untouched and output zeros. T = 0 gives an empty output and the initial state.

    Mask: input (3 or 1, B, C) per layer and direction, fixed across T, redrawn every call ((B, T, C), redrawn
    every step, when ``variational=False``); recurrent (3, B, H), fixed across T, redrawn every call; weight
    (3H, H), shared by the batch, redrawn every call (hashed from one random key, ``bernoulli_keep_hashed``);
    zoneout (B, T, H), redrawn every step (hashed, one key per mask).
    ``sample_masks(x)`` returns them and ``forward(..., masks=...)`` applies given ones.

    Reference: Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural Networks",
    2016; Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder", 2014; Krueger et al.,
    "Zoneout", 2017.

    Example:
        >>> import torch
        >>> rnn = GRU(16, 32, dropout=0.5, recurrent_dropout=0.5)
        >>> out, h = rnn(torch.randn(4, 10, 16), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape, bool((out[3, 1:] == 0).all())
        (torch.Size([4, 10, 32]), torch.Size([1, 4, 32]), True)
    """

    cell = "gru"
    gate_order = ("r", "z", "n")
    gates = 3

    def __init__(self, *args, reset_after: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(reset_after, bool):
            raise _checks.invalid("reset_after", "a bool", repr(reset_after))
        self.reset_after = reset_after

    def _options(self) -> dispatch.Options:
        return dataclasses.replace(super()._options(), reset_after=self.reset_after)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", reset_after=False" if not self.reset_after else "")


class SimpleRNN(RecurrentStack):
    """Elman RNN with Keras' ``dropout`` and ``recurrent_dropout``, weight drop, zoneout and naive dropout; batch first.

    ``h(t) = tanh(W x(t) + b_ih + U h(t-1) + b_hh)``, Keras' ``SimpleRNN`` (its one bias is ``bias_ih``) and
    ``nn.RNN(nonlinearity="tanh")``. With every rate at 0 (and no padding) it runs PyTorch's fused RNN; with
    recurrent masks or padding, the reference loop.

    Args:
        input_size: C, features of the input.
        hidden_size: H.
        num_layers: L, stacked layers.
        dropout: probability to drop an input unit, one mask per sample fixed across T (Keras ``dropout``).
        recurrent_dropout: probability to drop a unit of h(t-1), one mask per sample fixed across T.
        weight_dropout: DropConnect on ``weight_hh``: one mask per call, shared by the batch.
        zoneout: probability that a unit of h keeps its previous value at a step (training).
        variational: False gives naive dropout: a new input mask at every step (``recurrent_dropout`` must be 0).
        bidirectional: a second, reverse direction with its own weights and masks.
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        merge_mode: how two directions combine: "concat", "sum", "ave" or "mul".

    Shape:
        Input: x (B, T, C); state h (L * directions, B, H); lengths (B,) ints, or a (B, T) bool padding mask.
        Output: (B, T, H) (2H bidirectional with "concat"), and the final h of every direction.

    Mask: input (1, B, C) per layer and direction, fixed across T, redrawn every call ((B, T, C), redrawn every
    step, when ``variational=False``); recurrent (1, B, H), fixed across T, redrawn every call; weight (H, H),
    shared by the batch, redrawn every call (hashed from one random key); zoneout (B, T, H), redrawn every step
    (hashed).

    Reference: Elman, "Finding Structure in Time", 1990; Gal & Ghahramani, 2016 (the dropout masks).

    Example:
        >>> import torch
        >>> rnn = SimpleRNN(16, 32, dropout=0.5, recurrent_dropout=0.5)
        >>> out, h = rnn(torch.randn(4, 10, 16), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 10, 32]), torch.Size([1, 4, 32]))
    """

    cell = "rnn"
    gate_order = ("h",)
    gates = 1
