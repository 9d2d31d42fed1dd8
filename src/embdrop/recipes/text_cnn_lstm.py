"""The Keras CNN-LSTM sentiment model: Embedding(V, 16) -> Dropout(0.2) -> Conv1D(64, 5, relu) -> MaxPooling1D(4)
-> LSTM(64) -> Dense, Adam, Keras' initialisers; two classes: sigmoid and binary cross-entropy, more: softmax.
``model.conv_dropout`` adds a Dropout layer after the pooling (before the LSTM), where Keras users often put one.

Three recipes share it: ``text-cnn-lstm`` on your own labelled texts (``--data FILE`` or a folder with one
sub-folder per class), ``reviews-cnn-lstm`` (embdrop's default) on the packaged reviews and ``imdb-cnn-lstm`` on IMDB
(``--set data.root=DIR``).
"""

from __future__ import annotations

from torch import Tensor, nn

from embdrop import LSTM, Conv1D, Dropout, Embedding, MaxPool1D, SpatialDropout1D
from embdrop.recipes.config import Config
from embdrop.recipes.presets import CnnLstmModel, imdb_cnn_lstm, reviews_cnn_lstm, text_cnn_lstm  # noqa: F401 (re-exported)
from embdrop.recipes.text_classification import TextClassification, head, real_steps, text_model


class CnnLstm(nn.Module):
    def __init__(self, embedding: Embedding, m: CnnLstmModel, padding: str = "pre", outputs: int = 1) -> None:
        super().__init__()
        self.padding = padding
        self.embedding = embedding
        self.dropout = Dropout(m.dropout)
        self.spatial_dropout = SpatialDropout1D(m.spatial_dropout)
        self.conv = Conv1D(embedding.embedding_dim, m.filters, m.kernel_size, activation="relu")
        self.pool = MaxPool1D(m.pool_size)
        self.conv_dropout = Dropout(m.conv_dropout)
        self.lstm = LSTM(m.filters, m.hidden, dropout=m.lstm_dropout, recurrent_dropout=m.recurrent_dropout)
        self.dense = nn.Linear(m.hidden, outputs)

    def forward(self, ids: Tensor) -> Tensor:
        mask = real_steps(ids, self.padding)  # (B, T)
        x = self.spatial_dropout(self.dropout(self.embedding(ids)))  # (B, T, E)
        x = self.conv_dropout(self.pool(self.conv(x)))  # (B, T', filters), T' = (T - kernel_size + 1) // pool_size
        mask = self.pool.output_mask(self.conv.output_mask(mask))  # (B, T')
        _, (h, _) = self.lstm(x, lengths=mask)  # h: (1, B, H), the state after each row's last real step
        return head(self.dense(h[-1]))  # (B,) logits for two classes, (B, K) for K; sigmoid/softmax in the loss


def build(config: Config, data: TextClassification) -> nn.Module:
    m = config.model
    return text_model(config, data, lambda e: CnnLstm(e, m, config.data.padding, data.outputs))
