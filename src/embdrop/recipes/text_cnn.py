"""``text-cnn``: Kim's CNN for sentence classification on your own labelled texts (``--data FILE``), or the
packaged reviews by default.

Embedding(V, E) -> Conv1D with filter widths 3, 4 and 5, 100 maps each, ReLU -> max over time -> concatenation
(300 features) -> Dropout(0.5) -> Dense with a max-norm of 3 on each output unit's weights -> sigmoid (two classes)
or softmax. ``--set embedding.pretrained=glove`` starts from GloVe; ``embedding.freeze=true`` is Kim's "static"
variant, ``false`` his "non-static", and ``model.multichannel=true`` his "multichannel" (a static and a non-static
copy of the vectors, each filter applied to both and the results added). Kim trained with Adadelta;
the default here is Adam (lr 1e-3).

Reference: Kim, "Convolutional Neural Networks for Sentence Classification", 2014.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from embdrop import Dropout, Embedding, _checks
from embdrop.recipes.config import Config, sizes
from embdrop.recipes.presets import KimCnnModel  # noqa: F401 (re-exported)
from embdrop.recipes.text_classification import TextClassification, head, text_model


def widths(text: str) -> tuple[int, ...]:
    """``"3,4,5"`` -> (3, 4, 5); the field named in the error."""
    return sizes("model.widths", text)


class MaxNormLinear(nn.Linear):
    """``nn.Linear`` whose output units' weight vectors are kept within an L2 norm of ``max_norm`` (Keras'
    ``kernel_constraint=max_norm(m)``): the rows are renormalised before every use, that is after every update."""

    def __init__(self, in_features: int, out_features: int, max_norm: float | None) -> None:
        super().__init__(in_features, out_features)
        self.max_norm = max_norm

    def forward(self, x: Tensor) -> Tensor:
        if self.max_norm is not None:
            with torch.no_grad():
                self.weight.copy_(torch.renorm(self.weight, 2, 0, self.max_norm))  # (K, F): each row's norm <= m
        return super().forward(x)


class KimCnn(nn.Module):
    def __init__(self, embedding: Embedding, m: KimCnnModel, outputs: int = 1) -> None:
        super().__init__()
        self.embedding = embedding
        self.static = None
        if m.multichannel:  # the second channel: the same starting vectors, never updated
            self.static = copy.deepcopy(embedding).requires_grad_(False)
        self.widths = widths(m.widths)
        self.convs = nn.ModuleList(nn.Conv1d(embedding.embedding_dim, m.maps, w) for w in self.widths)
        self.dropout = Dropout(m.dropout)
        self.dense = MaxNormLinear(m.maps * len(self.widths), outputs, m.max_norm)

    def _channel(self, embedding: Embedding, ids: Tensor) -> Tensor:
        x = embedding(ids).transpose(1, 2)  # (B, T, E) -> (B, E, T)
        if x.shape[-1] < max(self.widths):  # texts shorter than the widest filter: pad with zero vectors
            x = nn.functional.pad(x, (0, max(self.widths) - x.shape[-1]))
        return x

    def forward(self, ids: Tensor) -> Tensor:
        x = self._channel(self.embedding, ids)  # (B, E, T)
        if self.static is None:
            pooled = [torch.relu(conv(x)).amax(dim=-1) for conv in self.convs]  # each (B, maps)
        else:  # one filter over both channels, the results added (one bias)
            s = self._channel(self.static, ids)  # (B, E, T)
            pooled = [torch.relu(conv(x) + nn.functional.conv1d(s, conv.weight)).amax(dim=-1) for conv in self.convs]
        return head(self.dense(self.dropout(torch.cat(pooled, dim=-1))))  # (B,) or (B, K)


def build(config: Config, data: TextClassification) -> nn.Module:
    m = config.model
    if m.multichannel and config.embedding is not None and config.embedding.freeze:
        raise _checks.invalid("embedding.freeze", "False with model.multichannel=true (its first channel is the "
                              "trained one; the second is always frozen)", "True")  # fmt: skip
    model = text_model(config, data, lambda e: KimCnn(e, m, data.outputs))
    if model.static is not None:  # both channels start from the same vectors
        model.static.weight.data.copy_(model.embedding.weight)
    return model
