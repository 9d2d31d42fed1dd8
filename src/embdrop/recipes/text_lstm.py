"""The Keras LSTM sentiment model with ``recurrent_dropout``: Embedding(V, 64) -> Dropout(0.25) ->
LSTM(100, dropout=0.5, recurrent_dropout=0.5) -> Dense, RMSprop, Keras' initialisers; two classes: sigmoid and
binary cross-entropy, more: softmax.

Three recipes share it: ``text-lstm`` on your own labelled texts (``--data FILE``), ``reviews-lstm`` on the packaged
reviews and ``imdb-lstm`` on IMDB (``--set data.root=DIR``, the folder with ``train.jsonl.gz``/``test.jsonl.gz`` or
aclImdb's ``train/``, ``test/``).
"""

from __future__ import annotations

from torch import Tensor, nn

from embdrop import LSTM, Dropout, Embedding, SpatialDropout1D
from embdrop.recipes.config import Config
from embdrop.recipes.presets import LstmModel, imdb_lstm, reviews_lstm, text_lstm  # noqa: F401 (re-exported)
from embdrop.recipes.text_classification import TextClassification, head, real_steps, text_model


class EmbeddingLstm(nn.Module):
    def __init__(self, embedding: Embedding, m: LstmModel, padding: str = "pre", outputs: int = 1) -> None:
        super().__init__()
        self.padding = padding
        self.embedding = embedding
        self.dropout = Dropout(m.dropout)
        self.spatial_dropout = SpatialDropout1D(m.spatial_dropout)
        rates = {"dropout": m.lstm_dropout, "recurrent_dropout": m.recurrent_dropout, "zoneout": m.zoneout}
        self.lstm = LSTM(embedding.embedding_dim, m.hidden, **rates, weight_dropout=m.weight_dropout,
                         variational=m.lstm_variational)  # fmt: skip
        self.dense = nn.Linear(m.hidden, outputs)

    def forward(self, ids: Tensor) -> Tensor:
        mask = real_steps(ids, self.padding)  # (B, T)
        x = self.spatial_dropout(self.dropout(self.embedding(ids)))  # (B, T, E)
        _, (h, _) = self.lstm(x, lengths=mask)  # h: (1, B, H) after each row's last real step
        return head(self.dense(h[-1]))  # (B,) logits for two classes, (B, K) for K


def build(config: Config, data: TextClassification) -> nn.Module:
    m = config.model
    return text_model(config, data, lambda e: EmbeddingLstm(e, m, config.data.padding, data.outputs))
