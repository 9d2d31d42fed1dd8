"""Initialisers: ``keras_(model)`` gives a PyTorch model the weights Keras would start it from.

Example:
    >>> import torch, embdrop
    >>> model = torch.nn.Sequential(embdrop.Embedding(100, 8, padding_idx=0), torch.nn.Linear(8, 1))
    >>> embdrop.init.keras_(model) is model
    True
    >>> w = model[0].weight.detach()
    >>> float(w.abs().max()) <= 0.05, float(w[0].abs().sum())  # U(-0.05, 0.05); the padding row stays 0
    (True, 0.0)
"""

from __future__ import annotations

import torch
from torch import nn

from embdrop.layers import GRU, LSTM, Embedding


def keras_(model: nn.Module, *, embedding: bool = True) -> nn.Module:
    """Keras' default initialisers, in place; returns ``model``.

    Embedding U(-0.05, 0.05) (the padding row stays zero; ``embedding=False`` leaves pretrained vectors alone),
    Dense and Conv1D kernels Glorot-uniform with zero bias, LSTM/GRU input kernels Glorot-uniform, recurrent kernels
    orthogonal, biases zero with the LSTM forget gate's at 1 (``unit_forget_bias``). PyTorch's defaults differ
    (N(0, 1) embedding rows, U(-1/sqrt(H), 1/sqrt(H)) recurrent weights), and the N(0, 1) embedding alone costs the
    Keras sentiment models several points of accuracy against Keras (``benchmarks/RESULTS.md``).

    Args:
        model: any module; its Embedding, Linear, Conv1d, LSTM and GRU submodules are initialised.
        embedding: also initialise the Embedding tables (False keeps pretrained vectors).
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Embedding) and embedding:
                nn.init.uniform_(m.weight, -0.05, 0.05)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (LSTM, GRU)):
                for name, w in m.named_parameters():
                    if name.startswith("weight_ih"):
                        nn.init.xavier_uniform_(w)
                    elif name.startswith("weight_hh"):
                        nn.init.orthogonal_(w)
                    else:
                        nn.init.zeros_(w)
                        if isinstance(m, LSTM) and name.startswith("bias_ih"):
                            w[m.hidden_size : 2 * m.hidden_size] = 1.0  # gate order i, f, g, o
    return model
